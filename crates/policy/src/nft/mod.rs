//! nftables rulesets as `nft -f /etc/nftables.conf` would load them, read
//! well enough to answer the firewall rules' questions: which base chains
//! hook input and forward with which policy, and whether a new packet to
//! a port, from an arbitrary or a given source, is accepted.
//!
//! The reader follows `include` (globs, sorted; relative names from /etc),
//! `define`/`$var`, `table { chain { … } set { … } }` blocks and the
//! `add|insert table|chain|rule|set|element` commands, `flush ruleset`,
//! `flush table|chain` and `delete table`. In rules it understands
//! interface, ct state, layer-4 protocol, destination port, address and
//! nfproto matches, anonymous and named sets, verdict maps on those, and
//! the verdicts; any other expression is kept as "unknown", which the
//! packet walk treats as "may or may not match" — in the direction that
//! makes the audit fail rather than pass.
//!
//! `lex` turns text into tokens and applies `include`/`define`,
//! `parse` builds the [`Ruleset`], `eval` walks packets through it and
//! `ranges` reads ports and addresses as ranges.

mod eval;
mod lex;
mod parse;
mod ranges;

pub use ranges::{addr_range, format_ranges, intersect, port_range, port_ranges, subtract};

use super::image::Image;
use lex::{Reader, tokenize};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub const MAIN: &str = "/etc/nftables.conf";

/// A set of values in a match: literal items, or a named set resolved
/// after parsing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values {
    pub items: Vec<String>,
    /// A named set (`@name`) not found in the table: unknown contents.
    pub unresolved: bool,
    pub named: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    Iif {
        names: Values,
        neg: bool,
    },
    CtState {
        states: Values,
        neg: bool,
    },
    L4Proto {
        protos: Values,
        neg: bool,
    },
    /// `tcp dport`, `udp dport` (proto set) or `th dport` (any).
    DPort {
        proto: Option<String>,
        ports: Values,
        neg: bool,
    },
    SAddr {
        v6: bool,
        addrs: Values,
        neg: bool,
    },
    DAddr {
        v6: bool,
        addrs: Values,
        neg: bool,
    },
    NfProto {
        v6: bool,
        neg: bool,
    },
    Unknown(String),
}

/// What a verdict map keys on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    CtState,
    DPort(Option<String>),
    L4Proto,
    Iif,
    SAddr(bool),
    DAddr(bool),
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// `drop` and `reject`.
    Drop,
    Queue,
    Jump(String),
    Goto(String),
    Return,
    Continue,
    VMap {
        selector: Selector,
        entries: Vec<(Values, Verdict)>,
    },
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub conds: Vec<Cond>,
    pub verdict: Option<Verdict>,
    pub path: String,
    pub line: u32,
}

#[derive(Clone, Debug)]
pub struct Chain {
    pub family: String,
    pub table: String,
    pub name: String,
    /// `type` of a base chain: filter, nat, route.
    pub kind: Option<String>,
    pub hook: Option<String>,
    pub policy: Option<String>,
    pub rules: Vec<Rule>,
    pub path: String,
    pub line: u32,
}

impl Chain {
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.family, self.table, self.name)
    }

    /// The policy a base chain has when none is written: accept.
    pub fn effective_policy(&self) -> &str {
        self.policy.as_deref().unwrap_or("accept")
    }

    fn sees(&self, v6: bool) -> bool {
        match self.family.as_str() {
            "inet" => true,
            "ip" => !v6,
            "ip6" => v6,
            _ => false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Ruleset {
    pub files: Vec<String>,
    pub chains: Vec<Chain>,
    /// (family, table, name) → elements.
    pub sets: BTreeMap<(String, String, String), Vec<String>>,
    /// Every `flush ruleset`: (path, line).
    pub flushes: Vec<(String, u32)>,
    /// What the reader could not make sense of: (path, line, message).
    pub problems: Vec<(String, u32, String)>,
}

impl Ruleset {
    /// Reads /etc/nftables.conf and what it includes; `None` when absent.
    pub fn load(image: &Image) -> Option<Ruleset> {
        if !image.is_file(MAIN) {
            return None;
        }
        let mut reader = Reader {
            image: Some(image),
            files: Vec::new(),
            vars: BTreeMap::new(),
            problems: Vec::new(),
        };
        let tokens = reader.tokens_of(MAIN, 0);
        Some(reader.finish(tokens))
    }

    /// Parses one ruleset text with no includes (tests).
    pub fn parse_text(path: &str, text: &str) -> Ruleset {
        let mut reader = Reader {
            image: None,
            files: vec![path.to_owned()],
            vars: BTreeMap::new(),
            problems: Vec::new(),
        };
        let raw = tokenize(text, 0);
        let tokens = reader.expand(raw, 0);
        reader.finish(tokens)
    }

    pub fn chain(&self, family: &str, table: &str, name: &str) -> Option<&Chain> {
        self.chains
            .iter()
            .find(|c| c.family == family && c.table == table && c.name == name)
    }

    /// Base filter chains on `hook` that see packets of this family.
    pub fn base_chains<'a>(&'a self, hook: &'a str, v6: bool) -> impl Iterator<Item = &'a Chain> {
        self.chains.iter().filter(move |c| {
            c.hook.as_deref() == Some(hook)
                && c.kind.as_deref().is_none_or(|k| k == "filter")
                && c.sees(v6)
        })
    }
}

/// Where a packet comes from (or goes to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// An address of the attacker's choosing that no rule lists.
    Untrusted,
    /// Some address, possibly one a rule lists.
    Any,
    Addr(IpAddr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub v6: bool,
    /// "tcp" or "udp".
    pub proto: &'static str,
    pub dport: u16,
    pub saddr: Peer,
    pub daddr: Peer,
    /// Arrives on the loopback interface.
    pub loopback: bool,
    /// Conntrack state: "new" or "established".
    pub state: &'static str,
}

impl Packet {
    pub fn new(v6: bool, proto: &'static str, dport: u16) -> Packet {
        Packet {
            v6,
            proto,
            dport,
            saddr: Peer::Untrusted,
            daddr: Peer::Any,
            loopback: false,
            state: "new",
        }
    }
}

/// How to read a "may match": `May` asks whether the packet can be
/// accepted (unknown matches count for accept rules and against drop
/// rules), `Must` whether it is certainly accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    May,
    Must,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREWALL: &str = r#"#!/usr/sbin/nft -f
define SERVERS = { 10.0.0.10, 10.0.0.11 }
table inet kiln {
  set cluster { type ipv4_addr; flags interval; elements = { 10.0.0.0/24 } }
  chain input {
    type filter hook input priority filter; policy drop;
    iif lo accept
    ct state vmap { established : accept, related : accept, invalid : drop }
    tcp dport 22 ip saddr $SERVERS accept
    udp dport 8472 ip saddr @cluster accept
    tcp dport { 10250, 30000-32767 } jump k8s
    meta l4proto ipv6-icmp accept
  }
  chain k8s {
    ip saddr 10.0.0.0/24 accept
    tcp dport 10250 drop
    accept
  }
  chain forward { type filter hook forward priority 0; policy drop; }
}
"#;

    #[test]
    fn parses_chains_policies_and_sets() {
        let r = Ruleset::parse_text(MAIN, FIREWALL);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let input = r.chain("inet", "kiln", "input").unwrap();
        assert_eq!(input.hook.as_deref(), Some("input"));
        assert_eq!(input.policy.as_deref(), Some("drop"));
        assert_eq!(input.rules.len(), 6);
        assert_eq!(
            input.rules[2].conds[1],
            Cond::SAddr {
                v6: false,
                addrs: Values {
                    items: vec!["10.0.0.10".into(), "10.0.0.11".into()],
                    ..Values::default()
                },
                neg: false
            }
        );
        let Cond::SAddr { addrs, .. } = &input.rules[3].conds[1] else {
            panic!()
        };
        assert_eq!(addrs.items, ["10.0.0.0/24"]);
    }

    #[test]
    fn walks_packets_through_chains() {
        let r = Ruleset::parse_text(MAIN, FIREWALL);
        // from anywhere: only the NodePorts (through k8s's final accept)
        assert_eq!(
            r.open_ports(false, "tcp", Peer::Untrusted),
            [(30000, 32767)]
        );
        assert_eq!(
            r.open_ports(false, "tcp", Peer::Any),
            [(22, 22), (10250, 10250), (30000, 32767)]
        );
        assert_eq!(r.open_ports(false, "udp", Peer::Untrusted), []);
        assert_eq!(r.open_ports(false, "udp", Peer::Any), [(8472, 8472)]);
        let lo = Packet {
            loopback: true,
            ..Packet::new(false, "tcp", 10248)
        };
        assert!(r.accepts("input", &lo, Mode::Must));
        let established = Packet {
            state: "established",
            ..Packet::new(true, "tcp", 40000)
        };
        assert!(r.accepts("input", &established, Mode::Must));
        assert!(!r.accepts("forward", &Packet::new(false, "tcp", 80), Mode::May));
    }

    #[test]
    fn no_chain_accepts_everything_and_flush_is_recorded() {
        let r = Ruleset::parse_text(MAIN, "flush ruleset\ntable ip t {\n}\n");
        assert_eq!(r.flushes, [(MAIN.to_owned(), 1)]);
        assert_eq!(r.open_ports(true, "tcp", Peer::Untrusted), [(1, 65535)]);
    }

    #[test]
    fn add_commands_and_negations() {
        let r = Ruleset::parse_text(
            MAIN,
            "add table ip f\nadd chain ip f in { type filter hook input priority 0 ; policy drop ; }\nadd rule ip f in tcp dport != 22 accept\ninsert rule ip f in tcp dport 80 drop\n",
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(
            r.open_ports(false, "tcp", Peer::Untrusted),
            [(1, 21), (23, 79), (81, 65535)]
        );
    }
}
