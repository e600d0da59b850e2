//! The packet walk: whether the base chains accept a packet, with unknown
//! matches read in the direction `Mode` asks for.

use super::ranges::{addr_range, ip_number, port_ranges};
use super::{Chain, Cond, Mode, Packet, Peer, Ruleset, Selector, Values, Verdict};
use std::collections::BTreeSet;

const MAX_JUMP_DEPTH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Maybe,
}

impl Tri {
    fn from(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }

    fn negate(self, neg: bool) -> Tri {
        match (self, neg) {
            (Tri::Yes, true) => Tri::No,
            (Tri::No, true) => Tri::Yes,
            (t, _) => t,
        }
    }

    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Maybe,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Accept,
    Drop,
    Return,
}

const PROTO_NUMBERS: &[(&str, &str)] = &[
    ("tcp", "6"),
    ("udp", "17"),
    ("icmp", "1"),
    ("ipv6-icmp", "58"),
    ("icmpv6", "58"),
    ("sctp", "132"),
];

fn proto_is(item: &str, proto: &str) -> bool {
    item == proto
        || PROTO_NUMBERS
            .iter()
            .any(|(name, number)| item == *number && *name == proto)
}

impl Ruleset {
    /// True when every base filter chain on `hook` that sees the packet
    /// accepts it (in `mode`'s reading of unknown matches). No chain at
    /// all accepts everything.
    pub fn accepts(&self, hook: &str, packet: &Packet, mode: Mode) -> bool {
        self.base_chains(hook, packet.v6)
            .all(|chain| match self.run(chain, packet, mode, 0) {
                Flow::Accept => true,
                Flow::Drop => false,
                Flow::Return => chain.effective_policy() != "drop",
            })
    }

    fn run(&self, chain: &Chain, packet: &Packet, mode: Mode, depth: usize) -> Flow {
        if depth > MAX_JUMP_DEPTH {
            return if mode == Mode::May {
                Flow::Accept
            } else {
                Flow::Drop
            };
        }
        for rule in &chain.rules {
            let t = rule
                .conds
                .iter()
                .fold(Tri::Yes, |t, c| t.and(self.eval(c, packet)));
            if t == Tri::No {
                continue;
            }
            let Some(verdict) = &rule.verdict else {
                continue;
            };
            if let Some(flow) = self.apply(chain, verdict, t, packet, mode, depth) {
                return flow;
            }
        }
        Flow::Return
    }

    /// The flow a verdict leads to when its rule matched with `t`;
    /// `None` to go on with the next rule.
    fn apply(
        &self,
        chain: &Chain,
        verdict: &Verdict,
        t: Tri,
        packet: &Packet,
        mode: Mode,
        depth: usize,
    ) -> Option<Flow> {
        let sure = t == Tri::Yes;
        match verdict {
            Verdict::Accept => (sure || mode == Mode::May).then_some(Flow::Accept),
            Verdict::Drop => (sure || mode == Mode::Must).then_some(Flow::Drop),
            Verdict::Queue => Some(if mode == Mode::May {
                Flow::Accept
            } else {
                Flow::Drop
            }),
            Verdict::Return => sure.then_some(Flow::Return),
            Verdict::Continue => None,
            Verdict::Jump(target) | Verdict::Goto(target) => {
                let is_goto = matches!(verdict, Verdict::Goto(_));
                let Some(next) = self.chain(&chain.family, &chain.table, target) else {
                    // nft refuses a jump to a missing chain; be pessimistic
                    return Some(if mode == Mode::May {
                        Flow::Accept
                    } else {
                        Flow::Drop
                    });
                };
                let flow = self.run(next, packet, mode, depth + 1);
                match (flow, sure) {
                    (Flow::Return, true) if is_goto => Some(Flow::Return),
                    (Flow::Return, _) => None,
                    (flow, true) => Some(flow),
                    (Flow::Accept, false) if mode == Mode::May => Some(Flow::Accept),
                    (Flow::Drop, false) if mode == Mode::Must => Some(Flow::Drop),
                    _ => None,
                }
            }
            Verdict::VMap { selector, entries } => {
                for (key, verdict) in entries {
                    let m = self.eval_selector(selector, key, packet);
                    if m == Tri::No {
                        continue;
                    }
                    if let Some(flow) = self.apply(chain, verdict, t.and(m), packet, mode, depth) {
                        return Some(flow);
                    }
                    if m == Tri::Yes {
                        return None;
                    }
                }
                None
            }
        }
    }

    fn eval_selector(&self, selector: &Selector, key: &Values, packet: &Packet) -> Tri {
        let cond = match selector {
            Selector::CtState => Cond::CtState {
                states: key.clone(),
                neg: false,
            },
            Selector::DPort(proto) => Cond::DPort {
                proto: proto.clone(),
                ports: key.clone(),
                neg: false,
            },
            Selector::L4Proto => Cond::L4Proto {
                protos: key.clone(),
                neg: false,
            },
            Selector::Iif => Cond::Iif {
                names: key.clone(),
                neg: false,
            },
            Selector::SAddr(v6) => Cond::SAddr {
                v6: *v6,
                addrs: key.clone(),
                neg: false,
            },
            Selector::DAddr(v6) => Cond::DAddr {
                v6: *v6,
                addrs: key.clone(),
                neg: false,
            },
            Selector::Unknown => return Tri::Maybe,
        };
        self.eval(&cond, packet)
    }

    fn eval(&self, cond: &Cond, packet: &Packet) -> Tri {
        match cond {
            Cond::Iif { names, neg } => {
                if names.unresolved {
                    return Tri::Maybe;
                }
                let matches_lo = names
                    .items
                    .iter()
                    .any(|n| crate::sshd::wildcard_match(n, "lo"));
                let t = if packet.loopback {
                    Tri::from(matches_lo)
                } else if names.items.iter().all(|n| n == "lo") {
                    Tri::No
                } else if names.items.iter().any(|n| n == "*") {
                    Tri::Yes
                } else {
                    Tri::Maybe
                };
                t.negate(*neg)
            }
            Cond::CtState { states, neg } => {
                if states.unresolved {
                    return Tri::Maybe;
                }
                Tri::from(states.items.iter().any(|s| s == packet.state)).negate(*neg)
            }
            Cond::L4Proto { protos, neg } => {
                if protos.unresolved {
                    return Tri::Maybe;
                }
                Tri::from(protos.items.iter().any(|p| proto_is(p, packet.proto))).negate(*neg)
            }
            Cond::DPort { proto, ports, neg } => {
                if proto.as_deref().is_some_and(|p| p != packet.proto) {
                    return Tri::No;
                }
                match port_ranges(ports) {
                    Some(ranges) => Tri::from(
                        ranges
                            .iter()
                            .any(|(a, b)| (*a..=*b).contains(&packet.dport)),
                    )
                    .negate(*neg),
                    None => Tri::Maybe,
                }
            }
            Cond::SAddr { v6, addrs, neg } => addr_match(*v6, addrs, *neg, packet.saddr, packet),
            Cond::DAddr { v6, addrs, neg } => addr_match(*v6, addrs, *neg, packet.daddr, packet),
            Cond::NfProto { v6, neg } => Tri::from(*v6 == packet.v6).negate(*neg),
            Cond::Unknown(_) => Tri::Maybe,
        }
    }

    /// Every port number where what a rule matches may change, so that
    /// the verdict is constant between two consecutive boundaries.
    fn port_boundaries(&self) -> BTreeSet<u32> {
        let mut out: BTreeSet<u32> = [1u32, 65536].into_iter().collect();
        let mut add = |values: &Values| {
            if let Some(ranges) = port_ranges(values) {
                for (a, b) in ranges {
                    out.insert(a as u32);
                    out.insert(b as u32 + 1);
                }
            }
        };
        for chain in &self.chains {
            for rule in &chain.rules {
                for cond in &rule.conds {
                    if let Cond::DPort { ports, .. } = cond {
                        add(ports);
                    }
                }
                if let Some(Verdict::VMap {
                    selector: Selector::DPort(_),
                    entries,
                }) = &rule.verdict
                {
                    for (key, _) in entries {
                        add(key);
                    }
                }
            }
        }
        out
    }

    /// The destination ports of `proto` that a new packet from `saddr` may
    /// reach on input, as merged inclusive ranges.
    pub fn open_ports(&self, v6: bool, proto: &'static str, saddr: Peer) -> Vec<(u16, u16)> {
        let bounds: Vec<u32> = self.port_boundaries().into_iter().collect();
        let mut out: Vec<(u16, u16)> = Vec::new();
        for pair in bounds.windows(2) {
            let (lo, hi) = (pair[0], pair[1] - 1);
            if lo > 65535 {
                break;
            }
            let packet = Packet {
                saddr,
                ..Packet::new(v6, proto, lo as u16)
            };
            if !self.accepts("input", &packet, Mode::May) {
                continue;
            }
            let (lo, hi) = (lo as u16, hi.min(65535) as u16);
            match out.last_mut() {
                Some(last) if last.1 as u32 + 1 == lo as u32 => last.1 = hi,
                _ => out.push((lo, hi)),
            }
        }
        out
    }
}

fn addr_match(v6: bool, addrs: &Values, neg: bool, peer: Peer, packet: &Packet) -> Tri {
    if v6 != packet.v6 {
        return Tri::No;
    }
    if addrs.unresolved {
        return Tri::Maybe;
    }
    let ranges: Option<Vec<(bool, u128, u128)>> =
        addrs.items.iter().map(|i| addr_range(i)).collect();
    let Some(ranges) = ranges else {
        return Tri::Maybe;
    };
    let ranges: Vec<(u128, u128)> = ranges
        .into_iter()
        .filter(|(f, _, _)| *f == v6)
        .map(|(_, a, b)| (a, b))
        .collect();
    let everything = ranges
        .iter()
        .any(|(a, b)| *a == 0 && *b == if v6 { u128::MAX } else { u32::MAX as u128 });
    match peer {
        Peer::Addr(ip) => {
            let (family, n) = ip_number(ip);
            if family != v6 {
                return Tri::No;
            }
            Tri::from(ranges.iter().any(|(a, b)| (*a..=*b).contains(&n))).negate(neg)
        }
        Peer::Untrusted => {
            if everything {
                Tri::Yes.negate(neg)
            } else {
                Tri::No.negate(neg)
            }
        }
        Peer::Any => {
            if everything {
                Tri::Yes.negate(neg)
            } else if ranges.is_empty() {
                Tri::No.negate(neg)
            } else {
                Tri::Maybe
            }
        }
    }
}
