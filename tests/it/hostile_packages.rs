//! Packages whose maintainer scripts attack the build host, each class of
//! escape in a package of its own (built with dpkg-deb, served from a test
//! repository, configured by the host's own dpkg on a base of host tools):
//! chroot tricks, other processes' /proc roots, device nodes, mounts,
//! signals and ptrace, /sys and /proc/sys, a daemon that outlives its
//! script, the network, a script that never ends, a fork bomb, a flood of
//! output.
//!
//! What must hold after each build: nothing of the host changed — a canary
//! tree (files and directories with known content, some writable by
//! anyone) keeps every byte, owner, mode, mtime and ctime, and nothing in
//! the host's usual targets (/ and /root themselves, everything below
//! /etc, /root/.ssh, /usr/local, /boot, /var/spool) changed after the
//! build began, whatever its name; a TCP listener on the host saw no
//! connection; a host process the scripts look for is alive; nothing the
//! scripts started is left running; and the build either succeeded with an
//! image free of device nodes and of the scripts' marks of success, or
//! failed naming the package.
//!
//! The scripts write what they tried into the image
//! (/var/lib/hostile/evidence), for the assertions and for a reader of a
//! failure; the host's state is the judge.

use crate::common;

use common::debrepo::{Deb, TestRepo};
use common::oracle::{Member, read_tar};
use common::*;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SUITE: &str = "hostile";

/// Programs of the build host copied into the test base, with their
/// libraries: dpkg and what it runs, and the scripts' tools.
const TOOLS: &[&str] = &[
    "sh",
    "bash",
    "perl",
    "rm",
    "mv",
    "cp",
    "tar",
    "diff",
    "ldconfig",
    "start-stop-daemon",
    "dpkg",
    "dpkg-deb",
    "cat",
    "grep",
    "sleep",
    "chown",
    "mkdir",
    "mknod",
    "mkfifo",
    "mount",
    "umount",
    "dd",
    "setsid",
    "nohup",
    "ls",
    "readlink",
    "touch",
    "head",
    "ip",
    "tr",
    "ischroot",
];

/// The shell functions every hostile script starts with: `say` records a
/// line of evidence in the image, `try` records whether a command worked
/// (and if not, its first line of complaint).
const PROLOGUE: &str = r#"#!/bin/sh
E=/var/lib/hostile/evidence
mkdir -p /var/lib/hostile
say() { echo "$*" >> $E; }
try() {
    what=$1; shift
    if err=$("$@" 2>&1 >/dev/null); then say "$what: ok"; else say "$what: denied: $(echo "$err" | head -n 1)"; fi
}
"#;

/// What a script does once it believes it reached the host: change the
/// canary and leave files where an attacker would.
const PAYLOAD: &str = r#"
if [ -e @CANARY@/secret ]; then
    echo pwned > @CANARY@/secret
    echo pwned > @CANARY@/world-writable
    echo pwned > @CANARY@/open-dir/planted
    echo ESCAPED
fi
echo pwned > /kiln-hostile-@TAG@
echo pwned > /etc/kiln-hostile-@TAG@
"#;

fn unique_tag() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!(
        "{}{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A base tarball of the host's tools (above) on a merged /usr.
/// `extra` runs last, in the shell that made it (`$b` is the base).
fn host_tools_base(dir: &Path, extra: &str) -> PathBuf {
    let base = dir.join("host-tools");
    sh(
        dir,
        &format!(
            r#"b={base}
            mkdir -p $b/usr/bin $b/usr/sbin $b/usr/lib $b/usr/lib64 $b/etc $b/tmp $b/mnt
            for d in bin sbin lib lib64; do ln -s usr/$d $b/$d; done
            for p in {tools}; do
                src=$(command -v $p)
                cp -L "$src" "$b/usr/bin/$p"
                for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*'); do
                    mkdir -p "$b$(dirname "$lib")"
                    cp -L "$lib" "$b$lib"
                done
            done
            {extra}"#,
            base = base.display(),
            tools = TOOLS.join(" ")
        ),
    );
    let tar = dir.join("host-tools.tar");
    gnu_tar(&base, &tar);
    tar
}

/// One file or directory of the canary tree, as `lstat` and the content
/// describe it.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    content: Option<String>,
}

fn stat(path: &Path) -> Stat {
    let m = std::fs::symlink_metadata(path).unwrap();
    let content = if m.file_type().is_symlink() {
        Some(std::fs::read_link(path).unwrap().display().to_string())
    } else if m.is_file() {
        Some(String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned())
    } else {
        None
    };
    Stat {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        content,
    }
}

fn snapshot(root: &Path) -> BTreeMap<String, Stat> {
    let mut out: BTreeMap<String, Stat> = list_dir(root)
        .into_iter()
        .map(|p| {
            let s = stat(&root.join(&p));
            (p, s)
        })
        .collect();
    out.insert(".".to_owned(), stat(root));
    out
}

/// Where an escaped script would write on a host, and how deep to look
/// below each (0: only the directory itself, whose ctime changes when an
/// entry is added, removed or renamed in it). The contents of the top
/// directories are not all watched: other processes on the host change
/// them all the time.
const WATCHED: &[(&str, usize)] = &[
    ("/", 0),
    ("/root", 0),
    ("/etc", usize::MAX),
    ("/root/.ssh", usize::MAX),
    ("/usr/local", usize::MAX),
    ("/boot", usize::MAX),
    ("/var/spool", usize::MAX),
];

/// Paths below `root` (to `depth` levels) whose inode changed after
/// `since` (a ctime).
fn changed_since(root: &Path, depth: usize, since: (i64, i64), out: &mut Vec<String>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if (m.ctime(), m.ctime_nsec()) > since {
            out.push(path.display().to_string());
        }
        if m.is_dir() {
            changed_since(&path, depth - 1, since, out);
        }
    }
}

/// The build host, watched: a canary tree, a TCP listener, a process the
/// scripts look for.
pub(super) struct Host {
    /// Holds the canary tree and the marker; not inside the build's
    /// directories.
    tmp: tempfile::TempDir,
    canary: PathBuf,
    canary_before: BTreeMap<String, Stat>,
    /// The ctime of a file made after the canary and before the build.
    since: (i64, i64),
    listener: TcpListener,
    victim: Child,
    victim_tag: String,
    /// The device of the canary's file system, for mknod.
    device: (u32, u32),
    /// Host files the scripts might change: (path, content).
    sysctls: Vec<(PathBuf, String)>,
}

const SYSCTLS: &[&str] = &[
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/hostname",
    "/sys/kernel/mm/transparent_hugepage/enabled",
];

impl Host {
    pub(super) fn watch() -> Host {
        let tmp = tempfile::tempdir().unwrap();
        // Anyone may enter: the world-writable canaries are the ones a
        // sandboxed process with host ids of its own could reach.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let canary = tmp.path().join("canary");
        sh(
            tmp.path(),
            "mkdir canary canary/dir canary/open-dir
             echo 'canary secret' > canary/secret && chmod 600 canary/secret
             echo 'anyone may write' > canary/world-writable && chmod 666 canary/world-writable
             echo 'in a directory' > canary/dir/file
             chmod 777 canary/open-dir
             ln -s secret canary/link",
        );
        let canary_before = snapshot(&canary);
        // The marker's ctime is the kernel's clock at the start; anything
        // changed from then on has a later one. (The clock has ticks of
        // milliseconds: the canary must be older than the marker.)
        std::thread::sleep(Duration::from_millis(50));
        let marker = tmp.path().join("marker");
        std::fs::write(&marker, "").unwrap();
        let m = std::fs::metadata(&marker).unwrap();
        let since = (m.ctime(), m.ctime_nsec());
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let victim_tag = format!("86.{}", unique_tag());
        let victim = Command::new("sleep")
            .arg(&victim_tag)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let dev = std::fs::metadata(&canary).unwrap().dev();
        let device = (libc::major(dev), libc::minor(dev));
        let sysctls = SYSCTLS
            .iter()
            .filter_map(|p| Some((PathBuf::from(p), std::fs::read_to_string(p).ok()?)))
            .collect();
        Host {
            tmp,
            canary,
            canary_before,
            since,
            listener,
            victim,
            victim_tag,
            device,
            sysctls,
        }
    }

    /// The host's address other than loopback, if it has one.
    fn address() -> Option<String> {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect("192.0.2.1:9").ok()?;
        Some(socket.local_addr().ok()?.ip().to_string())
    }

    /// `script` with the placeholders filled in.
    fn fill(&self, script: &str, tag: &str) -> &'static str {
        let port = self.listener.local_addr().unwrap().port().to_string();
        let text = script
            .replace("@PAYLOAD@", PAYLOAD)
            .replace("@CANARY@", &self.canary.display().to_string())
            .replace("@TAG@", tag)
            .replace("@PORT@", &port)
            .replace(
                "@HOSTIP@",
                &Host::address().unwrap_or_else(|| "127.0.0.1".to_owned()),
            )
            .replace("@VICTIM@", &self.victim_tag)
            .replace("@TESTPID@", &std::process::id().to_string())
            .replace("@MAJOR@", &self.device.0.to_string())
            .replace("@MINOR@", &self.device.1.to_string());
        Box::leak(format!("{PROLOGUE}{text}").into_boxed_str())
    }

    /// Every check of the host; panics with what changed.
    pub(super) fn assert_untouched(&mut self, build: &Build) {
        let after = snapshot(&self.canary);
        for (path, before) in &self.canary_before {
            assert_eq!(
                after.get(path),
                Some(before),
                "{}: the canary {path} changed\n{}",
                build.package,
                build.report()
            );
        }
        let added: Vec<&String> = after
            .keys()
            .filter(|p| !self.canary_before.contains_key(*p))
            .collect();
        assert!(
            added.is_empty(),
            "{}: files appeared in the canary: {added:?}\n{}",
            build.package,
            build.report()
        );
        let mut changed = Vec::new();
        for (root, depth) in WATCHED {
            let m = std::fs::symlink_metadata(root);
            if m.is_ok_and(|m| (m.ctime(), m.ctime_nsec()) > self.since) {
                changed.push(root.to_string());
            }
            changed_since(Path::new(root), *depth, self.since, &mut changed);
        }
        changed_since(self.tmp.path(), usize::MAX, self.since, &mut changed);
        changed.retain(|p| !p.ends_with("/marker"));
        assert!(
            changed.is_empty(),
            "{}: host files changed during the build: {changed:?}\n{}",
            build.package,
            build.report()
        );
        match self.listener.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!(
                "{}: the host's listener was reached: {other:?}\n{}",
                build.package,
                build.report()
            ),
        }
        assert!(
            self.victim.try_wait().unwrap().is_none(),
            "{}: a host process was killed\n{}",
            build.package,
            build.report()
        );
        for (path, before) in &self.sysctls {
            assert_eq!(
                &std::fs::read_to_string(path).unwrap(),
                before,
                "{}: {} changed",
                build.package,
                path.display()
            );
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.victim.kill();
        let _ = self.victim.wait();
    }
}

/// A build of one hostile package.
pub(super) struct Build {
    package: &'static str,
    /// What `@TAG@` stood for in its scripts.
    tag: String,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    out: Output,
    took: Duration,
}

impl Build {
    pub(super) fn ok(&self) -> bool {
        self.out.status.success()
    }

    pub(super) fn text(&self) -> String {
        output_text(&self.out)
    }

    pub(super) fn image(&self) -> BTreeMap<String, (Member, Vec<u8>)> {
        read_tar(&self.dir.join("out/deb-1.rootfs.tar"))
    }

    /// What the scripts wrote down, if the image exists.
    pub(super) fn evidence(&self) -> String {
        if !self.ok() {
            return String::new();
        }
        self.image()
            .get("/var/lib/hostile/evidence")
            .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_default()
    }

    pub(super) fn report(&self) -> String {
        format!(
            "build {} after {:.1}s:\n{}\nevidence:\n{}",
            self.out.status,
            self.took.as_secs_f64(),
            self.text(),
            self.evidence()
        )
    }

    /// Succeeded with a clean image, or failed naming the package.
    pub(super) fn assert_contained(&self) {
        if !self.ok() {
            assert!(
                self.text().contains(self.package),
                "a failed build must name {}:\n{}",
                self.package,
                self.report()
            );
            return;
        }
        let image = self.image();
        let devices: Vec<&String> = image
            .iter()
            .filter(|(_, (m, _))| matches!(m.kind, 'b' | 'c'))
            .map(|(p, _)| p)
            .collect();
        assert!(
            devices.is_empty(),
            "{}: device nodes in the image: {devices:?}\n{}",
            self.package,
            self.report()
        );
        let evidence = self.evidence();
        assert!(
            !evidence.contains("ESCAPED"),
            "{}: a script reports an escape:\n{}",
            self.package,
            self.report()
        );
    }
}

/// Builds a recipe with the package `name` (its `preinst` and `postinst`
/// as given, either may be empty) on the base of host tools.
pub(super) fn build(
    host: &Host,
    name: &'static str,
    preinst: &str,
    postinst: &str,
    env: &[(&str, &str)],
) -> Build {
    build_on(host, name, preinst, postinst, env, "")
}

/// [`build`] on a base that `extra` (a shell snippet, `$b` the base
/// directory) adds to.
pub(super) fn build_on(
    host: &Host,
    name: &'static str,
    preinst: &str,
    postinst: &str,
    env: &[(&str, &str)],
    extra: &str,
) -> Build {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let tag = unique_tag();
    let mut control = Vec::new();
    for (member, script) in [("preinst", preinst), ("postinst", postinst)] {
        if !script.is_empty() {
            control.push((member, host.fill(script, &tag)));
        }
    }
    let repo = TestRepo::new(&dir);
    repo.add(
        SUITE,
        &Deb {
            name,
            version: "1",
            files: vec![("/usr/share/doc/hostile/README", "hostile\n")],
            control,
            ..Deb::default()
        },
    );
    repo.publish(SUITE, "");
    std::fs::copy(&repo.keyring, dir.join("keyring.gpg")).unwrap();
    let base = host_tools_base(&dir, extra);
    std::fs::write(
        dir.join("r.toml"),
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"deb\"\nversion = \"1\"\nsource_date_epoch = 1700000000\n\n\
             [debian]\nsuite = \"{SUITE}\"\nupdates = false\nsecurity = false\nvariant = \"essential\"\n\
             packages = [\"{name}\"]\nkeyring = \"keyring.gpg\"\nmirror = \"{}\"\n\n\
             [base]\npath = \"{}\"\nsha256 = \"{}\"\n",
            repo.url(),
            base.display(),
            sha256_file(&base)
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = kiln()
        .current_dir(&dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .envs(env.iter().copied())
        .args(["build", "r.toml", "-o", "out", "--compression", "none"])
        .arg("--no-install-cache")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Build {
        package: name,
        tag,
        _tmp: tmp,
        dir,
        out,
        took: started.elapsed(),
    }
}

/// Processes on the host whose command line contains `tag`.
fn processes_with(tag: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| {
            std::fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(tag))
        })
        .map(|p| p.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits up to a few seconds for the processes with `tag` to be gone.
fn assert_none_left(tag: &str, build: &Build) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with(tag);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: processes {left:?} outlived the build\n{}",
            build.package,
            build.report()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The classic: a root process chroots into a subdirectory, so that its
/// working directory lies outside its root, climbs out with `..` and
/// chroots to where it ended up. The scripts run chrooted into the image
/// below the sandbox's root, a tmpfs holding nothing but the image (with
/// pivot_root and the old root unmounted): that is the top it reaches.
const CHROOT_ESCAPE: &str = r#"
cd /
result=$(LC_ALL=C perl -e '
    mkdir "/tmp/jail";
    chroot "/tmp/jail" or die "chroot: $!";
    chdir ".." for 1 .. 64;
    chroot "." or die "chroot .: $!";
    chdir "/";
    print "ESCAPED " if -e $ARGV[0];
    opendir(my $top, "/") or die "opendir: $!";
    print join(" ", sort grep { !/^\.\.?$/ } readdir $top);
' '@CANARY@/secret' 2>&1)
say "chroot escape reached: $result"
"#;

#[test]
#[ignore = "needs root"]
fn chroot_tricks_stay_in_the_image() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(&host, "hostile-chroot", CHROOT_ESCAPE, CHROOT_ESCAPE, &[]);
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(b.ok(), "{}", b.report());
    // Both scripts tried, and found only the image above them.
    assert_eq!(
        b.evidence()
            .matches("chroot escape reached: image\n")
            .count(),
        2,
        "{}",
        b.report()
    );
}

#[test]
#[ignore = "needs root"]
fn other_processes_proc_roots_and_cwds_lead_nowhere() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(
        &host,
        "hostile-proc",
        "",
        r#"
for p in /proc/[0-9]*; do
    say "process ${p#/proc/}: $(tr '\0' ' ' < $p/cmdline 2>/dev/null)"
    for way in root cwd; do
        if [ -e $p/$way@CANARY@/secret ]; then
            say "ESCAPED through $p/$way"
            echo pwned > $p/$way@CANARY@/world-writable
        fi
    done
done
for way in /proc/1/root /proc/1/cwd /proc/self/root; do
    say "$way: $(ls $way/ | tr '\n' ' ')"
done
say "fds: $(ls -l /proc/self/fd/ | grep -o '[0-9]* -> .*' | tr '\n' ' ')"
say "mounts:"
cat /proc/self/mountinfo >> $E
"#,
        &[],
    );
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(b.ok(), "{}", b.report());
    let evidence = b.evidence();
    // The scripts see only the sandbox's processes: not kiln, its helper,
    // the test or the host process they look for.
    for line in evidence.lines().filter(|l| l.starts_with("process ")) {
        for foreign in ["kiln", "__configure-helper", &host.victim_tag, "cargo"] {
            assert!(
                !line.contains(foreign),
                "the sandbox sees {line:?}\n{}",
                b.report()
            );
        }
    }
    // PID 1 is the sandbox's init, outside the chroot; the scripts' shell
    // is its child. Its root and working directory cannot be followed.
    assert!(
        evidence.contains("process 1: sandbox-init __sandbox /proc/self/fd/"),
        "{evidence}"
    );
    assert!(evidence.contains("process 2: /bin/sh -c"), "{evidence}");
    assert!(evidence.contains("/proc/1/root: \n"), "{evidence}");
    // No mount of the sandbox, and no descriptor, names a host path.
    for host_path in [
        b.dir.display().to_string(),
        host.canary.display().to_string(),
    ] {
        assert!(
            !evidence.contains(&host_path),
            "the sandbox sees {host_path}:\n{evidence}"
        );
    }
    let mounts: Vec<&str> = evidence
        .lines()
        .skip_while(|l| *l != "mounts:")
        .skip(1)
        .collect();
    // Only mounts below the image's root show, the sandbox's own.
    assert!(
        mounts.iter().any(|l| l.split(' ').nth(4) == Some("/proc")),
        "no /proc in {mounts:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn device_nodes_cannot_be_made_and_fifos_work_inside_the_sandbox() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(
        &host,
        "hostile-mknod",
        r#"
try "mknod block device of the host's disk" mknod /tmp/disk b @MAJOR@ @MINOR@
try "read the host's disk" dd if=/tmp/disk of=/dev/null bs=512 count=1
[ -b /tmp/disk ] && say "ESCAPED: a block device"
try "mknod /dev/mem" mknod /tmp/mem c 1 1
try "read /dev/mem" dd if=/tmp/mem of=/dev/null bs=1 count=1
[ -c /tmp/mem ] && say "ESCAPED: a char device"
exit 0
"#,
        r#"
try "mknod a block device in /dev" mknod /dev/sdz b @MAJOR@ @MINOR@
try "mkfifo outside /dev" mkfifo /etc/hostile-fifo
exec 3<>/etc/hostile-fifo && echo through >&3 && read line <&3 && say "fifo: $line"
exec 3>&-
rm -f /etc/hostile-fifo
say "dev: $(ls /dev | tr '\n' ' ')"
exit 0
"#,
        &[],
    );
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(b.ok(), "{}", b.report());
    let evidence = b.evidence();
    for denied in [
        "mknod block device of the host's disk: denied",
        "read the host's disk: denied",
        "mknod /dev/mem: denied",
        "mknod a block device in /dev: denied",
    ] {
        assert!(evidence.contains(denied), "{denied}:\n{evidence}");
    }
    // A fifo works while the scripts run; one left outside /dev would be
    // refused when the tree is read back (hostile::the_tree_read_back_…).
    assert!(evidence.contains("fifo: through"), "{evidence}");
    assert!(!b.image().contains_key("/etc/hostile-fifo"));
    // Only what kiln bound into /dev.
    let dev = evidence
        .lines()
        .find_map(|l| l.strip_prefix("dev: "))
        .unwrap();
    assert_eq!(
        dev.split_whitespace().collect::<Vec<_>>(),
        [
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "tty", "urandom", "zero"
        ]
    );
}

#[test]
#[ignore = "needs root"]
fn a_script_that_insists_on_a_device_node_fails_the_build_naming_its_package() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(
        &host,
        "hostile-mknod-strict",
        "",
        "set -e\nmknod /dev/hostile-disk b @MAJOR@ @MINOR@\n",
        &[],
    );
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(!b.ok(), "{}", b.report());
    assert!(
        b.text()
            .contains("the maintainer scripts of hostile-mknod-strict failed"),
        "{}",
        b.report()
    );
    assert!(
        b.text().contains("Operation not permitted"),
        "{}",
        b.report()
    );
}

#[test]
#[ignore = "needs root"]
fn mounts_stay_inside_the_sandbox() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(
        &host,
        "hostile-mount",
        "",
        r#"
mkdir -p /mnt/proc /mnt/tmp /mnt/root /mnt/disk
try "mount proc" mount -t proc proc /mnt/proc
try "mount tmpfs" mount -t tmpfs tmpfs /mnt/tmp
try "bind /" mount --bind / /mnt/root
[ -e /mnt/root@CANARY@/secret ] && say "ESCAPED through a bind of /"
[ -e /mnt/proc/1/root@CANARY@/secret ] && say "ESCAPED through a new proc"
# The host's disk, if a device node could be made.
mknod /tmp/disk b @MAJOR@ @MINOR@ 2>/dev/null
try "mount the host's disk" mount /tmp/disk /mnt/disk
if [ -e /mnt/disk@CANARY@/secret ]; then
    say "ESCAPED through the host's disk"
    echo pwned > /mnt/disk@CANARY@/world-writable
fi
try "remount /sys read-write" mount -o remount,rw /sys
# Below the sandbox's mounts is the image, not the host.
try "unmount /sys" umount -l /sys
[ -e /sys@CANARY@/secret ] && say "ESCAPED below /sys"
echo data > /mnt/tmp/left-in-a-tmpfs
exit 0
"#,
        &[],
    );
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(b.ok(), "{}", b.report());
    let evidence = b.evidence();
    assert!(
        evidence.contains("mount the host's disk: denied"),
        "{evidence}"
    );
    // What the scripts mounted went with the sandbox.
    assert!(
        !b.image().contains_key("/mnt/tmp/left-in-a-tmpfs"),
        "{evidence}"
    );
}

#[test]
#[ignore = "needs root"]
fn processes_outside_cannot_be_signalled_traced_or_read() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(
        &host,
        "hostile-kill",
        "",
        r#"
for p in /proc/[0-9]*; do
    p=${p#/proc/}
    cmd=$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)
    case "$cmd" in
        *@VICTIM@*|*kiln*|*configure-helper*)
            say "ESCAPED: sees $p $cmd"
            kill -9 $p
            ;;
    esac
done
for p in @TESTPID@; do
    try "signal the test's pid" kill -0 $p
    try "read the test's memory" dd if=/proc/$p/mem of=/dev/null bs=1 count=1
    try "ptrace the test" perl -e 'exit(syscall(101, 16, $ARGV[0], 0, 0) == -1)' $p
done
# Everything this script may signal: only the sandbox's own processes,
# dpkg among them, so the build fails here.
kill -9 -1
sleep 1
"#,
        &[],
    );
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(!b.ok(), "dpkg itself was killed:\n{}", b.report());
    assert!(
        b.text().contains("while the postinst of hostile-kill ran"),
        "{}",
        b.report()
    );
    assert!(!b.text().contains("ESCAPED"), "{}", b.report());
}

#[test]
#[ignore = "needs root"]
fn sysfs_and_proc_sys_cannot_be_written() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    // Each write puts back the value the file has, so that a kiln that
    // let it through changes nothing, yet is caught by the script's own
    // account.
    let b = build(
        &host,
        "hostile-sys",
        "",
        r#"
same() { v=$(cat "$1") || return 1; printf '%s\n' "$v" > "$1"; }
bracketed() { v=$(grep -o '\[[a-z]*\]' "$1" | tr -d '[]') || return 1; echo "$v" > "$1"; }
write() {
    if "$@" 2>/dev/null; then say "ESCAPED: wrote $2"; else say "write $2: denied"; fi
}
write same /proc/sys/kernel/core_pattern
write same /proc/sys/vm/overcommit_memory
write same /proc/sys/kernel/randomize_va_space
write bracketed /sys/kernel/mm/transparent_hugepage/enabled
mount -o remount,rw /sys 2>/dev/null && say "remounted /sys read-write"
write bracketed /sys/kernel/mm/transparent_hugepage/enabled
write same /sys/module/printk/parameters/time
# The sandbox's own name, not the host's.
say "hostname: $(cat /proc/sys/kernel/hostname)"
exit 0
"#,
        &[],
    );
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(b.ok(), "{}", b.report());
    let evidence = b.evidence();
    assert!(
        evidence.contains("write /proc/sys/kernel/core_pattern: denied"),
        "{evidence}"
    );
    assert!(evidence.contains("hostname: localhost"), "{evidence}");
}

#[test]
#[ignore = "needs root"]
fn a_daemon_dies_with_the_sandbox() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(
        &host,
        "hostile-daemon",
        "",
        r#"
# Detached every way a daemon detaches: a new session, no hangup, its
# parent gone; it wakes after the build and writes.
setsid nohup sh -c 'sleep 4.@TAG@; echo late > /etc/hostile-late; @PAYLOAD@' > /dev/null 2>&1 &
( setsid sh -c 'sleep 4.@TAG@; echo pwned > @CANARY@/world-writable' > /dev/null 2>&1 & ) &
say "daemons started"
exit 0
"#,
        &[],
    );
    b.assert_contained();
    assert!(b.ok(), "{}", b.report());
    assert!(b.evidence().contains("daemons started"));
    let image = b.image();
    assert!(!image.contains_key("/etc/hostile-late"), "{}", b.report());
    // Gone now, and nothing written when they would have woken.
    assert_none_left(&format!("sleep 4.{}", b.tag), &b);
    std::thread::sleep(Duration::from_secs(5));
    host.assert_untouched(&b);
}

#[test]
#[ignore = "needs root"]
fn the_network_is_a_loopback_of_the_sandboxs_own() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(
        &host,
        "hostile-net",
        "",
        r#"
say "links: $(ls /sys/class/net 2>/dev/null | tr '\n' ' ')"
for to in 127.0.0.1 @HOSTIP@; do
    if bash -c "echo hello > /dev/tcp/$to/@PORT@" 2>/dev/null; then
        say "ESCAPED: connected to $to"
    else
        say "connect $to: failed"
    fi
done
# The sandbox's loopback is its own to bring up; the host's stays away.
try "lo up" ip link set lo up
if bash -c "echo hello > /dev/tcp/127.0.0.1/@PORT@" 2>/dev/null; then
    say "ESCAPED: connected to the host through lo"
fi
exit 0
"#,
        &[],
    );
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(b.ok(), "{}", b.report());
    let evidence = b.evidence();
    assert!(evidence.contains("connect 127.0.0.1: failed"), "{evidence}");
    assert!(evidence.contains("lo up: ok"), "{evidence}");
}

#[test]
#[ignore = "needs root"]
fn a_script_that_never_ends_is_killed_at_the_timeout() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(
        &host,
        "hostile-spin",
        "",
        "exec sh -c 'while :; do :; done' spin-@TAG@\n",
        &[("KILN_CONFIGURE_TIMEOUT", "15s")],
    );
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(!b.ok(), "{}", b.report());
    assert!(
        b.text().contains(
            "configuring the packages did not finish within 15s while the postinst of hostile-spin ran"
        ),
        "{}",
        b.report()
    );
    assert!(b.took < Duration::from_secs(60), "{}", b.report());
    assert_none_left(&format!("spin-{}", b.tag), &b);
}

#[test]
#[ignore = "needs root"]
fn a_fork_bomb_stops_at_the_process_limit() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(
        &host,
        "hostile-forks",
        "",
        r#"
# The inner shell forks until it cannot (dash gives up on the first
# failed fork); the postinst goes on to say how far it got.
sh -c 'n=0; while [ $n -lt 5000 ]; do sleep 60.@TAG@ & n=$((n+1)); echo $n > /tmp/forks; done' 2>/dev/null
say "forks: $(cat /tmp/forks)"
exit 0
"#,
        &[],
    );
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(b.ok(), "{}", b.report());
    let forks: u32 = b
        .evidence()
        .lines()
        .find_map(|l| l.strip_prefix("forks: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", b.report()));
    assert!(
        (100..1024).contains(&forks),
        "{forks} forks:\n{}",
        b.report()
    );
    assert_none_left(&format!("sleep 60.{}", b.tag), &b);
}

#[test]
#[ignore = "needs root"]
fn a_flood_of_output_is_cut_short() {
    require_root("maintainer scripts in kiln's sandbox as root");
    let mut host = Host::watch();
    let b = build(
        &host,
        "hostile-flood",
        "",
        "head -c 40000000 /dev/zero | tr '\\0' x\necho\necho 'hostile-flood gives up'\nexit 1\n",
        &[],
    );
    host.assert_untouched(&b);
    b.assert_contained();
    assert!(!b.ok(), "{}", b.report());
    let text = b.text();
    // The log kept 16 MiB and the lines that name packages; the message
    // shows the end of it, each line cut short.
    assert!(text.len() < 100_000, "{} bytes of output", text.len());
    assert!(
        text.contains("bytes of the scripts' output left out of this log (it keeps 16 MiB)"),
        "{text}"
    );
    assert!(
        text.contains("the maintainer scripts of hostile-flood failed"),
        "{text}"
    );
}
