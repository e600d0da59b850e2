//! k3s.*: the agent's configuration (CIS Kubernetes benchmark section 4
//! as applied to K3s), its files, and what it needs from the kernel.

use super::{Rule, findings, int, not_applicable, owner_mode, rule, sysctl_findings, unit_files};
use crate::audit::{Check, Ctx, Finding, Mode};
use crate::k3s::{CONFIG, DROPIN_DIR, Item, K3sConfig, REGISTRIES, go_duration_seconds};
use crate::kubelet::{Kubelet, Source, SourceKind};
use serde_json::Value;

pub const RULES: &[Rule] = &[
    rule!("k3s.protect-kernel-defaults", High, protect_kernel_defaults,
        title: "kubelet protects kernel defaults",
        source: "HG; KB 4.2.6",
        rationale: "With protect-kernel-defaults the kubelet refuses to start on a kernel whose tunables differ from what it expects, instead of silently changing them.",
        remediation: "Set `protectKernelDefaults: true` in a kubelet drop-in (kiln: /etc/rancher/k3s/kubelet.conf.d/50-kiln-hardening.conf) or `protect-kernel-defaults: true` in config.yaml, and ship the kubelet sysctls (k3s.sysctl-file)."),
    rule!("k3s.anonymous-auth", Critical, anonymous_auth,
        title: "kubelet refuses anonymous requests",
        source: "KB/SA 4.2.1",
        rationale: "Anonymous requests to the kubelet API (10250) can read pods and, with a permissive authorizer, run commands in them.",
        remediation: "Remove `anonymous-auth=true` from kubelet-arg and `authentication.anonymous.enabled: true` from kubelet drop-ins (K3s defaults to false)."),
    rule!("k3s.authorization-mode", Critical, authorization_mode,
        title: "kubelet authorizes requests through the API server",
        source: "KB/SA 4.2.2",
        rationale: "AlwaysAllow lets any authenticated client use every kubelet endpoint, exec included.",
        remediation: "Remove `authorization-mode=AlwaysAllow` from kubelet-arg and `authorization.mode: AlwaysAllow` from kubelet drop-ins (K3s uses Webhook)."),
    rule!("k3s.client-ca", High, client_ca,
        title: "kubelet client CA is K3s's own",
        source: "KB/SA 4.2.3",
        rationale: "An overridden client-ca-file makes the kubelet trust certificates K3s did not issue.",
        remediation: "Remove `client-ca-file=` from kubelet-arg and `authentication.x509.clientCAFile` from kubelet drop-ins."),
    rule!("k3s.read-only-port", High, read_only_port,
        title: "kubelet read-only port is off",
        source: "KB/SA 4.2.4",
        rationale: "The read-only port (10255) serves pod and node data without authentication.",
        remediation: "Remove `read-only-port=` from kubelet-arg and `readOnlyPort` from kubelet drop-ins, or set it to 0."),
    rule!("k3s.streaming-timeout", Medium, streaming_timeout,
        title: "idle streaming connections time out",
        source: "HG; KB 4.2.5",
        rationale: "Idle exec/attach/port-forward streams left open keep access alive and exhaust resources; the default is 4h. Since kubelet 1.34 the kubelet setting has no effect and containerd's CRI stream_idle_timeout is the one that applies.",
        remediation: "K3s 1.34 and later: set `stream_idle_timeout = \"5m\"` in containerd's CRI table through an import in /var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.d (restating K3s's stream_server_address and stream_server_port), and remove streaming-connection-idle-timeout; older releases: `streamingConnectionIdleTimeout: 5m` in a kubelet drop-in."),
    rule!("k3s.iptables-chains", Medium, iptables_chains,
        title: "kubelet manages its iptables chains",
        source: "KB 4.2.6/4.2.7",
        rationale: "Without make-iptables-util-chains the kubelet's firewall chains can drift from what pods need.",
        remediation: "Remove `make-iptables-util-chains=false` from kubelet-arg and `makeIPTablesUtilChains: false` from kubelet drop-ins."),
    rule!("k3s.event-qps", Low, event_qps,
        title: "kubelet event rate is valid",
        source: "KB 4.2.8",
        rationale: "event-qps below 0 is invalid; 0 (the K3s default) leaves events unthrottled so none are lost.",
        remediation: "Remove `event-qps=` from kubelet-arg and `eventRecordQPS` from kubelet drop-ins, or set it to 0 or more."),
    rule!("k3s.tls-cert", Medium, tls_cert,
        title: "kubelet serving certificate is managed by K3s",
        source: "KB 4.2.9",
        rationale: "A fixed tls-cert-file/tls-private-key-file in an image is the same key on every node and is never rotated.",
        remediation: "Remove `tls-cert-file=` and `tls-private-key-file=` from kubelet-arg and `tlsCertFile`/`tlsPrivateKeyFile` from kubelet drop-ins."),
    rule!("k3s.rotate-certs", Medium, rotate_certs,
        title: "kubelet client certificates rotate",
        source: "KB 4.2.10",
        rationale: "Rotation keeps kubelet credentials short-lived.",
        remediation: "Remove `rotate-certificates=false` from kubelet-arg and `rotateCertificates: false` from kubelet drop-ins."),
    rule!("k3s.rotate-server-cert", Medium, rotate_server_cert,
        title: "kubelet serving certificates rotate",
        source: "KB 4.2.11",
        rationale: "Disabling the RotateKubeletServerCertificate feature gate keeps serving certificates until they expire.",
        remediation: "Remove `RotateKubeletServerCertificate=false` from the kubelet's feature-gates (flag or `featureGates` in a drop-in)."),
    rule!("k3s.tls-ciphers", Medium, tls_ciphers,
        title: "kubelet offers only strong TLS cipher suites",
        source: "HG; KB 4.2.12",
        rationale: "The kubelet's default list includes suites without forward secrecy or with CBC.",
        remediation: "Set `tlsCipherSuites` to the six suites TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305 in a kubelet drop-in"),
    rule!("k3s.pod-max-pids", Medium, pod_max_pids,
        title: "pods have a process limit",
        source: "KB 4.2.13",
        rationale: "Without pod-max-pids one pod can fork-bomb the node.",
        remediation: "Set `podPidsLimit: 4096` (or a limit fitting the workloads) in a kubelet drop-in."),
    rule!("k3s.seccomp-default", Medium, seccomp_default,
        title: "containers run with the RuntimeDefault seccomp profile",
        source: "SA 4.2.14",
        rationale: "Without seccomp-default, containers that set no profile run unconfined.",
        remediation: "Set `seccompDefault: true` in a kubelet drop-in."),
    rule!("k3s.proxy-metrics", Medium, proxy_metrics,
        title: "kube-proxy metrics stay on loopback",
        source: "KB 4.3.1",
        rationale: "kube-proxy's metrics endpoint (10249) is unauthenticated.",
        remediation: "Remove `metrics-bind-address=` from kube-proxy-arg or set it to 127.0.0.1."),
    rule!("k3s.config-perms", High, config_perms,
        title: "K3s configuration files are private to root",
        source: "TOK (mode unconfirmed)",
        rationale: "config.yaml and registries.yaml can hold tokens and registry credentials.",
        remediation: "Make config.yaml, config.yaml.d/*, registries.yaml and the kubelet drop-ins in /etc/rancher/k3s/kubelet.conf.d mode 0600, owner root:root."),
    rule!("k3s.no-baked-token", Critical, no_baked_token,
        title: "no join token is baked into the image",
        source: "TOK",
        rationale: "A token in the image joins any machine that gets the image to the cluster, and cannot be rotated without rebuilding.",
        remediation: "Remove token/agent-token from the K3s config and K3S_TOKEN from unit environments; inject the token at provisioning (token-file on a mutable path)."),
    rule!("k3s.no-node-identity", Critical, no_node_identity,
        title: "no node identity is baked into the image",
        source: "inference",
        rationale: "A node password, agent kubeconfig, certificate or server state in the image gives every node the same identity.",
        remediation: "Build from a clean tree: remove /etc/rancher/node, agent kubeconfigs, certificates and keys under /var/lib/rancher/k3s/agent, and /var/lib/rancher/k3s/server."),
    rule!("k3s.sysctl-file", High, sysctl_file,
        title: "the kubelet's kernel settings are shipped",
        source: "HG",
        rationale: "With protect-kernel-defaults the kubelet refuses to start unless these sysctls already have its values.",
        remediation: "Ship /etc/sysctl.d/90-kubelet.conf with vm.panic_on_oom=0, vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1."),
    rule!("k3s.sysctl-keys", Medium, sysctl_keys,
        title: "kernel key quotas fit the kubelet",
        source: "kubelet setupKernelTunables",
        rationale: "The kubelet expects kernel.keys.root_maxkeys=1000000 and root_maxbytes=25000000 (each container keyring uses keys).",
        remediation: "Add kernel.keys.root_maxkeys=1000000 and kernel.keys.root_maxbytes=25000000 to a sysctl.d file."),
    rule!("k3s.forwarding", High, forwarding,
        title: "IP forwarding and bridge netfilter stay on",
        source: "SYS",
        rationale: "K3s needs ip_forward and bridge-nf-call-iptables; a CIS-style file that turns them off breaks pod networking.",
        remediation: "Remove sysctl lines setting ip_forward, *.forwarding or bridge-nf-call-ip*tables to 0."),
    rule!("k3s.modules", High, modules,
        title: "the kernel modules K3s needs can load",
        source: "SYS",
        rationale: "containerd needs overlay; kube-proxy and flannel need br_netfilter, nf_conntrack, iptable_* and nft_*.",
        remediation: "Remove blacklist/install overrides of these modules from modprobe.d and do not set kernel.modules_disabled=1."),
];

/// K3s is there when its binary, configuration, state or unit is.
pub fn present(ctx: &Ctx) -> bool {
    [
        "/usr/local/bin/k3s",
        "/usr/bin/k3s",
        "/etc/rancher/k3s",
        "/etc/rancher/node",
        "/var/lib/rancher/k3s",
    ]
    .iter()
    .any(|p| ctx.img.exists(p))
        || !unit_files(ctx, |n| n.starts_with("k3s") && n.contains(".service")).is_empty()
}

const ABSENT: &str =
    "K3s is not installed (no k3s binary, /etc/rancher/k3s, /var/lib/rancher/k3s or k3s unit)";

/// Runs a check on the merged configuration; a configuration this reader
/// cannot parse fails the rule.
fn with_config(ctx: &Ctx, check: impl FnOnce(&K3sConfig) -> Vec<Finding>) -> Check {
    if !present(ctx) {
        return not_applicable(ABSENT);
    }
    let config = ctx.k3s();
    if let Some((path, line, message)) = &config.error {
        return findings(vec![Finding::new(
            path.clone(),
            "unreadable",
            format!("cannot evaluate this K3s config ({message}); K3s configs are flat key: value maps"),
        )
        .at_line(*line)]);
    }
    findings(check(config))
}

fn at(item: &Item, value: String, message: String) -> Finding {
    Finding::new(item.path.clone(), value, message).at_line(item.line)
}

/// A finding about a kubelet setting.
fn kfind(source: Option<&Source>, value: String, message: String) -> Finding {
    match source {
        Some(s) if s.line > 0 => Finding::new(s.path.clone(), value, message).at_line(s.line),
        Some(s) => Finding::new(s.path.clone(), value, message),
        None => Finding::new(CONFIG, value, message),
    }
}

/// What a finding says of where a value comes from.
fn origin(source: &Source) -> &'static str {
    match source.kind {
        SourceKind::Kubelet => "the kubelet's default",
        SourceKind::K3s => "K3s's default",
        SourceKind::DropIn => "a kubelet drop-in",
        SourceKind::Flag => "a kubelet-arg flag",
    }
}

/// Runs a check on the kubelet's effective configuration (K3s's defaults,
/// then drop-ins, then flags); a file this reader cannot parse fails the
/// rule.
fn with_kubelet(ctx: &Ctx, check: impl FnOnce(&Kubelet) -> Vec<Finding>) -> Check {
    with_config(ctx, |_| {
        let k = ctx.kubelet();
        if let Some((path, line, message)) = &k.error {
            let f = Finding::new(
                path.clone(),
                "unreadable",
                format!("cannot evaluate this kubelet drop-in ({message})"),
            );
            return vec![if *line > 0 { f.at_line(*line) } else { f }];
        }
        check(k)
    })
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A check that a kubelet field must not have a value matching `bad`.
fn kubelet_forbids(ctx: &Ctx, field: &str, bad: impl Fn(&Value) -> bool, why: &str) -> Check {
    with_kubelet(ctx, |k| {
        k.get(field)
            .filter(|(v, _)| bad(v))
            .map(|(v, s)| {
                kfind(
                    Some(s),
                    format!("{field}: {}", show(v)),
                    format!("{why} (set by {})", origin(s)),
                )
            })
            .into_iter()
            .collect()
    })
}

/// A check that a field must be set, by anything but the kubelet's
/// default, to a value passing `good`.
fn kubelet_requires(
    ctx: &Ctx,
    field: &str,
    good: impl Fn(&Value) -> bool,
    unset_why: &str,
    bad_why: &str,
) -> Check {
    with_kubelet(ctx, |k| match k.get(field) {
        None => vec![kfind(None, format!("{field}: unset"), unset_why.to_owned())],
        Some((v, _)) if good(v) => vec![],
        Some((v, s)) => vec![kfind(
            Some(s),
            format!("{field}: {}", show(v)),
            format!("{bad_why} (set by {})", origin(s)),
        )],
    })
}

/// Set by something other than K3s itself.
fn overridden(ctx: &Ctx, field: &str, why: &str) -> Vec<Finding> {
    ctx.kubelet()
        .get(field)
        .filter(|(_, s)| s.kind != SourceKind::K3s && s.kind != SourceKind::Kubelet)
        .map(|(v, s)| kfind(Some(s), format!("{field}: {}", show(v)), why.to_owned()))
        .into_iter()
        .collect()
}

fn protect_kernel_defaults(ctx: &Ctx) -> Check {
    kubelet_requires(
        ctx,
        "protectKernelDefaults",
        |v| v == &Value::Bool(true),
        "protectKernelDefaults is not set (K3s default: false)",
        "protectKernelDefaults is not true",
    )
}

fn anonymous_auth(ctx: &Ctx) -> Check {
    kubelet_forbids(
        ctx,
        "authentication.anonymous.enabled",
        |v| v != &Value::Bool(false),
        "the kubelet accepts anonymous requests",
    )
}

fn authorization_mode(ctx: &Ctx) -> Check {
    kubelet_forbids(
        ctx,
        "authorization.mode",
        |v| show(v).split(',').any(|m| m.trim() == "AlwaysAllow"),
        "the kubelet authorizes every request (AlwaysAllow)",
    )
}

fn client_ca(ctx: &Ctx) -> Check {
    with_kubelet(ctx, |_| {
        overridden(
            ctx,
            "authentication.x509.clientCAFile",
            "the kubelet's client CA is overridden",
        )
    })
}

fn read_only_port(ctx: &Ctx) -> Check {
    kubelet_forbids(
        ctx,
        "readOnlyPort",
        |v| v.as_i64() != Some(0),
        "the unauthenticated read-only port is enabled",
    )
}

fn timeout_findings(
    value: &str,
    what: &str,
    at: impl Fn(String, String) -> Finding,
) -> Vec<Finding> {
    match go_duration_seconds(value) {
        Some(s) if s > 0.0 && s <= 300.0 => vec![],
        Some(0.0) => vec![at(
            format!("{what}={value}"),
            "a timeout of 0 never closes idle streams".into(),
        )],
        Some(_) => vec![at(format!("{what}={value}"), "longer than 5m".into())],
        None => vec![at(
            format!("{what}={value}"),
            "not a Go duration like 5m".into(),
        )],
    }
}

fn streaming_timeout(ctx: &Ctx) -> Check {
    with_kubelet(ctx, |k| {
        let version = k.version.map_or_else(
            || "an unknown K3s release (the newest behaviour assumed)".to_owned(),
            |v| format!("K3s {v}"),
        );
        if crate::kubelet::streaming_timeout_has_effect(k.version) {
            // before kubelet 1.34 the kubelet closes idle streams
            return match k.get("streamingConnectionIdleTimeout") {
                None => vec![kfind(
                    None,
                    "unset".into(),
                    "streamingConnectionIdleTimeout is not set (kubelet default 4h); expected 5m"
                        .into(),
                )],
                Some((v, s)) => {
                    timeout_findings(&show(v), "streamingConnectionIdleTimeout", |value, m| {
                        kfind(Some(s), value, format!("{m} (set by {})", origin(s)))
                    })
                }
            };
        }
        let mut out = Vec::new();
        // a setting that does nothing gives a false assurance
        if let Some((v, s)) = k.get("streamingConnectionIdleTimeout")
            && matches!(s.kind, SourceKind::Flag | SourceKind::DropIn)
        {
            out.push(kfind(
                Some(s),
                format!("streamingConnectionIdleTimeout: {}", show(v)),
                format!(
                    "has no effect since kubelet 1.34 ({version}): idle streams are closed by containerd's stream_idle_timeout; remove it from {}",
                    origin(s)
                ),
            ));
        }
        match ctx.streaming() {
            Err((path, message)) => out.push(Finding::new(
                path.clone(),
                "unreadable",
                format!("cannot evaluate this containerd configuration ({message})"),
            )),
            Ok(s) => {
                let at = |value: String, m: String| match &s.idle_timeout.path {
                    Some(p) => Finding::new(p.clone(), value, format!("containerd: {m}")),
                    None => Finding::new(
                        crate::containerd::IMPORTS,
                        value,
                        format!("containerd: {m} (its default; K3s sets none)"),
                    ),
                };
                out.extend(timeout_findings(
                    &s.idle_timeout.value,
                    "stream_idle_timeout",
                    at,
                ));
                if !is_loopback(&s.address.value) {
                    out.push(Finding::new(
                        s.address.path.clone().unwrap_or_default(),
                        format!("stream_server_address={}", s.address.value),
                        "containerd's streaming server listens beyond loopback (K3s uses 127.0.0.1)",
                    ));
                }
            }
        }
        out
    })
}

fn iptables_chains(ctx: &Ctx) -> Check {
    kubelet_forbids(
        ctx,
        "makeIPTablesUtilChains",
        |v| v == &Value::Bool(false),
        "the kubelet does not manage its iptables chains",
    )
}

fn event_qps(ctx: &Ctx) -> Check {
    kubelet_forbids(
        ctx,
        "eventRecordQPS",
        |v| v.as_i64().is_none_or(|n| n < 0),
        "eventRecordQPS must be an integer of 0 or more",
    )
}

fn tls_cert(ctx: &Ctx) -> Check {
    with_kubelet(ctx, |_| {
        ["tlsCertFile", "tlsPrivateKeyFile"]
            .iter()
            .flat_map(|f| overridden(ctx, f, "a fixed kubelet serving certificate"))
            .collect()
    })
}

fn rotate_certs(ctx: &Ctx) -> Check {
    with_kubelet(ctx, |k| {
        k.get("rotateCertificates")
            .filter(|(v, s)| *v == &Value::Bool(false) && s.kind != SourceKind::K3s)
            .map(|(v, s)| {
                kfind(
                    Some(s),
                    format!("rotateCertificates: {}", show(v)),
                    "kubelet client certificates do not rotate".into(),
                )
            })
            .into_iter()
            .collect()
    })
}

fn rotate_server_cert(ctx: &Ctx) -> Check {
    kubelet_forbids(
        ctx,
        "featureGates.RotateKubeletServerCertificate",
        |v| v == &Value::Bool(false),
        "the RotateKubeletServerCertificate feature gate is off",
    )
}

fn tls_ciphers(ctx: &Ctx) -> Check {
    with_kubelet(ctx, |k| match k.get("tlsCipherSuites") {
        None => vec![kfind(
            None,
            "unset".into(),
            "tlsCipherSuites is not set: the kubelet offers its default suites".into(),
        )],
        Some((v, s)) => {
            let suites: Vec<String> = match v {
                Value::Array(items) => items.iter().map(show).collect(),
                other => show(other)
                    .split(',')
                    .map(|x| x.trim().to_owned())
                    .collect(),
            };
            let weak: Vec<&str> = suites
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty() && !crate::k3s::TLS_CIPHER_SUITES.contains(s))
                .collect();
            if weak.is_empty() && suites.iter().any(|s| !s.is_empty()) {
                vec![]
            } else {
                vec![kfind(
                    Some(s),
                    weak.join(","),
                    "cipher suites outside the hardening guide's six ECDHE suites".into(),
                )]
            }
        }
    })
}

fn pod_max_pids(ctx: &Ctx) -> Check {
    kubelet_requires(
        ctx,
        "podPidsLimit",
        |v| v.as_i64().is_some_and(|n| n > 0),
        "podPidsLimit is not set: pods may create unlimited processes",
        "podPidsLimit must be a positive limit",
    )
}

fn seccomp_default(ctx: &Ctx) -> Check {
    kubelet_requires(
        ctx,
        "seccompDefault",
        |v| v == &Value::Bool(true),
        "seccompDefault is not set (kubelet default: false)",
        "seccompDefault is not true",
    )
}

/// The host part of `host:port`, `[v6]:port` or a bare address.
fn host_of(address: &str) -> &str {
    let a = address.trim();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match a.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => a,
    }
}

pub fn is_loopback(address: &str) -> bool {
    let host = host_of(address);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn proxy_metrics(ctx: &Ctx) -> Check {
    with_config(ctx, |c| {
        c.component_arg("kube-proxy-arg", "metrics-bind-address")
            .filter(|i| !is_loopback(&i.text))
            .map(|i| {
                at(
                    &i,
                    format!("metrics-bind-address={}", i.text),
                    "kube-proxy metrics are exposed beyond loopback".into(),
                )
            })
            .into_iter()
            .collect()
    })
}

fn config_perms(ctx: &Ctx) -> Check {
    if !present(ctx) {
        return not_applicable(ABSENT);
    }
    let mut files = vec![CONFIG.to_owned(), REGISTRIES.to_owned()];
    for dir in [DROPIN_DIR, crate::kubelet::DIR] {
        files.extend(
            ctx.img
                .list_dir(dir)
                .into_iter()
                .map(|(_, p)| p.as_str().to_owned()),
        );
    }
    let mut out = Vec::new();
    for file in files {
        if ctx.img.is_file(&file) {
            owner_mode(ctx, &file, 0o600, &[0], &mut out);
        }
    }
    findings(out)
}

fn redacted(secret: &str) -> String {
    format!("<redacted, {} characters>", secret.chars().count())
}

fn no_baked_token(ctx: &Ctx) -> Check {
    if ctx.mode == Mode::Live {
        return not_applicable("a live node holds its join token by design");
    }
    if !present(ctx) {
        return not_applicable(ABSENT);
    }
    let mut out = Vec::new();
    let config = ctx.k3s();
    for entry in &config.entries {
        match entry.key.as_str() {
            "token" | "agent-token" | "t" => {
                for item in entry.value.items().iter().filter(|i| !i.text.is_empty()) {
                    out.push(at(
                        item,
                        format!("{}: {}", entry.key, redacted(&item.text)),
                        "a join token in the K3s config".into(),
                    ));
                }
            }
            "token-file" | "agent-token-file" => {
                for item in entry.value.items() {
                    let baked = ctx
                        .img
                        .read(&item.text)
                        .is_some_and(|b| !b.iter().all(u8::is_ascii_whitespace));
                    if baked {
                        out.push(at(
                            &item,
                            format!("{}: {}", entry.key, item.text),
                            "the token file it names is in the image, with content".into(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    let mut env_files = unit_files(ctx, |n| n.starts_with("k3s"));
    for dir in ["/etc/default", "/etc/sysconfig"] {
        for (name, path) in ctx.img.list_dir(dir) {
            if name.starts_with("k3s") && ctx.img.is_file(path.as_str()) {
                env_files.push(path.as_str().to_owned());
            }
        }
    }
    for file in env_files {
        let Some(text) = ctx.img.read_text(&file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for var in [
                "K3S_TOKEN=",
                "K3S_AGENT_TOKEN=",
                "--token=",
                "--token ",
                "--agent-token",
            ] {
                if let Some(at_var) = line.find(var) {
                    let secret = line[at_var + var.len()..]
                        .trim_matches(|c: char| c == '"' || c == '\'' || c.is_whitespace());
                    if secret.is_empty() {
                        continue;
                    }
                    out.push(
                        Finding::new(
                            file.clone(),
                            format!("{}{}", var.trim_end(), redacted(secret)),
                            "a join token in a K3s unit or its environment".to_owned(),
                        )
                        .at_line(n as u32 + 1),
                    );
                }
            }
        }
    }
    findings(out)
}

fn no_node_identity(ctx: &Ctx) -> Check {
    if ctx.mode == Mode::Live {
        return not_applicable("a live node has its own identity");
    }
    if !present(ctx) {
        return not_applicable(ABSENT);
    }
    let mut out = Vec::new();
    for path in [
        "/etc/rancher/node/password",
        "/var/lib/rancher/k3s/server",
        "/etc/rancher/k3s/k3s.yaml",
    ] {
        if let Some(e) = ctx.img.entry(path) {
            out.push(Finding::new(
                path,
                e.kind.name(),
                "node or server identity in the image",
            ));
        }
    }
    if let Some(agent) = ctx.img.resolve("/var/lib/rancher/k3s/agent") {
        for (path, entry) in ctx.img.tree.descendants(&agent) {
            let name = path.file_name();
            let under_containerd = path.as_str().contains("/agent/containerd/");
            if !under_containerd
                && entry.kind.name() != "dir"
                && [".kubeconfig", ".crt", ".key"]
                    .iter()
                    .any(|s| name.ends_with(s))
            {
                out.push(Finding::new(
                    path.as_str(),
                    entry.kind.name(),
                    "agent credential in the image",
                ));
            }
        }
    }
    findings(out)
}

fn sysctl_file(ctx: &Ctx) -> Check {
    if !present(ctx) {
        return not_applicable(ABSENT);
    }
    findings(sysctl_findings(
        ctx,
        &[
            ("vm.panic_on_oom", "0", |v| v == 0),
            ("vm.overcommit_memory", "1", |v| v == 1),
            ("kernel.panic", "10", |v| v == 10),
            ("kernel.panic_on_oops", "1", |v| v == 1),
        ],
        "/etc/sysctl.d/90-kubelet.conf",
        "is not set",
    ))
}

fn sysctl_keys(ctx: &Ctx) -> Check {
    if !present(ctx) {
        return not_applicable(ABSENT);
    }
    findings(sysctl_findings(
        ctx,
        &[
            ("kernel.keys.root_maxkeys", "1000000 or more", |v| {
                v >= 1_000_000
            }),
            ("kernel.keys.root_maxbytes", "25000000 or more", |v| {
                v >= 25_000_000
            }),
        ],
        "/etc/sysctl.d/90-kubelet.conf",
        "is not set",
    ))
}

fn is_forwarding_key(key: &str) -> bool {
    key == "net.ipv4.ip_forward"
        || key == "net.bridge.bridge-nf-call-iptables"
        || key == "net.bridge.bridge-nf-call-ip6tables"
        || ((key.starts_with("net.ipv4.conf.") || key.starts_with("net.ipv6.conf."))
            && key.ends_with(".forwarding"))
}

fn forwarding(ctx: &Ctx) -> Check {
    if !present(ctx) {
        return not_applicable(ABSENT);
    }
    let sysctl = ctx.sysctl();
    let out = sysctl
        .explicit()
        .chain(sysctl.globs())
        .filter(|a| is_forwarding_key(&a.key) && int(&a.value) == Some(0))
        .map(|a| {
            Finding::new(
                a.path.clone(),
                format!("{} = {}", a.key, a.value),
                "turns off what K3s networking needs",
            )
            .at_line(a.line)
        })
        .collect();
    findings(out)
}

const MODPROBE_DIRS: &[&str] = &[
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
];

fn needed_module(name: &str) -> bool {
    let name = name.replace('-', "_");
    matches!(name.as_str(), "overlay" | "br_netfilter" | "nf_conntrack")
        || name.starts_with("iptable_")
        || name.starts_with("nft_")
}

fn modules(ctx: &Ctx) -> Check {
    if !present(ctx) {
        return not_applicable(ABSENT);
    }
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for dir in MODPROBE_DIRS {
        for (name, path) in ctx.img.list_dir(dir) {
            if !name.ends_with(".conf") || !seen.insert(name.clone()) {
                continue;
            }
            let Some(text) = ctx.img.read_text(path.as_str()) else {
                continue;
            };
            for (n, line) in text.lines().enumerate() {
                let words: Vec<&str> = line.split_whitespace().collect();
                let disabled = match words.as_slice() {
                    ["blacklist", module, ..] if needed_module(module) => true,
                    ["install", module, command @ ..] if needed_module(module) => {
                        command.first().is_some_and(|c| {
                            c.ends_with("/true")
                                || c.ends_with("/false")
                                || *c == "true"
                                || *c == "false"
                        })
                    }
                    _ => false,
                };
                if disabled {
                    out.push(
                        Finding::new(path.as_str(), line.trim(), "a module K3s needs cannot load")
                            .at_line(n as u32 + 1),
                    );
                }
            }
        }
    }
    if let Some(a) = ctx.sysctl().get("kernel.modules_disabled")
        && int(&a.value) == Some(1)
    {
        out.push(
            Finding::new(
                a.path.clone(),
                format!("kernel.modules_disabled = {}", a.value),
                "no module can load after boot",
            )
            .at_line(a.line),
        );
    }
    findings(out)
}
