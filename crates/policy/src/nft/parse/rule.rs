//! One rule's expressions: matches, verdict maps and verdicts.

use super::Parser;
use crate::nft::lex::Tok;
use crate::nft::{Cond, Rule, Selector, Values, Verdict};

impl Parser<'_> {
    /// A value after a selector: `{ set }`, `@name`, or one word (which
    /// may hold a comma list: `established,related`).
    fn values(&mut self) -> Values {
        match self.peek().cloned() {
            Some(Tok::LBrace) => Values {
                items: self.anonymous_set(),
                ..Values::default()
            },
            Some(Tok::Word(w)) if w.starts_with('@') => {
                self.pos += 1;
                Values {
                    named: Some(w[1..].to_owned()),
                    ..Values::default()
                }
            }
            Some(Tok::Word(w)) | Some(Tok::Str(w)) => {
                self.pos += 1;
                let mut items: Vec<String> = w.split(',').map(str::to_owned).collect();
                // `established, related` written with a comma token
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    if let Some(next) = self.word() {
                        items.push(next);
                    }
                }
                items.retain(|i| !i.is_empty());
                Values {
                    items,
                    ..Values::default()
                }
            }
            _ => Values {
                unresolved: true,
                ..Values::default()
            },
        }
    }

    /// An optional comparison operator: `Some(true)` for a negation,
    /// `None` for an ordering operator the model does not handle.
    fn operator(&mut self) -> Option<bool> {
        match self.peek_word() {
            Some("==") | Some("eq") => {
                self.pos += 1;
                Some(false)
            }
            Some("!=") | Some("ne") => {
                self.pos += 1;
                Some(true)
            }
            Some("<") | Some(">") | Some("<=") | Some(">=") | Some("lt") | Some("gt")
            | Some("le") | Some("ge") => {
                self.pos += 1;
                None
            }
            _ => Some(false),
        }
    }

    /// A match on `selector`: an operator and values, or a verdict map.
    fn selector_match(&mut self, selector: Selector, conds: &mut Vec<Cond>) -> Option<Verdict> {
        if self.peek_word() == Some("vmap") {
            self.pos += 1;
            let entries = self.vmap_entries();
            return Some(Verdict::VMap { selector, entries });
        }
        let Some(neg) = self.operator() else {
            let v = self.values();
            conds.push(Cond::Unknown(format!("ordering comparison {v:?}")));
            return None;
        };
        let values = self.values();
        if self.peek_word() == Some("vmap") {
            // `ip saddr . tcp dport vmap …` and similar: unknown key
            self.pos += 1;
            let entries = self.vmap_entries();
            return Some(Verdict::VMap {
                selector: Selector::Unknown,
                entries,
            });
        }
        conds.push(match selector {
            Selector::CtState => Cond::CtState {
                states: values,
                neg,
            },
            Selector::DPort(proto) => Cond::DPort {
                proto,
                ports: values,
                neg,
            },
            Selector::L4Proto => Cond::L4Proto {
                protos: values,
                neg,
            },
            Selector::Iif => Cond::Iif { names: values, neg },
            Selector::SAddr(v6) => Cond::SAddr {
                v6,
                addrs: values,
                neg,
            },
            Selector::DAddr(v6) => Cond::DAddr {
                v6,
                addrs: values,
                neg,
            },
            Selector::Unknown => Cond::Unknown(format!("{values:?}")),
        });
        None
    }

    fn vmap_entries(&mut self) -> Vec<(Values, Verdict)> {
        let mut out = Vec::new();
        for element in self.anonymous_set() {
            // "key : verdict" or "key:verdict", the verdict possibly "jump x"
            let Some((key, verdict)) = element.rsplit_once(':').and_then(|(k, v)| {
                let v = v.trim();
                let verdict = simple_verdict(v)?;
                Some((k.trim().to_owned(), verdict))
            }) else {
                continue;
            };
            out.push((
                Values {
                    items: vec![key],
                    ..Values::default()
                },
                verdict,
            ));
        }
        out
    }

    /// One rule: expressions until the end of the statement.
    pub(super) fn rule(&mut self) -> Rule {
        let (path, line) = self.here();
        let mut conds = Vec::new();
        let mut verdict = None;
        while let Some(tok) = self.peek().cloned() {
            let w = match tok {
                Tok::Newline | Tok::Semi => {
                    self.pos += 1;
                    break;
                }
                Tok::RBrace => break,
                Tok::LBrace => {
                    self.skip_block();
                    conds.push(Cond::Unknown("{…}".into()));
                    continue;
                }
                Tok::Comma => {
                    self.pos += 1;
                    continue;
                }
                Tok::Str(s) => {
                    self.pos += 1;
                    conds.push(Cond::Unknown(s));
                    continue;
                }
                Tok::Word(w) => {
                    self.pos += 1;
                    w
                }
            };
            let found = match w.as_str() {
                "iif" | "iifname" => self.selector_match(Selector::Iif, &mut conds),
                "oif" | "oifname" => self.selector_match(Selector::Unknown, &mut conds),
                "ct" => match self.word().as_deref() {
                    Some("state") if self.peek_word() != Some("set") => {
                        self.selector_match(Selector::CtState, &mut conds)
                    }
                    _ => self.selector_match(Selector::Unknown, &mut conds),
                },
                "tcp" | "udp" | "sctp" | "dccp" | "udplite" | "th" => {
                    let field = self.word().unwrap_or_default();
                    let proto = (w != "th").then(|| w.clone());
                    if field == "dport" {
                        self.selector_match(Selector::DPort(proto), &mut conds)
                    } else {
                        if let Some(p) = proto {
                            conds.push(Cond::L4Proto {
                                protos: Values {
                                    items: vec![p],
                                    ..Values::default()
                                },
                                neg: false,
                            });
                        }
                        self.selector_match(Selector::Unknown, &mut conds)
                    }
                }
                "meta" => match self.word().as_deref() {
                    Some("l4proto") => self.selector_match(Selector::L4Proto, &mut conds),
                    Some("nfproto") => {
                        let neg = self.operator().unwrap_or(false);
                        let v = self.values();
                        conds.push(nfproto(&v, neg));
                        None
                    }
                    Some("iif") | Some("iifname") => self.selector_match(Selector::Iif, &mut conds),
                    _ if self.peek_word() == Some("set") => {
                        self.pos += 1;
                        self.values();
                        None
                    }
                    _ => self.selector_match(Selector::Unknown, &mut conds),
                },
                "l4proto" => self.selector_match(Selector::L4Proto, &mut conds),
                "ip" | "ip6" => {
                    let v6 = w == "ip6";
                    let field = self.word().unwrap_or_default();
                    match field.as_str() {
                        "saddr" => self.selector_match(Selector::SAddr(v6), &mut conds),
                        "daddr" => self.selector_match(Selector::DAddr(v6), &mut conds),
                        "protocol" | "nexthdr" => {
                            conds.push(Cond::NfProto { v6, neg: false });
                            self.selector_match(Selector::L4Proto, &mut conds)
                        }
                        _ => {
                            conds.push(Cond::NfProto { v6, neg: false });
                            self.selector_match(Selector::Unknown, &mut conds)
                        }
                    }
                }
                "icmp" | "icmpv6" => {
                    let v6 = w == "icmpv6";
                    conds.push(Cond::NfProto { v6, neg: false });
                    conds.push(Cond::L4Proto {
                        protos: Values {
                            items: vec![if v6 { "ipv6-icmp" } else { "icmp" }.to_owned()],
                            ..Values::default()
                        },
                        neg: false,
                    });
                    self.word();
                    self.selector_match(Selector::Unknown, &mut conds)
                }
                "counter" => {
                    while matches!(self.peek_word(), Some("packets") | Some("bytes")) {
                        self.pos += 2;
                    }
                    None
                }
                "log" => {
                    while let Some(option) = self.peek_word() {
                        match option {
                            "prefix" | "level" | "group" | "snaplen" | "queue-threshold" => {
                                self.pos += 2
                            }
                            "flags" => {
                                self.pos += 1;
                                self.values();
                            }
                            _ => break,
                        }
                    }
                    None
                }
                "limit" => {
                    conds.push(Cond::Unknown("limit".into()));
                    while let Some(option) = self.peek_word() {
                        match option {
                            "rate" | "over" => self.pos += 1,
                            "burst" => self.pos += 3,
                            _ if option.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                                self.pos += 1
                            }
                            "/" | "second" | "minute" | "hour" | "day" | "week" | "packets"
                            | "bytes" => self.pos += 1,
                            _ => break,
                        }
                    }
                    None
                }
                "comment" => {
                    self.word();
                    None
                }
                "accept" => Some(Verdict::Accept),
                "drop" => Some(Verdict::Drop),
                "reject" => {
                    if self.peek_word() == Some("with") {
                        self.pos += 1;
                        while let Some(x) = self.peek_word() {
                            if matches!(x, "icmp" | "icmpv6" | "icmpx" | "tcp" | "type" | "reset")
                                || x.contains('-')
                                || x.chars().all(|c| c.is_ascii_alphanumeric())
                                    && !matches!(x, "accept" | "drop" | "counter" | "log")
                            {
                                self.pos += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    Some(Verdict::Drop)
                }
                "queue" => {
                    while matches!(
                        self.peek_word(),
                        Some("num") | Some("bypass") | Some("fanout") | Some("flags") | Some("to")
                    ) {
                        let option = self.peek_word().unwrap_or_default().to_owned();
                        self.pos += 1;
                        if option == "num" || option == "flags" || option == "to" {
                            self.pos += 1;
                        }
                    }
                    Some(Verdict::Queue)
                }
                "jump" => self.word().map(Verdict::Jump),
                "goto" => self.word().map(Verdict::Goto),
                "return" => Some(Verdict::Return),
                "continue" => Some(Verdict::Continue),
                "notrack" | "masquerade" | "snat" | "dnat" | "redirect" | "tproxy" | "dup"
                | "fwd" | "synproxy" => {
                    // nat and similar statements: the rest of the rule is
                    // their arguments
                    while !matches!(
                        self.peek(),
                        None | Some(Tok::Newline) | Some(Tok::Semi) | Some(Tok::RBrace)
                    ) {
                        if self.peek() == Some(&Tok::LBrace) {
                            self.skip_block();
                        } else {
                            self.pos += 1;
                        }
                    }
                    None
                }
                "add" | "update" | "delete" | "set"
                    if self.peek_word().is_some_and(|n| n.starts_with('@')) =>
                {
                    self.pos += 1;
                    if self.peek() == Some(&Tok::LBrace) {
                        self.skip_block();
                    }
                    None
                }
                other => {
                    conds.push(Cond::Unknown(other.to_owned()));
                    None
                }
            };
            if let Some(v) = found {
                verdict = Some(v);
            }
        }
        Rule {
            conds,
            verdict,
            path,
            line,
        }
    }
}

fn simple_verdict(text: &str) -> Option<Verdict> {
    let mut words = text.split_whitespace();
    match (words.next()?, words.next()) {
        ("accept", None) => Some(Verdict::Accept),
        ("drop", None) | ("reject", _) => Some(Verdict::Drop),
        ("return", None) => Some(Verdict::Return),
        ("continue", None) => Some(Verdict::Continue),
        ("queue", _) => Some(Verdict::Queue),
        ("jump", Some(c)) => Some(Verdict::Jump(c.to_owned())),
        ("goto", Some(c)) => Some(Verdict::Goto(c.to_owned())),
        _ => None,
    }
}

fn nfproto(values: &Values, neg: bool) -> Cond {
    match values.items.as_slice() {
        [one] if one == "ipv4" => Cond::NfProto { v6: false, neg },
        [one] if one == "ipv6" => Cond::NfProto { v6: true, neg },
        _ => Cond::Unknown("meta nfproto".into()),
    }
}
