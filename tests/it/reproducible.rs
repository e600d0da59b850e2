//! Two builds of the same recipe in different conditions give identical
//! bytes: other directories, umask 022 vs 077, time zones, locales, wall
//! clocks (via libfaketime), and overlay files created in another order
//! with other host mtimes and permission bits; as root, other host owners
//! too.

use crate::common;

use common::*;
use std::path::Path;

const RECIPE: &str = r#"
[audit]
fail_on = "none"

[image]
name = "repro"
version = "2.0"
description = "reproducibility check"

[base]
path = "base.tar"
sha256 = "@BASE_SHA@"

[[remove]]
paths = ["/var/cache/**"]

[[overlay]]
source = "overlay"
[[overlay.rule]]
path = "/etc/secret/*"
mode = "0600"

[[file]]
dest = "/etc/motd"
content = "hello\n"

[[symlink]]
path = "/etc/localtime"
target = "/usr/share/zoneinfo/UTC"
"#;

/// Writes the inputs into `dir`. `variant` changes everything about the
/// host files that must not matter; `chown` their owners too (root only).
fn inputs(dir: &Path, base: &Path, variant: usize, chown: bool) {
    std::fs::copy(base, dir.join("base.tar")).unwrap();
    std::fs::write(
        dir.join("r.toml"),
        RECIPE.replace("@BASE_SHA@", &sha256_file(base)),
    )
    .unwrap();
    let files = [
        "etc/secret/key",
        "usr/local/bin/tool",
        "etc/a.conf",
        "etc/b.conf",
        "srv/data/x",
    ];
    let order: Vec<&str> = if variant == 0 {
        files.to_vec()
    } else {
        files.iter().rev().copied().collect()
    };
    let (mtime, owner, perm) = if variant == 0 {
        ("2001-01-01", "0:0", "644")
    } else {
        ("2030-06-15 12:34", "4321:8765", "600")
    };
    let mut script = String::from("set -eu\n");
    for f in order {
        let exec = f.contains("/bin/");
        script.push_str(&format!(
            "mkdir -p overlay/$(dirname {f}) && printf '%s\\n' {f} > overlay/{f} && chmod {} overlay/{f}\n",
            if exec { if variant == 0 { "755" } else { "700" } } else { perm }
        ));
    }
    script.push_str(&format!(
        "find overlay -exec touch -h -d '{mtime}' {{}} +\n"
    ));
    if chown {
        script.push_str(&format!("chown -R {owner} overlay\n"));
    }
    sh(dir, &script);
}

fn build(dir: &Path, conditions: &Conditions, compression: &str) -> (Vec<u8>, Vec<u8>) {
    run_ok(
        kiln_under(conditions)
            .args(["build", "r.toml", "-o", "out", "--compression", compression])
            .current_dir(dir)
            .env("SOURCE_DATE_EPOCH", "1234567890"),
    );
    let ext = if compression == "gzip" {
        "tar.gz"
    } else {
        "tar.zst"
    };
    (
        std::fs::read(dir.join(format!("out/repro-2.0.rootfs.{ext}"))).unwrap(),
        std::fs::read(dir.join("out/repro-2.0.manifest.json")).unwrap(),
    )
}

#[test]
fn builds_in_different_conditions_are_byte_identical() {
    check_reproducible(false);
}

#[test]
#[ignore = "needs root"]
fn host_owners_do_not_reach_the_image() {
    require_root("chown of the overlay files");
    check_reproducible(true);
}

fn check_reproducible(chown: bool) {
    let work = tempfile::tempdir().unwrap();
    let base_src = work.path().join("base-src");
    sh(
        work.path(),
        "mkdir -p base-src/etc base-src/var/cache/apt base-src/tmp && printf 'root:x:0:0::/root:/bin/sh\\n' > base-src/etc/passwd && printf 'junk' > base-src/var/cache/apt/pkgcache.bin && chmod 1777 base-src/tmp",
    );
    let base = work.path().join("base.tar");
    // root's files whoever runs the test, as in a real base tarball
    run_ok(
        std::process::Command::new("tar")
            .args([
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "-C",
            ])
            .arg(&base_src)
            .arg("-cf")
            .arg(&base)
            .arg("."),
    );
    let a = work.path().join("a");
    let b = work.path().join("elsewhere/deeper/b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    inputs(&a, &base, 0, chown);
    inputs(&b, &base, 1, chown);
    for compression in ["zstd", "gzip"] {
        let first = build(&a, &CONDITIONS[0], compression);
        let second = build(&b, &CONDITIONS[1], compression);
        assert!(
            first.0 == second.0,
            "{compression} archives differ between the two builds"
        );
        assert_eq!(
            String::from_utf8(first.1.clone()).unwrap(),
            String::from_utf8(second.1).unwrap(),
            "manifests differ"
        );
    }
    // and the normalisation is the documented one
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("out/repro-2.0.manifest.json")).unwrap())
            .unwrap();
    let mode_of = |path: &str| {
        let files = manifest["files"].as_array().unwrap();
        let f = files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} missing"));
        format!("{} {}:{}", f["mode"].as_str().unwrap(), f["uid"], f["gid"])
    };
    assert_eq!(mode_of("/usr/local/bin/tool"), "0755 0:0");
    assert_eq!(mode_of("/etc/a.conf"), "0644 0:0");
    assert_eq!(mode_of("/etc/secret/key"), "0600 0:0");
    assert_eq!(mode_of("/tmp"), "1777 0:0");
    assert_eq!(manifest["source_date_epoch"], 1234567890);
    let paths: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        !paths.iter().any(|p| p.starts_with("/var/cache/")),
        "[[remove]] left {paths:?}"
    );
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "manifest paths are not sorted");
}
