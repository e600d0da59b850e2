//! `[sysctl]` and the kernel settings K3s needs: /etc/sysctl.d/90-kubelet.conf
//! (the values `protect-kernel-defaults` makes the kubelet insist on),
//! /etc/sysctl.d/91-kiln-hardening.conf (network and kernel hardening that
//! does not fight Kubernetes: forwarding stays on, modules stay loadable),
//! and /etc/modules-load.d/kiln.conf (overlay, br_netfilter and `[kernel]
//! load`). Both sysctl files sort after the distribution's (50-default),
//! so their values win.

use super::Ctx;
use crate::recipe::Loc;
use crate::recipe::hardening::HardeningPlan;
use anyhow::Result;
use std::collections::BTreeMap;

pub const KUBELET_FILE: &str = "/etc/sysctl.d/90-kubelet.conf";
pub const HARDENING_FILE: &str = "/etc/sysctl.d/91-kiln-hardening.conf";
pub const MODULES_FILE: &str = "/etc/modules-load.d/kiln.conf";

/// What the kubelet checks with protect-kernel-defaults (setupKernelTunables).
pub const KUBELET: &[(&str, &str)] = &[
    ("vm.panic_on_oom", "0"),
    ("vm.overcommit_memory", "1"),
    ("kernel.panic", "10"),
    ("kernel.panic_on_oops", "1"),
    ("kernel.keys.root_maxkeys", "1000000"),
    ("kernel.keys.root_maxbytes", "25000000"),
];

/// How a hardened value may change without weakening it.
#[derive(Clone, Copy)]
enum Dir {
    /// Only this value.
    Exact,
    /// This value or more.
    AtLeast,
}

/// kiln's hardening values (CIS Debian 12 section 3, dev-sec, ansible
/// os_hardening), none of which conflicts with K3s.
const HARDENING: &[(&str, &str, Dir)] = &[
    ("net.ipv4.conf.all.rp_filter", "1", Dir::Exact),
    ("net.ipv4.conf.default.rp_filter", "1", Dir::Exact),
    ("net.ipv4.conf.all.accept_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.default.accept_redirects", "0", Dir::Exact),
    ("net.ipv6.conf.all.accept_redirects", "0", Dir::Exact),
    ("net.ipv6.conf.default.accept_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.all.secure_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.default.secure_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.all.send_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.default.send_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.all.accept_source_route", "0", Dir::Exact),
    ("net.ipv4.conf.default.accept_source_route", "0", Dir::Exact),
    ("net.ipv6.conf.all.accept_source_route", "0", Dir::Exact),
    ("net.ipv6.conf.default.accept_source_route", "0", Dir::Exact),
    ("net.ipv4.conf.all.log_martians", "1", Dir::Exact),
    ("net.ipv4.conf.default.log_martians", "1", Dir::Exact),
    ("net.ipv4.icmp_echo_ignore_broadcasts", "1", Dir::Exact),
    (
        "net.ipv4.icmp_ignore_bogus_error_responses",
        "1",
        Dir::Exact,
    ),
    ("net.ipv4.tcp_syncookies", "1", Dir::Exact),
    ("kernel.kptr_restrict", "2", Dir::Exact),
    ("kernel.dmesg_restrict", "1", Dir::Exact),
    ("kernel.yama.ptrace_scope", "1", Dir::AtLeast),
    ("kernel.randomize_va_space", "2", Dir::Exact),
    ("fs.suid_dumpable", "0", Dir::Exact),
    ("kernel.sysrq", "0", Dir::Exact),
    ("fs.protected_hardlinks", "1", Dir::Exact),
    ("fs.protected_symlinks", "1", Dir::Exact),
    ("fs.protected_fifos", "1", Dir::AtLeast),
    ("fs.protected_regular", "2", Dir::Exact),
    ("kernel.unprivileged_bpf_disabled", "1", Dir::Exact),
    ("net.core.bpf_jit_harden", "2", Dir::Exact),
    ("kernel.perf_event_paranoid", "3", Dir::AtLeast),
    ("kernel.kexec_load_disabled", "1", Dir::Exact),
];

/// Forwarding, on as K3s needs it. The bridge keys exist once
/// br_netfilter is loaded (systemd-modules-load runs before
/// systemd-sysctl); `-` lets an image without the module boot quietly.
const FORWARDING: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("-net.bridge.bridge-nf-call-iptables", "1"),
    ("-net.bridge.bridge-nf-call-ip6tables", "1"),
];

pub const K3S_MODULES: &[&str] = &["overlay", "br_netfilter"];

pub fn kubelet_value(key: &str) -> Option<&'static str> {
    KUBELET.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

pub fn is_forwarding(key: &str) -> bool {
    let key = key.trim_start_matches('-');
    key == "net.ipv4.ip_forward"
        || key.starts_with("net.bridge.bridge-nf-call-ip")
        || ((key.starts_with("net.ipv4.conf.") || key.starts_with("net.ipv6.conf."))
            && key.ends_with(".forwarding"))
}

/// Why `key = value` weakens kiln's hardened value, if it does.
pub fn weakens(key: &str, value: &str) -> Option<String> {
    let (_, hardened, dir) = HARDENING.iter().find(|(k, _, _)| *k == key)?;
    let ok = match dir {
        Dir::Exact => value == *hardened,
        Dir::AtLeast => value
            .parse::<i64>()
            .is_ok_and(|v| v >= hardened.parse::<i64>().unwrap_or(0)),
    };
    (!ok).then(|| match dir {
        Dir::Exact => format!("kiln sets {hardened}"),
        Dir::AtLeast => format!("kiln sets {hardened} or more"),
    })
}

fn render(header: &str, values: &BTreeMap<String, String>, order: &[&str]) -> String {
    let mut out = String::from(header);
    let mut written = Vec::new();
    for key in order {
        if let Some(v) = values.get(*key) {
            out.push_str(&format!("{key} = {v}\n"));
            written.push(*key);
        }
    }
    for (k, v) in values {
        if !written.contains(&k.as_str()) {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    out
}

pub fn apply(cx: &mut Ctx, plan: &HardeningPlan) -> Result<()> {
    let loc: Loc = plan
        .sysctl
        .as_ref()
        .map(|s| s.loc.clone())
        .or_else(|| plan.k3s.as_ref().map(|k| k.loc.clone()))
        .or_else(|| plan.kernel.as_ref().map(|k| k.loc.clone()))
        .expect("called with [sysctl], [k3s] or [kernel]");
    if let Some(s) = &plan.sysctl {
        for (what, why) in &s.weakened {
            cx.warn(format!(
                "{}: [sysctl] weakened: {what} (allow_weaker: {why})",
                s.loc.position()
            ));
        }
    }
    let overrides: BTreeMap<String, String> = plan
        .sysctl
        .as_ref()
        .map(|s| {
            s.values
                .iter()
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if plan.k3s.is_some() || plan.sysctl.is_some() {
        let kubelet: BTreeMap<String, String> = KUBELET
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let order: Vec<&str> = KUBELET.iter().map(|(k, _)| *k).collect();
        if plan.k3s.is_some() {
            cx.write(
                KUBELET_FILE,
                &render(
                    "# Written by kiln: the kernel settings the kubelet requires with\n\
                 # protect-kernel-defaults (it refuses to start on other values).\n",
                    &kubelet,
                    &order,
                ),
                0o644,
                &loc,
            )?;
        }
        let mut hardening: BTreeMap<String, String> = HARDENING
            .iter()
            .map(|(k, v, _)| (k.to_string(), v.to_string()))
            .collect();
        if plan.k3s.is_some() {
            hardening.extend(
                FORWARDING
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
        }
        for (k, v) in &overrides {
            if kubelet_value(k).is_none() {
                // the plain key replaces a `-key` of kiln's own
                hardening.remove(&format!("-{k}"));
                hardening.insert(k.clone(), v.clone());
            }
        }
        let mut order: Vec<&str> = HARDENING.iter().map(|(k, _, _)| *k).collect();
        order.extend(FORWARDING.iter().map(|(k, _)| *k));
        cx.write(
            HARDENING_FILE,
            &render(
                "# Written by kiln from the recipe's [sysctl] table: network and kernel\n\
                 # hardening that keeps what Kubernetes needs (forwarding stays on).\n",
                &hardening,
                &order,
            ),
            0o644,
            &loc,
        )?;
    }
    let mut modules: Vec<String> = Vec::new();
    if plan.k3s.is_some() {
        modules.extend(K3S_MODULES.iter().map(|m| m.to_string()));
    }
    if let Some(k) = &plan.kernel {
        for m in &k.load {
            if !modules.contains(m) {
                modules.push(m.clone());
            }
        }
    }
    if !modules.is_empty() {
        let mut text = String::from("# Written by kiln: kernel modules loaded at boot.\n");
        for m in modules {
            text.push_str(&m);
            text.push('\n');
        }
        cx.write(MODULES_FILE, &text, 0o644, &loc)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stricter_values_are_not_weaker() {
        assert!(weakens("kernel.yama.ptrace_scope", "2").is_none());
        assert!(weakens("kernel.yama.ptrace_scope", "0").is_some());
        assert!(weakens("kernel.sysrq", "176").is_some());
        assert!(weakens("vm.swappiness", "10").is_none());
        assert!(is_forwarding("net.ipv6.conf.eth0.forwarding"));
        assert_eq!(kubelet_value("kernel.panic"), Some("10"));
    }
}
