//! `kiln audit` and the build's audit gate, through the real binary.

use crate::common;

use common::kiln;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn list_rules_prints_every_rule() {
    let out = common::run_ok(kiln().args(["audit", "--list-rules"]));
    let text = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ids, kiln_policy::audit::rule_ids());
    assert!(text.contains("ssh.root-login") && text.contains("critical"));
}

#[test]
fn audit_exit_codes_formats_and_output_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "root/usr/sbin/sshd", "ELF");
    write(
        dir.path(),
        "root/etc/ssh/sshd_config",
        "PermitRootLogin yes\n",
    );
    let root = dir.path().join("root");
    let out = kiln().arg("audit").arg(&root).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ssh.root-login"), "{text}");
    assert!(text.contains("FAIL ("), "{text}");

    let sarif = dir.path().join("a.sarif");
    let out = kiln()
        .arg("audit")
        .arg(&root)
        .args(["--format", "sarif", "-o"])
        .arg(&sarif)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(out.stdout.is_empty());
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(doc["version"], "2.1.0");

    let out = kiln()
        .arg("audit")
        .arg(&root)
        .args(["--fail-on", "none", "--format", "junit"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("<?xml"));

    let out = kiln()
        .arg("audit")
        .arg(&root)
        .args(["--fail-on", "severe"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad severity is a usage error"
    );
}

#[test]
fn the_build_gate_refuses_an_unhardened_image_and_records_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "r.toml",
        "[image]\nname = \"n\"\nversion = \"1\"\n",
    );
    let out = kiln()
        .args(["build", "r.toml", "-o", "out"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "the gate exits like kiln audit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("audit gate failed"), "{stderr}");
    assert!(stderr.contains("img.machine-id"), "{stderr}");
    assert!(!dir.path().join("out/n-1.manifest.json").exists());

    // waived until the build's SOURCE_DATE_EPOCH day, with the rest off
    write(
        dir.path(),
        "r.toml",
        "[image]\nname = \"n\"\nversion = \"1\"\n[audit]\nfail_on = \"critical\"\n\
         [[audit.waive]]\nrule = \"img.machine-id\"\nreason = \"test image\"\nexpires = \"2027-01-31\"\n\
         [[audit.waive]]\nrule = \"fw.vxlan\"\nreason = \"no network\"\n\
         [[audit.waive]]\nrule = \"fw.kubelet\"\nreason = \"no network\"\n",
    );
    let build = |epoch: &str| {
        kiln()
            .args(["build", "r.toml", "-o", "out"])
            .env("SOURCE_DATE_EPOCH", epoch)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = build("1801439999"); // 2027-01-31T23:59:59Z
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/n-1.manifest.json")).unwrap())
            .unwrap();
    let audit = &manifest["audit"];
    assert_eq!(audit["fail_on"], "critical");
    assert_eq!(audit["result"], "pass");
    assert_eq!(audit["waived"], 3);
    assert_eq!(audit["waivers"][0]["rule"], "fw.kubelet");
    assert_eq!(
        audit["rules_run"].as_u64().unwrap() as usize,
        kiln_policy::audit::rule_ids().len()
    );
    let out = build("1801440000"); // a second later: 2027-02-01
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired on 2027-01-31"));
}

#[test]
fn an_output_file_that_is_a_directory_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "root/etc/hostname", "node\n");
    std::fs::create_dir(dir.path().join("report")).unwrap();
    let out = kiln()
        .current_dir(dir.path())
        .args(["audit", "root", "-o", "report"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: -o report: is a directory, not a file\n"
    );
    assert!(out.stdout.is_empty());
}
