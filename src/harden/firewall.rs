//! `[firewall]`: /etc/nftables.conf with kiln's own table, loaded at boot
//! by nftables.service.
//!
//! The file never flushes the ruleset: kube-proxy, flannel and the kubelet
//! keep tables of their own, and `flush ruleset` on a reload would cut
//! pod networking. It replaces only `table inet kiln`, with the idiom
//! nft 1.0.6 (Debian 12) understands: declare the table empty (a no-op if
//! it exists), delete it, define it. nftables.service's ExecStop, which
//! flushes everything, is replaced by a drop-in that deletes only kiln's
//! table.
//!
//! Input: policy drop; loopback, replies, invalid dropped, essential ICMP
//! and ICMPv6 (neighbour discovery, path MTU); SSH only from `[ssh] from`;
//! the kubelet (10250/tcp) only from `[k3s] servers` (and the pod CIDR
//! with `metrics_server`), unless it listens on loopback; flannel (8472/udp
//! VXLAN, or 51820-51821/udp WireGuard) only from `[k3s] node_cidrs`; then
//! `[[firewall.allow]]`. Forward: policy drop, pod and service CIDRs
//! accepted both ways. Output: open, or with `egress = "restricted"`
//! policy drop and only what the agent needs plus `[[firewall.allow_out]]`.

use super::{Ctx, units};
use crate::recipe::hardening::{AllowPlan, FirewallPlan, FlannelBackend, K3sPlan, Proto, SshPlan};
use anyhow::Result;
use kiln_policy::net::{Cidr, normalise};
use std::fmt::Write as _;

pub const CONF: &str = "/etc/nftables.conf";
pub const TABLE: &str = "inet kiln";
pub const STOP_DROP_IN: &str = "/etc/systemd/system/nftables.service.d/kiln.conf";

const ICMP_V4: &str = "echo-request, destination-unreachable, time-exceeded, parameter-problem";
const ICMP_V6: &str = "echo-request, destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query";

/// One accept rule: protocol, ports, peers and a comment.
struct Rule {
    proto: Proto,
    ports: Vec<(u16, u16)>,
    peers: Vec<Cidr>,
    comment: String,
}

fn ports_expr(ports: &[(u16, u16)]) -> String {
    let items: Vec<String> = ports
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

fn set_expr(cidrs: &[&Cidr]) -> String {
    let items: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

/// The lines of one rule, per address family; `dir` is saddr or daddr.
fn rule_lines(rule: &Rule, dir: &str, out: &mut String) {
    let peers = normalise(&rule.peers);
    for v6 in [false, true] {
        let family: Vec<&Cidr> = peers.iter().filter(|c| c.is_v6() == v6).collect();
        if family.is_empty() {
            continue;
        }
        let ip = if v6 { "ip6" } else { "ip" };
        let peer = if family.iter().any(|c| c.is_everything()) {
            format!("meta nfproto {}", if v6 { "ipv6" } else { "ipv4" })
        } else {
            format!("{ip} {dir} {}", set_expr(&family))
        };
        let _ = writeln!(
            out,
            "\t\t{peer} {} dport {} accept comment \"{}\"",
            rule.proto.name(),
            ports_expr(&rule.ports),
            rule.comment
        );
    }
}

fn from_allow(a: &AllowPlan) -> Rule {
    Rule {
        proto: a.proto,
        ports: a.ports.clone(),
        peers: a.peers.clone(),
        comment: a.name.clone(),
    }
}

/// The inbound rules K3s and SSH need, from their sections.
fn service_rules(ssh: Option<&SshPlan>, k3s: Option<&K3sPlan>) -> Vec<Rule> {
    let mut rules = Vec::new();
    if let Some(ssh) = ssh
        && !ssh.from.value.is_empty()
    {
        rules.push(Rule {
            proto: Proto::Tcp,
            ports: vec![(ssh.port.value, ssh.port.value)],
            peers: ssh.from.value.clone(),
            comment: "ssh".into(),
        });
    }
    if let Some(k3s) = k3s {
        let on_loopback = k3s
            .kubelet_address
            .as_deref()
            .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| ip.is_loopback());
        if !on_loopback {
            let mut peers = k3s.servers.clone();
            if k3s.metrics_server {
                peers.extend(k3s.cluster_cidr.iter().copied());
            }
            if !peers.is_empty() {
                rules.push(Rule {
                    proto: Proto::Tcp,
                    ports: vec![(10250, 10250)],
                    peers,
                    comment: "kubelet".into(),
                });
            }
        }
        if !k3s.node_cidrs.is_empty() {
            let flannel = match k3s.flannel_backend {
                FlannelBackend::Vxlan => Some(((8472, 8472), "flannel-vxlan")),
                FlannelBackend::WireguardNative => Some(((51820, 51821), "flannel-wireguard")),
                FlannelBackend::HostGw | FlannelBackend::None => None,
            };
            if let Some((ports, comment)) = flannel {
                rules.push(Rule {
                    proto: Proto::Udp,
                    ports: vec![ports],
                    peers: k3s.node_cidrs.clone(),
                    comment: comment.into(),
                });
            }
        }
    }
    rules
}

/// The outbound rules of a restricted egress.
fn egress_rules(k3s: Option<&K3sPlan>) -> Vec<Rule> {
    let mut rules = Vec::new();
    if let Some(k3s) = k3s {
        if !k3s.servers.is_empty() {
            rules.push(Rule {
                proto: Proto::Tcp,
                ports: vec![(6443, 6443)],
                peers: k3s.servers.clone(),
                comment: "k3s-api".into(),
            });
        }
        let flannel = match k3s.flannel_backend {
            FlannelBackend::Vxlan => Some((8472, 8472)),
            FlannelBackend::WireguardNative => Some((51820, 51821)),
            _ => None,
        };
        if let (Some(ports), false) = (flannel, k3s.node_cidrs.is_empty()) {
            rules.push(Rule {
                proto: Proto::Udp,
                ports: vec![ports],
                peers: k3s.node_cidrs.clone(),
                comment: "flannel".into(),
            });
        }
    }
    rules
}

/// The whole ruleset.
pub fn render(plan: &FirewallPlan, ssh: Option<&SshPlan>, k3s: Option<&K3sPlan>) -> String {
    let mut out = String::new();
    out.push_str(
        "#!/usr/sbin/nft -f\n\
         # Written by kiln from the recipe's [firewall], [ssh] and [k3s] tables.\n\
         # Only kiln's own table is replaced: the tables K3s creates (kube-proxy,\n\
         # flannel, the kubelet) survive `nft -f` of this file: it never flushes them.\n",
    );
    let _ = writeln!(out, "table {TABLE} {{}}\ndelete table {TABLE}\n");
    let _ = writeln!(out, "table {TABLE} {{");
    out.push_str(
        "\tchain input {\n\
         \t\ttype filter hook input priority filter; policy drop;\n\
         \t\tiif \"lo\" accept\n\
         \t\tct state established,related accept\n\
         \t\tct state invalid drop\n",
    );
    let _ = writeln!(out, "\t\ticmp type {{ {ICMP_V4} }} accept");
    let _ = writeln!(out, "\t\ticmpv6 type {{ {ICMP_V6} }} accept");
    let mut inbound = service_rules(ssh, k3s);
    inbound.extend(plan.allow.iter().map(from_allow));
    for rule in &inbound {
        rule_lines(rule, "saddr", &mut out);
    }
    out.push_str("\t}\n\n");

    let (pods, services): (Vec<Cidr>, Vec<Cidr>) = match k3s {
        Some(k) => (k.cluster_cidr.clone(), k.service_cidr.clone()),
        None => (
            vec![Cidr::parse("10.42.0.0/16").expect("valid")],
            vec![Cidr::parse("10.43.0.0/16").expect("valid")],
        ),
    };
    let mut cluster = pods;
    cluster.extend(services);
    let cluster = normalise(&cluster);
    out.push_str(
        "\tchain forward {\n\
         \t\ttype filter hook forward priority filter; policy drop;\n\
         \t\tct state established,related accept\n",
    );
    for v6 in [false, true] {
        let family: Vec<&Cidr> = cluster.iter().filter(|c| c.is_v6() == v6).collect();
        if family.is_empty() {
            continue;
        }
        let ip = if v6 { "ip6" } else { "ip" };
        let set = set_expr(&family);
        let _ = writeln!(
            out,
            "\t\t{ip} saddr {set} accept comment \"pods and services\""
        );
        let _ = writeln!(
            out,
            "\t\t{ip} daddr {set} accept comment \"pods and services\""
        );
    }
    out.push_str("\t}\n\n");

    if plan.egress_restricted {
        out.push_str(
            "\tchain output {\n\
             \t\ttype filter hook output priority filter; policy drop;\n\
             \t\toif \"lo\" accept\n\
             \t\tct state established,related accept\n\
             \t\tct state invalid drop\n\
             \t\tmeta l4proto { icmp, ipv6-icmp } accept\n\
             \t\tudp sport 68 udp dport 67 accept comment \"dhcp\"\n\
             \t\tudp sport 546 udp dport 547 accept comment \"dhcpv6\"\n",
        );
        let mut outbound = egress_rules(k3s);
        outbound.extend(plan.allow_out.iter().map(from_allow));
        for rule in &outbound {
            rule_lines(rule, "daddr", &mut out);
        }
        out.push_str("\t}\n");
    } else {
        out.push_str(
            "\tchain output {\n\
             \t\ttype filter hook output priority filter; policy accept;\n\
             \t}\n",
        );
    }
    out.push_str("}\n");
    out
}

pub fn apply(
    cx: &mut Ctx,
    plan: &FirewallPlan,
    ssh: Option<&SshPlan>,
    k3s: Option<&K3sPlan>,
) -> Result<()> {
    let loc = plan.loc.clone();
    if let Some(k3s) = k3s {
        let on_loopback = k3s.kubelet_address.as_deref() == Some("127.0.0.1")
            || k3s.kubelet_address.as_deref() == Some("::1");
        if k3s.servers.is_empty() && !on_loopback && !k3s.metrics_server {
            cx.warn(format!(
                "{}: [k3s] servers is empty: the firewall opens the kubelet port (10250) to no one",
                k3s.loc.position()
            ));
        }
        if k3s.node_cidrs.is_empty()
            && matches!(
                k3s.flannel_backend,
                FlannelBackend::Vxlan | FlannelBackend::WireguardNative
            )
        {
            cx.warn(format!(
                "{}: [k3s] node_cidrs is empty: the firewall opens flannel to no other node (pods reach only this node)",
                k3s.loc.position()
            ));
        }
        if plan.egress_restricted && k3s.servers.is_empty() {
            cx.warn(format!(
                "{}: egress is restricted and [k3s] servers is empty: the agent cannot reach the API server",
                plan.loc.position()
            ));
        }
    }
    cx.write(CONF, &render(plan, ssh, k3s), 0o644, &loc)?;
    cx.write(
        STOP_DROP_IN,
        &format!(
            "# Written by kiln: stopping or restarting nftables must not flush the\n\
             # tables of K3s (kube-proxy, flannel); remove only kiln's own table.\n\
             [Service]\n\
             ExecStop=\n\
             ExecStop=-/usr/sbin/nft delete table {TABLE}\n"
        ),
        0o644,
        &loc,
    )?;
    units::enable(cx, "nftables.service", &loc)?;
    Ok(())
}
