//! recipes/k3s-agent.toml built from the real archive (Debian bookworm,
//! kernel included) with a stand-in K3s binary: the image has no host
//! keys, an empty machine-id, no token, only allowlisted setuid files,
//! locked accounts, enabled units systemd accepts, and it passes every
//! high and critical rule of kiln's own audit. Needs root (the install
//! stage configures packages in a chroot) and the network.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages are shared with the other tests of the real archive.
fn package_cache() -> PathBuf {
    repo_root().join("target/kiln-test-cache/debs")
}

/// Builds the recipe in `dir` (node.toml) into `dir/dist`. One build at a
/// time: the tests' recipes differ only after the install stage, so the
/// second reuses the first's installed tree from the cache.
pub(super) fn build(dir: &Path) -> std::process::Output {
    build_with(dir, &[])
}

/// [`build`] with more arguments.
pub(super) fn build_with(dir: &Path, args: &[&str]) -> std::process::Output {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    run_ok(
        kiln()
            .current_dir(dir)
            .args(["build", "node.toml", "-o", "dist", "--cache-dir"])
            .arg(package_cache())
            .args(args),
    )
}

/// The administrators' network of [`write_recipe`]'s recipe when the test
/// does not boot it.
pub(super) const SSH_FROM: &str = "10.99.0.0/24";

/// recipes/k3s-agent.toml itself, with a stand-in K3s binary (its pin
/// replaced: the release host is not reachable from CI), an operator (key
/// `dir/ops`) and the test's addresses: `[ssh] from = [ssh_from]`, the
/// K3s server 10.99.0.1. `extra` is appended (tables after `[k3s]`).
pub(super) fn write_recipe(dir: &Path, ssh_from: &str, extra: &str) {
    let k3s = dir.join("k3s");
    // It records its arguments and tells systemd it is ready, so a node
    // that has its token runs k3s-agent.service successfully.
    std::fs::write(
        &k3s,
        "#!/bin/sh\necho \"k3s stand-in: $*\"\necho \"$*\" >/run/k3s-stand-in.args\nexec systemd-notify --ready\n",
    )
    .unwrap();
    let key = dir.join("ops");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@test", "-f"])
            .arg(&key),
    );
    let public = std::fs::read_to_string(dir.join("ops.pub")).unwrap();
    let agent = repo_root().join("recipes/k3s-agent.toml");
    std::fs::write(
        dir.join("node.toml"),
        format!(
            r#"extends = "{agent}"

[image]
name = "node"
version = "1"
source_date_epoch = 1700000000
supplier = "kiln tests <tests@kiln.invalid>"

[[artifact]]
name = "k3s"
path = "k3s"
sha256 = "{k3s_sha}"
dest = "/usr/local/bin/k3s"
mode = "0755"

[[user]]
name = "ops"
groups = ["ssh-users"]
authorized_keys = ["{key}"]

[ssh]
from = ["{ssh_from}"]

[k3s]
server = "https://10.99.0.1:6443"
servers = ["10.99.0.1/32"]
node_cidrs = ["10.99.0.0/24"]
{extra}"#,
            agent = agent.display(),
            k3s_sha = sha256_file(&k3s),
            key = public.trim(),
        ),
    )
    .unwrap();
}

#[test]
#[ignore = "needs root and network"]
fn the_k3s_agent_recipe_builds_a_hardened_image() {
    require_root("the_k3s_agent_recipe_builds_a_hardened_image");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    write_recipe(w, SSH_FROM, "");
    let out = build(w);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let archive = w.join("dist/node-1.rootfs.tar.zst");
    // the real archive's SBOMs pass the formats' own validators
    crate::sbom::validate(
        &w.join("dist/node-1.spdx.json"),
        &w.join("dist/node-1.cdx.json"),
    );
    let root = w.join("root");
    std::fs::create_dir(&root).unwrap();
    run_ok(
        Command::new("tar")
            .args(["--zstd", "--numeric-owner", "-xpf"])
            .arg(&archive)
            .arg("-C")
            .arg(&root),
    );
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    };

    // no host keys, and the unit that makes them: with [boot] the names
    // in /etc/ssh are links to where first boot writes the keys, on /var
    for name in list_dir(&root.join("etc/ssh"))
        .into_iter()
        .filter(|p| p.starts_with("ssh_host_"))
    {
        let link = std::fs::read_link(root.join("etc/ssh").join(&name))
            .unwrap_or_else(|_| panic!("host key baked: /etc/ssh/{name}"));
        assert_eq!(link, Path::new("/var/lib/kiln/ssh").join(&name));
    }
    let state_ssh = list_dir(&root.join("var/lib/kiln/ssh"));
    assert!(state_ssh.is_empty(), "host keys baked: {state_ssh:?}");
    assert!(
        read("/etc/systemd/system/kiln-ssh-hostkeys.service").contains("ssh-keygen -q -t ed25519")
    );
    // empty machine-id, no token, no node identity
    assert_eq!(read("/etc/machine-id"), "");
    assert!(!root.join("var/lib/rancher/k3s/agent-token").exists());
    assert!(!root.join("etc/rancher/node").exists());
    let config = read("/etc/rancher/k3s/config.yaml");
    assert!(!config.contains("\ntoken:"), "{config}");
    // setuid/setgid only on the allowlist
    let found = Command::new("find")
        .arg(&root)
        .args(["-xdev", "-type", "f", "-perm", "/6000"])
        .output()
        .unwrap();
    let setuid: Vec<String> = String::from_utf8_lossy(&found.stdout)
        .lines()
        .map(|l| l.trim_start_matches(root.to_str().unwrap()).to_owned())
        .collect();
    assert!(
        setuid.iter().all(|p| p == "/usr/bin/sudo"),
        "setuid files left: {setuid:?}"
    );
    assert!(
        log.contains("/usr/bin/passwd"),
        "the log names what lost its bit: {log}"
    );
    // moduli has no group under 3072 bits
    for line in read("/etc/ssh/moduli")
        .lines()
        .filter(|l| !l.starts_with('#'))
    {
        let size: u32 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
        assert!(size >= 3071, "{line}");
    }

    // accounts: package ids kept, ops added, nothing can use a password
    let passwd = read("/etc/passwd");
    // messagebus (dbus, which [boot] needs) is configured before sshd
    assert!(passwd.contains("\nmessagebus:x:100:"), "{passwd}");
    assert!(passwd.contains("\nsshd:x:101:65534:"), "{passwd}");
    assert!(
        passwd.contains("\nops:x:1000:1000::/home/ops:/bin/bash\n"),
        "{passwd}"
    );
    let group = read("/etc/group");
    let ssh_users = group.lines().find(|l| l.starts_with("ssh-users:")).unwrap();
    let gid: u32 = ssh_users.split(':').nth(2).unwrap().parse().unwrap();
    assert!(gid < 1000 && ssh_users.ends_with(":ops"), "{ssh_users}");
    for line in read("/etc/shadow").lines() {
        let field = line.split(':').nth(1).unwrap();
        assert!(
            !field.is_empty() && field.chars().all(|c| c == '!' || c == '*'),
            "{line}"
        );
    }
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let uid: u32 = f[2].parse().unwrap();
        if (uid < 1000 || uid == 65534) && !["root", "sync"].contains(&f[0]) {
            assert!(
                f[6].ends_with("nologin") || f[6].ends_with("false"),
                "{line}"
            );
        }
    }
    let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta("home/ops").mode() & 0o7777, 0o700);
    assert_eq!(meta("home/ops/.ssh").mode() & 0o7777, 0o700);
    let keys = meta("home/ops/.ssh/authorized_keys");
    assert_eq!(
        (keys.mode() & 0o7777, keys.uid(), keys.gid()),
        (0o600, 1000, 1000)
    );
    assert_eq!(meta("etc/shadow").permissions().mode() & 0o777, 0o640);
    assert_eq!(meta("etc/rancher/k3s/config.yaml").mode() & 0o777, 0o600);
    assert!(!root.join("usr/bin/apt-get").exists() && root.join("var/lib/dpkg/status").exists());
    assert!(
        !root
            .join("usr/share/man")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
    assert!(
        root.join("usr/share/doc/openssh-server/copyright")
            .is_file(),
        "licences stay"
    );

    // enabled units: exactly kiln's, the kept ones and what booting needs
    let wants: Vec<String> = list_dir(&root.join("etc/systemd/system"))
        .into_iter()
        .filter(|p| p.contains(".wants/"))
        .collect();
    assert_eq!(
        wants,
        [
            "multi-user.target.wants/k3s-agent.service",
            "multi-user.target.wants/kiln-network.service",
            "multi-user.target.wants/kiln-provision.service",
            "multi-user.target.wants/kiln-ssh-hostkeys.service",
            "multi-user.target.wants/remote-fs.target",
            "multi-user.target.wants/ssh.service",
            "multi-user.target.wants/systemd-networkd.service",
            "network-online.target.wants/systemd-networkd-wait-online.service",
            "sockets.target.wants/systemd-networkd.socket",
            "ssh.service.wants/kiln-ssh-hostkeys.service",
            "sysinit.target.wants/apparmor.service",
            "sysinit.target.wants/kiln-hostname.service",
            "sysinit.target.wants/kiln-time-wait.service",
            "sysinit.target.wants/nftables.service",
            "sysinit.target.wants/systemd-pstore.service",
            "sysinit.target.wants/systemd-resolved.service",
            "sysinit.target.wants/systemd-timesyncd.service",
            "timers.target.wants/fstrim.timer",
        ]
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/systemd/system/sysinit.target.wants/nftables.service"))
            .unwrap(),
        Path::new("/lib/systemd/system/nftables.service")
    );
    // systemd judges kiln's units in the image they are for
    let units = root.join("etc/systemd/system");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(units.join("kiln-ssh-hostkeys.service"))
        .arg(units.join("k3s-agent.service"))
        .output()
        .expect("systemd-analyze is needed");
    let complaints: String = String::from_utf8_lossy(&verify.stderr)
        .lines()
        .filter(|l| l.contains("kiln-ssh-hostkeys") || l.contains("k3s-agent"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(complaints.is_empty(), "systemd-analyze: {complaints}");

    // the image's own sshd_config (Debian's, which includes the drop-in
    // directory first) with kiln's drop-in: sshd accepts it and uses kiln's values
    let main = read("/etc/ssh/sshd_config").replace(
        "Include /etc/ssh/sshd_config.d/*.conf",
        &format!("Include {}/etc/ssh/sshd_config.d/*.conf", root.display()),
    );
    assert!(
        main.contains(&root.display().to_string()),
        "Debian's sshd_config includes the drop-ins"
    );
    std::fs::write(w.join("sshd_config"), main).unwrap();
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(w.join("hostkey")),
    );
    let _ = std::fs::create_dir_all("/run/sshd");
    let t = run_ok(
        Command::new("/usr/sbin/sshd")
            .arg("-T")
            .arg("-f")
            .arg(w.join("sshd_config"))
            .arg("-h")
            .arg(w.join("hostkey")),
    );
    let effective = String::from_utf8_lossy(&t.stdout);
    for expected in [
        "x11forwarding no",
        "permitrootlogin no",
        "kbdinteractiveauthentication no",
        "allowgroups ssh-users",
        "banner /etc/issue.net",
    ] {
        assert!(
            effective.lines().any(|l| l == expected),
            "sshd -T lacks {expected}:\n{effective}"
        );
    }

    // kiln's own release gate: no high or critical rule fails
    let report =
        kiln_policy::audit::audit_path(&archive, &kiln_policy::audit::AuditConfig::default())
            .unwrap();
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| {
            r.status == kiln_policy::audit::Status::Fail
                && r.rule.severity >= kiln_policy::audit::Severity::High
        })
        .map(|r| format!("{} {:?}", r.rule.id, r.findings))
        .collect();
    assert!(
        failed.is_empty(),
        "high/critical audit failures: {failed:#?}"
    );
}

#[test]
#[ignore = "needs root and network"]
fn a_setuid_allowlist_and_kept_services_are_honoured() {
    require_root("a_setuid_allowlist_and_kept_services_are_honoured");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    write_recipe(
        w,
        SSH_FROM,
        "\n[minimize]\nsetuid_allow = [\"/bin/su\", \"/usr/bin/mount\"]\nkeep_services = [\"getty@tty1.service\"]\nremove_package_manager = false\n",
    );
    build(w);
    let listing = run_ok(
        Command::new("tar")
            .args(["--zstd", "-tvf"])
            .arg(w.join("dist/node-1.rootfs.tar.zst")),
    );
    let listing = String::from_utf8_lossy(&listing.stdout);
    let setuid: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with('-') && (l.as_bytes()[3] == b's' || l.as_bytes()[6] == b's'))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    // /bin/su resolves through the /bin symlink to usr/bin/su
    assert_eq!(setuid, ["./usr/bin/mount", "./usr/bin/su"], "{listing}");
    assert!(listing.contains("./etc/systemd/system/getty.target.wants/getty@tty1.service"));
    assert!(
        !listing.contains("./etc/systemd/system/timers.target.wants/fstrim.timer"),
        "a later keep_services replaces the earlier list"
    );
    assert!(listing.contains("./usr/bin/dpkg"));
}
