//! fw.*: the nftables ruleset the image loads at boot. The ruleset is
//! required: every fw rule fails when /etc/nftables.conf is absent.

use super::{Rule, findings, rule};
use crate::audit::{Check, Ctx, Finding};
use crate::nft::{MAIN, Mode as Walk, Packet, Peer, Ruleset, format_ranges, intersect, subtract};

pub const RULES: &[Rule] = &[
    rule!("fw.input-drop", High, input_drop,
        title: "inbound traffic is denied by default",
        source: "CIS 4.3.x",
        rationale: "A node must accept only what K3s and administration need; everything else is dropped, for IPv4 and IPv6, while loopback and replies to its own connections pass.",
        remediation: "Load a ruleset from /etc/nftables.conf (nftables.service enabled) with an input base chain `policy drop` in an inet table, accepting `iif lo` and `ct state established,related`."),
    rule!("fw.no-flush", High, no_flush,
        title: "the ruleset does not flush others' tables",
        source: "k0s #2908",
        rationale: "`flush ruleset` wipes the tables kube-proxy and flannel created when nftables.service restarts, cutting pod networking.",
        remediation: "Use a private table and flush only it (`table inet kiln {}` then `flush table inet kiln`, or `destroy table inet kiln`)."),
    rule!("fw.k3s-ports", High, k3s_ports,
        title: "only K3s's ports are open, and only to known sources",
        source: "REQ",
        rationale: "An agent needs 8472/udp (VXLAN), 51820-51821/udp (WireGuard), 10250/tcp (kubelet), 5001/6443/tcp (embedded registry) and NodePorts 30000-32767; anything else is attack surface, and each should be limited to the cluster's addresses.",
        remediation: "Accept only those ports (and 22/tcp when sshd is installed), each with an `ip saddr`/`ip6 saddr` restriction to the cluster's networks."),
    rule!("fw.forward", High, forward,
        title: "pod and service traffic is forwarded",
        source: "REQ",
        rationale: "With a forward policy of drop, pod-to-pod and service traffic dies unless the pod CIDR (10.42.0.0/16) and service CIDR (10.43.0.0/16) are accepted.",
        remediation: "In the forward chain accept `ip saddr { 10.42.0.0/16, 10.43.0.0/16 }` and `ip daddr { 10.42.0.0/16, 10.43.0.0/16 }` (or the cluster-cidr/service-cidr in use)."),
    rule!("fw.vxlan", Critical, vxlan,
        title: "flannel VXLAN is not open to the world",
        source: "REQ",
        rationale: "Anyone who can send 8472/udp to a node can inject packets into the pod network.",
        remediation: "Accept 8472/udp only from the cluster nodes' addresses."),
    rule!("fw.kubelet", Critical, kubelet,
        title: "the kubelet port is limited to the control plane",
        source: "seed + REQ",
        rationale: "10250/tcp is the kubelet API (exec, logs); only the servers (and metrics-server's pod CIDR) need it.",
        remediation: "Accept 10250/tcp only from the server addresses (and the pod CIDR when metrics-server runs), or bind the kubelet to 127.0.0.1 (kubelet-arg address=127.0.0.1)."),
];

/// Runs a check on the ruleset; a missing ruleset fails it.
fn with_ruleset(ctx: &Ctx, check: impl FnOnce(&Ruleset) -> Vec<Finding>) -> Check {
    match ctx.nft() {
        Some(ruleset) => findings(check(ruleset)),
        None => findings(vec![Finding::new(
            MAIN,
            "absent",
            "no nftables ruleset: /etc/nftables.conf is absent, so nothing filters traffic (default-deny is required)",
        )]),
    }
}

fn family(v6: bool) -> &'static str {
    if v6 { "IPv6" } else { "IPv4" }
}

fn input_drop(ctx: &Ctx) -> Check {
    with_ruleset(ctx, |r| {
        let mut out = Vec::new();
        for (path, line, message) in &r.problems {
            out.push(
                Finding::new(
                    path.clone(),
                    "unreadable",
                    format!("cannot evaluate the ruleset: {message}"),
                )
                .at_line(*line),
            );
        }
        if !["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
            .iter()
            .any(|p| ctx.img.is_file(p))
        {
            out.push(Finding::new(
                "/usr/sbin/nft",
                "absent",
                "nft is not installed: nothing loads /etc/nftables.conf",
            ));
        }
        let unit_shipped = [
            "/usr/lib/systemd/system/nftables.service",
            "/lib/systemd/system/nftables.service",
        ]
        .iter()
        .any(|p| ctx.img.exists(p));
        let enabled = !ctx
            .img
            .glob("/etc/systemd/system/*.wants/nftables.service")
            .is_empty();
        if unit_shipped && !enabled {
            out.push(Finding::new(
                "/etc/systemd/system/sysinit.target.wants/nftables.service",
                "absent",
                "nftables.service is not enabled: the ruleset is not loaded at boot",
            ));
        }
        for v6 in [false, true] {
            let chains: Vec<_> = r.base_chains("input", v6).collect();
            let Some(first) = chains.first() else {
                out.push(Finding::new(
                    MAIN,
                    "no input chain",
                    format!(
                        "no input chain sees {} traffic: all of it is accepted",
                        family(v6)
                    ),
                ));
                continue;
            };
            if !chains.iter().any(|c| c.effective_policy() == "drop") {
                out.push(
                    Finding::new(
                        first.path.clone(),
                        format!("policy {}", first.effective_policy()),
                        format!(
                            "{} input is accepted by default (chain {})",
                            family(v6),
                            first.describe()
                        ),
                    )
                    .at_line(first.line),
                );
                continue;
            }
            let source = if v6 { "::1" } else { "127.0.0.1" };
            let lo = Packet {
                loopback: true,
                saddr: Peer::Addr(source.parse().expect("a loopback address")),
                ..Packet::new(v6, "tcp", 10248)
            };
            if !r.accepts("input", &lo, Walk::Must) {
                out.push(Finding::new(
                    MAIN,
                    "lo",
                    format!("{} loopback traffic is not accepted", family(v6)),
                ));
            }
            let reply = Packet {
                state: "established",
                ..Packet::new(v6, "tcp", 40000)
            };
            if !r.accepts("input", &reply, Walk::Must) {
                out.push(Finding::new(
                    MAIN,
                    "ct state",
                    format!(
                        "{} replies (ct state established,related) are not accepted",
                        family(v6)
                    ),
                ));
            }
        }
        out
    })
}

fn no_flush(ctx: &Ctx) -> Check {
    with_ruleset(ctx, |r| {
        r.flushes
            .iter()
            .map(|(path, line)| {
                Finding::new(
                    path.clone(),
                    "flush ruleset",
                    "wipes kube-proxy's and flannel's tables on reload",
                )
                .at_line(*line)
            })
            .collect()
    })
}

/// Ports an agent may open, by protocol.
fn allowed(ctx: &Ctx, proto: &str) -> Vec<(u16, u16)> {
    match proto {
        "tcp" => {
            let mut ports = vec![(5001, 5001), (6443, 6443), (10250, 10250), (30000, 32767)];
            if super::ssh::sshd_present(ctx) {
                ports.insert(0, (22, 22));
            }
            ports
        }
        _ => vec![(8472, 8472), (30000, 32767), (51820, 51821)],
    }
}

fn k3s_ports(ctx: &Ctx) -> Check {
    with_ruleset(ctx, |r| {
        let mut out = Vec::new();
        for v6 in [false, true] {
            for proto in ["tcp", "udp"] {
                let allowed = allowed(ctx, proto);
                let extra = subtract(&r.open_ports(v6, proto, Peer::Any), &allowed);
                if !extra.is_empty() {
                    out.push(Finding::new(
                        MAIN,
                        format!("{proto} {}", format_ranges(&extra)),
                        format!(
                            "{} {proto} ports outside K3s's list are accepted",
                            family(v6)
                        ),
                    ));
                }
                let open = intersect(&r.open_ports(v6, proto, Peer::Untrusted), &allowed);
                if !open.is_empty() {
                    out.push(Finding::new(MAIN, format!("{proto} {}", format_ranges(&open)), format!(
                        "{} {proto} ports are accepted from any source; restrict them to the cluster's addresses",
                        family(v6)
                    )));
                }
            }
        }
        out
    })
}

/// The first usable address of a CIDR written in the K3s config.
fn cidr_probe(ctx: &Ctx, key: &str, default: &str) -> (String, std::net::IpAddr) {
    let configured = super::k3s::present(ctx)
        .then(|| ctx.k3s().scalar(key))
        .flatten()
        .map(|i| {
            i.text
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .filter(|c| !c.is_empty());
    let cidr = configured.unwrap_or_else(|| default.to_owned());
    let probe = crate::nft::addr_range(&cidr)
        .map(|(v6, start, _)| {
            let n = start + 1;
            if v6 {
                std::net::IpAddr::V6(n.into())
            } else {
                std::net::IpAddr::V4((n as u32).into())
            }
        })
        .unwrap_or_else(|| "10.42.0.1".parse().expect("an address"));
    (cidr, probe)
}

fn forward(ctx: &Ctx) -> Check {
    with_ruleset(ctx, |r| {
        let mut out = Vec::new();
        for (cidr, probe) in [
            cidr_probe(ctx, "cluster-cidr", "10.42.0.0/16"),
            cidr_probe(ctx, "service-cidr", "10.43.0.0/16"),
        ] {
            let v6 = probe.is_ipv6();
            let dropping = r
                .base_chains("forward", v6)
                .find(|c| c.effective_policy() == "drop");
            let Some(chain) = dropping else { continue };
            let from = Packet {
                saddr: Peer::Addr(probe),
                daddr: Peer::Untrusted,
                ..Packet::new(v6, "tcp", 80)
            };
            let to = Packet {
                saddr: Peer::Untrusted,
                daddr: Peer::Addr(probe),
                ..Packet::new(v6, "tcp", 80)
            };
            for (direction, packet) in [("from", from), ("to", to)] {
                if !r.accepts("forward", &packet, Walk::Must) {
                    out.push(
                        Finding::new(chain.path.clone(), cidr.clone(), format!(
                            "forward policy is drop and traffic {direction} {cidr} is not accepted (chain {})",
                            chain.describe()
                        ))
                        .at_line(chain.line),
                    );
                }
            }
        }
        out
    })
}

/// Findings when `proto`/`port` is accepted from any source.
fn open_to_all(r: &Ruleset, proto: &'static str, port: u16, what: &str) -> Vec<Finding> {
    [false, true]
        .into_iter()
        .filter(|&v6| r.accepts("input", &Packet::new(v6, proto, port), Walk::May))
        .map(|v6| {
            Finding::new(
                MAIN,
                format!("{port}/{proto}"),
                format!("{what} is reachable from any {} source", family(v6)),
            )
        })
        .collect()
}

fn vxlan(ctx: &Ctx) -> Check {
    with_ruleset(ctx, |r| {
        open_to_all(r, "udp", 8472, "flannel VXLAN (8472/udp)")
    })
}

fn kubelet(ctx: &Ctx) -> Check {
    let on_loopback = super::k3s::present(ctx)
        && ctx
            .kubelet()
            .get("address")
            .and_then(|(v, _)| v.as_str())
            .is_some_and(super::k3s::is_loopback);
    with_ruleset(ctx, |r| {
        if on_loopback {
            return vec![];
        }
        open_to_all(r, "tcp", 10250, "the kubelet API (10250/tcp)")
    })
}
