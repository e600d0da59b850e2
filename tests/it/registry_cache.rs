//! `--cache-from` / `--cache-to`: builders sharing their package and
//! install caches through a real registry (docker-registry on loopback).
//! A builder with an empty local cache and a mirror that lost its .debs
//! builds the same bytes from the registry; builders pushing the same
//! keys at the same time both succeed.

use crate::common;

use common::debrepo::{Deb, TestRepo};
use common::registry::{Registry, RegistryOptions};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const SUITE: &str = "kilntest";

fn debs() -> Vec<Deb> {
    vec![
        Deb {
            name: "app",
            version: "1.0-1",
            depends: "libfoo1",
            files: vec![("/usr/bin/app", "#!/bin/sh\necho app\n")],
            ..Deb::default()
        },
        Deb {
            name: "libfoo1",
            version: "2.0",
            files: vec![("/usr/lib/x86_64-linux-gnu/libfoo.so.1", "foo 2.0\n")],
            ..Deb::default()
        },
    ]
}

/// A signed test repository and a recipe installing from it, in `dir`;
/// returns the pool paths of the .debs.
fn setup(dir: &Path) -> Vec<PathBuf> {
    let repo = TestRepo::new(dir);
    let pool = debs().iter().map(|d| repo.add(SUITE, d)).collect();
    repo.publish(SUITE, "");
    std::fs::copy(&repo.keyring, dir.join("keyring.gpg")).unwrap();
    std::fs::write(
        dir.join("r.toml"),
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"cached\"\nversion = \"1\"\nsource_date_epoch = 1700000000\n\n\
             [debian]\nsuite = \"{SUITE}\"\nupdates = false\nsecurity = false\nvariant = \"essential\"\n\
             packages = [\"app\"]\nkeyring = \"keyring.gpg\"\nmirror = \"{}\"\n",
            repo.url()
        ),
    )
    .unwrap();
    pool
}

/// A build by a builder whose local cache is `builder/cache`.
fn build(dir: &Path, builder: &str, cache: &[&str]) -> Output {
    kiln()
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join(builder).join("cache"))
        .args(["build", "r.toml", "-o"])
        .arg(dir.join(builder).join("out"))
        .args(["--compression", "none", "--plain-http"])
        .args(cache)
        .output()
        .unwrap()
}

#[test]
fn a_cold_builder_builds_the_same_bytes_from_a_warm_registry_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pool = setup(dir);
    let registry = Registry::start(RegistryOptions::default());
    let cache = format!("{}/kiln/cache", registry.host());

    let a = build(dir, "a", &["--cache-to", &cache]);
    assert!(a.status.success(), "{}", output_text(&a));
    let tags = run_ok(
        std::process::Command::new("curl")
            .args(["-sf"])
            .arg(format!(
                "http://{}/v2/kiln/cache/tags/list",
                registry.host()
            )),
    );
    let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
    let mut tags: Vec<String> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().split('-').next().unwrap().to_owned())
        .collect();
    tags.sort();
    assert_eq!(tags, ["install", "packages"]);

    // The mirror loses its packages: only the registry has them now.
    for deb in &pool {
        std::fs::remove_file(deb).unwrap();
    }
    let b = build(dir, "b", &["--cache-from", &cache]);
    let text = output_text(&b);
    assert!(b.status.success(), "{text}");
    assert!(
        text.contains("2 packages from the registry cache"),
        "{text}"
    );
    assert!(text.contains(&format!("from {cache}")), "{text}");
    assert!(text.contains("from the install cache"), "{text}");
    assert_eq!(
        file_digests(&dir.join("b/out")),
        file_digests(&dir.join("a/out"))
    );

    // Without the registry cache the same cold builder cannot build.
    let c = build(dir, "c", &[]);
    assert!(!c.status.success(), "{}", output_text(&c));
    assert!(
        output_text(&c).contains("cannot fetch"),
        "{}",
        output_text(&c)
    );

    // A tag or digest is not a cache repository.
    let d = build(dir, "d", &["--cache-from", &format!("{cache}:latest")]);
    assert_eq!(d.status.code(), Some(1));
    assert!(
        output_text(&d).contains("is a repository"),
        "{}",
        output_text(&d)
    );
}

#[test]
fn builders_pushing_the_same_keys_at_once_all_succeed_and_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let registry = Registry::start(RegistryOptions::default());
    let cache = format!("{}/kiln/cache", registry.host());
    // Lock first, so that the builders do not race to write the lockfile.
    run_ok(
        kiln()
            .current_dir(dir)
            .env("XDG_CACHE_HOME", dir.join("lock-cache"))
            .args(["lock", "r.toml"]),
    );
    let children: Vec<_> = ["p1", "p2", "p3"]
        .iter()
        .map(|builder| {
            kiln()
                .current_dir(dir)
                .env("XDG_CACHE_HOME", dir.join(builder).join("cache"))
                .args(["build", "r.toml", "--locked", "-o"])
                .arg(dir.join(builder).join("out"))
                .args([
                    "--compression",
                    "none",
                    "--plain-http",
                    "--cache-from",
                    &cache,
                    "--cache-to",
                    &cache,
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
    }
    let first = file_digests(&dir.join("p1/out"));
    assert_eq!(file_digests(&dir.join("p2/out")), first);
    assert_eq!(file_digests(&dir.join("p3/out")), first);
    // The cache they left is whole: a fourth builder takes everything from it.
    let out = build(dir, "p4", &["--cache-from", &cache]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("2 packages from the registry cache"),
        "{text}"
    );
    assert!(text.contains("from the install cache"), "{text}");
    assert_eq!(file_digests(&dir.join("p4/out")), first);
}
