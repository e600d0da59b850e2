//! `[check] timer`: the image carries a kiln-check service and timer that
//! systemd accepts, and the command they run (the image's own kiln-node,
//! against the image's own signed manifest) finds no drift on a fresh
//! node, then a unit file tampered with (same size, mode and mtime: only
//! its content digest tells). The node is the image extracted with its
//! owners, so that test needs root. An unsigned build checks against a
//! provisioned manifest, or, trusting no key, installs no check.

use crate::common;

use common::*;
use std::path::Path;

fn recipe(dir: &Path, check: &str) {
    std::fs::write(
        dir.join("r.toml"),
        format!("[audit]\nfail_on = \"none\"\n[image]\nname = \"node\"\nversion = \"1\"\n{check}"),
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
    recipe(w, "[check]\ntimer = \"*-*-* 03:00\"\n");
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
    // the build's key, trusted as a key file is written
    let keys = list_dir(&w.join("root/etc/kiln/keys"));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("build-") && keys[0].ends_with(".pub"));
    let baked = std::fs::read_to_string(w.join("root/etc/kiln/keys").join(&keys[0])).unwrap();
    let made = std::fs::read_to_string(w.join("keys/release.pub")).unwrap();
    assert_eq!(baked.lines().nth(1), made.lines().nth(1), "{baked}");
    // the image's own manifest: every path but itself and its signature,
    // no artifacts; minisign itself accepts its signature
    let own: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("root/usr/lib/kiln/manifest.json")).unwrap())
            .unwrap();
    let release: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("dist/node-1.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(own["artifacts"], serde_json::json!([]));
    let paths = |m: &serde_json::Value| -> Vec<String> {
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut expected = paths(&release);
    expected.retain(|p| !p.starts_with("/usr/lib/kiln/manifest.json"));
    assert_eq!(paths(&own), expected);
    run_ok(
        crate::minisign_interop::minisign().args([
            "-V",
            "-p",
            &w.join("keys/release.pub").display().to_string(),
            "-m",
            &w.join("root/usr/lib/kiln/manifest.json")
                .display()
                .to_string(),
        ]),
    );
    // systemd itself judges the units (the image's kiln-node is the ExecStart)
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

    // run the unit's command as it is, paths mapped into the root
    let service = std::fs::read_to_string(unit_dir.join("kiln-check.service")).unwrap();
    assert!(
        service.contains("ConditionPathExists=/usr/lib/kiln/manifest.json\n"),
        "{service}"
    );
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert!(
        exec.starts_with("/usr/lib/kiln/kiln-node check --manifest /usr/lib/kiln/manifest.json "),
        "{exec}"
    );
    let args: Vec<String> = exec
        .split_whitespace()
        .map(|a| {
            if a.starts_with('/') {
                format!("{}{a}", w.join("root").display())
            } else {
                a.to_owned()
            }
        })
        .collect();
    assert!(args.contains(&"--key".to_owned()), "{exec}");
    let node_check = || {
        std::process::Command::new(&args[0])
            .args(&args[1..])
            .output()
            .unwrap()
    };
    let out = node_check();
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
    let out = node_check();
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

/// An unsigned build: without `keys` the node would trust nothing, so the
/// check is left out with a warning; with `keys` it checks against the
/// manifest provisioning brings. A binary that is not in the image and a
/// key that is not a public key are recipe errors.
#[test]
fn an_unsigned_build_trusts_its_keys_or_checks_nothing() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let member = |name: &str| -> Option<String> {
        let out = std::process::Command::new("tar")
            .args(["--zstd", "-xOf", "dist/node-1.rootfs.tar.zst", name])
            .current_dir(w)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    recipe(w, "[check]\ntimer = \"daily\"\n");
    let out = run_ok(
        kiln()
            .current_dir(w)
            .args(["build", "r.toml", "-o", "dist"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("r.toml:7:9: [check] trusts the key that signs the build, and this build is not signed (--key or KILN_SIGNING_KEY): the node's check and fleet timers are left out"),
        "{stderr}"
    );
    assert_eq!(member("./etc/systemd/system/kiln-check.service"), None);
    assert_eq!(member("./usr/lib/kiln/kiln-node"), None);

    run_ok(
        kiln()
            .current_dir(w)
            .args(["keygen", "-o", "k", "--no-password"]),
    );
    recipe(w, "[check]\ntimer = \"daily\"\nkeys = [\"k.pub\"]\n");
    std::fs::remove_dir_all(w.join("dist")).unwrap();
    run_ok(
        kiln()
            .current_dir(w)
            .args(["build", "r.toml", "-o", "dist"]),
    );
    let service = member("./etc/systemd/system/kiln-check.service").unwrap();
    assert!(
        service.contains("ConditionPathExists=/var/lib/kiln/manifest.json\n")
            && service.contains(
                "ExecStart=/usr/lib/kiln/kiln-node check --manifest /var/lib/kiln/manifest.json --key /etc/kiln/keys "
            ),
        "{service}"
    );
    assert_eq!(member("./usr/lib/kiln/manifest.json"), None);
    assert_eq!(
        member("./etc/kiln/keys/k.pub").as_deref(),
        Some(std::fs::read_to_string(w.join("k.pub")).unwrap().as_str())
    );
    assert!(member("./usr/lib/kiln/kiln-node").is_some());
    std::fs::remove_dir_all(w.join("dist")).unwrap();

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
