//! Where audits read images from: archives made by GNU tar (plain, gzip,
//! zstd) give the same verdicts as the directory they were made from; a
//! live root skips run-time and container state and the image-only rules;
//! directories are read without hashing.

use crate::common;

use kiln_policy::audit::{AuditConfig, Mode, Report, Status, load, load_directory};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn write(root: &Path, path: &str, text: &str, mode: u32) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn verdicts(report: &Report) -> Vec<(&'static str, Status, usize)> {
    report
        .results
        .iter()
        .map(|r| (r.rule.id, r.status, r.findings.len()))
        .collect()
}

fn sample(root: &Path) {
    write(root, "/etc/passwd", "root:x:0:0::/root:/bin/bash\n", 0o644);
    write(root, "/etc/group", "root:x:0:\n", 0o644);
    write(root, "/usr/sbin/sshd", "ELF", 0o755);
    write(
        root,
        "/etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n",
        0o644,
    );
    write(
        root,
        "/etc/ssh/sshd_config.d/10.conf",
        "PasswordAuthentication no\n",
        0o644,
    );
    write(root, "/etc/ssh/ssh_host_rsa_key", "K", 0o600);
    write(
        root,
        "/etc/nftables.conf",
        "table inet f {\n chain input { type filter hook input priority 0; policy drop; }\n}\n",
        0o755,
    );
    write(root, "/usr/bin/ping", "ELF", 0o4755);
    std::os::unix::fs::symlink("../usr/bin", root.join("etc/bin-link")).unwrap();
}

#[test]
fn archives_and_directories_agree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    sample(&root);
    let config = AuditConfig::default();
    let from_dir = load_directory(&root, false).unwrap().audit(&config);
    assert!(from_dir.errors.is_empty(), "{:?}", from_dir.errors);
    assert_eq!(
        from_dir
            .results
            .iter()
            .find(|r| r.rule.id == "ssh.password-auth")
            .unwrap()
            .status,
        Status::Pass,
        "the drop-in read first wins"
    );
    let tar = dir.path().join("image.tar");
    common::gnu_tar(&root, &tar);
    common::run_ok(Command::new("gzip").arg("-k").arg("-n").arg(&tar));
    common::run_ok(
        Command::new("zstd")
            .arg("-q")
            .arg(&tar)
            .arg("-o")
            .arg(dir.path().join("image.tar.zst")),
    );
    for name in ["image.tar", "image.tar.gz", "image.tar.zst"] {
        let loaded = load(&dir.path().join(name)).unwrap();
        assert!(!loaded.live);
        let report = loaded.audit(&config);
        assert!(report.errors.is_empty(), "{name}: {:?}", report.errors);
        assert_eq!(verdicts(&report), verdicts(&from_dir), "{name}");
    }
}

#[test]
fn a_live_root_skips_runtime_and_container_state() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    sample(root);
    write(root, "/proc/1/environ", "x", 0o666);
    write(root, "/run/lock/x", "x", 0o666);
    write(
        root,
        "/var/lib/rancher/k3s/agent/containerd/snap/bin/su",
        "ELF",
        0o4755,
    );
    write(
        root,
        "/var/lib/rancher/k3s/agent/client-kubelet.crt",
        "CERT",
        0o644,
    );
    let config = AuditConfig::default();

    let image = load_directory(root, false).unwrap().audit(&config);
    let live_loaded = load_directory(root, true).unwrap();
    assert!(live_loaded.live);
    let live = live_loaded.audit(&config);
    assert_eq!(live.mode, Mode::Live);

    let paths = |report: &Report, id: &str| -> Vec<String> {
        report
            .results
            .iter()
            .find(|r| r.rule.id == id)
            .unwrap()
            .findings
            .iter()
            .map(|f| f.path.clone())
            .collect()
    };
    assert!(paths(&image, "fs.world-writable").contains(&"/proc/1/environ".to_owned()));
    assert!(
        paths(&live, "fs.world-writable").is_empty(),
        "{:?}",
        paths(&live, "fs.world-writable")
    );
    assert!(
        paths(&image, "fs.setuid")
            .iter()
            .any(|p| p.contains("containerd"))
    );
    assert!(
        !paths(&live, "fs.setuid")
            .iter()
            .any(|p| p.contains("containerd"))
    );
    // image-only rules
    let status = |report: &Report, id: &str| {
        report
            .results
            .iter()
            .find(|r| r.rule.id == id)
            .unwrap()
            .status
    };
    assert_eq!(status(&image, "ssh.no-host-keys"), Status::Fail);
    assert_eq!(status(&live, "ssh.no-host-keys"), Status::NotApplicable);
    assert_eq!(status(&image, "k3s.no-node-identity"), Status::Fail);
    assert_eq!(status(&live, "k3s.no-node-identity"), Status::NotApplicable);
}

#[test]
fn directories_are_walked_without_hashing() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let loaded = load_directory(dir.path(), false).unwrap();
    let zero = kiln_tree::Digest([0; 32]);
    let mut files = 0;
    for (_, entry) in loaded.tree.iter() {
        if let kiln_tree::Kind::File { digest, .. } = &entry.kind {
            assert_eq!(*digest, zero);
            files += 1;
        }
    }
    assert!(files >= 7);
    // and the rules still read what they need, lazily from the host
    let report = loaded.audit(&AuditConfig::default());
    let fw = report
        .results
        .iter()
        .find(|r| r.rule.id == "fw.input-drop")
        .unwrap();
    assert!(
        fw.findings
            .iter()
            .all(|f| !f.message.contains("accepted by default")),
        "{:?}",
        fw.findings
    );
}
