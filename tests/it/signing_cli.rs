//! Key passwords typed on a terminal (a pseudo-terminal made by
//! util-linux `script`), and directories of trusted keys.

use crate::common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `kiln ARGS` in `dir` on a pseudo-terminal, typing `typed`; gives
/// up after 60 s (a prompt that waits for a line never typed).
fn on_terminal(dir: &Path, args: &str, typed: &str) -> Output {
    let kiln = env!("CARGO_BIN_EXE_kiln");
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!("{kiln} {args}"))
        .arg("/dev/null")
        .current_dir(dir)
        .env_remove("KILN_KEY_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) is missing");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("kiln {args} still waits for input after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn passwords_are_asked_on_a_terminal_twice_for_a_new_key_once_to_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    // a new key: the password and its confirmation
    let out = on_terminal(w, "keygen -o keys/typed", "s3cret\ns3cret\n");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Repeat the password: "), "{text}");
    let secret = std::fs::read_to_string(w.join("keys/typed.key")).unwrap();
    assert!(
        secret.starts_with("untrusted comment: minisign encrypted secret key"),
        "{secret}"
    );
    // a confirmation that differs: no key
    let out = on_terminal(w, "keygen -o keys/typo", "s3cret\ns3cert\n");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("the passwords do not match"), "{text}");
    assert!(!w.join("keys/typo.key").exists());

    // using the key: asked once, and the right password signs
    std::fs::write(w.join("m.manifest.json"), "{}").unwrap();
    let out = on_terminal(w, "sign --key keys/typed.key m.manifest.json", "s3cret\n");
    let text = output_text(&out);
    assert!(text.contains("Password for keys/typed.key: "), "{text}");
    assert!(!text.contains("Repeat"), "{text}");
    // the manifest is no kiln manifest: what fails is the parse, after the key
    assert!(
        text.contains("m.manifest.json is not a kiln manifest"),
        "{text}"
    );
    let out = on_terminal(w, "sign --key keys/typed.key m.manifest.json", "wrong\n");
    assert!(
        output_text(&out).contains("wrong password"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn a_directory_of_trusted_keys_trusts_its_public_keys_only() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    for key in ["a", "b"] {
        run_ok(kiln().current_dir(w).args([
            "keygen",
            "-o",
            &format!("trusted/{key}"),
            "--no-password",
        ]));
    }
    std::fs::write(
        w.join("r.toml"),
        "[audit]\nfail_on = \"none\"\n[image]\nname = \"d\"\nversion = \"1\"\nsource_date_epoch = 1700000000\n",
    )
    .unwrap();
    run_ok(kiln().current_dir(w).args([
        "build",
        "r.toml",
        "-o",
        "dist",
        "--key",
        "trusted/b.key",
        "-q",
    ]));
    // the directory holds secret keys too (*.key): they are not read
    let out = kiln()
        .current_dir(w)
        .args(["verify", "--key", "trusted", "dist/d-1.manifest.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // keys listed in file name order
    std::fs::remove_file(w.join("trusted/b.pub")).unwrap();
    let out = kiln()
        .current_dir(w)
        .args(["verify", "--key", "trusted", "dist/d-1.manifest.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    std::fs::create_dir(w.join("empty")).unwrap();
    std::fs::write(w.join("empty/README"), "no keys here\n").unwrap();
    let out = kiln()
        .current_dir(w)
        .args(["verify", "--key", "empty", "dist/d-1.manifest.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: empty holds no *.pub key\n"
    );
}

/// `kiln check` trusts the manifest only after verifying it; a refusal
/// says why, exits 4 and checks nothing.
#[test]
fn check_refuses_an_untrusted_manifest_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    for key in ["signer", "trusted"] {
        run_ok(kiln().current_dir(w).args([
            "keygen",
            "-o",
            &format!("keys/{key}"),
            "--no-password",
        ]));
    }
    std::fs::write(
        w.join("r.toml"),
        "[audit]\nfail_on = \"none\"\n[image]\nname = \"c\"\nversion = \"1\"\nsource_date_epoch = 1700000000\n",
    )
    .unwrap();
    run_ok(kiln().current_dir(w).args([
        "build",
        "r.toml",
        "-o",
        "dist",
        "--key",
        "keys/signer.key",
        "-q",
    ]));
    let key_id = |key: &str| {
        let text = std::fs::read_to_string(w.join(format!("keys/{key}.pub"))).unwrap();
        text.lines().next().unwrap()["untrusted comment: minisign public key ".len()..].to_owned()
    };
    let out = kiln()
        .current_dir(w)
        .args([
            "check",
            "--manifest",
            "dist/c-1.manifest.json",
            "--key",
            "keys/trusted.pub",
            "--root",
            "dist",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: signature of dist/c-1.manifest.json: signature was made with key {} but \
             the trusted key is {}\n",
            key_id("signer"),
            key_id("trusted")
        )
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[test]
fn pubkey_prints_the_public_key_of_an_encrypted_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(
        kiln()
            .current_dir(d)
            .args(["keygen", "-o", "release"])
            .env("KILN_KEY_PASSWORD", "correct horse"),
    );
    let out = run_ok(
        kiln()
            .current_dir(d)
            .args(["pubkey", "--key", "release.key"])
            .env("KILN_KEY_PASSWORD", "correct horse"),
    );
    let written = std::fs::read_to_string(d.join("release.pub")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), written);
    let wrong = kiln()
        .current_dir(d)
        .args(["pubkey", "--key", "release.key"])
        .env("KILN_KEY_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        wrong.stdout.is_empty(),
        "nothing printed for a wrong password"
    );
}
