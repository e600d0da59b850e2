//! Keys, signatures and verification through the real binary, against the
//! real `minisign`, and a tamper matrix where every case must be refused
//! with a message that says what failed.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const IMAGE_RECIPE: &str = "[audit]\nfail_on = \"none\"\n[image]\nname = \"signed\"\nversion = \"1.2.0\"\nsource_date_epoch = 1700000000\n\
    [[file]]\ndest = \"/etc/motd\"\ncontent = \"hello\\n\"\n[[file]]\ndest = \"/usr/bin/tool\"\ncontent = \"#!/bin/sh\\n\"\nmode = \"0755\"\n";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A key pair and a signed build of a small image.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        run_ok(kiln().current_dir(dir.path()).args([
            "keygen",
            "-o",
            "keys/release",
            "--no-password",
        ]));
        std::fs::write(dir.path().join("r.toml"), IMAGE_RECIPE).unwrap();
        run_ok(kiln().current_dir(dir.path()).args([
            "build",
            "r.toml",
            "-o",
            "dist",
            "--key",
            "keys/release.key",
            "-q",
        ]));
        Fixture { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn verify(&self, args: &[&str]) -> Output {
        kiln()
            .current_dir(self.dir.path())
            .arg("verify")
            .args(args)
            .output()
            .unwrap()
    }
}

const MANIFEST: &str = "dist/signed-1.2.0.manifest.json";
const SIG: &str = "dist/signed-1.2.0.manifest.json.minisig";
const ARCHIVE: &str = "dist/signed-1.2.0.rootfs.tar.zst";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_modes_refusal_to_overwrite_and_encryption() {
    let f = Fixture::new();
    assert_eq!(mode_of(&f.path("keys/release.key")), 0o600);
    assert_eq!(mode_of(&f.path("keys/release.pub")), 0o644);
    let before = std::fs::read(f.path("keys/release.key")).unwrap();
    let out = kiln()
        .current_dir(f.dir.path())
        .args(["keygen", "-o", "keys/release", "--no-password"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("keys/release.pub already exists; use --force to replace it"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(f.path("keys/release.key")).unwrap(),
        before,
        "the secret key was touched"
    );
    run_ok(kiln().current_dir(f.dir.path()).args([
        "keygen",
        "-o",
        "keys/release",
        "--no-password",
        "--force",
    ]));
    assert_ne!(std::fs::read(f.path("keys/release.key")).unwrap(), before);
    let out = kiln()
        .current_dir(f.dir.path())
        .args(["keygen", "-o", "keys/release.pub/x", "--no-password"])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("cannot write keys into keys/release.pub: it is not a directory"),
        "{}",
        text(&out)
    );

    // encrypted: the password comes from the environment or a file
    run_ok(
        kiln()
            .current_dir(f.dir.path())
            .env("KILN_KEY_PASSWORD", "s3cret")
            .args(["keygen", "-o", "keys/enc"]),
    );
    let secret = std::fs::read_to_string(f.path("keys/enc.key")).unwrap();
    assert!(
        secret.starts_with("untrusted comment: minisign encrypted secret key"),
        "{secret}"
    );
    std::fs::write(f.path("pw"), "s3cret\n").unwrap();
    run_ok(kiln().current_dir(f.dir.path()).args([
        "sign",
        "--key",
        "keys/enc.key",
        "--password-file",
        "pw",
        MANIFEST,
    ]));
    std::fs::write(f.path("bad-pw"), "wrong\n").unwrap();
    let out = kiln()
        .current_dir(f.dir.path())
        .args([
            "sign",
            "--key",
            "keys/enc.key",
            "--password-file",
            "bad-pw",
            MANIFEST,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("wrong password"), "{}", text(&out));
    // no password source at all (stdin is not a terminal here)
    let out = kiln()
        .current_dir(f.dir.path())
        .env_remove("KILN_KEY_PASSWORD")
        .args(["sign", "--key", "keys/enc.key", MANIFEST])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        text(&out).contains("is encrypted: give --password-file FILE, set KILN_KEY_PASSWORD"),
        "{}",
        text(&out)
    );
}

#[test]
fn minisign_accepts_kiln_and_kiln_accepts_minisign() {
    let f = Fixture::new();
    let out = run_ok(
        Command::new("minisign")
            .args(["-V", "-m", MANIFEST, "-p", "keys/release.pub"])
            .current_dir(f.dir.path()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let manifest_sha = sha256_file(&f.path(MANIFEST));
    assert!(
        stdout.contains(&format!("Trusted comment: kiln image:signed version:1.2.0 arch:amd64 manifest-sha256:{manifest_sha}")),
        "{stdout}"
    );
    // a signature made by the real minisign with its own key
    sh(
        f.dir.path(),
        &format!(
            "minisign -G -W -p mini.pub -s mini.key && minisign -S -s mini.key -m {MANIFEST} -t 'signed by minisign'"
        ),
    );
    let out = f.verify(&["--key", "mini.pub", MANIFEST]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("(\"signed by minisign\")"),
        "{}",
        text(&out)
    );
}

#[test]
fn signatures_are_deterministic() {
    let f = Fixture::new();
    let first = std::fs::read(f.path(SIG)).unwrap();
    run_ok(
        kiln()
            .current_dir(f.dir.path())
            .args(["sign", "--key", "keys/release.key", MANIFEST]),
    );
    assert_eq!(
        std::fs::read(f.path(SIG)).unwrap(),
        first,
        "kiln sign differs from build --key"
    );
    assert_eq!(
        mode_of(&f.path(SIG)),
        0o644,
        "a signature is public, whoever wrote it"
    );
    run_ok(kiln().current_dir(f.dir.path()).args([
        "build",
        "r.toml",
        "-o",
        "again",
        "--key",
        "keys/release.key",
        "-q",
    ]));
    assert_eq!(
        std::fs::read(f.path("again/signed-1.2.0.manifest.json.minisig")).unwrap(),
        first
    );
}

#[test]
fn verify_accepts_the_intact_image_in_every_form() {
    let f = Fixture::new();
    for target in [MANIFEST, ARCHIVE] {
        let out = f.verify(&[
            "--key",
            "keys/release.pub",
            target,
            "--contents",
            "--min-version",
            "1.2.0",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("ok      contents signed-1.2.0.rootfs.tar.zst: all"),
            "{stdout}"
        );
        assert!(
            stdout.ends_with("verified signed 1.2.0 (amd64)\n"),
            "{stdout}"
        );
    }
    let out = f.verify(&["--key", "keys/release.pub", MANIFEST, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["image"]["version"], "1.2.0");
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
}

#[test]
fn key_rotation_trusts_any_listed_key() {
    let f = Fixture::new();
    run_ok(
        kiln()
            .current_dir(f.dir.path())
            .args(["keygen", "-o", "keys/next", "--no-password"]),
    );
    let out = f.verify(&[
        "--key",
        "keys/next.pub",
        "--key",
        "keys/release.pub",
        MANIFEST,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = f.verify(&["--key", "keys/next.pub", MANIFEST]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out).contains("signature was made with key"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("but the trusted key is"),
        "{}",
        text(&out)
    );
}

#[test]
fn rollback_below_min_version_is_refused() {
    let f = Fixture::new();
    let out = f.verify(&[
        "--key",
        "keys/release.pub",
        MANIFEST,
        "--min-version",
        "1.10.0",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out).contains(
            "FAILED  version: 1.2.0 is older than the minimum 1.10.0: refusing a rollback"
        ),
        "{}",
        text(&out)
    );
}

/// Flips one byte of `rel` at `at` (a negative index counts from the end).
fn flip(f: &Fixture, rel: &str, at: isize) {
    let path = f.path(rel);
    let mut bytes = std::fs::read(&path).unwrap();
    let i = if at < 0 {
        (bytes.len() as isize + at) as usize
    } else {
        at as usize
    };
    bytes[i] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}

/// Flips one bit of byte `at` of the base64 payload on line `n` (0-based)
/// of the signature file, so the file still parses and only the bytes lie.
fn flip_decoded(f: &Fixture, n: usize, at: usize) {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let text = std::fs::read_to_string(f.path(SIG)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut bytes = engine.decode(&lines[n]).unwrap();
    bytes[at] ^= 0x01;
    lines[n] = engine.encode(bytes);
    std::fs::write(f.path(SIG), lines.join("\n") + "\n").unwrap();
}

/// Offset of line `n` (0-based) of the signature file, plus `skip`.
fn sig_offset(f: &Fixture, n: usize, skip: usize) -> isize {
    let text = std::fs::read_to_string(f.path(SIG)).unwrap();
    let start: usize = text.split_inclusive('\n').take(n).map(str::len).sum();
    (start + skip) as isize
}

#[test]
fn tamper_matrix_every_case_is_refused_with_a_specific_message() {
    type Tamper = fn(&Fixture);
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "algorithm",
            |f| flip_decoded(f, 1, 1),
            "signature file dist/signed-1.2.0.manifest.json.minisig:",
        ),
        (
            "key id",
            |f| flip_decoded(f, 1, 4),
            "signature was made with key",
        ),
        (
            "signature bytes",
            |f| flip_decoded(f, 1, 40),
            "signature does not match the data",
        ),
        (
            "trusted comment",
            |f| flip(f, SIG, sig_offset(f, 2, 20)),
            "trusted comment was modified",
        ),
        (
            "global signature",
            |f| flip_decoded(f, 3, 10),
            "trusted comment was modified",
        ),
        (
            "signature base64",
            |f| {
                let mut bytes = std::fs::read(f.path(SIG)).unwrap();
                bytes[sig_offset(f, 1, 30) as usize] = b'!';
                std::fs::write(f.path(SIG), bytes).unwrap();
            },
            "invalid base64",
        ),
        (
            "manifest byte",
            |f| flip(f, MANIFEST, 100),
            "signature does not match the data",
        ),
        (
            "artifact byte",
            |f| flip(f, ARCHIVE, -40),
            "FAILED  artifact signed-1.2.0.rootfs.tar.zst: sha256 is",
        ),
        (
            "truncated artifact",
            |f| {
                let bytes = std::fs::read(f.path(ARCHIVE)).unwrap();
                std::fs::write(f.path(ARCHIVE), &bytes[..bytes.len() / 2]).unwrap();
            },
            "bytes, the manifest says",
        ),
        (
            "truncated signature file",
            |f| {
                let text = std::fs::read_to_string(f.path(SIG)).unwrap();
                std::fs::write(f.path(SIG), &text[..text.len() / 2]).unwrap();
            },
            "signature file dist/signed-1.2.0.manifest.json.minisig:",
        ),
        (
            "missing signature",
            |f| std::fs::remove_file(f.path(SIG)).unwrap(),
            "no signature: dist/signed-1.2.0.manifest.json.minisig does not exist",
        ),
        (
            "manifest swapped from another image",
            |f| {
                let other = IMAGE_RECIPE.replace("hello", "other");
                std::fs::write(f.path("other.toml"), other).unwrap();
                run_ok(kiln().current_dir(f.dir.path()).args([
                    "build",
                    "other.toml",
                    "-o",
                    "other",
                    "-q",
                ]));
                std::fs::copy(f.path("other/signed-1.2.0.manifest.json"), f.path(MANIFEST))
                    .unwrap();
            },
            "signature does not match the data",
        ),
        (
            "wrong key",
            |f| {
                run_ok(kiln().current_dir(f.dir.path()).args([
                    "keygen",
                    "-o",
                    "keys/release",
                    "--no-password",
                    "--force",
                ]));
            },
            "signature was made with key",
        ),
    ];
    for (name, tamper, expected) in cases {
        let f = Fixture::new();
        tamper(&f);
        let out = f.verify(&["--key", "keys/release.pub", MANIFEST]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(4), "{name}: expected exit 4\n{all}");
        assert!(
            all.contains(expected),
            "{name}: expected {expected:?} in\n{all}"
        );
        assert!(!all.contains("panicked"), "{name}: {all}");
    }
    // the untrusted comment is not signed: changing it changes nothing
    let f = Fixture::new();
    flip(&f, SIG, 22);
    assert_eq!(
        f.verify(&["--key", "keys/release.pub", MANIFEST])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn contents_check_catches_a_manifest_that_lies_about_files() {
    let f = Fixture::new();
    // re-sign (with the real key) a manifest whose file list was edited:
    // the artifact digests still match, only --contents can tell
    let text = std::fs::read_to_string(f.path(MANIFEST)).unwrap();
    std::fs::write(
        f.path(MANIFEST),
        text.replace(
            "\"mode\": \"0755\",\n      \"path\": \"/usr/bin/tool\"",
            "\"mode\": \"0644\",\n      \"path\": \"/usr/bin/tool\"",
        ),
    )
    .unwrap();
    assert_ne!(
        std::fs::read_to_string(f.path(MANIFEST)).unwrap(),
        text,
        "the edit did not apply"
    );
    run_ok(
        kiln()
            .current_dir(f.dir.path())
            .args(["sign", "--key", "keys/release.key", MANIFEST]),
    );
    assert_eq!(
        f.verify(&["--key", "keys/release.pub", MANIFEST])
            .status
            .code(),
        Some(0)
    );
    let out = f.verify(&["--key", "keys/release.pub", MANIFEST, "--contents"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text_of(&out).contains("/usr/bin/tool differs: manifest file 0644 0:0"),
        "{}",
        text_of(&out)
    );
}

fn text_of(out: &Output) -> String {
    text(out)
}

/// A limit far below the 2 GiB of the oversized inputs: kiln's own peak
/// memory is ~15 MiB.
const RSS_BOUND_KIB: u64 = 64 << 10;

#[test]
fn oversized_manifests_signatures_and_keys_are_refused_with_bounded_memory() {
    let f = Fixture::new();
    // a 2 GiB manifest beside a real signature: refused by its size
    crate::exits::sparse_file(&f.path("dist/huge.manifest.json"), 2 << 30);
    std::fs::copy(f.path(SIG), f.path("dist/huge.manifest.json.minisig")).unwrap();
    let mut cmd = kiln();
    cmd.current_dir(f.dir.path()).args([
        "verify",
        "--key",
        "keys/release.pub",
        "dist/huge.manifest.json",
    ]);
    let (out, rss) = crate::exits::with_max_rss(&cmd);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: dist/huge.manifest.json is larger than the 256 MiB a manifest may be\n"
    );
    assert!(rss < RSS_BOUND_KIB, "verify peaked at {rss} KiB");

    // a 2 GiB signature: not a signature kiln wrote (exit 4)
    crate::exits::sparse_file(&f.path(SIG), 2 << 30);
    let mut cmd = kiln();
    cmd.current_dir(f.dir.path())
        .args(["verify", "--key", "keys/release.pub", MANIFEST]);
    let (out, rss) = crate::exits::with_max_rss(&cmd);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "FAILED  signature: dist/signed-1.2.0.manifest.json.minisig is larger than the 64 KiB a signature may be\n\
         verification FAILED: 1 problem(s)\n"
    );
    assert!(rss < RSS_BOUND_KIB, "verify peaked at {rss} KiB");

    // an endless key (a device, not a regular file): cut after 64 KiB
    let out = f.verify(&["--key", "/dev/zero", MANIFEST]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: /dev/zero is larger than the 64 KiB a public key may be\n"
    );
}

#[test]
fn a_manifest_that_does_not_parse_says_what_is_wrong() {
    let f = Fixture::new();
    let w = f.dir.path();
    sh(w, "minisign -G -W -p mini.pub -s mini.key");
    let real = std::fs::read_to_string(f.path(MANIFEST)).unwrap();
    let mut no_image: serde_json::Value = serde_json::from_str(&real).unwrap();
    no_image.as_object_mut().unwrap().remove("image");
    let no_image = serde_json::to_string(&no_image).unwrap();
    let wrong_type = real.replacen(
        "\"source_date_epoch\": 1700000000",
        &format!("\"source_date_epoch\": \"{}\"", "9".repeat(10_000)),
        1,
    );
    assert_ne!(wrong_type, real);
    let cases: Vec<(&str, String, String)> = vec![
        (
            "empty",
            String::new(),
            "is empty: not a kiln manifest".into(),
        ),
        (
            "text",
            "not json\n".into(),
            "is not JSON: expected ident at line 1 column 2".into(),
        ),
        (
            "array",
            "[1, 2]\n".into(),
            "is not a kiln manifest: it is JSON, but not an object".into(),
        ),
        (
            "object",
            "{\"name\": \"x\"}\n".into(),
            "is not a kiln manifest: it has no manifest_version field".into(),
        ),
        (
            "no image",
            no_image.clone(),
            format!(
                "does not match the kiln manifest schema (version 1): missing field `image` at line 1 column {}",
                no_image.len()
            ),
        ),
        (
            "wrong type",
            wrong_type.clone(),
            format!(
                "does not match the kiln manifest schema (version 1): invalid type: string \"{}…\", expected u64 at line {} column {}",
                "9".repeat(60),
                wrong_type[..wrong_type.find("\"999").unwrap()]
                    .lines()
                    .count(),
                // serde_json points at the closing quote (1-based)
                wrong_type
                    .lines()
                    .find(|l| l.contains("\"999"))
                    .and_then(|l| l.rfind('"'))
                    .unwrap()
                    + 1
            ),
        ),
    ];
    for (name, content, problem) in cases {
        let path = format!("bad/{}.manifest.json", name.replace(' ', "-"));
        std::fs::create_dir_all(f.path("bad")).unwrap();
        std::fs::write(f.path(&path), &content).unwrap();
        // signed, so that verify gets past the signature to the parse
        if !content.is_empty() {
            sh(w, &format!("minisign -S -s mini.key -m {path} -t test"));
        }
        let expected = format!("error: {path} {problem}\n");
        let out = f.verify(&["--key", "mini.pub", &path]);
        assert_eq!(out.status.code(), Some(1), "verify {name}: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            expected,
            "verify {name}"
        );
        let out = kiln()
            .current_dir(w)
            .args(["sign", "--key", "keys/release.key", &path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "sign {name}: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            expected,
            "sign {name}"
        );
        let out = kiln()
            .current_dir(w)
            .args(["inspect", &path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "inspect {name}: {}", text(&out));
        let expected = if content.is_empty() {
            format!("error: {path} is empty: it is neither a kiln manifest nor a rootfs archive\n")
        } else {
            expected
        };
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            expected,
            "inspect {name}"
        );
        std::fs::remove_dir_all(f.path("bad")).unwrap();
    }

    // an artifact whose neighbour manifest is broken: said, not skipped
    std::fs::create_dir(f.path("other")).unwrap();
    std::fs::copy(f.path(ARCHIVE), f.path("other/signed-1.2.0.rootfs.tar.zst")).unwrap();
    std::fs::write(
        f.path("other/signed-1.2.0.manifest.json"),
        "{\"manifest_version\": 1}",
    )
    .unwrap();
    let out = f.verify(&[
        "--key",
        "keys/release.pub",
        "other/signed-1.2.0.rootfs.tar.zst",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: no *.manifest.json in other lists signed-1.2.0.rootfs.tar.zst, and \
         other/signed-1.2.0.manifest.json does not match the kiln manifest schema (version 1): \
         missing field `image` at line 1 column 23; pass the manifest itself\n"
    );
}
