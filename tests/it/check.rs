//! `kiln check` on a root extracted by GNU tar: zero drift, then exactly
//! the planted changes; mutable paths are never reported.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Output;

/// Builds a signed image from a base with a setuid file, a capability, a
/// hard link and a symlink, and extracts it as root with GNU tar.
fn extracted_image(work: &Path) {
    sh(
        work,
        r#"
        mkdir -p src/usr/bin src/etc src/var/log src/usr/sbin src/srv
        printf 'root:x:0:0::/root:/bin/sh\n' > src/etc/passwd
        printf 'motd\n' > src/etc/motd
        printf 'keep me\n' > src/etc/keep
        printf 'su\n' > src/usr/bin/su && chmod 4755 src/usr/bin/su
        ln src/usr/bin/su src/usr/sbin/su-link
        printf 'ping\n' > src/usr/bin/ping && chmod 755 src/usr/bin/ping && setcap cap_net_raw+ep src/usr/bin/ping
        ln -s /usr/bin/su src/usr/bin/become
        tar --xattrs --xattrs-include='*' -C src -cf base.tar .
        "#,
    );
    std::fs::write(
        work.join("r.toml"),
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"node\"\nversion = \"1\"\nsource_date_epoch = 1700000000\n\
             [base]\npath = \"base.tar\"\nsha256 = \"{}\"\n[check]\nmutable_paths = [\"/srv/scratch\"]\n",
            sha256_file(&work.join("base.tar"))
        ),
    )
    .unwrap();
    run_ok(
        kiln()
            .current_dir(work)
            .args(["keygen", "-o", "release", "--no-password"]),
    );
    run_ok(kiln().current_dir(work).args([
        "build",
        "r.toml",
        "-o",
        "dist",
        "--key",
        "release.key",
        "-q",
    ]));
    sh(
        work,
        "mkdir root && tar --zstd --xattrs --xattrs-include='*' --numeric-owner -xpf dist/node-1.rootfs.tar.zst -C root",
    );
}

fn check(work: &Path, extra: &[&str]) -> Output {
    kiln()
        .current_dir(work)
        .args([
            "check",
            "--manifest",
            "dist/node-1.manifest.json",
            "--key",
            "release.pub",
            "--root",
            "root",
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// "EVENT PATH" for each JSON-lines event, in order.
fn event_summary(out: &Output) -> Vec<String> {
    events(out)
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["path"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
#[ignore = "needs root"]
fn zero_drift_then_exactly_the_planted_changes() {
    require_root("zero_drift_then_exactly_the_planted_changes");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    extracted_image(w);
    let clean = check(w, &[]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&clean.stdout), "");
    assert!(String::from_utf8_lossy(&clean.stderr).contains("no drift"));

    sh(
        w,
        r#"
        printf 'tampered\n' > root/etc/motd
        chmod 0600 root/etc/keep
        printf 'implant\n' > root/usr/bin/backdoor
        rm root/etc/passwd
        mkdir -p root/var/log/journal root/srv/scratch root/tmp && printf 'x' > root/var/log/journal/x && printf 'y' > root/srv/scratch/y && printf 'z' > root/tmp/z
        "#,
    );
    let out = check(w, &["--json-lines"]);
    assert_eq!(out.status.code(), Some(4));
    let got = event_summary(&out);
    assert_eq!(
        got,
        [
            "mode /etc/keep",
            "modified /etc/motd",
            "removed /etc/passwd",
            "added /usr/bin/backdoor"
        ],
        "mutable paths (/var/log, /tmp, the recipe's /srv/scratch) must not be reported"
    );
    let modified = events(&out)
        .into_iter()
        .find(|e| e["event"] == "modified")
        .unwrap();
    assert!(
        modified["expected"]
            .as_str()
            .unwrap()
            .starts_with("sha256 ")
    );
    assert_ne!(modified["expected"], modified["found"]);
    // the text form says the same, one line per event
    let out = check(w, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mode      /etc/keep: expected 0644, found 0600"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
}

#[test]
#[ignore = "needs root"]
fn owners_links_capabilities_and_fast_mode() {
    require_root("owners_links_capabilities_and_fast_mode");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    extracted_image(w);
    sh(
        w,
        r#"
        chown 1000:1000 root/etc/keep
        ln -sfn /tmp/evil root/usr/bin/become
        setcap -r root/usr/bin/ping
        cp root/usr/bin/su root/su.tmp && mv root/su.tmp root/usr/sbin/su-link && chmod 4755 root/usr/sbin/su-link
        "#,
    );
    let out = check(w, &["--json-lines"]);
    let got = event_summary(&out);
    assert_eq!(
        got,
        [
            "owner /etc/keep",
            "target /usr/bin/become",
            "xattr /usr/bin/ping",
            "hardlink /usr/sbin/su-link"
        ]
    );

    // --fast trusts size and mtime: same-size content with the image's
    // mtime restored slips through; without --fast it is caught.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    extracted_image(w);
    sh(
        w,
        "printf 'MOTD\\n' > root/etc/motd && touch -d @1700000000 root/etc/motd",
    );
    assert_eq!(check(w, &["--fast"]).status.code(), Some(0));
    assert_eq!(check(w, &[]).status.code(), Some(4));
    sh(w, "printf 'longer motd\\n' > root/etc/motd");
    assert_eq!(
        check(w, &["--fast"]).status.code(),
        Some(4),
        "a size change is drift even with --fast"
    );
}

#[test]
fn an_unsigned_or_tampered_manifest_is_refused_before_walking() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("r.toml"), "[audit]\nfail_on = \"none\"\n[image]\nname = \"node\"\nversion = \"1\"\n[[file]]\ndest = \"/etc/motd\"\ncontent = \"x\"\n").unwrap();
    run_ok(
        kiln()
            .current_dir(w)
            .args(["keygen", "-o", "release", "--no-password"]),
    );
    run_ok(kiln().current_dir(w).args([
        "build",
        "r.toml",
        "-o",
        "dist",
        "--key",
        "release.key",
        "-q",
    ]));
    std::fs::create_dir(w.join("root")).unwrap();
    let manifest = w.join("dist/node-1.manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"/etc/motd\"", "\"/etc/motx\"")).unwrap();
    let out = check(w, &[]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("signature does not match the data"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "nothing may be reported from an untrusted manifest"
    );
}

#[test]
fn an_oversized_or_empty_manifest_is_refused_with_bounded_memory() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    run_ok(
        kiln()
            .current_dir(w)
            .args(["keygen", "-o", "release", "--no-password"]),
    );
    std::fs::create_dir_all(w.join("dist")).unwrap();
    std::fs::create_dir(w.join("root")).unwrap();
    // 2 GiB named like the manifest (sparse): refused by its size alone
    crate::exits::sparse_file(&w.join("dist/node-1.manifest.json"), 2 << 30);
    let mut cmd = kiln();
    cmd.current_dir(w).args([
        "check",
        "--manifest",
        "dist/node-1.manifest.json",
        "--key",
        "release.pub",
        "--root",
        "root",
    ]);
    let (out, rss) = crate::exits::with_max_rss(&cmd);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: dist/node-1.manifest.json is larger than the 256 MiB a manifest may be\n"
    );
    assert!(rss < 64 << 10, "check peaked at {rss} KiB for a 2 GiB file");
    assert!(out.stdout.is_empty());
    // an empty one is not a manifest, and says so before any signature
    std::fs::write(w.join("dist/node-1.manifest.json"), "").unwrap();
    let out = check(w, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: dist/node-1.manifest.json is empty: not a kiln manifest\n"
    );
}
