//! The nftables reader against nft itself: each ruleset written here is
//! loaded with `nft -f` inside a private network namespace (`unshare -n`,
//! so the host's ruleset is never touched; a private mount namespace puts
//! the test's /etc in place for includes), listed with
//! `nft -j list ruleset`, and compared with what the reader parsed: every
//! chain's hook and policy, and every rule's port, address, protocol,
//! interface and ct state matches and its verdict. Needs root and nftables
//! (`apt-get install nftables`).

use crate::common;

use kiln_policy::nft::{Cond, Rule, Ruleset, Selector, Values, Verdict, addr_range, port_ranges};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Every test here: nft, and root for the namespaces.
fn require_nft() {
    assert!(
        Path::new("/usr/sbin/nft").exists(),
        "nft is missing: apt-get install nftables (the test oracle)"
    );
    common::require_root("nft cross-check (network and mount namespaces)");
}

/// One match or verdict, in a form both sides can produce.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    DPort(Option<String>, bool, Vec<(u16, u16)>),
    Addr(&'static str, bool, bool, Vec<(bool, u128, u128)>),
    L4(Vec<String>),
    Iif(Vec<String>),
    Ct(Vec<String>),
    Verdict(String),
    VMap(String, Vec<(String, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ChainView {
    hook: Option<String>,
    policy: Option<String>,
    rules: Vec<Vec<Item>>,
}

type View = BTreeMap<(String, String, String), ChainView>;

fn verdict_name(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Queue => "queue".into(),
        Verdict::Jump(t) => format!("jump {t}"),
        Verdict::Goto(t) => format!("goto {t}"),
        Verdict::Return => "return".into(),
        Verdict::Continue => "continue".into(),
        Verdict::VMap { .. } => "vmap".into(),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn addrs(values: &Values) -> Vec<(bool, u128, u128)> {
    merge_addrs(
        values
            .items
            .iter()
            .map(|i| addr_range(i).unwrap_or_else(|| panic!("{i}")))
            .collect(),
    )
}

/// Sorts and merges adjacent or overlapping ranges: nft merges
/// `10.42.0.0/16, 10.43.0.0/16` into one interval, the same addresses.
fn merge_addrs(mut v: Vec<(bool, u128, u128)>) -> Vec<(bool, u128, u128)> {
    v.sort();
    let mut out: Vec<(bool, u128, u128)> = Vec::new();
    for (f, a, b) in v {
        match out.last_mut() {
            Some(last) if last.0 == f && a <= last.2.saturating_add(1) => last.2 = last.2.max(b),
            _ => out.push((f, a, b)),
        }
    }
    out
}

fn merge_ports(mut v: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    v.sort();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a as u32 <= last.1 as u32 + 1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn ours(ruleset: &Ruleset) -> View {
    let mut view = View::new();
    for chain in &ruleset.chains {
        let rules = chain.rules.iter().map(our_rule).collect();
        view.insert(
            (
                chain.family.clone(),
                chain.table.clone(),
                chain.name.clone(),
            ),
            ChainView {
                hook: chain.hook.clone(),
                policy: chain
                    .hook
                    .as_ref()
                    .map(|_| chain.effective_policy().to_owned()),
                rules,
            },
        );
    }
    view
}

fn our_rule(rule: &Rule) -> Vec<Item> {
    let mut items = Vec::new();
    for cond in &rule.conds {
        match cond {
            Cond::DPort { proto, ports, neg } => {
                let r = merge_ports(port_ranges(ports).expect("readable ports"));
                items.push(Item::DPort(proto.clone(), *neg, r));
            }
            Cond::SAddr { v6, addrs: a, neg } => {
                items.push(Item::Addr("saddr", *v6, *neg, addrs(a)))
            }
            Cond::DAddr { v6, addrs: a, neg } => {
                items.push(Item::Addr("daddr", *v6, *neg, addrs(a)))
            }
            Cond::L4Proto { protos, .. } => items.push(Item::L4(sorted(protos.items.clone()))),
            Cond::Iif { names, .. } => items.push(Item::Iif(sorted(names.items.clone()))),
            Cond::CtState { states, .. } => items.push(Item::Ct(sorted(states.items.clone()))),
            Cond::NfProto { .. } | Cond::Unknown(_) => {}
        }
    }
    match &rule.verdict {
        Some(Verdict::VMap { selector, entries }) => {
            let key = match selector {
                Selector::CtState => "ct state".to_owned(),
                Selector::DPort(p) => format!("{} dport", p.as_deref().unwrap_or("th")),
                other => format!("{other:?}"),
            };
            let mut e: Vec<(String, String)> = entries
                .iter()
                .map(|(k, v)| (k.items.join(","), verdict_name(v)))
                .collect();
            e.sort();
            items.push(Item::VMap(key, e));
        }
        Some(v) => items.push(Item::Verdict(verdict_name(v))),
        None => {}
    }
    items.sort();
    items
}

// --- nft -j ------------------------------------------------------------

fn json_addr(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Object(o) if o.contains_key("prefix") => {
            let p = &o["prefix"];
            vec![format!("{}/{}", p["addr"].as_str().unwrap(), p["len"])]
        }
        Value::Object(o) if o.contains_key("range") => {
            let r = &o["range"];
            vec![format!(
                "{}-{}",
                r[0].as_str().unwrap(),
                r[1].as_str().unwrap()
            )]
        }
        Value::Object(o) if o.contains_key("set") => o["set"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(json_addr)
            .collect(),
        other => panic!("unexpected address {other}"),
    }
}

fn json_ports(v: &Value) -> Vec<(u16, u16)> {
    match v {
        Value::Number(n) => {
            let p = n.as_u64().unwrap() as u16;
            vec![(p, p)]
        }
        Value::Object(o) if o.contains_key("range") => {
            let r = &o["range"];
            vec![(r[0].as_u64().unwrap() as u16, r[1].as_u64().unwrap() as u16)]
        }
        Value::Object(o) if o.contains_key("set") => o["set"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(json_ports)
            .collect(),
        other => panic!("unexpected port {other}"),
    }
}

fn json_words(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(json_words).collect(),
        Value::Object(o) if o.contains_key("set") => json_words(&o["set"]),
        other => panic!("unexpected word {other}"),
    }
}

fn json_verdict(v: &Value) -> Option<String> {
    let o = v.as_object()?;
    for simple in ["accept", "drop", "return", "continue", "queue"] {
        if o.contains_key(simple) {
            return Some(simple.to_owned());
        }
    }
    if o.contains_key("reject") {
        return Some("drop".to_owned());
    }
    for jump in ["jump", "goto"] {
        if let Some(t) = o.get(jump) {
            return Some(format!("{jump} {}", t["target"].as_str().unwrap()));
        }
    }
    None
}

fn theirs(json: &Value) -> View {
    let objects = json["nftables"].as_array().unwrap();
    let mut sets: BTreeMap<(String, String, String), Value> = BTreeMap::new();
    let mut view = View::new();
    let key = |o: &Value, name: &str| {
        (
            o["family"].as_str().unwrap().to_owned(),
            o["table"].as_str().unwrap().to_owned(),
            o[name].as_str().unwrap().to_owned(),
        )
    };
    for obj in objects {
        if let Some(s) = obj.get("set") {
            sets.insert(
                key(s, "name"),
                json!({ "set": s.get("elem").cloned().unwrap_or(json!([])) }),
            );
        }
        if let Some(c) = obj.get("chain") {
            view.insert(
                key(c, "name"),
                ChainView {
                    hook: c.get("hook").and_then(Value::as_str).map(str::to_owned),
                    policy: c.get("policy").and_then(Value::as_str).map(str::to_owned),
                    rules: Vec::new(),
                },
            );
        }
    }
    for obj in objects {
        let Some(r) = obj.get("rule") else { continue };
        let (family, table) = (
            r["family"].as_str().unwrap().to_owned(),
            r["table"].as_str().unwrap().to_owned(),
        );
        let resolve = |right: &Value| -> Value {
            match right.as_str() {
                Some(name) if name.starts_with('@') => {
                    sets[&(family.clone(), table.clone(), name[1..].to_owned())].clone()
                }
                _ => right.clone(),
            }
        };
        let mut items = Vec::new();
        for e in r["expr"].as_array().unwrap() {
            if let Some(m) = e.get("match") {
                let neg = m["op"] == "!=";
                let left = &m["left"];
                let right = resolve(&m["right"]);
                if let Some(p) = left.get("payload") {
                    let proto = p["protocol"].as_str().unwrap();
                    match p["field"].as_str().unwrap() {
                        "dport" => {
                            let ports = merge_ports(json_ports(&right));
                            items.push(Item::DPort(
                                (proto != "th").then(|| proto.to_owned()),
                                neg,
                                ports,
                            ));
                        }
                        field @ ("saddr" | "daddr") => {
                            let a = merge_addrs(
                                json_addr(&right)
                                    .iter()
                                    .map(|s| addr_range(s).unwrap())
                                    .collect(),
                            );
                            let which = if field == "saddr" { "saddr" } else { "daddr" };
                            items.push(Item::Addr(which, proto == "ip6", neg, a));
                        }
                        _ => {}
                    }
                } else if let Some(meta) = left.get("meta") {
                    match meta["key"].as_str().unwrap() {
                        "l4proto" => items.push(Item::L4(sorted(json_words(&right)))),
                        "iif" | "iifname" => items.push(Item::Iif(sorted(json_words(&right)))),
                        _ => {}
                    }
                } else if left.get("ct").is_some_and(|c| c["key"] == "state") {
                    items.push(Item::Ct(sorted(json_words(&right))));
                }
            } else if let Some(vmap) = e.get("vmap") {
                let k = &vmap["key"];
                let name = if k.get("ct").is_some() {
                    "ct state".to_owned()
                } else {
                    let p = &k["payload"];
                    format!(
                        "{} {}",
                        p["protocol"].as_str().unwrap(),
                        p["field"].as_str().unwrap()
                    )
                };
                let mut entries: Vec<(String, String)> = vmap["data"]["set"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|pair| {
                        let k = match &pair[0] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k, json_verdict(&pair[1]).unwrap())
                    })
                    .collect();
                entries.sort();
                items.push(Item::VMap(name, entries));
            } else if let Some(v) = json_verdict(e) {
                items.push(Item::Verdict(v));
            }
        }
        items.sort();
        view.get_mut(&key(r, "chain")).unwrap().rules.push(items);
    }
    view
}

use serde_json::json;

/// Loads `files` (image paths under /etc) with nft in fresh namespaces;
/// returns nft's JSON listing.
fn nft_list(etc: &Path) -> Value {
    for f in ["services", "protocols"] {
        let _ = std::fs::copy(Path::new("/etc").join(f), etc.join(f));
    }
    let script = format!(
        "mount --bind '{}' /etc && nft -f /etc/nftables.conf && nft -j list ruleset",
        etc.display()
    );
    let out = common::run_ok(Command::new("unshare").args(["-n", "-m", "sh", "-c", &script]));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cross_check(files: &[(&str, &str)]) {
    let root = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = root.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let json = nft_list(&root.path().join("etc"));
    let loaded = kiln_policy::audit::load_directory(root.path(), false).unwrap();
    let image = loaded.image();
    let ruleset = Ruleset::load(&image).expect("nftables.conf was written");
    assert!(ruleset.problems.is_empty(), "{:?}", ruleset.problems);
    let (mine, nft) = (ours(&ruleset), theirs(&json));
    assert_eq!(mine, nft, "\nkiln: {mine:#?}\nnft: {nft:#?}");
}

const VARIED: &str = "\
define SERVERS = { 10.0.0.10, 10.0.0.11 }
table inet t {
  set cluster { type ipv4_addr; flags interval; elements = { 10.0.0.0/24, 10.1.0.1-10.1.0.9 } }
  chain input {
    type filter hook input priority filter; policy drop;
    iif lo accept
    ct state vmap { established : accept, related : accept, invalid : drop }
    tcp dport ssh ip saddr $SERVERS accept
    udp dport 8472 ip saddr @cluster accept
    tcp dport { 10250, 30000-32767 } jump k8s
    meta l4proto { tcp, udp } th dport 5001 accept
    tcp dport != 22 counter drop
    tcp dport vmap { 80 : accept, 443 : drop }
    reject with icmpx type admin-prohibited
  }
  chain k8s {
    ip saddr 10.0.0.0/24 accept
    ip6 saddr != fe80::/10 return
  }
  chain forward { type filter hook forward priority 0; }
}
";

#[test]
#[ignore = "needs root"]
fn blocks_sets_variables_and_verdict_maps() {
    require_nft();
    cross_check(&[("/etc/nftables.conf", VARIED)]);
}

#[test]
#[ignore = "needs root"]
fn debian_default_ruleset() {
    require_nft();
    cross_check(&[(
        "/etc/nftables.conf",
        "#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter;\n\t}\n\tchain output {\n\t\ttype filter hook output priority filter;\n\t}\n}\n",
    )]);
}

#[test]
#[ignore = "needs root"]
fn commands_includes_and_families() {
    require_nft();
    cross_check(&[
        (
            "/etc/nftables.conf",
            "#!/usr/sbin/nft -f\nflush ruleset\ninclude \"nftables.d/*.nft\"\nadd rule ip filter input tcp dport 6443 ip saddr { 10.0.0.1, 10.0.0.2 } accept\ninsert rule ip filter input iifname \"lo\" accept\n",
        ),
        (
            "/etc/nftables.d/10-tables.nft",
            "add table ip filter\nadd chain ip filter input { type filter hook input priority 0 ; policy drop ; }\ntable ip6 filter6 {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    ip6 saddr fd00::/8 udp dport 51820-51821 accept\n    ip6 saddr != fe80::/10 tcp dport { 10250 } drop\n  }\n}\n",
        ),
        (
            "/etc/nftables.d/20-more.nft",
            "define NODEPORTS = 30000-32767\nadd rule ip filter input ct state established,related accept\nadd rule ip filter input tcp dport $NODEPORTS ip saddr 192.168.0.0/16 accept\n",
        ),
        ("/etc/nftables.d/30-ignored.conf", "this is not included\n"),
    ]);
}

#[test]
#[ignore = "needs root"]
fn the_hardened_ruleset_of_the_rule_tests() {
    require_nft();
    cross_check(&[(
        "/etc/nftables.conf",
        "#!/usr/sbin/nft -f
table inet kiln {}
flush table inet kiln
table inet kiln {
  set cluster4 { type ipv4_addr; flags interval; elements = { 10.0.0.0/24 } }
  set cluster6 { type ipv6_addr; flags interval; elements = { fd00::/64 } }
  chain input {
    type filter hook input priority filter; policy drop;
    iif lo accept
    ct state established,related accept
    ct state invalid drop
    meta l4proto { icmp, ipv6-icmp } accept
    ip saddr @cluster4 tcp dport { 22, 10250 } accept
    ip6 saddr @cluster6 tcp dport { 22, 10250 } accept
    ip saddr @cluster4 udp dport { 8472, 51820-51821 } accept
    ip6 saddr @cluster6 udp dport { 8472, 51820-51821 } accept
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ip saddr { 10.42.0.0/16, 10.43.0.0/16 } accept
    ip daddr { 10.42.0.0/16, 10.43.0.0/16 } accept
  }
}
",
    )]);
}

#[test]
#[ignore = "needs root"]
fn the_comparison_sees_a_difference() {
    require_nft();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/nftables.conf"), VARIED).unwrap();
    let nft = theirs(&nft_list(&root.path().join("etc")));
    // the same ruleset with one policy changed must not compare equal
    let changed = Ruleset::parse_text(
        "/etc/nftables.conf",
        &VARIED.replace("policy drop", "policy accept"),
    );
    assert_ne!(ours(&changed), nft);
    let changed = Ruleset::parse_text(
        "/etc/nftables.conf",
        &VARIED.replace("udp dport 8472", "udp dport 8473"),
    );
    assert_ne!(ours(&changed), nft);
}
