//! The sandbox of maintainer scripts as a script sees it, in one build:
//! its ids, namespaces, mounts and their options, /dev, limits, session
//! and network. `hostile_packages` attacks each wall in turn; this test
//! pins down every wall at once, cheaply enough to run for each mutant of
//! `src/install/{ids,userns,isolate}.rs` (see the Justfile's `mutants`).

use crate::common::*;
use crate::hostile_packages::{Host, build, build_on};

/// Writes what the sandbox looks like into the evidence, one fact a line.
const PROBE: &str = r#"
say "uid_map: $(tr -s ' ' < /proc/self/uid_map)"
say "gid_map: $(tr -s ' ' < /proc/self/gid_map)"
say "setgroups: $(cat /proc/self/setgroups)"
say "hostname: $(cat /proc/sys/kernel/hostname)"
say "dev: $(ls /dev | tr '\n' ' ')"
for l in fd stdin stdout stderr ptmx; do say "dev link $l: $(readlink /dev/$l)"; done
say "net: $(ls /sys/class/net | tr '\n' ' ')"
grep -E '^Max (processes|core file size)' /proc/self/limits | tr -s ' ' | while read -r l; do say "limit: $l"; done
while read -r dev at type opts rest; do say "mount: $at $type $opts"; done < /proc/self/mounts
for n in mnt pid net uts ipc cgroup user; do say "ns $n: $(readlink /proc/self/ns/$n)"; done
read -r pid comm state ppid pgrp session tty rest < /proc/self/stat
say "session: $session"
say "tty: $tty"
say "pid 1: $(tr '\0' ' ' < /proc/1/cmdline)"
say "root: $(ls / | tr '\n' ' ')"
ischroot && say "ischroot: yes" || say "ischroot: no ($?)"
exit 0
"#;

#[test]
#[ignore = "needs root"]
fn the_sandbox_as_a_script_sees_it() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(&host, "sandbox-probe", "", PROBE, &[]);
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(b.ok(), "{}", b.report());
    let evidence = b.evidence();
    let facts: Vec<&str> = evidence.lines().collect();
    let fact = |key: &str| -> Vec<&str> {
        facts
            .iter()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
            .map(str::trim)
            .collect()
    };
    let report = b.report();
    // the image's ids 0-65535 are host ids from 0x7F000000
    assert_eq!(fact("uid_map"), ["0 2130706432 65536"], "{report}");
    assert_eq!(fact("gid_map"), ["0 2130706432 65536"], "{report}");
    assert_eq!(fact("hostname"), ["localhost"], "{report}");
    assert_eq!(
        fact("dev"),
        ["fd full null ptmx pts random shm stderr stdin stdout tty urandom zero"],
        "{report}"
    );
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        assert_eq!(fact(&format!("dev link {link}")), [target], "{report}");
    }
    assert_eq!(fact("net"), ["lo"], "{report}");
    assert_eq!(
        fact("limit"),
        [
            "Max core file size 0 0 bytes",
            "Max processes 1024 1024 processes"
        ],
        "{report}"
    );
    // a session of its own, led by the namespace's PID 1, without a terminal
    assert_eq!(fact("session"), ["1"], "{report}");
    assert_eq!(fact("tty"), ["0"], "{report}");
    // PID 1 is the sandbox's init outside the image; the scripts run
    // chrooted below it, so `ischroot` tells them they are not a booted
    // system (as under debootstrap and mmdebstrap)
    assert!(
        fact("pid 1")[0].starts_with("sandbox-init __sandbox "),
        "{report}"
    );
    assert_eq!(fact("ischroot"), ["yes"], "{report}");
    assert_eq!(
        fact("root"),
        ["bin dev etc lib lib64 mnt proc run sbin sys tmp usr var"],
        "{report}"
    );
    // every namespace is the sandbox's own
    for ns in ["mnt", "pid", "net", "uts", "ipc", "cgroup", "user"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let inside = fact(&format!("ns {ns}"));
        assert_eq!(inside.len(), 1, "{report}");
        assert_ne!(inside[0], host.to_str().unwrap(), "{ns}: {report}");
    }
    // the mounts, in order, each with the options that matter; /sys only
    // where the host allows it
    let mounts: Vec<(&str, &str, Vec<&str>)> = fact("mount")
        .iter()
        .map(|m| {
            let mut fields = m.split(' ');
            let (at, kind) = (fields.next().unwrap(), fields.next().unwrap());
            (at, kind, fields.next().unwrap().split(',').collect())
        })
        .collect();
    // (the sandbox's root, above the image, does not show)
    let mut expected: Vec<(&str, &str, &[&str])> = vec![
        ("/dev", "tmpfs", &["nosuid", "noexec", "mode=755"]),
        ("/dev/null", "devtmpfs", &[]),
        ("/dev/zero", "devtmpfs", &[]),
        ("/dev/full", "devtmpfs", &[]),
        ("/dev/random", "devtmpfs", &[]),
        ("/dev/urandom", "devtmpfs", &[]),
        ("/dev/tty", "devtmpfs", &[]),
        ("/dev/shm", "tmpfs", &["nosuid", "nodev"]),
        (
            "/dev/pts",
            "devpts",
            &["nosuid", "noexec", "mode=620", "ptmxmode=666"],
        ),
        ("/run", "tmpfs", &["nosuid", "nodev", "mode=755"]),
        ("/sys", "sysfs", &["ro", "nosuid", "nodev", "noexec"]),
        ("/proc", "proc", &["nosuid", "nodev", "noexec"]),
    ];
    if !mounts.iter().any(|(at, _, _)| *at == "/sys") {
        expected.retain(|(at, _, _)| *at != "/sys");
    }
    assert_eq!(
        mounts.iter().map(|(at, _, _)| *at).collect::<Vec<_>>(),
        expected.iter().map(|(at, _, _)| *at).collect::<Vec<_>>(),
        "{report}"
    );
    for ((at, kind, options), (_, expected_kind, required)) in mounts.iter().zip(&expected) {
        assert_eq!(kind, expected_kind, "{at}: {report}");
        for option in *required {
            assert!(options.contains(option), "{at} lacks {option}: {report}");
        }
    }
}

/// The base's device nodes wait outside the sandbox (a user namespace
/// cannot make them, and the scripts' /dev is a tmpfs) and come back
/// where they were, with their modes.
#[test]
#[ignore = "needs root"]
fn device_nodes_of_the_base_come_back_after_the_scripts() {
    require_root("device nodes in a base tarball");
    let mut host = Host::watch();
    let b = build_on(
        &host,
        "sandbox-devices",
        "",
        "say \"dev: $(ls /dev | tr '\\n' ' ')\"\nexit 0\n",
        &[],
        "mkdir -p $b/dev/sub && mknod -m 600 $b/dev/console c 5 1 && \
         mknod -m 666 $b/dev/sub/zero c 1 5",
    );
    host.assert_untouched(&b);
    assert!(b.ok(), "{}", b.report());
    // the scripts saw only the sandbox's own /dev
    assert!(
        b.evidence()
            .contains("dev: fd full null ptmx pts random shm stderr stdin stdout tty urandom zero"),
        "{}",
        b.report()
    );
    let image = b.image();
    for (path, mode) in [("/dev/console", 0o600), ("/dev/sub/zero", 0o666)] {
        let (member, _) = image
            .get(path)
            .unwrap_or_else(|| panic!("{path} is missing: {}", b.report()));
        assert_eq!((member.kind, member.mode & 0o7777), ('c', mode), "{path}");
    }
}
