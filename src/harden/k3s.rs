//! `[k3s]`: the agent's /etc/rancher/k3s/config.yaml (0600 root) with the
//! K3s CIS hardening guide's settings, the k3s-agent.service unit, and no
//! join token or node identity in the image.
//!
//! The token is provisioned, never baked: the unit reads it from
//! `token_file` (default /var/lib/rancher/k3s/agent-token, a mutable path
//! that cloud-init's write_files or the PXE server writes, mode 0600), and
//! refuses to start with a clear journal message while it is missing.

use super::{Ctx, units};
use crate::recipe::hardening::{K3sPlan, SshPlan};
use crate::tree::Kind;
use anyhow::Result;

pub const CONFIG: &str = "/etc/rancher/k3s/config.yaml";
pub const UNIT: &str = "k3s-agent.service";
pub const BINARY: &str = "/usr/local/bin/k3s";
pub const TOKEN_FILE: &str = "/var/lib/rancher/k3s/agent-token";
pub const POD_MAX_PIDS: u32 = 4096;

// The hardening guide's cipher suites and Go durations, shared with the audit.
use crate::audit::k3s::{TLS_CIPHER_SUITES, go_duration_seconds as go_seconds};

/// The kubelet arguments kiln sets (hardening guide, kube-bench 4.2.x).
pub fn hardened_kubelet_args() -> Vec<(&'static str, String)> {
    vec![
        ("anonymous-auth", "false".into()),
        ("authorization-mode", "Webhook".into()),
        ("read-only-port", "0".into()),
        ("streaming-connection-idle-timeout", "5m".into()),
        ("tls-cipher-suites", TLS_CIPHER_SUITES.join(",")),
        ("make-iptables-util-chains", "true".into()),
        ("pod-max-pids", POD_MAX_PIDS.to_string()),
        ("seccomp-default", "true".into()),
    ]
}

/// The audit rules a kubelet or kube-proxy argument can weaken.
pub const RULES: &[&str] = &[
    "k3s.protect-kernel-defaults",
    "k3s.anonymous-auth",
    "k3s.authorization-mode",
    "k3s.client-ca",
    "k3s.read-only-port",
    "k3s.streaming-timeout",
    "k3s.iptables-chains",
    "k3s.event-qps",
    "k3s.tls-cert",
    "k3s.rotate-certs",
    "k3s.rotate-server-cert",
    "k3s.tls-ciphers",
    "k3s.pod-max-pids",
    "k3s.seccomp-default",
    "k3s.proxy-metrics",
];

fn is_loopback(address: &str) -> bool {
    let host = address
        .trim_start_matches('[')
        .rsplit_once([']', ':'])
        .filter(|(h, p)| p.chars().all(|c| c.is_ascii_digit()) && !h.is_empty())
        .map_or(address, |(h, _)| h)
        .trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The rule a kubelet argument weakens, and why; `None` when it does not.
pub fn kubelet_weakens(name: &str, value: &str) -> Option<(&'static str, String)> {
    let v = value.trim();
    let bad = |rule, why: &str| Some((rule, why.to_owned()));
    match name {
        "protect-kernel-defaults" if v != "true" => bad(
            "k3s.protect-kernel-defaults",
            "the kubelet must refuse kernels with other defaults",
        ),
        "anonymous-auth" if v != "false" => bad(
            "k3s.anonymous-auth",
            "anonymous requests to the kubelet API",
        ),
        "authorization-mode" if v.split(',').any(|m| m.trim() == "AlwaysAllow") => {
            bad("k3s.authorization-mode", "every request authorized")
        }
        "client-ca-file" => bad("k3s.client-ca", "a client CA other than K3s's"),
        "read-only-port" if v != "0" => {
            bad("k3s.read-only-port", "the unauthenticated read-only port")
        }
        "streaming-connection-idle-timeout" => match go_seconds(v) {
            Some(s) if s > 0.0 && s <= 300.0 => None,
            Some(0.0) => bad("k3s.streaming-timeout", "0 never closes idle streams"),
            Some(_) => bad("k3s.streaming-timeout", "longer than 5m"),
            None => bad("k3s.streaming-timeout", "not a Go duration like 5m"),
        },
        "make-iptables-util-chains" if v != "true" => bad(
            "k3s.iptables-chains",
            "the kubelet would not manage its iptables chains",
        ),
        "event-qps" if v.parse::<i64>().is_ok_and(|n| n < 0) || v.parse::<i64>().is_err() => {
            bad("k3s.event-qps", "event-qps must be an integer of 0 or more")
        }
        "tls-cert-file" | "tls-private-key-file" => bad(
            "k3s.tls-cert",
            "a fixed serving certificate, the same on every node",
        ),
        "rotate-certificates" if v == "false" => {
            bad("k3s.rotate-certs", "client certificates would not rotate")
        }
        "feature-gates"
            if v.split(',')
                .any(|g| g.replace(' ', "") == "RotateKubeletServerCertificate=false") =>
        {
            bad(
                "k3s.rotate-server-cert",
                "serving certificates would not rotate",
            )
        }
        "tls-cipher-suites" => {
            let strong: &[&str] = TLS_CIPHER_SUITES;
            let weak: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !strong.contains(s))
                .collect();
            if weak.is_empty() && !v.is_empty() {
                None
            } else {
                Some((
                    "k3s.tls-ciphers",
                    format!(
                        "suites outside the hardening guide's six: {}",
                        weak.join(",")
                    ),
                ))
            }
        }
        "pod-max-pids" if v.parse::<i64>().is_ok_and(|n| n > 0) => None,
        "pod-max-pids" => bad("k3s.pod-max-pids", "pods need a positive process limit"),
        "seccomp-default" if v != "true" => {
            bad("k3s.seccomp-default", "containers would run unconfined")
        }
        _ => None,
    }
}

/// The rule a kube-proxy argument weakens.
pub fn kube_proxy_weakens(name: &str, value: &str) -> Option<(&'static str, String)> {
    (name == "metrics-bind-address" && !is_loopback(value)).then(|| {
        (
            "k3s.proxy-metrics",
            "kube-proxy's unauthenticated metrics beyond loopback".to_owned(),
        )
    })
}

/// Kubelet arguments that [k3s] keys set: the key to use instead.
pub fn managed_arg(name: &str) -> Option<&'static str> {
    match name {
        "address" => Some("kubelet_address"),
        _ => None,
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// config.yaml: the hardened kubelet arguments with the recipe's merged
/// in by name (the recipe's value replaces kiln's in place; new ones
/// follow).
pub fn render_config(plan: &K3sPlan) -> String {
    let mut kubelet: Vec<(String, String)> = hardened_kubelet_args()
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
    if let Some(address) = &plan.kubelet_address {
        kubelet.push(("address".into(), address.clone()));
    }
    for (name, value, _) in &plan.kubelet_args {
        match kubelet.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => kubelet.push((name.clone(), value.clone())),
        }
    }
    let mut proxy: Vec<(String, String)> =
        vec![("metrics-bind-address".into(), "127.0.0.1".into())];
    for (name, value, _) in &plan.kube_proxy_args {
        match proxy.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => proxy.push((name.clone(), value.clone())),
        }
    }
    let mut out = String::from(
        "# Written by kiln from the recipe's [k3s] table (K3s CIS hardening guide).\n\
         # No join token here: K3s reads it from token-file, written at provisioning.\n",
    );
    if let Some(server) = &plan.server {
        out.push_str(&format!("server: {}\n", quote(&server.value)));
    }
    out.push_str(&format!("token-file: {}\n", quote(&plan.token_file.value)));
    out.push_str("protect-kernel-defaults: true\n");
    let mut list = |key: &str, items: Vec<String>| {
        if items.is_empty() {
            return;
        }
        out.push_str(key);
        out.push_str(":\n");
        for item in items {
            out.push_str("  - ");
            out.push_str(&quote(&item));
            out.push('\n');
        }
    };
    list("node-label", plan.node_labels.clone());
    list("node-taint", plan.node_taints.clone());
    list(
        "kubelet-arg",
        kubelet
            .into_iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect(),
    );
    list(
        "kube-proxy-arg",
        proxy.into_iter().map(|(n, v)| format!("{n}={v}")).collect(),
    );
    out
}

/// k3s-agent.service, after K3s's own install script, with the token
/// check first.
pub fn render_unit(plan: &K3sPlan) -> String {
    let token = &plan.token_file.value;
    let binary = &plan.binary.value;
    format!(
        "# Written by kiln from the recipe's [k3s] table. The join token is not in\n\
         # the image: provisioning (cloud-init write_files, the PXE server) writes\n\
         # it to {token} (mode 0600) before this unit starts.\n\
         [Unit]\n\
         Description=Lightweight Kubernetes agent (K3s)\n\
         Documentation=https://docs.k3s.io\n\
         Wants=network-online.target\n\
         After=network-online.target nftables.service\n\n\
         [Service]\n\
         Type=notify\n\
         KillMode=process\n\
         Delegate=yes\n\
         LimitNOFILE=1048576\n\
         LimitNPROC=infinity\n\
         LimitCORE=infinity\n\
         TasksMax=infinity\n\
         TimeoutStartSec=0\n\
         Restart=always\n\
         RestartSec=15s\n\
         ExecStartPre=/bin/sh -c 'if [ ! -s {token} ]; then echo \"k3s-agent: no join token at {token}; provisioning must write it (mode 0600) before K3s can join. See kiln docs/hardening.md\" >&2; exit 1; fi'\n\
         ExecStartPre=-/sbin/modprobe br_netfilter\n\
         ExecStartPre=-/sbin/modprobe overlay\n\
         ExecStart={binary} agent\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// Paths that identify one node or hold its credentials.
pub const IDENTITY: &[&str] = &[
    "/etc/rancher/node",
    "/etc/rancher/k3s/k3s.yaml",
    "/var/lib/rancher/k3s/agent",
    "/var/lib/rancher/k3s/server",
];

pub fn apply(cx: &mut Ctx, plan: &K3sPlan, _ssh: Option<&SshPlan>) -> Result<()> {
    let loc = plan.loc.clone();
    if plan.server.is_none() {
        return Err(loc
            .error("[k3s] needs server = \"https://SERVER:6443\": the agent joins that server")
            .into());
    }
    let binary = &plan.binary.value;
    let binary_loc = plan.binary.loc.clone().unwrap_or(loc.clone());
    if !cx.is_file(binary) {
        return Err(binary_loc
            .error(format!(
                "the K3s agent runs {binary}, which is not a file in the image: add the k3s [[artifact]] with dest = \"{binary}\" (or set [k3s] binary)"
            ))
            .into());
    }
    if let Some(resolved) = cx.resolve(binary)
        && let Some(entry) = cx.tree.get(&resolved)
        && entry.meta.mode & 0o111 == 0
    {
        let mut meta = entry.meta.clone();
        meta.mode |= 0o755;
        cx.tree.set_meta(&resolved, meta);
        cx.warn(format!(
            "{}: made {binary} executable",
            binary_loc.position()
        ));
    }
    let dir = binary.rsplit_once('/').map_or("/", |(d, _)| d);
    for tool in ["kubectl", "crictl", "ctr"] {
        let link = format!("{dir}/{tool}");
        if cx.resolve(&link).is_none_or(|p| cx.tree.get(&p).is_none()) {
            cx.symlink(&link, "k3s", &loc)?;
        }
    }
    let mut removed = Vec::new();
    for path in IDENTITY {
        if cx.remove(path)? {
            removed.push(*path);
        }
    }
    let token = &plan.token_file.value;
    if cx.remove(token)? {
        removed.push(token.as_str());
    }
    if !removed.is_empty() {
        cx.warn(format!(
            "removed node identity and tokens from the image: {}",
            removed.join(", ")
        ));
    }
    cx.write(CONFIG, &render_config(plan), 0o600, &loc)?;
    if let Some(d) = cx.resolve_dir("/etc/rancher/k3s/config.yaml.d") {
        let dropins: Vec<String> = cx
            .tree
            .descendants(&d)
            .filter(|(_, e)| matches!(e.kind, Kind::File { .. }))
            .map(|(p, _)| p.as_str().to_owned())
            .collect();
        for p in dropins {
            if let Some(resolved) = cx.resolve(&p) {
                let mut meta = cx
                    .tree
                    .get(&resolved)
                    .map(|e| e.meta.clone())
                    .unwrap_or_default();
                meta.mode &= 0o600;
                meta.uid = 0;
                meta.gid = 0;
                cx.tree.set_meta(&resolved, meta);
            }
        }
    }
    cx.write(
        &format!("{}/{UNIT}", units::ETC),
        &render_unit(plan),
        0o644,
        &loc,
    )?;
    units::enable(cx, UNIT, &loc)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakenings_name_their_rule() {
        assert_eq!(
            kubelet_weakens("anonymous-auth", "true").unwrap().0,
            "k3s.anonymous-auth"
        );
        assert_eq!(
            kubelet_weakens("streaming-connection-idle-timeout", "4h")
                .unwrap()
                .0,
            "k3s.streaming-timeout"
        );
        assert!(kubelet_weakens("streaming-connection-idle-timeout", "2m").is_none());
        assert!(kubelet_weakens("pod-max-pids", "1024").is_none());
        assert!(kubelet_weakens("pod-max-pids", "-1").is_some());
        assert!(
            kubelet_weakens("tls-cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").is_none()
        );
        assert!(kubelet_weakens("tls-cipher-suites", "TLS_RSA_WITH_AES_128_CBC_SHA").is_some());
        assert!(kubelet_weakens("max-pods", "200").is_none());
        assert!(kube_proxy_weakens("metrics-bind-address", "0.0.0.0:10249").is_some());
        assert!(kube_proxy_weakens("metrics-bind-address", "127.0.0.1:10249").is_none());
    }
}
