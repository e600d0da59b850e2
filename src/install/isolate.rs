//! Running maintainer scripts inside an image directory, isolated from
//! the build host: private mount, PID, network, UTS and IPC namespaces,
//! chroot into the image, a fresh /proc of its own PID namespace, a
//! minimal /dev on a tmpfs, a read-only /sys, a tmpfs on /run, no network
//! but a loopback that is down, and hostname "localhost". When the program
//! exits, the kernel kills whatever it left running (it was PID 1 of its
//! namespace), and the mounts vanish with the namespace: nothing remains to
//! clean up, even after SIGKILL.
//!
//! This is the way as root; `userns.rs` wraps the same job in a user
//! namespace, and `sandbox.rs` chooses between them.

use anyhow::{Context, Result};
use kiln_tree::{Store, Tree, load_dir, write_dir};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// What to run in the image.
pub struct Job<'a> {
    /// The build's private directory.
    pub work_dir: &'a Path,
    pub script: String,
    pub env: Vec<(String, String)>,
    /// Where the scripts' output goes.
    pub log: PathBuf,
}

pub enum Outcome {
    /// The image after the scripts ran, and where the time went.
    Configured(Tree, Phases),
    /// A script failed; its output is in the job's log.
    Failed(ExitStatus),
}

/// Named durations, for the log: "writing the root 0.6s, scripts 5.4s, …".
pub struct Phases {
    started: Option<std::time::Instant>,
    done: Vec<(&'static str, f64)>,
}

impl Phases {
    /// Ends the phase called `name` (which began when the last one ended).
    pub fn end(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        let began = self.started.replace(now);
        self.done
            .push((name, began.map_or(0.0, |b| (now - b).as_secs_f64())));
    }

    pub fn start() -> Phases {
        Phases {
            started: Some(std::time::Instant::now()),
            done: Vec::new(),
        }
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

pub fn run_as_root(tree: &Tree, store: &Store, job: &Job) -> Result<Outcome> {
    let mut phases = Phases::start();
    let root = job.work_dir.join("configure-root");
    std::fs::create_dir(&root).with_context(|| format!("cannot create {}", root.display()))?;
    write_dir(tree, store, &root)?;
    phases.end("writing the root");
    let status = run_shell(&root, &job.script, &job.env, &job.log)?;
    if !status.success() {
        return Ok(Outcome::Failed(status));
    }
    phases.end("scripts");
    let configured = load_dir(&root, store, &|_| false)
        .with_context(|| format!("cannot read back the configured root {}", root.display()))?;
    std::fs::remove_dir_all(&root).with_context(|| format!("cannot remove {}", root.display()))?;
    phases.end("reading it back");
    Ok(Outcome::Configured(configured, phases))
}

const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// Runs `/bin/sh -c script` inside `root` with exactly `env`, writing its
/// output to `log`.
pub fn run_shell(
    root: &Path,
    script: &str,
    env: &[(String, String)],
    log: &Path,
) -> Result<ExitStatus> {
    for dir in ["dev", "proc", "sys", "run"] {
        let dir = root.join(dir);
        if !dir.is_dir() {
            std::fs::create_dir(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let prepared = Prepared::new(root)?;
    let log_file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(script)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    // SAFETY: the closure only makes system calls on memory prepared
    // before the fork (no allocation, no locks), as pre_exec requires.
    unsafe {
        command.pre_exec(move || prepared.enter());
    }
    // The spawn returns when the namespace's PID 1 has finished (see
    // `enter`): output goes to a file, so nothing can block on a pipe.
    let mut child = command.spawn().map_err(|e| match e.raw_os_error() {
        // Root without CAP_SYS_ADMIN: an unprivileged container.
        Some(libc::EPERM) => anyhow::anyhow!(
            "cannot create the namespaces for maintainer scripts ({e}): kiln runs as root but lacks \
             CAP_SYS_ADMIN; in a container, give it the capability (e.g. docker run --privileged)"
        ),
        _ => anyhow::Error::new(e).context(format!("cannot run /bin/sh in {}", root.display())),
    })?;
    Ok(child.wait()?)
}

/// Every path and string the child needs, allocated before the fork.
struct Prepared {
    root: CString,
    dev: CString,
    proc_dir: CString,
    sys: CString,
    /// (node in the image's /dev, the host's node, major, minor)
    devices: Vec<(CString, CString, u32, u32)>,
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
        let dev = root.join("dev");
        Ok(Prepared {
            root: c(root)?,
            dev: c(&dev)?,
            proc_dir: c(&root.join("proc"))?,
            sys: c(&root.join("sys"))?,
            devices: DEVICES
                .iter()
                .map(|(name, major, minor)| {
                    let host = c(&Path::new("/dev").join(name))?;
                    Ok((c(&dev.join(name))?, host, *major, *minor))
                })
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
    /// its /proc, chroots and goes on to exec; the child waits for it and
    /// exits with its status.
    fn enter(&self) -> std::io::Result<()> {
        use libc::*;
        let check = |r: c_int| {
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        // SAFETY: plain system calls on NUL-terminated strings owned by
        // `self`, which outlives the call.
        unsafe {
            // Die with kiln: a killed build must not leave scripts running.
            check(prctl(PR_SET_PDEATHSIG, SIGKILL as c_ulong, 0, 0, 0))?;
            check(unshare(
                CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC,
            ))?;
            check(mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                MS_REC | MS_PRIVATE,
                std::ptr::null(),
            ))?;
            let host = b"localhost";
            check(sethostname(host.as_ptr().cast(), host.len()))?;
            check(mount(
                c"tmpfs".as_ptr(),
                self.dev.as_ptr(),
                c"tmpfs".as_ptr(),
                MS_NOSUID,
                c"mode=0755".as_ptr().cast(),
            ))?;
            for (path, host, major, minor) in &self.devices {
                if mknod(path.as_ptr(), S_IFCHR | 0o666, makedev(*major, *minor)) == 0 {
                    // The umask must not narrow the nodes' modes.
                    check(chmod(path.as_ptr(), 0o666))?;
                } else {
                    // A user namespace may not make devices: bind the host's.
                    let fd = open(path.as_ptr(), O_CREAT | O_WRONLY | O_CLOEXEC, 0o666);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    close(fd);
                    check(mount(
                        host.as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                        MS_BIND,
                        std::ptr::null(),
                    ))?;
                }
            }
            for (path, target) in &self.links {
                check(symlink(target.as_ptr(), path.as_ptr()))?;
            }
            check(mkdir(self.shm.as_ptr(), 0o1777))?;
            check(chmod(self.shm.as_ptr(), 0o1777))?;
            check(mkdir(self.pts.as_ptr(), 0o755))?;
            // /run is a tmpfs at boot: what scripts leave there is not
            // part of the image.
            check(mount(
                c"tmpfs".as_ptr(),
                self.run.as_ptr(),
                c"tmpfs".as_ptr(),
                MS_NOSUID | MS_NODEV,
                c"mode=0755".as_ptr().cast(),
            ))?;
            // A read-only /sys; some hosts refuse it, and scripts cope.
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
                    check(mount(
                        c"proc".as_ptr(),
                        self.proc_dir.as_ptr(),
                        c"proc".as_ptr(),
                        MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        std::ptr::null(),
                    ))?;
                    check(chroot(self.root.as_ptr()))?;
                    check(chdir(c"/".as_ptr()))?;
                    Ok(())
                }
                child => {
                    let mut status = 0;
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
        }
    }
}
