//! A plain Debian 12 rootfs, made by mmdebstrap with openssh-server, is
//! not a hardened K3s node: the audit must say so, with the findings a
//! reviewer would expect (passwords and root over SSH by Debian's
//! defaults, baked host keys, no machine-id, no firewall).
//!
//! The tarball is cached under target/audit-cache/, keyed by the UTC date,
//! so the first run of a day downloads (about a minute or two through the
//! build host's apt sources) and later runs reuse it. Needs root (mmdebstrap
//! root mode), the network and `apt-get install mmdebstrap`.

use crate::common;

use kiln_policy::audit::{AuditConfig, Report, Status, audit_path};
use std::path::PathBuf;
use std::process::Command;

fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    kiln_policy::audit::Date(days as i64)
        .to_string()
        .replace('-', "")
}

/// The cached rootfs, made if missing.
fn debian_rootfs() -> PathBuf {
    let cache = common::repo_root().join("target/audit-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let name = format!("debian-bookworm-minbase-ssh-{}.tar", today());
    let tarball = cache.join(&name);
    if tarball.exists() {
        return tarball;
    }
    assert!(
        Command::new("mmdebstrap").arg("--version").output().is_ok(),
        "mmdebstrap is missing: apt-get install mmdebstrap"
    );
    let partial = cache.join(format!(".{name}.partial-{}", std::process::id()));
    common::run_ok(
        Command::new("mmdebstrap")
            .args([
                "--quiet",
                "--variant=minbase",
                "--include=openssh-server",
                "--format=tar",
                "bookworm",
            ])
            .arg(&partial),
    );
    std::fs::rename(&partial, &tarball).unwrap();
    // older days' tarballs are not needed any more
    for entry in std::fs::read_dir(&cache).unwrap().flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with("debian-bookworm-minbase-ssh-") && n != name {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    tarball
}

fn result<'a>(report: &'a Report, id: &str) -> &'a kiln_policy::audit::RuleResult {
    report.results.iter().find(|r| r.rule.id == id).unwrap()
}

#[test]
#[ignore = "needs root and network"]
fn a_plain_debian_rootfs_fails_the_gate_with_the_expected_findings() {
    common::require_root("mmdebstrap (root mode)");
    let tarball = debian_rootfs();
    let report = audit_path(&tarball, &AuditConfig::default()).unwrap();
    println!("{}", report.to_text());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(!report.passed());

    // Debian ships no PasswordAuthentication line: OpenSSH's default, yes
    let password = result(&report, "ssh.password-auth");
    assert_eq!(password.status, Status::Fail);
    assert_eq!(password.findings[0].value, "PasswordAuthentication yes");
    assert!(password.findings[0].message.contains("compiled-in default"));
    // and no PermitRootLogin line: prohibit-password
    let root = result(&report, "ssh.root-login");
    assert_eq!(root.status, Status::Fail);
    assert_eq!(root.findings[0].value, "PermitRootLogin without-password");
    // Debian's own sshd_config turns X11 forwarding on
    let x11 = result(&report, "ssh.x11");
    assert_eq!(x11.status, Status::Fail);
    assert_eq!(x11.findings[0].path, "/etc/ssh/sshd_config");
    // openssh-server's postinst generated host keys in the image
    let keys = result(&report, "ssh.no-host-keys");
    assert_eq!(keys.status, Status::Fail);
    for key in [
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/ssh/ssh_host_rsa_key",
        "/etc/ssh/ssh_host_ecdsa_key",
    ] {
        assert!(
            keys.findings.iter().any(|f| f.path == key),
            "{key}: {:?}",
            keys.findings
        );
    }
    // minbase has no systemd: no /etc/machine-id
    assert_eq!(result(&report, "img.machine-id").status, Status::Fail);
    // no nftables at all
    for id in [
        "fw.input-drop",
        "fw.no-flush",
        "fw.k3s-ports",
        "fw.forward",
        "fw.vxlan",
        "fw.kubelet",
    ] {
        assert_eq!(result(&report, id).status, Status::Fail, "{id}");
    }
    // Debian's moduli carries 2048-bit groups
    assert_eq!(result(&report, "ssh.moduli").status, Status::Fail);
    // no K3s in a plain rootfs
    assert_eq!(
        result(&report, "k3s.protect-kernel-defaults").status,
        Status::NotApplicable
    );
    // what Debian gets right
    for id in [
        "ssh.empty-passwords",
        "ssh.perms",
        "pkg.compilers",
        "pkg.insecure",
        "acct.system-shell",
        "acct.uid0",
        "acct.empty-password",
        "acct.shadow",
        "fs.unowned",
    ] {
        assert_eq!(
            result(&report, id).status,
            Status::Pass,
            "{id}: {:?}",
            result(&report, id).findings
        );
    }
    // perl is Essential in Debian; apt and dpkg too
    let mutators = result(&report, "pkg.mutators");
    assert!(
        mutators.findings.iter().any(|f| f.path == "/usr/bin/perl"),
        "{:?}",
        mutators.findings
    );
    assert!(mutators.findings.iter().any(|f| f.path == "/usr/bin/dpkg"));
}
