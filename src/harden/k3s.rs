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
use anyhow::Result;
use kiln_policy::containerd;
use kiln_policy::k3s::{CONFIG, UNIT};
use kiln_policy::kubelet;
use kiln_tree::Kind;

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The recipe's kubelet arguments (and kubelet_address) that have a
/// KubeletConfiguration field go into kiln's drop-in; the rest stay flags.
/// Kubelet arguments by name: (name, value).
type Args = Vec<(String, String)>;

fn kubelet_split(plan: &K3sPlan) -> (Args, Args) {
    let mut fields = Vec::new();
    let mut flags = Vec::new();
    if let Some(address) = &plan.kubelet_address {
        fields.push(("address".to_owned(), address.clone()));
    }
    for (name, value, _) in &plan.kubelet_args {
        match kubelet::field_of(name) {
            Some((_, kind)) if kubelet::flag_value(kind, value).is_some() => {
                fields.push((name.clone(), value.clone()))
            }
            _ => flags.push((name.clone(), value.clone())),
        }
    }
    (fields, flags)
}

/// kiln's KubeletConfiguration drop-in: the hardening guide's settings,
/// with the recipe's that have a field.
pub fn render_kubelet_dropin(plan: &K3sPlan) -> String {
    let (fields, _) = kubelet_split(plan);
    kubelet::render_dropin(&kubelet::hardened_dropin(plan.version, &fields))
}

/// config.yaml: the server, the token file, the kubelet's drop-in
/// directory, and the recipe's kubelet arguments that have no
/// configuration field, as flags.
pub fn render_config(plan: &K3sPlan) -> String {
    let (_, flags) = kubelet_split(plan);
    let mut kubelet_args = vec![format!("config-dir={}", kubelet::DIR)];
    kubelet_args.extend(flags.into_iter().map(|(n, v)| format!("{n}={v}")));
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
         # No join token here: K3s reads it from token-file, written at provisioning.\n\
         # The kubelet's settings are in the KubeletConfiguration drop-ins of the\n\
         # config-dir below; kubelet-arg keeps only flags without a configuration field.\n",
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
    list("kubelet-arg", kubelet_args);
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
    let (cri, cri_dest) = (containerd::DROPIN, containerd::DROPIN_DEST);
    format!(
        "# Written by kiln from the recipe's [k3s] table. The join token is not in\n\
         # the image: provisioning (cloud-init write_files, the PXE server) writes\n\
         # it to {token} (mode 0600) before this unit starts.\n\
         [Unit]\n\
         Description=Lightweight Kubernetes agent (K3s)\n\
         Documentation=https://docs.k3s.io\n\
         Wants=network-online.target time-sync.target\n\
         After=network-online.target time-sync.target nftables.service\n\n\
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
         ExecStartPre=/bin/sh -c 'if [ ! -x {binary} ]; then echo \"k3s-agent: {binary} is not in this image (it was built without its K3s artifact); rebuild with kiln build --artifact k3s=FILE\" >&2; exit 1; fi'\n\
         ExecStartPre=/bin/sh -c 'if [ -z \"$$(tr -d \"[:space:]\" < {token} 2>/dev/null)\" ]; then echo \"k3s-agent: no join token at {token} (missing, empty or only whitespace, which K3s trims to no token); provisioning must write it (mode 0600) before K3s can join. See kiln docs/hardening.md\" >&2; exit 1; fi'\n\
         ExecStartPre=/usr/bin/install -D -m 0600 {cri} {cri_dest}\n\
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
    if !cx.is_file(binary) && plan.binary_left_out {
        cx.warn(format!(
            "the K3s agent's {binary} is not in this image: k3s-agent.service will say so until the image is rebuilt with it"
        ));
    } else if !cx.is_file(binary) {
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
    if plan
        .version
        .is_none_or(|v| !kubelet::streaming_timeout_has_effect(Some(v)))
        && let Some((_, _, arg_loc)) = plan
            .kubelet_args
            .iter()
            .find(|(n, _, _)| n == "streaming-connection-idle-timeout")
    {
        return Err(arg_loc
            .error("streaming-connection-idle-timeout has had no effect since kubelet 1.34: kiln sets containerd's stream_idle_timeout instead")
            .into());
    }
    cx.write(CONFIG, &render_config(plan), 0o600, &loc)?;
    cx.write(kubelet::DROPIN, &render_kubelet_dropin(plan), 0o600, &loc)?;
    cx.write(
        containerd::DROPIN,
        &containerd::render_dropin(),
        0o600,
        &loc,
    )?;
    if let Some(version) = plan.version {
        cx.write(
            kiln_policy::node::K3S_VERSION,
            &format!("{version}\n"),
            0o644,
            &loc,
        )?;
    }
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
