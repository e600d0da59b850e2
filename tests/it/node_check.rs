//! `[check] timer`: the image carries a kiln-check service and timer that
//! systemd accepts, and the command they run finds no drift on a freshly
//! provisioned node, then a unit file tampered with (same size, mode and
//! mtime: only its content digest tells). The node is the image extracted
//! with its owners, so that test needs root.

use crate::common;

use common::*;
use std::path::Path;

fn recipe(dir: &Path, check: &str) {
    let kiln_binary = env!("CARGO_BIN_EXE_kiln");
    std::fs::write(
        dir.join("r.toml"),
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"node\"\nversion = \"1\"\n\
             [[file]]\ndest = \"/usr/local/bin/kiln\"\nsource = \"{kiln_binary}\"\nmode = \"0755\"\n\
             {check}"
        ),
    )
    .unwrap();
}

/// What `systemd-analyze verify` says about kiln's units in the image at
/// `root`. A test image has no systemd of its own, so its targets are
/// missing; anything else systemd says about the units is a defect.
pub(super) fn systemd_verify(root: &Path, units: &[std::path::PathBuf]) -> String {
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(units)
        .output()
        .expect("systemd-analyze is needed");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("kiln-") && !l.contains("Unit sysinit.target not found"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
#[ignore = "needs root"]
fn timer_units_are_valid_and_the_service_command_finds_no_drift() {
    require_root("the image extracted with its owners");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    run_ok(
        kiln()
            .current_dir(w)
            .args(["keygen", "-o", "keys/release", "--no-password"]),
    );
    recipe(
        w,
        "[check]\ntimer = \"*-*-* 03:00\"\nkeys = [\"keys/release.pub\"]\n",
    );
    run_ok(kiln().current_dir(w).args([
        "build",
        "r.toml",
        "-o",
        "dist",
        "--key",
        "keys/release.key",
        "-q",
    ]));
    sh(
        w,
        "mkdir root && tar --zstd --numeric-owner -xpf dist/node-1.rootfs.tar.zst -C root",
    );

    let unit_dir = w.join("root/etc/systemd/system");
    assert_eq!(
        std::fs::read_link(unit_dir.join("timers.target.wants/kiln-check.timer"))
            .unwrap()
            .to_str(),
        Some("/etc/systemd/system/kiln-check.timer")
    );
    assert_eq!(
        std::fs::read(w.join("root/etc/kiln/keys/release.pub")).unwrap(),
        std::fs::read(w.join("keys/release.pub")).unwrap()
    );
    // systemd itself judges the units (the image's kiln binary is the ExecStart)
    let complaints = systemd_verify(
        &w.join("root"),
        &[
            unit_dir.join("kiln-check.service"),
            unit_dir.join("kiln-check.timer"),
        ],
    );
    assert!(
        complaints.is_empty(),
        "systemd-analyze complained: {complaints}"
    );
    let calendar =
        run_ok(std::process::Command::new("systemd-analyze").args(["calendar", "*-*-* 03:00"]));
    assert!(String::from_utf8_lossy(&calendar.stdout).contains("Next elapse"));

    // provision the manifest where the unit looks, then run its command
    sh(
        w,
        "mkdir -p root/var/lib/kiln && cp dist/node-1.manifest.json root/var/lib/kiln/manifest.json && cp dist/node-1.manifest.json.minisig root/var/lib/kiln/manifest.json.minisig",
    );
    let service = std::fs::read_to_string(unit_dir.join("kiln-check.service")).unwrap();
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a.starts_with('/') {
                format!("{}{a}", w.join("root").display())
            } else {
                a.to_owned()
            }
        })
        .collect();
    assert!(args.contains(&"--key".to_owned()), "{exec}");
    let out = kiln().args(&args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{exec}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "drift on a fresh node"
    );

    // the same command sees a change that only the content digest shows
    let timer = unit_dir.join("kiln-check.timer");
    let mtime = std::fs::metadata(&timer).unwrap().modified().unwrap();
    let text = std::fs::read_to_string(&timer).unwrap();
    assert!(text.contains("03:00"), "{text}");
    std::fs::write(&timer, text.replace("03:00", "03:01")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&timer)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let out = kiln().args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{stdout}");
    assert_eq!(events[0]["event"], "modified", "{stdout}");
    assert_eq!(events[0]["path"], "/etc/systemd/system/kiln-check.timer");
}

#[test]
fn timer_needs_keys_and_the_binary() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(w, "[check]\ntimer = \"daily\"\n");
    let out = kiln()
        .current_dir(w)
        .args(["build", "r.toml", "-o", "dist"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("r.toml:11:9: a check timer needs the public keys to trust"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_ok(
        kiln()
            .current_dir(w)
            .args(["keygen", "-o", "k", "--no-password"]),
    );
    recipe(
        w,
        "[check]\ntimer = \"daily\"\nkeys = [\"k.pub\"]\nbinary = \"/opt/kiln\"\n",
    );
    let out = kiln()
        .current_dir(w)
        .args(["build", "r.toml", "-o", "dist"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the check timer runs /opt/kiln, which is not a file in the image"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    recipe(w, "[check]\ntimer = \"daily\"\nkeys = [\"k.key\"]\n");
    let out = kiln()
        .current_dir(w)
        .args(["build", "r.toml", "-o", "dist"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"k.key\" is not a minisign public key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(list_dir(&w.join("dist")), Vec::<String>::new());
}
