//! The fleet view on a booted node (boot tier, issue #18): a signed build
//! of recipes/k3s-agent.toml, as `just image` makes it, checks itself and
//! audits itself on its timers with no help from provisioning. A test-only
//! drop-in plants drift as root at boot (a file bind-mounted over an image
//! file, a new directory holding a setuid file); the timers
//! fire after boot (their random delay taken out by a drop-in, `[fleet]
//! after_boot` short) and the test reads, over SSH and as an account in
//! the systemd-journal group, what fleet tooling would: the metrics in
//! node-exporter's textfile directory, the journal entries through
//! `journalctl -o json`, the Node patch and the units' results.

use crate::common;
use crate::harden_image::{build_with, write_recipe};

use common::qemu::{BOOT_TIMEOUT, Node, Vm};
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DRIFT: &str = "78f15948e9d0417f8edff5fc0ecc0bc4";
const CHECK_DONE: &str = "ecf332467d0c43c5b719d917a84a050e";
const AUDIT_FINDING: &str = "86b4a57bfba24e53bdb67ee6ba5e7e52";
const METRICS: &str = "/var/lib/prometheus/node-exporter";

/// The drift a test-only drop-in plants as root at boot (after
/// provisioning, `+`: outside its sandbox), long before the timers' first
/// runs: a new directory holding a setuid file, and another file
/// bind-mounted over an image file.
const PLANT: &str = "mkdir -p /var/lib/planted && cp /usr/bin/true /var/lib/planted/suid && chmod 4755 /var/lib/planted/suid && mount --bind /usr/lib/os-release /etc/issue.net";

/// What the test adds to the recipe: a reader of the journal, the drift
/// planted before the timers' first run, the timers without their
/// random delay and at full speed.
fn extra(auditor_key: &str) -> String {
    format!(
        r#"
[fleet]
after_boot = "20s"
cpu_quota = "100%"

[[user]]
name = "auditor"
groups = ["ssh-users", "systemd-journal"]
authorized_keys = ["{auditor_key}"]

[[file]]
dest = "/etc/systemd/system/kiln-check.timer.d/boot-test.conf"
content = "[Timer]\nRandomizedDelaySec=0\n"

[[file]]
dest = "/etc/systemd/system/kiln-audit.timer.d/boot-test.conf"
content = "[Timer]\nRandomizedDelaySec=0\n"

[[file]]
dest = "/etc/systemd/system/kiln-provision.service.d/plant-drift.conf"
content = "[Service]\nExecStartPost=+/bin/sh -c '{PLANT}'\n"
"#
    )
}

/// `user`'s output of `script` on the node, with `key`.
fn ssh_as(vm: &Vm, user: &str, key: &Path, script: &str) -> String {
    let out = vm
        .ssh_command_with_key(user, true, key)
        .arg("127.0.0.1")
        .arg(script)
        .output()
        .unwrap();
    if !out.status.success() {
        vm.fail(&format!(
            "ssh {user}: `{script}` failed with {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Metric lines of a textfile as `name{labels} → value` (no comments).
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn value(samples: &[(String, f64)], name: &str) -> Option<f64> {
    samples.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

#[test]
#[ignore = "needs root, network and boot"]
fn a_booted_node_checks_and_audits_itself_on_its_timers() {
    let _vm = crate::boot::needs("a_booted_node_checks_and_audits_itself_on_its_timers");
    let dir = crate::boot::fresh_dir("fleet");
    run_ok(
        kiln()
            .current_dir(&dir)
            .args(["keygen", "-o", "release", "--no-password"]),
    );
    let auditor = dir.join("auditor");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "auditor@test", "-f"])
            .arg(&auditor),
    );
    let auditor_pub = std::fs::read_to_string(dir.join("auditor.pub")).unwrap();
    write_recipe(&dir, "10.0.2.0/24", &extra(auditor_pub.trim()));
    let started = Instant::now();
    build_with(&dir, &["--key", "release.key", "--format", "raw"]);
    eprintln!("fleet boot: built the image in {:?}", started.elapsed());
    // the digest of the image's own manifest, from the release manifest
    let release: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("dist/node-1.manifest.json")).unwrap())
            .unwrap();
    let own = release["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/usr/lib/kiln/manifest.json")
        .expect("a signed build has its own manifest");
    let own_sha = own["sha256"].as_str().unwrap().to_owned();

    let mut node = Node::new(
        &crate::boot::fresh_dir("fleet-node"),
        &dir.join("dist/node-1.raw"),
        &dir.join("ops"),
        |_| {},
    );
    let mut vm = node.boot(&[]);
    let up = vm.wait_for_ssh("ops", false, BOOT_TIMEOUT);
    eprintln!("fleet boot: SSH after {up:?}");

    // the timers' first runs, after boot: both reports appear
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let there = vm.ssh(
            "ops",
            &format!("ls {METRICS}/kiln_check.prom {METRICS}/kiln_audit.prom 2>/dev/null | wc -l"),
        );
        if there.trim() == "2" {
            break;
        }
        if Instant::now() > deadline {
            let status = vm.ssh(
                "ops",
                "systemctl list-timers --all --no-pager kiln-*; systemctl status --no-pager kiln-check.service kiln-audit.service plant-drift.service 2>&1 | tail -40",
            );
            vm.fail(&format!(
                "no metrics from the timers within 10 minutes:\n{status}"
            ));
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    eprintln!("fleet boot: both reports after {:?}", vm.started.elapsed());

    // every event the check printed (its stdout, journaled), kept beside
    // the serial log for a look after a failure
    let events = ssh_as(
        &vm,
        "auditor",
        &auditor,
        "journalctl -o cat --no-pager -u kiln-check.service | grep '^{'",
    );
    std::fs::write(node.dir.join("check-events.jsonl"), &events).unwrap();
    // the check: the image it verified, the planted drift by kind
    let check = samples(&vm.ssh("ops", &format!("cat {METRICS}/kiln_check.prom")));
    assert_eq!(
        value(&check, "kiln_check_manifest_verified"),
        Some(1.0),
        "{check:?}"
    );
    assert_eq!(value(&check, "kiln_check_success"), Some(1.0), "{check:?}");
    assert_eq!(
        value(
            &check,
            &format!(
                "kiln_image_info{{image=\"node\",version=\"1\",arch=\"amd64\",manifest_sha256=\"{own_sha}\"}}"
            )
        ),
        Some(1.0),
        "{check:?}"
    );
    assert_eq!(
        value(&check, "kiln_check_drift_events{kind=\"added\"}"),
        Some(2.0),
        "{check:?}"
    );
    assert_eq!(
        value(&check, "kiln_check_drift_events{kind=\"modified\"}"),
        Some(1.0),
        "{check:?}"
    );

    // the journal, as a forwarder reads it: one entry per drift event
    let journal = ssh_as(
        &vm,
        "auditor",
        &auditor,
        "journalctl -o json --no-pager SYSLOG_IDENTIFIER=kiln",
    );
    let entries: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |id: &str| -> Vec<&serde_json::Value> {
        entries.iter().filter(|e| e["MESSAGE_ID"] == id).collect()
    };
    let drift: BTreeSet<(String, String)> = of(DRIFT)
        .iter()
        .map(|e| {
            (
                e["KILN_EVENT"].as_str().unwrap().to_owned(),
                e["KILN_PATH"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let planted: BTreeSet<(String, String)> = [
        ("added", "/var/lib/planted"),
        ("added", "/var/lib/planted/suid"),
        ("modified", "/etc/issue.net"),
    ]
    .iter()
    .map(|(k, p)| (k.to_string(), p.to_string()))
    .collect();
    assert_eq!(drift, planted, "{journal}");
    let done = of(CHECK_DONE);
    assert_eq!(done.len(), 1, "{journal}");
    assert_eq!(done[0]["KILN_DRIFT_EVENTS"], "3");
    assert_eq!(done[0]["KILN_MANIFEST_SHA256"], own_sha.as_str());
    assert_eq!(done[0]["PRIORITY"], "4");
    // the audit: the planted setuid file is a finding, in both places
    let audit = samples(&vm.ssh("ops", &format!("cat {METRICS}/kiln_audit.prom")));
    assert_eq!(value(&audit, "kiln_audit_success"), Some(1.0), "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|(n, v)| n.starts_with("kiln_audit_findings{rule=\"fs.setuid\"") && *v >= 1.0),
        "{audit:?}"
    );
    assert!(
        of(AUDIT_FINDING)
            .iter()
            .any(|e| e["KILN_RULE"] == "fs.setuid" && e["KILN_PATH"] == "/var/lib/planted/suid"),
        "{journal}"
    );

    // the units: the check failed with drift's code, the patch says so
    let shown = vm.ssh(
        "ops",
        "systemctl show -p ExecMainStatus --value kiln-check.service; cat /run/kiln/node-patch.json",
    );
    let (status, patch) = shown.split_once('\n').unwrap();
    assert_eq!(status, "4", "{shown}");
    let patch: serde_json::Value = serde_json::from_str(patch).unwrap();
    assert_eq!(patch["metadata"]["labels"]["kiln.dev/drift"], "true");
    assert_eq!(patch["metadata"]["labels"]["kiln.dev/version"], "1");

    let (_, took) = vm.power_off(Duration::from_secs(120));
    eprintln!("fleet boot: powered off {took:?} after the button");
    drop(vm);
    node.remove_disk();
}
