//! `[k3s]`: the agent's server, networks and extra kubelet and
//! kube-proxy arguments, checked against the hardened ones.

use super::{Cx, Set, Strings};
use crate::recipe::{Loc, RecipeError, did_you_mean, image_path};
use kiln_diag::quote;
use kiln_policy::k3s as hk3s;
use kiln_policy::net::Cidr;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawK3s {
    pub server: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub binary: Option<Spanned<String>>,
    pub servers: Option<Strings>,
    pub node_cidrs: Option<Strings>,
    pub cluster_cidr: Option<Spanned<String>>,
    pub service_cidr: Option<Spanned<String>>,
    pub flannel_backend: Option<Spanned<String>>,
    pub metrics_server: Option<bool>,
    pub kubelet_address: Option<Spanned<String>>,
    pub kubelet_args: Option<Strings>,
    pub kube_proxy_args: Option<Strings>,
    pub node_labels: Option<Strings>,
    pub node_taints: Option<Strings>,
    #[serde(default)]
    pub waive: Vec<Spanned<RawWaive>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWaive {
    pub rule: Spanned<String>,
    pub reason: Spanned<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlannelBackend {
    Vxlan,
    WireguardNative,
    HostGw,
    None,
}

pub const FLANNEL_BACKENDS: &[&str] = &["vxlan", "wireguard-native", "host-gw", "none"];

#[derive(Debug, Clone)]
pub struct K3sPlan {
    pub server: Option<Set<String>>,
    pub token_file: Set<String>,
    pub binary: Set<String>,
    /// The build leaves the binary's artifact out (it could not be
    /// downloaded and the build was told it may go on without it).
    pub binary_left_out: bool,
    /// The K3s release of the binary's artifact (its URL), when known.
    pub version: Option<kiln_policy::kubelet::K3sVersion>,
    pub servers: Vec<Cidr>,
    pub node_cidrs: Vec<Cidr>,
    pub cluster_cidr: Vec<Cidr>,
    pub service_cidr: Vec<Cidr>,
    pub flannel_backend: FlannelBackend,
    pub metrics_server: bool,
    pub kubelet_address: Option<String>,
    /// The recipe's kubelet arguments by name, in first-seen order.
    pub kubelet_args: Vec<(String, String, Loc)>,
    pub kube_proxy_args: Vec<(String, String, Loc)>,
    pub node_labels: Vec<String>,
    pub node_taints: Vec<String>,
    /// rule id → reason.
    pub waivers: BTreeMap<String, String>,
    /// Hardened arguments the recipe weakened under a waiver: (arg, rule, reason).
    pub weakened: Vec<(String, String, String)>,
    pub loc: Loc,
}

impl K3sPlan {
    pub(super) fn hardened(loc: Loc) -> K3sPlan {
        // kiln's own defaults, checked by the tests of the policy crate.
        let cidr = |s: &str| Cidr::parse(s).ok().into_iter().collect::<Vec<_>>();
        K3sPlan {
            server: None,
            token_file: Set::default(hk3s::TOKEN_FILE.to_owned()),
            binary: Set::default(hk3s::BINARY.to_owned()),
            binary_left_out: false,
            version: None,
            servers: Vec::new(),
            node_cidrs: Vec::new(),
            cluster_cidr: cidr("10.42.0.0/16"),
            service_cidr: cidr("10.43.0.0/16"),
            flannel_backend: FlannelBackend::Vxlan,
            metrics_server: false,
            kubelet_address: None,
            kubelet_args: Vec::new(),
            kube_proxy_args: Vec::new(),
            node_labels: Vec::new(),
            node_taints: Vec::new(),
            waivers: BTreeMap::new(),
            weakened: Vec::new(),
            loc,
        }
    }
}

impl Cx<'_> {
    pub(super) fn k3s(&self, plan: &mut K3sPlan, raw: RawK3s) -> Result<(), RecipeError> {
        for waive in &raw.waive {
            let w = waive.get_ref();
            let rule = w.rule.get_ref();
            if !hk3s::RULES.contains(&rule.as_str()) {
                let hint = did_you_mean(rule, hk3s::RULES.iter().copied())
                    .map(|b| format!(", did you mean {b}?", b = quote(b)))
                    .unwrap_or_else(|| format!("; kubelet rules: {}", hk3s::RULES.join(", ")));
                return Err(self
                    .loc(w.rule.span())
                    .error(format!("unknown rule {rule}{hint}", rule = quote(rule))));
            }
            if w.reason.get_ref().trim().is_empty() {
                return Err(self.loc(w.reason.span()).error("a waiver needs its reason"));
            }
            plan.waivers
                .insert(rule.clone(), w.reason.get_ref().trim().to_owned());
        }
        if let Some(server) = &raw.server {
            let url = server.get_ref();
            let ok = url.starts_with("https://")
                && url.len() > 8
                && !url.contains(|c: char| c.is_whitespace() || c == '"');
            if !ok {
                return Err(self.loc(server.span()).error(format!(
                    "server {url} must be the K3s server's https URL, like \"https://k3s.example.internal:6443\"", url = quote(url)
                )));
            }
            plan.server = Some(Set {
                value: url.clone(),
                loc: Some(self.loc(server.span())),
            });
        }
        for (raw_path, target, what) in [
            (&raw.token_file, &mut plan.token_file, "token_file"),
            (&raw.binary, &mut plan.binary, "binary"),
        ] {
            if let Some(p) = raw_path {
                let loc = self.loc(p.span());
                let path = image_path(&loc, what, p.get_ref())?;
                if path
                    .as_str()
                    .contains(|c: char| c.is_whitespace() || "'\"\\$%".contains(c))
                {
                    return Err(loc.error(format!(
                        "{what} cannot contain spaces, quotes, '\\', '$' or '%'"
                    )));
                }
                *target = Set {
                    value: path.as_str().to_owned(),
                    loc: Some(loc),
                };
            }
        }
        if let Some(list) = &raw.servers {
            plan.servers = self.cidrs(list)?;
        }
        if let Some(list) = &raw.node_cidrs {
            plan.node_cidrs = self.cidrs(list)?;
        }
        for (raw_cidr, target) in [
            (&raw.cluster_cidr, &mut plan.cluster_cidr),
            (&raw.service_cidr, &mut plan.service_cidr),
        ] {
            if let Some(c) = raw_cidr {
                let loc = self.loc(c.span());
                *target = c
                    .get_ref()
                    .split(',')
                    .map(|p| Cidr::parse(p).map_err(|e| loc.error(e)))
                    .collect::<Result<_, _>>()?;
            }
        }
        if let Some(b) = &raw.flannel_backend {
            plan.flannel_backend = match b.get_ref().as_str() {
                "vxlan" => FlannelBackend::Vxlan,
                "wireguard-native" => FlannelBackend::WireguardNative,
                "host-gw" => FlannelBackend::HostGw,
                "none" => FlannelBackend::None,
                other => {
                    let hint = did_you_mean(other, FLANNEL_BACKENDS.iter().copied())
                        .map(|b| format!(", did you mean {b}?", b = quote(b)))
                        .unwrap_or_else(|| format!("; use one of {}", FLANNEL_BACKENDS.join(", ")));
                    return Err(self.loc(b.span()).error(format!(
                        "unknown flannel_backend {other}{hint}",
                        other = quote(other)
                    )));
                }
            };
        }
        if let Some(m) = raw.metrics_server {
            plan.metrics_server = m;
        }
        if let Some(a) = &raw.kubelet_address {
            let loc = self.loc(a.span());
            let ip: std::net::IpAddr = a.get_ref().parse().map_err(|_| {
                loc.error(format!(
                    "kubelet_address {} is not an IP address; \"127.0.0.1\" keeps the kubelet on loopback",
                    quote(a.get_ref())
                ))
            })?;
            plan.kubelet_address = Some(ip.to_string());
        }
        if let Some(args) = &raw.kubelet_args {
            for arg in args {
                let loc = self.loc(arg.span());
                let (name, value) = split_arg(&loc, arg.get_ref())?;
                if let Some((rule, why)) = hk3s::kubelet_weakens(&name, &value) {
                    match plan.waivers.get(rule) {
                        Some(reason) => plan.weakened.push((
                            format!("{name}={value}"),
                            rule.to_owned(),
                            reason.clone(),
                        )),
                        None => {
                            return Err(loc.error(format!(
                                "kubelet_args {arg} weakens the hardened kubelet ({rule}: {why}); remove it, or waive the rule with waive = [{{ rule = \"{rule}\", reason = \"...\" }}] in [k3s]", arg = quote(&format!("{name}={value}"))
                            )));
                        }
                    }
                }
                if let Some(rule) = hk3s::managed_arg(&name) {
                    return Err(loc.error(format!(
                        "kubelet_args {name} is set by kiln from [k3s] {rule}; set that instead",
                        name = quote(&name)
                    )));
                }
                plan.kubelet_args.retain(|(n, _, _)| *n != name);
                plan.kubelet_args.push((name, value, loc));
            }
        }
        if let Some(args) = &raw.kube_proxy_args {
            for arg in args {
                let loc = self.loc(arg.span());
                let (name, value) = split_arg(&loc, arg.get_ref())?;
                if let Some((rule, why)) = hk3s::kube_proxy_weakens(&name, &value) {
                    match plan.waivers.get(rule) {
                        Some(reason) => plan.weakened.push((
                            format!("{name}={value}"),
                            rule.to_owned(),
                            reason.clone(),
                        )),
                        None => {
                            return Err(loc.error(format!(
                                "kube_proxy_args {arg} weakens the hardened kube-proxy ({rule}: {why}); remove it, or waive the rule with waive = [{{ rule = \"{rule}\", reason = \"...\" }}] in [k3s]", arg = quote(&format!("{name}={value}"))
                            )));
                        }
                    }
                }
                plan.kube_proxy_args.retain(|(n, _, _)| *n != name);
                plan.kube_proxy_args.push((name, value, loc));
            }
        }
        for (list, target, what) in [
            (&raw.node_labels, &mut plan.node_labels, "node_labels"),
            (&raw.node_taints, &mut plan.node_taints, "node_taints"),
        ] {
            if let Some(list) = list {
                *target = Vec::new();
                for item in list {
                    let v = item.get_ref();
                    if !v.contains('=') && what == "node_labels"
                        || v.is_empty()
                        || v.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\')
                    {
                        return Err(self.loc(item.span()).error(format!(
                            "{what}: {v} is not KEY=VALUE{}",
                            if what == "node_taints" {
                                "[:EFFECT]"
                            } else {
                                ""
                            },
                            v = quote(v)
                        )));
                    }
                    target.push(v.clone());
                }
            }
        }
        Ok(())
    }
}

/// `name=value` (a leading `--` allowed; a bare name means `true`).
fn split_arg(loc: &Loc, arg: &str) -> Result<(String, String), RecipeError> {
    let text = arg.trim().trim_start_matches('-');
    let (name, value) = text.split_once('=').unwrap_or((text, "true"));
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !value.contains(['\n', '"', '\\']);
    if !ok {
        return Err(loc.error(format!(
            "{arg} is not an argument like \"pod-max-pids=4096\"",
            arg = quote(arg)
        )));
    }
    Ok((name.to_owned(), value.to_owned()))
}
