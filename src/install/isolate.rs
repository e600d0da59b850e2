//! The sandbox maintainer scripts run in, one level inside the user
//! namespace `userns.rs` makes: new mount, PID, network, UTS, IPC and
//! cgroup namespaces; the directory holding the image (in a build, a tmpfs
//! holding nothing else) as the root of the mount namespace through
//! `pivot_root`, with the old root unmounted, so no path leads back to the
//! build host's file system; the scripts chrooted into the image below it;
//! a fresh /proc of the sandbox's own PID namespace; a read-only /sys of
//! its own network namespace; /dev a tmpfs with only null, zero, full,
//! random, urandom and tty bound from the host, the usual symlinks, a
//! private /dev/pts and /dev/shm; a tmpfs on /run; a loopback that is
//! down; hostname "localhost"; a session of its own (no controlling
//! terminal); limits on processes and core dumps. A small init outside the
//! chroot is PID 1 of the namespace: when the scripts' shell exits it
//! exits too, the kernel kills whatever was left running, and the mounts
//! vanish with the namespace, even after SIGKILL.
//!
//! Why a chroot inside the pivoted root: scripts ask `ischroot` (PID 1's
//! root against their own) whether they run in a booted system. Under
//! debootstrap and mmdebstrap they learn they do not, and skip live-system
//! work such as libc6's `telinit u; sleep 1`; kiln's scripts see the same.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// What to run in the image.
pub struct Job<'a> {
    /// The build's private directory.
    pub work_dir: &'a Path,
    pub script: String,
    pub env: Vec<(String, String)>,
    /// Wall-clock limit for handing the image over, the scripts and
    /// reading it back.
    pub timeout: Duration,
}

pub enum Outcome {
    /// The image after the scripts ran, and where the time went.
    Configured(kiln_tree::Tree, Phases),
    /// A script failed; its output is in the job's log.
    Failed(ExitStatus),
    /// The scripts were still running when the timeout expired; all of
    /// them were killed.
    TimedOut,
}

/// Named durations, for the log: "writing the root 0.6s, scripts 5.4s, …".
pub struct Phases {
    started: Option<std::time::Instant>,
    done: Vec<(String, f64)>,
}

impl Phases {
    /// Ends the phase called `name` (which began when the last one ended).
    pub fn end(&mut self, name: &str) {
        self.end_in_parts(name, Vec::new());
    }

    /// Ends a phase whose `parts` were timed elsewhere (by the sandbox's
    /// helper): they are listed, and what the phase took beyond them is
    /// listed as `name`.
    pub fn end_in_parts(&mut self, name: &str, parts: Vec<(String, f64)>) {
        let now = std::time::Instant::now();
        let began = self.started.replace(now);
        let took = began.map_or(0.0, |b| (now - b).as_secs_f64());
        let timed: f64 = parts.iter().map(|(_, s)| s).sum();
        self.done.extend(parts);
        self.done.push((name.to_owned(), (took - timed).max(0.0)));
    }

    pub fn start() -> Phases {
        Phases {
            started: Some(std::time::Instant::now()),
            done: Vec::new(),
        }
    }

    /// "NAME\tSECONDS" lines, as `to_lines` writes them; others are skipped.
    pub fn parse_lines(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter_map(|l| {
                let (name, secs) = l.split_once('\t')?;
                Some((name.to_owned(), secs.parse().ok()?))
            })
            .collect()
    }

    pub fn to_lines(&self) -> String {
        self.done
            .iter()
            .map(|(name, s)| format!("{name}\t{s:.3}\n"))
            .collect()
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .done
            .iter()
            .map(|(name, s)| format!("{name} {s:.1}s"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// The only device nodes in the sandbox's /dev, bound from the host's: a
/// user namespace may not make device nodes, and scripts need no others.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// RLIMIT_NPROC of the scripts: processes and threads per user of the
/// image at once. dpkg and its scripts need a handful; a fork bomb stops
/// here. (Not enforced on the host's real root, which the build never runs
/// scripts as: see `userns.rs`.)
pub const MAX_PROCESSES: u64 = 1024;

/// The log keeps the scripts' first 16 MiB of output; after that only the
/// lines that say which package runs, so a script cannot fill the build
/// host's disk through its standard output.
const LOG_CAP: u64 = 16 << 20;

/// Whether a line of the scripts' output says which package runs: kiln's
/// own line before each preinst, and dpkg's.
fn is_progress_line(line: &str) -> bool {
    [
        "kiln: preinst install ",
        "Setting up ",
        "Processing triggers for ",
        "dpkg: error processing package ",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// Runs `/bin/sh -c script` inside the image directory `root` with exactly
/// `env`, in the sandbox described above, writing its output to `log`.
/// The directory holding `root` becomes the sandbox's root: in a build,
/// a tmpfs holding nothing else.
/// It adds no user namespace of its own: the build always calls it as
/// root of the one `userns.rs` makes (the tests also call it as root, to
/// look into finished images).
pub fn run_shell(
    root: &Path,
    script: &str,
    env: &[(String, String)],
    log: &Path,
) -> Result<ExitStatus> {
    Ok(run_shell_timed(root, script, env, log)?.0)
}

/// `run_shell`, also returning when each progress line went by (seconds
/// from the start), the last mark being the end: the configure profile.
pub fn run_shell_timed(
    root: &Path,
    script: &str,
    env: &[(String, String)],
    log: &Path,
) -> Result<(ExitStatus, Vec<Mark>)> {
    for dir in ["dev", "proc", "sys", "run"] {
        let dir = root.join(dir);
        if !dir.is_dir() {
            // 0755 whatever the umask: these stay in the image.
            std::fs::create_dir(&dir)
                .and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                })
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let prepared = Prepared::new(root)?;
    let log_file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let (reader, writer) = std::io::pipe().context("cannot make a pipe for the scripts' output")?;
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(script)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    // SAFETY: the closure only makes system calls on memory prepared
    // before the fork (no allocation, no locks), as pre_exec requires.
    unsafe {
        command.pre_exec(move || prepared.enter());
    }
    // Copying starts first: the spawn returns only when the namespace's
    // PID 1 has finished (see `enter`). The copy ends when every process
    // that held the pipe is gone, which is when the namespace is.
    let copier = std::thread::spawn(move || {
        let mut timed = Timed::new(reader);
        copy_capped(&mut timed, log_file, LOG_CAP).map(|()| timed.finish())
    });
    let spawned = command.spawn();
    // Our copies of the pipe's write end go with `command`.
    drop(command);
    let mut child = spawned.map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "cannot run /bin/sh in the sandbox for maintainer scripts ({})",
            root.display()
        ))
    })?;
    let status = child.wait()?;
    let marks = copier
        .join()
        .map_err(|_| anyhow::anyhow!("the log copier panicked"))?
        .with_context(|| format!("cannot write {}", log.display()))?;
    Ok((status, marks))
}

/// A progress line of the scripts' output and when it went by, in seconds
/// from the start.
pub struct Mark {
    pub seconds: f64,
    pub line: String,
}

/// The line that ends a timeline: the scripts' output closed.
pub const END_MARK: &str = "kiln: end";

/// At most this many marks are kept: a script printing progress lines
/// without end cannot grow the helper's memory.
const MAX_MARKS: usize = 1 << 16;

/// A reader of the scripts' output that notes when each progress line
/// arrives (dpkg flushes its output before running each script).
struct Timed<R> {
    inner: R,
    started: std::time::Instant,
    line: Vec<u8>,
    marks: Vec<Mark>,
}

impl<R: Read> Timed<R> {
    fn new(inner: R) -> Timed<R> {
        Timed {
            inner,
            started: std::time::Instant::now(),
            line: Vec::new(),
            marks: Vec::new(),
        }
    }

    fn finish(mut self) -> Vec<Mark> {
        self.mark(END_MARK.to_owned());
        self.marks
    }

    fn mark(&mut self, line: String) {
        if self.marks.len() < MAX_MARKS || line == END_MARK {
            self.marks.push(Mark {
                seconds: self.started.elapsed().as_secs_f64(),
                line,
            });
        }
    }
}

impl<R: Read> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &byte in &buf[..n] {
            if byte != b'\n' {
                // Progress lines are short; the rest of a long line is
                // not needed to recognise one.
                if self.line.len() < 4096 {
                    self.line.push(byte);
                }
                continue;
            }
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            if is_progress_line(&line) {
                self.mark(line);
            }
        }
        Ok(n)
    }
}

/// Copies the scripts' output to the log, up to `cap` bytes; past it,
/// only progress lines.
fn copy_capped(mut from: impl Read, mut to: impl Write, cap: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    let (mut written, mut dropped) = (0u64, 0u64);
    let (mut capped, mut ends_line) = (false, true);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if !capped && written + n as u64 > cap {
            capped = true;
            // What follows starts a line of its own.
            if written > 0 && !ends_line {
                to.write_all(b"\n")?;
            }
        }
        if !capped {
            to.write_all(&buf[..n])?;
            written += n as u64;
            ends_line = buf[n - 1] == b'\n';
            continue;
        }
        for &byte in &buf[..n] {
            if byte != b'\n' {
                // A line longer than any progress line is cut short.
                if line.len() < 4096 {
                    line.push(byte);
                } else {
                    dropped += 1;
                }
                continue;
            }
            if is_progress_line(&String::from_utf8_lossy(&line)) {
                to.write_all(&line)?;
                to.write_all(b"\n")?;
            } else {
                dropped += line.len() as u64 + 1;
            }
            line.clear();
        }
    }
    dropped += line.len() as u64;
    if dropped > 0 {
        writeln!(
            to,
            "kiln: {dropped} bytes of the scripts' output left out of this log (it keeps {} MiB)",
            cap >> 20
        )?;
    }
    Ok(())
}

/// Every path and string the child needs, allocated before the fork.
struct Prepared {
    /// The directory holding the image, which becomes the namespace's
    /// root; the scripts are chrooted into `image` below it.
    jail: CString,
    /// The image's path once `jail` is the root: "/NAME".
    image: CString,
    dev: CString,
    proc_dir: CString,
    sys: CString,
    /// (node in the image's /dev, the host's node)
    devices: Vec<(CString, CString)>,
    links: Vec<(CString, CString)>,
    shm: CString,
    pts: CString,
    run: CString,
}

fn c(path: &Path) -> Result<CString> {
    Ok(CString::new(path.as_os_str().as_bytes())?)
}

impl Prepared {
    fn new(root: &Path) -> Result<Prepared> {
        let root = &std::fs::canonicalize(root)
            .with_context(|| format!("cannot find {}", root.display()))?;
        let (Some(jail), Some(name)) = (root.parent(), root.file_name()) else {
            anyhow::bail!("the image for maintainer scripts cannot be /");
        };
        let dev = root.join("dev");
        Ok(Prepared {
            jail: c(jail)?,
            image: c(&Path::new("/").join(name))?,
            dev: c(&dev)?,
            proc_dir: c(&root.join("proc"))?,
            sys: c(&root.join("sys"))?,
            devices: DEVICES
                .iter()
                .map(|name| Ok((c(&dev.join(name))?, c(&Path::new("/dev").join(name))?)))
                .collect::<Result<_>>()?,
            links: DEV_LINKS
                .iter()
                .map(|(name, target)| Ok((c(&dev.join(name))?, CString::new(*target)?)))
                .collect::<Result<_>>()?,
            shm: c(&dev.join("shm"))?,
            pts: c(&dev.join("pts"))?,
            run: c(&root.join("run"))?,
        })
    }

    /// In the forked child, before exec. The child unshares, then forks
    /// once more: the grandchild is PID 1 of the new PID namespace, mounts
    /// its /proc, moves into the image with pivot_root and goes on to
    /// exec; the child waits for it and exits with its status.
    fn enter(&self) -> std::io::Result<()> {
        use libc::*;
        let check = |r: c_int| {
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        let null = std::ptr::null::<c_char>();
        // SAFETY: plain system calls on NUL-terminated strings owned by
        // `self`, which outlives the call.
        unsafe {
            // Die with kiln: a killed build must not leave scripts running.
            check(prctl(PR_SET_PDEATHSIG, SIGKILL as c_ulong, 0, 0, 0))?;
            check(unshare(
                CLONE_NEWNS
                    | CLONE_NEWPID
                    | CLONE_NEWNET
                    | CLONE_NEWUTS
                    | CLONE_NEWIPC
                    | CLONE_NEWCGROUP,
            ))?;
            // Nothing mounted here propagates back to the helper or host.
            check(mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                null,
                MS_REC | MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // pivot_root needs the new root to be a mount point; the
            // mounts below go onto this one.
            check(mount(
                self.jail.as_ptr(),
                self.jail.as_ptr(),
                null,
                MS_BIND,
                std::ptr::null(),
            ))?;
            let host = b"localhost";
            check(sethostname(host.as_ptr().cast(), host.len()))?;
            check(mount(
                c"tmpfs".as_ptr(),
                self.dev.as_ptr(),
                c"tmpfs".as_ptr(),
                MS_NOSUID | MS_NOEXEC,
                c"mode=0755".as_ptr().cast(),
            ))?;
            for (path, host) in &self.devices {
                let fd = open(path.as_ptr(), O_CREAT | O_WRONLY | O_CLOEXEC, 0o666);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                close(fd);
                check(mount(
                    host.as_ptr(),
                    path.as_ptr(),
                    null,
                    MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            for (path, target) in &self.links {
                check(symlink(target.as_ptr(), path.as_ptr()))?;
            }
            check(mkdir(self.shm.as_ptr(), 0o1777))?;
            check(mount(
                c"tmpfs".as_ptr(),
                self.shm.as_ptr(),
                c"tmpfs".as_ptr(),
                MS_NOSUID | MS_NODEV,
                c"mode=1777".as_ptr().cast(),
            ))?;
            check(mkdir(self.pts.as_ptr(), 0o755))?;
            // A devpts of its own: no pseudo-terminal of the host's.
            check(mount(
                c"devpts".as_ptr(),
                self.pts.as_ptr(),
                c"devpts".as_ptr(),
                MS_NOSUID | MS_NOEXEC,
                c"newinstance,ptmxmode=0666,mode=0620".as_ptr().cast(),
            ))?;
            // /run is a tmpfs at boot: what scripts leave there is not
            // part of the image.
            check(mount(
                c"tmpfs".as_ptr(),
                self.run.as_ptr(),
                c"tmpfs".as_ptr(),
                MS_NOSUID | MS_NODEV,
                c"mode=0755".as_ptr().cast(),
            ))?;
            // A read-only /sys showing the sandbox's network namespace;
            // some hosts refuse it, and scripts cope.
            let _ = mount(
                c"sysfs".as_ptr(),
                self.sys.as_ptr(),
                c"sysfs".as_ptr(),
                MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                std::ptr::null(),
            );
            match fork() {
                -1 => Err(std::io::Error::last_os_error()),
                0 => {
                    // PID 1 of the namespace dies with its parent, and
                    // takes every process in the namespace with it.
                    check(prctl(PR_SET_PDEATHSIG, SIGKILL as c_ulong, 0, 0, 0))?;
                    // No controlling terminal: /dev/tty reaches nothing of
                    // the host's.
                    if setsid() < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // A proc of this PID namespace; it must be mounted
                    // while the host's /proc is still visible.
                    check(mount(
                        c"proc".as_ptr(),
                        self.proc_dir.as_ptr(),
                        c"proc".as_ptr(),
                        MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        std::ptr::null(),
                    ))?;
                    // The jail becomes the root; the old root, stacked on
                    // top of it by pivot_root(".", "."), is detached, so
                    // nothing of the host's file system stays reachable
                    // (a chroot alone would leave it one `cd ..` away).
                    check(chdir(self.jail.as_ptr()))?;
                    check(syscall(SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as c_int)?;
                    check(umount2(c".".as_ptr(), MNT_DETACH))?;
                    check(chdir(c"/".as_ptr()))?;
                    // This process stays outside the image as the
                    // namespace's init; the scripts' shell is chrooted.
                    match fork() {
                        -1 => return Err(std::io::Error::last_os_error()),
                        0 => {}
                        shell => wait_and_exit(shell),
                    }
                    check(prctl(PR_SET_PDEATHSIG, SIGKILL as c_ulong, 0, 0, 0))?;
                    check(chroot(self.image.as_ptr()))?;
                    check(chdir(c"/".as_ptr()))?;
                    let limit = rlimit {
                        rlim_cur: MAX_PROCESSES,
                        rlim_max: MAX_PROCESSES,
                    };
                    check(setrlimit(RLIMIT_NPROC, &limit))?;
                    // A crash leaves no core dump on the host (the host's
                    // core_pattern handler honours a limit of 0).
                    let none = rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    check(setrlimit(RLIMIT_CORE, &none))?;
                    Ok(())
                }
                child => wait_and_exit(child),
            }
        }
    }
}

/// In a forked process: waits for `child` and exits as it did (a signal
/// as 128 + its number, as a shell reports it). Only async-signal-safe
/// calls, as between fork and exec.
fn wait_and_exit(child: libc::pid_t) -> ! {
    use libc::*;
    let mut status = 0;
    // SAFETY: waitpid and _exit are async-signal-safe system calls.
    unsafe {
        while waitpid(child, &mut status, 0) == -1 {
            if *__errno_location() != EINTR {
                _exit(127);
            }
        }
        if WIFEXITED(status) {
            _exit(WEXITSTATUS(status));
        }
        _exit(128 + WTERMSIG(status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_the_log_keeps_only_progress_lines() {
        let mut output = b"Setting up a (1) ...\nchatter\n".to_vec();
        output.extend(std::iter::repeat_n(b'x', 5 << 20));
        output.extend(
            b"\nSetting up b (1) ...\nmore chatter\nProcessing triggers for c (1) ...\ntail",
        );
        let mut log = Vec::new();
        copy_capped(&output[..], &mut log, 1 << 20).unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(
            log.starts_with("Setting up a (1) ...\nchatter\nxxx"),
            "{}",
            &log[..40]
        );
        assert!(log.len() < (1 << 20) + 200, "{}", log.len());
        let tail: Vec<&str> = log.lines().rev().take(3).collect();
        assert_eq!(tail[2], "Setting up b (1) ...");
        assert_eq!(tail[1], "Processing triggers for c (1) ...");
        assert!(
            tail[0].starts_with("kiln: ")
                && tail[0].ends_with(
                    " bytes of the scripts' output left out of this log (it keeps 1 MiB)"
                ),
            "{}",
            tail[0]
        );
        let mut log = Vec::new();
        copy_capped(&b"short\n"[..], &mut log, 1 << 20).unwrap();
        assert_eq!(log, b"short\n");
    }

    /// A reader that hands out `chunks` one read at a time, after an
    /// interrupted read.
    struct Chunks(Vec<std::io::Result<Vec<u8>>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0)?;
            buf[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    fn capped(chunks: &[&[u8]], cap: u64) -> String {
        let mut reads = vec![Err(std::io::ErrorKind::Interrupted.into())];
        reads.extend(chunks.iter().map(|c| Ok(c.to_vec())));
        let mut log = Vec::new();
        copy_capped(Chunks(reads), &mut log, cap).unwrap();
        String::from_utf8(log).unwrap()
    }

    const LEFT_OUT: &str = "bytes of the scripts' output left out of this log (it keeps 0 MiB)";

    #[test]
    fn the_cap_counts_every_byte_and_the_note_counts_what_was_left_out() {
        // up to the cap exactly: everything, and no note
        assert_eq!(capped(&[b"0123", b"456789"], 10), "0123456789");
        assert_eq!(capped(&[b"0123\n", b"5678\n"], 10), "0123\n5678\n");
        // one byte more: that read and everything after it is left out
        assert_eq!(
            capped(&[b"0123", b"456789", b"x"], 10),
            format!("0123456789\nkiln: 1 {LEFT_OUT}\n")
        );
        // a line cut by the cap ends before what follows; a whole line
        // needs no extra break
        assert_eq!(
            capped(&[b"ab", b"cdefghijkl\nSetting up p (1) ...\nz\n"], 10),
            format!("ab\nSetting up p (1) ...\nkiln: 13 {LEFT_OUT}\n")
        );
        assert_eq!(
            capped(&[b"ab\n", b"cdefghijkl\nSetting up p (1) ...\n"], 10),
            format!("ab\nSetting up p (1) ...\nkiln: 11 {LEFT_OUT}\n")
        );
        // the very first read past the cap: no break before the progress
        assert_eq!(
            capped(&[b"Setting up q (2) ...\ntail"], 10),
            format!("Setting up q (2) ...\nkiln: 4 {LEFT_OUT}\n")
        );
        // a progress line longer than 4096 bytes is kept cut short, and
        // the rest of it counted
        let long = format!("Setting up {}\n", "y".repeat(5000));
        assert_eq!(
            capped(&[b"ab\n", long.as_bytes()], 2),
            format!(
                "{}\nkiln: {} {LEFT_OUT}\n",
                &long[..4096],
                3 + long.len() - 1 - 4096
            )
        );
        // nothing left out at all: no note
        assert_eq!(capped(&[b"short\n"], 10), "short\n");
        assert_eq!(capped(&[], 0), "");
    }

    #[test]
    fn read_errors_other_than_interruptions_end_the_copy() {
        let mut log = Vec::new();
        let error = copy_capped(
            Chunks(vec![
                Ok(b"a\n".to_vec()),
                Err(std::io::Error::other("gone")),
            ]),
            &mut log,
            10,
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "gone");
        assert_eq!(log, b"a\n");
    }

    #[test]
    fn progress_lines_are_timed_as_they_arrive_and_the_end_is_marked() {
        let chunks: &[&[u8]] = &[
            b"kiln: preinst install a\nchatter\nSetting up b (1) ...",
            b"\nProcessing triggers for c (2) ...\n",
            b"no newline at the end",
        ];
        let mut reads = vec![Err(std::io::ErrorKind::Interrupted.into())];
        reads.extend(chunks.iter().map(|c| Ok(c.to_vec())));
        let mut timed = Timed::new(Chunks(reads));
        let mut log = Vec::new();
        copy_capped(&mut timed, &mut log, 1 << 20).unwrap();
        let marks = timed.finish();
        let lines: Vec<&str> = marks.iter().map(|m| m.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "kiln: preinst install a",
                "Setting up b (1) ...",
                "Processing triggers for c (2) ...",
                END_MARK
            ]
        );
        assert!(marks.windows(2).all(|w| w[0].seconds <= w[1].seconds));
        // everything still reached the log
        assert_eq!(log, chunks.concat());
    }

    #[test]
    fn a_flood_of_progress_lines_keeps_a_bounded_timeline() {
        let flood = "Setting up x (1) ...\n".repeat(MAX_MARKS + 10);
        let mut timed = Timed::new(flood.as_bytes());
        std::io::copy(&mut timed, &mut std::io::sink()).unwrap();
        let marks = timed.finish();
        assert_eq!(marks.len(), MAX_MARKS + 1);
        assert_eq!(marks.last().unwrap().line, END_MARK);
    }

    #[test]
    fn the_log_keeps_sixteen_mebibytes() {
        assert_eq!(LOG_CAP, 16 << 20);
        let mut log = Vec::new();
        copy_capped(&b"x\n"[..], &mut log, LOG_CAP).unwrap();
        assert_eq!(log, b"x\n");
    }

    #[test]
    fn phases_are_listed_in_order_with_their_durations() {
        let mut phases = Phases::start();
        std::thread::sleep(Duration::from_millis(120));
        phases.end("first");
        phases.end("second");
        let shown = phases.to_string();
        let parts: Vec<(&str, f64)> = shown
            .split(", ")
            .map(|p| {
                let (name, secs) = p.split_once(' ').unwrap();
                (name, secs.strip_suffix('s').unwrap().parse().unwrap())
            })
            .collect();
        assert_eq!(parts.len(), 2, "{shown}");
        assert_eq!((parts[0].0, parts[1].0), ("first", "second"), "{shown}");
        assert!(parts[0].1 >= 0.1, "{shown}");
        assert!(parts[1].1 < parts[0].1, "{shown}");
        assert_eq!(Phases::start().to_string(), "");
        // what the helper timed, and the rest of the phase
        let mut outer = Phases::start();
        std::thread::sleep(Duration::from_millis(50));
        outer.end_in_parts("the rest", Phases::parse_lines(&phases.to_lines()));
        let lines = Phases::parse_lines(&outer.to_lines());
        let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["first", "second", "the rest"], "{outer}");
        assert_eq!(Phases::parse_lines("no tab\nx\tnot a number\n"), vec![]);
    }
}
