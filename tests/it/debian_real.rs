//! The real Debian archive, through the build host's apt sources: `kiln
//! lock` on the NODE set resolves the same packages and versions as
//! mmdebstrap (the oracle, simulating the same install with apt), and
//! `kiln fetch` downloads and verifies all of them. Needs the network.

use crate::common;

use common::*;
use std::collections::BTreeMap;
use std::process::Command;

fn mmdebstrap_set() -> BTreeMap<String, String> {
    let out = run_ok(
        Command::new("mmdebstrap")
            .args(["--variant=minbase", "--simulate", "-v"])
            .arg(format!("--include={}", NODE_SET.join(",")))
            .args(["bookworm", "/dev/null"]),
    );
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut set = BTreeMap::new();
    for line in log.lines() {
        // Inst NAME (VERSION Origin:Release [arch]) …
        if let Some(rest) = line.strip_prefix("Inst ") {
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap().to_owned();
            let version = words.next().unwrap().trim_start_matches('(').to_owned();
            set.insert(name, version);
        }
    }
    assert!(set.len() > 50, "mmdebstrap listed too few packages:\n{log}");
    set
}

#[test]
#[ignore = "needs network"]
fn node_set_matches_mmdebstrap_and_downloads_verified() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let packages: Vec<String> = NODE_SET.iter().map(|p| format!("\"{p}\"")).collect();
    std::fs::write(
        w.join("node.toml"),
        format!(
            "[image]\nname = \"node\"\nversion = \"1\"\n[debian]\nsuite = \"bookworm\"\nvariant = \"minbase\"\npackages = [{}]\n",
            packages.join(", ")
        ),
    )
    .unwrap();
    let cache = w.join("cache");
    run_ok(
        kiln()
            .current_dir(w)
            .args(["lock", "node.toml", "--cache-dir"])
            .arg(&cache),
    );
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(w.join("node.lock")).unwrap()).unwrap();
    let ours: BTreeMap<String, String> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let suites: Vec<&str> = lock["index"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["suite"].as_str().unwrap())
        .collect();
    assert_eq!(
        suites,
        ["bookworm", "bookworm-security", "bookworm-updates"]
    );

    let oracle = mmdebstrap_set();
    let only_ours: Vec<String> = ours
        .iter()
        .filter(|(n, v)| oracle.get(*n) != Some(v))
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    let only_oracle: Vec<String> = oracle
        .iter()
        .filter(|(n, v)| ours.get(*n) != Some(v))
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    // The one known difference: openssh-server depends on lsb-base, a
    // transitional package that the Essential sysvinit-utils also provides.
    // kiln, like apt resolving everything in one run (tests/resolve.rs),
    // takes the provider; mmdebstrap installs the Essential set with dpkg
    // first and then lets apt add the rest, which pulls the empty real
    // lsb-base in as well.
    let only_oracle: Vec<String> = only_oracle
        .into_iter()
        .filter(|p| !p.starts_with("lsb-base "))
        .collect();
    assert!(
        only_ours.is_empty() && only_oracle.is_empty(),
        "kiln and mmdebstrap disagree beyond lsb-base:\n  only kiln: {only_ours:?}\n  only mmdebstrap: {only_oracle:?}"
    );
    assert!(
        !ours.contains_key("lsb-base") && oracle.contains_key("lsb-base"),
        "the lsb-base difference changed: update this test and docs/debian.md"
    );

    // every locked package downloads and matches its pin; a second fetch is served by the cache
    run_ok(
        kiln()
            .current_dir(w)
            .args(["fetch", "node.toml", "--locked", "--cache-dir"])
            .arg(&cache),
    );
    let blobs = list_dir(&cache.join("sha256"))
        .into_iter()
        .filter(|p| p.len() > 60)
        .count();
    assert_eq!(blobs, ours.len(), "one cached blob per package");
    let started = std::time::Instant::now();
    run_ok(
        kiln()
            .current_dir(w)
            .args(["fetch", "node.toml", "--locked", "--cache-dir"])
            .arg(&cache)
            .env("KILN_DEBIAN_MIRROR", "http://127.0.0.1:9/nowhere"),
    );
    eprintln!("warm fetch (no network) took {:?}", started.elapsed());
}
