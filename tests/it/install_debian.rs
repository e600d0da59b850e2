//! The install stage on the real archive (the build host's apt sources),
//! NODE set on bookworm: the image equals what mmdebstrap makes of the same
//! packages, except for differences this file names one by one; it
//! rebuilds bit for bit in another directory, umask, time zone and locale;
//! and it is a working Debian system by its own tools (dpkg, sshd, getent)
//! run inside it. Needs root (chroots) and mmdebstrap.

use crate::common;

use common::oracle::{compare_with_oracle, read_tar};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub(crate) const EPOCH: u64 = 1_700_000_000;

/// Every difference between kiln's image and mmdebstrap's, and why.
pub(crate) const INTENDED: &[(&str, &str)] = &[
    (
        "/dev/**",
        "mmdebstrap's tarball carries device nodes; kiln leaves /dev to the kernel's devtmpfs",
    ),
    (
        "/etc/apt/sources.list",
        "mmdebstrap writes its mirror; kiln names no mirror in the image",
    ),
    (
        "/etc/fstab",
        "mmdebstrap writes a placeholder; no package ships one",
    ),
    ("/etc/hostname", "mmdebstrap copies the build host's"),
    ("/etc/resolv.conf", "mmdebstrap copies the build host's"),
    (
        "/etc/machine-id",
        "empty in both; kiln's is 0444, as systemd makes it",
    ),
    (
        "/etc/ssh/ssh_host_*",
        "normalised: every node makes its own host keys",
    ),
    (
        "/etc/{group,gshadow,passwd,shadow}-",
        "normalised: backups of the shadow tools",
    ),
    ("/var/cache/debconf/*-old", "normalised: debconf's backups"),
    ("/var/lib/dpkg/*-old", "normalised: dpkg's backups"),
    ("/var/log/*", "normalised: logs of the build"),
    (
        "/run/**",
        "runtime state mmdebstrap leaves; /run is a tmpfs while kiln configures",
    ),
    (
        "/usr/bin/uncompress",
        "a hard link of gunzip, as gzip ships it; mmdebstrap's second unpack of the Essential set leaves a copy",
    ),
    (
        "/var/cache/apt/archives/{lock,partial}",
        "apt's state: mmdebstrap runs apt in the image, kiln never does",
    ),
    (
        "/var/lib/apt/{extended_states,lists/lock,lists/partial}",
        "apt's state, as above",
    ),
];

/// Files whose lines depend on the order packages are configured in
/// (kiln configures all at once, mmdebstrap in two rounds): the same
/// lines, in another order.
pub(crate) const SAME_LINES: &[&str] = &["/etc/shells", "/var/lib/dpkg/triggers/File"];

/// Packages are shared with the other tests of the real archive.
pub(crate) fn package_cache() -> PathBuf {
    repo_root().join("target/kiln-test-cache/debs")
}

fn write_recipe(dir: &Path) {
    let packages: Vec<String> = NODE_SET.iter().map(|p| format!("\"{p}\"")).collect();
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "[image]\nname = \"node\"\nversion = \"1\"\nsource_date_epoch = {EPOCH}\n\n\
             [debian]\nsuite = \"bookworm\"\nvariant = \"minbase\"\npackages = [{}]\n\n\
             [audit]\nfail_on = \"none\"\n",
            packages.join(", ")
        ),
    )
    .unwrap();
}

struct Built {
    dir: PathBuf,
    tar: PathBuf,
}

/// kiln's NODE image, built once per test run, packages configured afresh.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let base = repo_root().join("target/kiln-test-cache/install-node");
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("a");
        std::fs::create_dir_all(&dir).unwrap();
        write_recipe(&dir);
        let out = kiln()
            .current_dir(&dir)
            .arg("build")
            .arg("node.toml")
            .args(["-o", "out", "--compression", "none", "--no-install-cache"])
            .arg("--cache-dir")
            .arg(package_cache())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kiln build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Built {
            tar: dir.join("out/node-1.rootfs.tar"),
            dir,
        }
    })
}

/// mmdebstrap's image of the same set with the same SOURCE_DATE_EPOCH,
/// made once a day; remade when the archive moved on since.
fn oracle(versions: &BTreeMap<String, String>) -> PathBuf {
    let cache = repo_root().join("target/kiln-test-cache");
    let day = run_ok(Command::new("date").args(["-u", "+%F"]));
    let day = String::from_utf8_lossy(&day.stdout).trim().to_owned();
    let tar = cache.join(format!("oracle-node-{day}.tar"));
    if tar.is_file() && dpkg_versions(&tar) == *versions {
        return tar;
    }
    for old in std::fs::read_dir(&cache).unwrap().flatten() {
        if old
            .file_name()
            .to_string_lossy()
            .starts_with("oracle-node-")
        {
            let _ = std::fs::remove_file(old.path());
        }
    }
    let partial = cache.join(format!("oracle-node.partial-{}", std::process::id()));
    run_ok(
        Command::new("mmdebstrap")
            .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
            .args(["--variant=minbase", "--format=tar", "--quiet"])
            .arg(format!("--include={}", NODE_SET.join(",")))
            .arg("bookworm")
            .arg(&partial),
    );
    std::fs::rename(&partial, &tar).unwrap();
    tar
}

/// Package → version, from the dpkg status inside an image archive.
fn dpkg_versions(tar: &Path) -> BTreeMap<String, String> {
    let members = read_tar(tar);
    let status = String::from_utf8_lossy(&members["/var/lib/dpkg/status"].1).into_owned();
    status_versions(&status)
}

pub(crate) fn status_versions(status: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for paragraph in status.split("\n\n") {
        let field = |name: &str| {
            paragraph
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .map(str::to_owned)
        };
        if let (Some(p), Some(v)) = (field("Package"), field("Version")) {
            out.insert(p, v);
        }
    }
    out
}

#[test]
#[ignore = "needs root and network"]
fn node_set_matches_the_mmdebstrap_oracle() {
    require_root("mmdebstrap and kiln's install stage");
    let ours = read_tar(&built().tar);
    let versions = status_versions(&String::from_utf8_lossy(&ours["/var/lib/dpkg/status"].1));
    assert!(versions.len() > 100, "too few packages: {versions:?}");
    let theirs = read_tar(&oracle(&versions));
    assert_eq!(
        status_versions(&String::from_utf8_lossy(&theirs["/var/lib/dpkg/status"].1)),
        versions,
        "mmdebstrap installed other versions"
    );

    compare_with_oracle(&ours, &theirs, INTENDED, SAME_LINES);
}

#[test]
#[ignore = "needs root and network"]
fn node_set_rebuilds_bit_for_bit() {
    require_root("kiln's install stage");
    let first = built();
    let dir = first.dir.with_file_name("b");
    std::fs::create_dir_all(&dir).unwrap();
    write_recipe(&dir);
    std::fs::copy(first.dir.join("node.lock"), dir.join("node.lock")).unwrap();
    let script = format!(
        "umask 077; {} build node.toml --locked -o out --compression none --no-install-cache --cache-dir {}",
        env!("CARGO_BIN_EXE_kiln"),
        package_cache().display()
    );
    run_ok(
        Command::new("sh")
            .args(["-c", &script])
            .current_dir(&dir)
            .env("TZ", "Pacific/Auckland")
            .env("LC_ALL", "C")
            .env_remove("SOURCE_DATE_EPOCH"),
    );
    let second = dir.join("out/node-1.rootfs.tar");
    assert_eq!(
        sha256_file(&first.tar),
        sha256_file(&second),
        "a second build (other directory, umask, TZ, locale) differs"
    );

    // The same again through the install cache: the first build fills it,
    // the second takes its tree from it; both give the first build's bytes.
    let cache = dir.join("install-cache");
    for round in ["fills", "uses"] {
        std::fs::remove_dir_all(dir.join("out")).unwrap();
        let out = run_ok(
            kiln()
                .current_dir(&dir)
                .args(["build", "node.toml", "--locked", "-o", "out"])
                .args(["--compression", "none", "--cache-dir"])
                .arg(&cache),
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            log.contains("from the install cache"),
            round == "uses",
            "{log}"
        );
        assert_eq!(
            sha256_file(&first.tar),
            sha256_file(&second),
            "a build that {round} the install cache differs"
        );
    }
}

/// Extracts kiln's image and runs `script` in it, isolated by kiln itself;
/// returns the output.
fn in_image(root: &Path, script: &str) -> (bool, String) {
    let log = root.with_extension("log");
    let env = [
        (
            "PATH".to_owned(),
            "/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        ("LC_ALL".to_owned(), "C.UTF-8".to_owned()),
    ];
    let status = kiln::install::run_shell(root, script, &env, &log).unwrap();
    (status.success(), std::fs::read_to_string(&log).unwrap())
}

fn extracted(name: &str) -> PathBuf {
    let root = built().dir.with_file_name(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "-xpf"])
            .arg(&built().tar)
            .arg("-C")
            .arg(&root),
    );
    root
}

#[test]
#[ignore = "needs root and network"]
fn node_rootfs_is_a_working_debian_system() {
    require_root("chroot into the image");
    let root = extracted("root-checks");
    let lock = std::fs::read_to_string(built().dir.join("node.lock")).unwrap();
    let locked: BTreeSet<String> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .map(|n| n.trim_end_matches('"').to_owned())
        .collect();

    let (ok, listed) = in_image(
        &root,
        "dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n'",
    );
    assert!(ok, "{listed}");
    let installed: BTreeSet<String> = listed
        .lines()
        .filter_map(|l| l.strip_prefix("ii  "))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        installed, locked,
        "dpkg does not list every locked package as installed"
    );

    let (ok, audit) = in_image(&root, "dpkg --audit");
    assert!(ok && audit.trim().is_empty(), "dpkg --audit: {audit}");
    // Every file as its package shipped it, except what the packages'
    // own scripts are meant to change.
    let (_, verify) = in_image(&root, "dpkg --verify");
    assert!(verify.trim().is_empty(), "dpkg --verify: {verify}");

    let (ok, sshd) = in_image(
        &root,
        "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && mkdir -p /run/sshd && /usr/sbin/sshd -t && echo sshd-ok",
    );
    assert!(ok && sshd.contains("sshd-ok"), "sshd -t: {sshd}");
    let (ok, user) = in_image(&root, "getent passwd sshd");
    assert!(
        ok && user.starts_with("sshd:"),
        "getent passwd sshd: {user}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
#[ignore = "needs root and network"]
fn maintainer_scripts_run_isolated_from_the_host() {
    require_root("namespaces and chroot");
    let root = extracted("root-isolation");
    let (ok, out) = in_image(
        &root,
        "echo pid=$$; echo host=$(cat /proc/sys/kernel/hostname); \
         echo links=$(ls /sys/class/net | tr '\\n' ' '); \
         test -c /dev/null && echo devnull; \
         echo state > /run/left-behind; \
         sleep 600 & echo bg=started",
    );
    assert!(ok, "{out}");
    // PID 1 of its own namespace is the sandbox's init; the shell is its
    // first child
    assert!(
        out.contains("pid=2\n"),
        "not the first child of its own namespace's init: {out}"
    );
    assert!(
        out.contains("host=localhost\n"),
        "the host's name leaked in: {out}"
    );
    assert!(
        out.contains("links=lo\n"),
        "network devices other than lo: {out}"
    );
    assert!(out.contains("devnull"), "no /dev/null: {out}");
    assert!(
        !root.join("run/left-behind").exists(),
        "what a script leaves in /run must not reach the image"
    );
    // The background process died with its namespace: nothing has the
    // image as its root any more.
    let canonical = std::fs::canonicalize(&root).unwrap();
    for proc_dir in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(r) = std::fs::read_link(proc_dir.path().join("root")) {
            assert_ne!(
                r,
                canonical,
                "process {:?} outlived the run",
                proc_dir.file_name()
            );
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
#[ignore = "needs root and network"]
fn node_set_builds_the_same_without_root() {
    use std::os::unix::fs::PermissionsExt;
    require_root("making an unprivileged user with subordinate ids for the test");
    let first = built();
    // nobody (65534) builds in a directory of its own, with its own copy of
    // kiln and 65536 subordinate ids granted by /etc/subuid and /etc/subgid
    // (bind-mounted over the host's in a private mount namespace).
    // In the temporary directory, which every user can reach (the
    // repository may sit below a directory only root can enter).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    write_recipe(&dir);
    std::fs::copy(first.dir.join("node.lock"), dir.join("node.lock")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), dir.join("kiln")).unwrap();
    std::fs::write(dir.join("subids"), "nobody:200000:65536\n").unwrap();
    for file in ["/etc/subuid", "/etc/subgid"] {
        if !Path::new(file).exists() {
            std::fs::write(file, "").unwrap(); // what shadow's tools start from
        }
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = format!(
        "mount --bind subids /etc/subuid && mount --bind subids /etc/subgid && \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME={dir} \
         ./kiln build node.toml --locked -o out --compression none --cache-dir cache",
        dir = dir.display()
    );
    let out = run_ok(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .current_dir(&dir),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in a user namespace"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sha256_file(&first.tar),
        sha256_file(&dir.join("out/node-1.rootfs.tar")),
        "configured without root, the image differs"
    );
}
