//! `[sysctl]` and the kernel settings K3s needs: /etc/sysctl.d/90-kubelet.conf
//! (the values `protect-kernel-defaults` makes the kubelet insist on),
//! /etc/sysctl.d/99-zz-kiln-hardening.conf (network and kernel hardening
//! that does not fight Kubernetes: forwarding stays on, modules stay
//! loadable, plus the recipe's keys), and /etc/modules-load.d/kiln.conf
//! (overlay, br_netfilter and `[kernel] load`).
//!
//! systemd-sysctl applies sysctl.d files by file name, whatever their
//! directory, so a package's /usr/lib/sysctl.d file overrides an /etc one
//! named before it: the hardening file's name sorts after every file Debian
//! ships (procps's 99-protect-links.conf set fs.protected_fifos back to 1
//! over a 91- name), so the recipe's values are the ones in effect. The
//! audit's sys.kiln-effective checks that they are.

use super::Ctx;
use crate::recipe::Loc;
use crate::recipe::hardening::HardeningPlan;
use anyhow::Result;
use kiln_policy::sysctl::{
    FORWARDING, HARDENING, HARDENING_FILE, K3S_MODULES, KUBELET, KUBELET_FILE, MODULES_FILE,
    kubelet_value,
};
use std::collections::BTreeMap;

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
