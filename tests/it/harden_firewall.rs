//! `[firewall]` judged by the kernel: the ruleset passes `nft -c`, and
//! loaded into a network namespace of the test's own, real connections
//! from another namespace (over a veth pair, 10.99.0.0/24) reach SSH and
//! the kubelet only from the sources the recipe allows. Reloading keeps
//! other tables (no `flush ruleset`). The host's ruleset is never touched.
//! Those tests need root (network namespaces); without root, the same
//! connections are judged by kiln's own ruleset reader (which
//! tests/it/audit_nft.rs holds to nft's reading).

use crate::common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn recipe(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("r.toml"),
        format!(
            r##"[image]
name = "fw"
version = "1"

[[file]]
dest = "/etc/issue.net"
content = "Authorised access only.\n"

[[file]]
dest = "/usr/local/bin/k3s"
content = "#!/bin/sh\n"
mode = "0755"

[[group]]
name = "ssh-users"

[ssh]
allow_groups = ["ssh-users"]
from = ["10.99.0.2/32", "2001:db8:99::/64"]

[k3s]
server = "https://10.99.0.9:6443"
servers = ["10.99.0.9/32"]
node_cidrs = ["10.99.0.0/24"]

[firewall]
{extra}

# a partial test image (no nft binary, no sshd): the audit reports only
[audit]
fail_on = "none"
"##
        ),
    )
    .unwrap();
}

fn build_ruleset(dir: &Path) -> String {
    run_ok(
        kiln()
            .current_dir(dir)
            .args(["build", "r.toml", "-o", "dist"]),
    );
    let out = run_ok(
        Command::new("tar")
            .args([
                "--zstd",
                "-xOf",
                "dist/fw-1.rootfs.tar.zst",
                "./etc/nftables.conf",
            ])
            .current_dir(dir),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `nft -c -f` in a private network namespace.
fn nft_check(dir: &Path, ruleset: &str) {
    let file = dir.join("check.nft");
    std::fs::write(&file, ruleset).unwrap();
    let out = Command::new("unshare")
        .args(["-n", "nft", "-c", "-f"])
        .arg(&file)
        .output()
        .expect("unshare and nft are needed");
    assert!(
        out.status.success(),
        "nft -c refused the ruleset: {}\n{ruleset}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A recipe with a restricted egress and a rule of its own.
const RESTRICTED: &str = "egress = \"restricted\"\n\n[[firewall.allow]]\nname = \"node-exporter\"\nproto = \"tcp\"\nport = [9100, \"30000-32767\"]\nfrom = [\"10.0.0.0/8\", \"10.1.0.0/16\", \"::/0\"]\n\n[[firewall.allow_out]]\nname = \"dns\"\nproto = \"udp\"\nport = 53\nto = [\"10.99.0.53\"]\n";

/// Connections from the client namespace's addresses (10.99.0.2 may use
/// SSH, 10.99.0.9 is the K3s server) and whether they get through.
const PROBES: [(&str, u16, &str); 6] = [
    ("10.99.0.2", 22, "open"),
    ("10.99.0.3", 22, "closed"),
    ("10.99.0.3", 10250, "closed"),
    ("10.99.0.2", 10250, "closed"),
    ("10.99.0.9", 10250, "open"),
    ("10.99.0.9", 22, "closed"),
];

#[test]
#[ignore = "needs root"]
fn nft_accepts_the_rulesets() {
    require_root("nft_accepts_the_rulesets");
    for extra in ["", RESTRICTED] {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        recipe(w, extra);
        let ruleset = build_ruleset(w);
        nft_check(w, &ruleset);
    }
}

#[test]
fn the_rulesets_limit_each_service_to_its_sources() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(w, "");
    let open = build_ruleset(w);
    assert!(
        !open.lines().any(|l| l.trim_start().starts_with("flush")),
        "{open}"
    );
    // the probes of the real traffic test, judged by kiln's reader
    let ruleset = kiln_policy::nft::Ruleset::parse_text("/etc/nftables.conf", &open);
    assert!(ruleset.problems.is_empty(), "{:?}", ruleset.problems);
    let reaches = |src: &str, port: u16| {
        let ip: std::net::IpAddr = src.parse().unwrap();
        let ports = ruleset.open_ports(ip.is_ipv6(), "tcp", kiln_policy::nft::Peer::Addr(ip));
        if ports.iter().any(|(a, b)| (*a..=*b).contains(&port)) {
            "open"
        } else {
            "closed"
        }
    };
    let probes = PROBES.iter().copied().chain([
        ("2001:db8:99::5", 22, "open"),
        ("2001:db8:98::5", 22, "closed"),
    ]);
    for (src, port, expected) in probes {
        assert_eq!(reaches(src, port), expected, "{src} to port {port}\n{open}");
    }

    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(w, RESTRICTED);
    let restricted = build_ruleset(w);
    assert!(
        restricted.contains("policy drop;\n\t\toif \"lo\" accept"),
        "{restricted}"
    );
    // 10.1.0.0/16 lies in 10.0.0.0/8: one element, or nft refuses the set
    assert!(
        restricted.contains(
            "ip saddr 10.0.0.0/8 tcp dport { 9100, 30000-32767 } accept comment \"node-exporter\""
        ),
        "{restricted}"
    );
    assert!(
        restricted.contains("meta nfproto ipv6 tcp dport { 9100, 30000-32767 } accept"),
        "{restricted}"
    );
    assert!(
        restricted.contains("ip daddr 10.99.0.53 udp dport 53 accept comment \"dns\""),
        "{restricted}"
    );
    assert!(
        restricted.contains("ip daddr 10.99.0.9 tcp dport 6443 accept"),
        "{restricted}"
    );

    // a rule without sources is a recipe error at its table
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(w, "[[firewall.allow]]\nproto = \"tcp\"\nport = 80\n");
    let out = kiln()
        .current_dir(w)
        .args(["build", "r.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("r.toml:27:1: a firewall rule needs from = [\"CIDR\", ...]"),
        "{stderr}"
    );
}

/// Two namespaces joined by a veth pair, removed on drop (even when the
/// test fails).
struct Net {
    server: String,
    client: String,
    listener: Option<Child>,
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut child) = self.listener.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

fn in_ns(ns: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    run_ok(&mut cmd)
}

const LISTENER: &str = r#"
import socket, sys, threading, time
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        c.sendall(b"ok\n")
        c.close()
for p in (22, 10250):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
time.sleep(0.2)
print("ready", flush=True)
time.sleep(60)
"#;

const CONNECT: &str = r#"
import socket, sys
src, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
s.settimeout(2)
s.bind((src, 0))
try:
    s.connect(("10.99.0.1", port))
    print("open" if s.recv(3) == b"ok\n" else "closed")
except OSError:
    print("closed")
"#;

#[test]
#[ignore = "needs root"]
fn real_traffic_reaches_only_what_the_recipe_allows() {
    require_root("real_traffic_reaches_only_what_the_recipe_allows");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(w, "");
    let ruleset = build_ruleset(w);
    let conf = w.join("nftables.conf");
    std::fs::write(&conf, &ruleset).unwrap();

    let id = std::process::id();
    let mut net = Net {
        server: format!("kiln-fw-s{id}"),
        client: format!("kiln-fw-c{id}"),
        listener: None,
    };
    let (veth_s, veth_c) = (format!("kfs{id}"), format!("kfc{id}"));
    ip(&["netns", "add", &net.server]);
    ip(&["netns", "add", &net.client]);
    ip(&[
        "link", "add", &veth_s, "type", "veth", "peer", "name", &veth_c,
    ]);
    ip(&["link", "set", &veth_s, "netns", &net.server]);
    ip(&["link", "set", &veth_c, "netns", &net.client]);
    in_ns(
        &net.server,
        &["ip", "addr", "add", "10.99.0.1/24", "dev", &veth_s],
    );
    for a in ["10.99.0.2/24", "10.99.0.3/24", "10.99.0.9/24"] {
        in_ns(&net.client, &["ip", "addr", "add", a, "dev", &veth_c]);
    }
    for (ns, dev) in [(&net.server, &veth_s), (&net.client, &veth_c)] {
        in_ns(ns, &["ip", "link", "set", "lo", "up"]);
        in_ns(ns, &["ip", "link", "set", dev, "up"]);
    }

    // a table someone else (kube-proxy, flannel) made survives two loads
    in_ns(&net.server, &["nft", "add", "table", "ip", "other"]);
    in_ns(&net.server, &["nft", "-f", conf.to_str().unwrap()]);
    in_ns(&net.server, &["nft", "-f", conf.to_str().unwrap()]);
    let tables = in_ns(&net.server, &["nft", "list", "tables"]);
    assert_eq!(
        String::from_utf8_lossy(&tables.stdout),
        "table ip other\ntable inet kiln\n"
    );

    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.server, "python3", "-c", LISTENER])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    net.listener = Some(child);
    assert_eq!(ready.trim(), "ready");

    let probe = |src: &str, port: u16| -> String {
        let out = in_ns(
            &net.client,
            &["python3", "-c", CONNECT, src, &port.to_string()],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let results: Vec<(&str, u16, String)> = PROBES
        .into_iter()
        .map(|(src, port, _)| (src, port, probe(src, port)))
        .collect();
    let expected: Vec<&str> = PROBES.iter().map(|(_, _, e)| *e).collect();
    let got: Vec<&str> = results.iter().map(|(_, _, r)| r.as_str()).collect();
    assert_eq!(got, expected, "{results:?}");

    // without kiln's table everything is reachable: the probes can tell
    in_ns(&net.server, &["nft", "delete", "table", "inet", "kiln"]);
    assert_eq!(probe("10.99.0.3", 22), "open");
    drop(net);
}
