//! The way every build configures packages, as root or not. A helper
//! process (kiln itself, re-executed) enters a new user namespace whose ids
//! 0–65535 are the image's: as root, kiln maps them itself onto a fixed
//! range of host ids no one else uses (`HOST_ID_BASE`); without root,
//! newuidmap and newgidmap (setuid, package uidmap) map 0 onto the
//! building user and 1–65535 onto its subordinate ids from /etc/subuid and
//! /etc/subgid. Either way the scripts are root only of that namespace,
//! never of the host. The helper writes the tree into a tmpfs of its own,
//! runs the scripts in the sandbox of `isolate.rs`, and packs the result
//! into a tar the build reads back.
//!
//! The helper reaches the build's files only through the exchange
//! directory, which the build passes as an open descriptor: the host ids
//! of the namespace need no access to the work directory around it.

use super::ids::{HOST_ID_BASE, IMAGE_IDS, Ids, SUBORDINATE_IDS};
use super::isolate::{Job, Outcome, Phases, run_shell_timed};
use anyhow::{Context, Result, anyhow, bail};
use kiln_tree::pack::{write_tar_referring, write_tar_with_digests};
use kiln_tree::{
    Digest, HostEntry, HostKind, Kind, Store, Tree, load_dir_taking_changed,
    load_tar_given_digests, load_tar_referring, write_dir_taking,
};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The hidden command line of the helper: `sandbox-init __sandbox DIR`
/// (the helper's fork stays as PID 1 of the sandbox, so its command line
/// is what scripts see there: no path of the host's, no name of kiln's).
pub const HELPER_COMMAND: &str = "__sandbox";

/// The directory in the build's work directory the helper works in.
const EXCHANGE: &str = "configure";
const SCRIPT: &str = "script.sh";
const ENV: &str = "env";
const STATUS: &str = "status";
const LOG: &str = "configure.log";
/// When each progress line of the log went by: "SECONDS\tLINE" lines.
const TIMES: &str = "configure.times";
/// The helper's phases: "NAME\tSECONDS" lines.
const PHASES: &str = "configure.phases";

/// Where the helper shows the exchange directory in its own mount
/// namespace: the first of these that anyone may enter.
const VISIBLE_AT: &[&str] = &["/tmp", "/var/tmp", "/mnt", "/run"];

/// The helper's exit code when a script failed (its wait status is in
/// `STATUS`); any other failure exits 1 with a message.
const SCRIPT_FAILED: i32 = 3;

/// Where the scripts' output goes while they run (the build reads it for
/// the progress bar and error messages).
pub fn log_path(work_dir: &Path) -> PathBuf {
    work_dir.join(EXCHANGE).join(LOG)
}

/// Where the helper leaves the timeline of the scripts' progress lines.
pub fn times_path(work_dir: &Path) -> PathBuf {
    work_dir.join(EXCHANGE).join(TIMES)
}

/// The tree minus its device nodes, and those nodes. The helper cannot
/// make device nodes (a user namespace may not), and the scripts cannot
/// see them (their /dev is a tmpfs of the sandbox's), so a base's nodes
/// wait outside and go back where they were.
fn without_devices(tree: &Tree) -> Result<(Tree, Vec<(kiln_tree::ImagePath, kiln_tree::Entry)>)> {
    let devices: Vec<_> = tree
        .iter()
        .filter(|(_, e)| matches!(e.kind, Kind::CharDevice { .. } | Kind::BlockDevice { .. }))
        .map(|(p, e)| (p.clone(), e.clone()))
        .collect();
    if devices.is_empty() {
        return Ok((tree.clone(), devices));
    }
    let mut handed = tree.clone();
    for (path, _) in &devices {
        handed.remove(path)?;
    }
    Ok((handed, devices))
}

/// The build's side: hands the tree to the helper and takes back the
/// configured one.
pub fn run(ids: &Ids, tree: &Tree, store: &Store, job: &Job) -> Result<Outcome> {
    let mut phases = Phases::start();
    let started = Instant::now();
    let dir = job.work_dir.join(EXCHANGE);
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (handed, devices) = without_devices(tree)?;
    std::fs::write(dir.join(SCRIPT), &job.script)?;
    let env: String = job.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(dir.join(ENV), env)?;
    if let Ids::Root = ids {
        // The namespace's root owns the exchange directory, and only it.
        for name in [SCRIPT, ENV, "."] {
            std::os::unix::fs::lchown(dir.join(name), Some(HOST_ID_BASE), Some(HOST_ID_BASE))
                .with_context(|| format!("cannot hand {} to the sandbox", dir.display()))?;
        }
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;

    let errors = job.work_dir.join("configure-helper.err");
    let exe = std::env::current_exe().context("cannot find the kiln binary to run its helper")?;
    let dir_fd = std::fs::File::open(&dir)?;
    let fd = dir_fd.as_raw_fd();
    let mut command = Command::new(exe);
    command
        .arg0("sandbox-init")
        .arg(HELPER_COMMAND)
        .arg(format!("/proc/self/fd/{fd}"))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&errors)?);
    // SAFETY: prctl and fcntl are plain system calls, allowed between fork
    // and exec.
    unsafe {
        command.pre_exec(move || {
            // The helper dies with kiln, and keeps the exchange directory.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
                || libc::fcntl(fd, libc::F_SETFD, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .context("cannot start kiln's configure helper")?;
    drop(dir_fd);
    let helper_error = || std::fs::read_to_string(&errors).unwrap_or_default();
    let mut from_helper = BufReader::with_capacity(1 << 20, child.stdout.take().expect("piped"));
    let mut ready = String::new();
    from_helper.read_line(&mut ready).ok();
    if ready.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "the configure helper could not enter a user namespace ({}): this kernel or container \
             forbids them (see sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone \
             on Debian, kernel.apparmor_restrict_unprivileged_userns on Ubuntu; in a container, \
             its seccomp profile)",
            helper_error().trim()
        );
    }
    let pid = child.id();
    if let Err(e) = map_ids(ids, pid) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    // The watchdog kills the helper (and with it the sandbox: PDEATHSIG
    // down to the namespace's PID 1) when the time is up; the pipes then
    // close and the reads and writes below end.
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let timed_out = timed_out.clone();
        let left = job.timeout.saturating_sub(started.elapsed());
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(left) {
                timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                // SAFETY: kill has no memory preconditions; the helper is
                // our child and not yet reaped (run waits only after the
                // watchdog has stopped).
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        })
    };
    // Pipes of 1 MiB rather than 64 KiB: fewer switches between the two
    // processes while hundreds of MiB go through (a refusal, past the
    // user's pipe limits, leaves the default).
    for pipe in [
        child.stdin.as_ref().map(|p| p.as_raw_fd()),
        Some(from_helper.get_ref().as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        // SAFETY: fcntl on a descriptor this process owns.
        unsafe { libc::fcntl(pipe, libc::F_SETPIPE_SZ, 1 << 20) };
    }
    // The tree goes to the helper through its standard input and comes
    // back through its standard output, as tars: no copy on disk.
    let handed_over = hand_over(child.stdin.take().expect("piped"), &handed, store);
    phases.end("handing the tree over");
    // What the scripts left unchanged comes back as a reference to what
    // was handed over, whose contents the store keeps.
    let sizes: HashMap<Digest, u64> = handed
        .iter()
        .filter_map(|(_, e)| match e.kind {
            Kind::File { digest, size } => Some((digest, size)),
            _ => None,
        })
        .collect();
    let taken_back = match handed_over {
        Ok(()) => take_back(&mut from_helper, store, &|d| sizes.get(d).copied()),
        Err(e) => Err(e),
    };
    drop(from_helper);
    let _ = finished.send(());
    let _ = watchdog.join();
    let status = child.wait()?;
    if timed_out.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(Outcome::TimedOut);
    }
    let helper_phases = std::fs::read_to_string(dir.join(PHASES)).unwrap_or_default();
    match status.code() {
        Some(0) => {
            let mut tree =
                taken_back?.ok_or_else(|| anyhow!("kiln's configure helper sent no image back"))?;
            for (path, entry) in devices {
                let parent_is_dir = tree
                    .get(&path.parent())
                    .is_some_and(|e| e.kind == Kind::Dir);
                if parent_is_dir && !tree.contains(&path) {
                    tree.insert(path, entry)?;
                }
            }
            phases.end_in_parts("taking it back", Phases::parse_lines(&helper_phases));
            Ok(Outcome::Configured(tree, phases))
        }
        Some(SCRIPT_FAILED) => {
            let raw: i32 = std::fs::read_to_string(dir.join(STATUS))?.trim().parse()?;
            Ok(Outcome::Failed(std::process::ExitStatus::from_raw(raw)))
        }
        _ => bail!(
            "kiln's configure helper failed ({status}): {}",
            helper_error().trim()
        ),
    }
}

/// Writes "go" and the image as a tar to the helper; a helper that went
/// away is reported by its exit status, not here.
fn hand_over(to_helper: std::process::ChildStdin, tree: &Tree, store: &Store) -> Result<()> {
    let mut writer = BufWriter::with_capacity(1 << 20, to_helper);
    let sent = writer
        .write_all(b"go\n")
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            // The helper takes the digests as given instead of hashing it
            // all again.
            write_tar_with_digests(tree, store, writer)
        })
        .and_then(|writer| writer.into_inner().map_err(|e| e.into_error().into()));
    match sent {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other.map(drop),
    }
}

/// Reads the configured image the helper sends; `None` when it sent
/// nothing (a script failed, or the helper died).
fn take_back(
    from_helper: &mut BufReader<std::process::ChildStdout>,
    store: &Store,
    handed: kiln_tree::KnownContents,
) -> Result<Option<Tree>> {
    if from_helper.fill_buf()?.is_empty() {
        return Ok(None);
    }
    load_tar_referring(from_helper, "the configured image", store, handed).map(Some)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes the helper's uid and gid maps: as root, directly; without root,
/// through the setuid newuidmap and newgidmap.
fn map_ids(ids: &Ids, pid: u32) -> Result<()> {
    match ids {
        Ids::Root => {
            for file in ["uid_map", "gid_map"] {
                let path = format!("/proc/{pid}/{file}");
                std::fs::write(&path, format!("0 {HOST_ID_BASE} {IMAGE_IDS}\n")).map_err(|e| {
                    anyhow!(
                        "cannot map the image's ids onto host ids {HOST_ID_BASE}-{} ({path}: {e}): \
                         kiln runs as root but lacks CAP_SETUID or CAP_SETGID",
                        HOST_ID_BASE + (IMAGE_IDS - 1)
                    )
                })?;
            }
        }
        Ids::Subordinate(ranges) => {
            let pid = pid.to_string();
            for (tool, own, sub) in [
                ("newuidmap", ranges.uid, ranges.sub_uid),
                ("newgidmap", ranges.gid, ranges.sub_gid),
            ] {
                let out = Command::new(tool)
                    .args([&pid, "0", &own.to_string(), "1", "1", &sub.to_string()])
                    .arg(SUBORDINATE_IDS.to_string())
                    .output()
                    .with_context(|| format!("cannot run {tool}"))?;
                if !out.status.success() {
                    bail!(
                        "{tool} refused to map the ids ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
        }
    }
    Ok(())
}

/// The helper's side (`sandbox-init __sandbox DIR`); must run before the
/// process starts any thread. Returns the exit code.
pub fn helper_main(work: &Path) -> u8 {
    match helper(work) {
        Ok(code) => code as u8,
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}

fn helper(work: &Path) -> Result<i32> {
    let check = |r: libc::c_int, what: &str| {
        if r == 0 {
            Ok(())
        } else {
            Err(anyhow!("{what}: {}", std::io::Error::last_os_error()))
        }
    };
    // SAFETY: getppid has no preconditions.
    let build = unsafe { libc::getppid() };
    // From here on the exchange directory is ".", and the descriptor that
    // led to it is closed: nothing the scripts inherit leads out.
    std::env::set_current_dir(work).with_context(|| format!("cannot enter {}", work.display()))?;
    if let Some(fd) = work
        .to_str()
        .and_then(|w| w.strip_prefix("/proc/self/fd/"))
        .and_then(|n| n.parse::<libc::c_int>().ok())
    {
        // SAFETY: closing a descriptor this process owns and no Rust
        // object wraps.
        unsafe { libc::close(fd) };
    }
    // SAFETY: plain system calls; the process has a single thread here.
    unsafe {
        check(
            libc::unshare(libc::CLONE_NEWUSER),
            "cannot create a user namespace",
        )?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    if go.trim() != "go" {
        bail!("the build did not map the ids");
    }
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        // Become the namespace's root in every id: as root, kiln started
        // this process as the host's uid 0, which must not stay its owner
        // (nor the host's groups its groups). setgroups is refused when
        // newgidmap denied it; the groups then are the user's own.
        if libc::setgroups(0, std::ptr::null()) != 0
            && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
        {
            bail!(
                "cannot drop the groups: {}",
                std::io::Error::last_os_error()
            );
        }
        check(
            libc::setresgid(0, 0, 0),
            "cannot become gid 0 of the namespace",
        )?;
        check(
            libc::setresuid(0, 0, 0),
            "cannot become uid 0 of the namespace",
        )?;
        // A new uid cleared the parent-death signal: set it again, and
        // stop if the build died in between.
        check(
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ),
            "cannot follow the build's death",
        )?;
        if libc::getppid() != build {
            bail!("the build went away");
        }
        // Not dumpable: nothing of the same ids may ptrace this process.
        check(
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0),
            "cannot make the helper undumpable",
        )?;
    }
    // SAFETY: system calls on NUL-terminated strings that outlive them.
    unsafe {
        check(
            libc::unshare(libc::CLONE_NEWNS),
            "cannot create a mount namespace",
        )?;
        check(
            libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
            "cannot make the mounts private",
        )?;
    }
    // Some code turns "." into the absolute path of the exchange directory,
    // whose parents the namespace's ids may not enter (a umask of 077, a
    // build below /root): in this mount namespace the directory also
    // appears on a directory anyone may enter.
    let shown = VISIBLE_AT
        .iter()
        .find(|d| {
            std::fs::symlink_metadata(d)
                .is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o001 != 0)
        })
        .ok_or_else(|| anyhow!("none of {VISIBLE_AT:?} is a directory anyone may enter"))?;
    let shown_c = std::ffi::CString::new(*shown)?;
    // SAFETY: as above.
    unsafe {
        check(
            libc::mount(
                c".".as_ptr(),
                shown_c.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ),
            "cannot show the exchange directory",
        )?;
    }
    std::env::set_current_dir(shown)?;
    // The image goes into a tmpfs that disappears with this mount
    // namespace: the sandbox's root (`isolate`). While the image is
    // written and read back, its contents pass through a store on the
    // same tmpfs, so files are renamed into place, not copied; the store
    // is gone before the scripts start.
    std::fs::create_dir("jail")?;
    // SAFETY: as above.
    unsafe {
        check(
            libc::mount(
                c"tmpfs".as_ptr(),
                c"jail".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"mode=0755".as_ptr().cast(),
            ),
            "cannot mount a tmpfs for the image",
        )?;
    }
    let root = Path::new("jail/image");
    std::fs::create_dir(root)?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))?;
    let store_dir = Path::new("jail/store");
    let store = Store::open(store_dir)?;
    let tree = load_tar_given_digests(std::io::stdin().lock(), "the image", &store)?;
    // Receiving overlaps the build's handing over, and sending its taking
    // back: the build times those.
    let mut phases = Phases::start();
    write_dir_taking(&tree, &store, root)?;
    std::fs::remove_dir_all(store_dir)?;
    let script = std::fs::read_to_string(SCRIPT)?;
    let env: Vec<(String, String)> = std::fs::read_to_string(ENV)?
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // Every file dated SOURCE_DATE_EPOCH, not the time it was written
    // here: tools that stamp their output from their inputs' times (dracut's
    // reproducible mode dates the initrd's files from one of its own) then
    // give the same bytes in every build.
    if let Some(epoch) = env
        .iter()
        .find(|(k, _)| k == "SOURCE_DATE_EPOCH")
        .and_then(|(_, v)| v.parse::<i64>().ok())
    {
        date_tree(&tree, root, epoch)?;
    }
    let written = Written::note(&tree, root)?;
    drop(tree);
    phases.end("writing the root");
    let (status, marks) = run_shell_timed(root, &script, &env, Path::new(LOG))?;
    phases.end("scripts");
    let times: String = marks
        .iter()
        .map(|m| format!("{:.3}\t{}\n", m.seconds, m.line))
        .collect();
    std::fs::write(TIMES, times)?;
    if !status.success() {
        std::fs::write(STATUS, status.into_raw().to_string())?;
        return Ok(SCRIPT_FAILED);
    }
    let store = Store::open(store_dir)?;
    let configured = load_dir_taking_changed(root, &store, &|_| false, &|e| written.unchanged(e))?;
    phases.end("reading it back");
    std::fs::write(PHASES, phases.to_lines())?;
    let writer = write_tar_referring(
        &configured,
        &store,
        0,
        BufWriter::with_capacity(1 << 20, std::io::stdout().lock()),
        &|_| {},
        &|d| written.contents.contains(d),
    )?;
    writer.into_inner().map_err(|e| e.into_error())?.flush()?;
    Ok(0)
}

/// The files the helper wrote, as they were before the scripts ran: what
/// they leave untouched need not be read again, nor sent back.
struct Written {
    /// Inode → (change time, content, size) of each file.
    files: HashMap<u64, ((i64, i64), Digest, u64)>,
    /// Every content handed over: the build has them all.
    contents: HashSet<Digest>,
}

impl Written {
    /// Notes the inode and change time of every file of `tree` below
    /// `root`, then waits until the clock has moved past the last of those
    /// times: a script's change to a file then always moves its change
    /// time on, even one in the same clock tick as the writing.
    fn note(tree: &Tree, root: &Path) -> Result<Written> {
        use std::os::unix::fs::MetadataExt;
        let mut files = HashMap::new();
        let mut contents = HashSet::new();
        let mut latest = (0, 0);
        for (path, entry) in tree.iter() {
            let Kind::File { digest, size } = entry.kind else {
                continue;
            };
            let host = kiln_tree::host_path(root, path);
            let meta = std::fs::symlink_metadata(&host)
                .with_context(|| format!("cannot read {}", host.display()))?;
            let ctime = (meta.ctime(), meta.ctime_nsec());
            latest = latest.max(ctime);
            files.insert(meta.ino(), (ctime, digest, size));
            contents.insert(digest);
        }
        if !clock_passes(latest) {
            // A clock that stands still cannot tell changes: read it all.
            files.clear();
        }
        Ok(Written { files, contents })
    }

    /// The content of the file `found`, when it is one written here and
    /// nothing has changed it since.
    fn unchanged(&self, found: &HostEntry) -> Option<(Digest, u64)> {
        if found.kind != HostKind::File {
            return None;
        }
        // One file system (the helper's tmpfs): the inode number is enough.
        match self.files.get(&found.inode.1) {
            Some(&(ctime, digest, size)) if ctime == found.ctime && size == found.size => {
                Some((digest, size))
            }
            _ => None,
        }
    }
}

/// Waits (a clock tick at most) until the clock file systems stamp change
/// times with is past `time`; false if it did not get there in a second.
fn clock_passes(time: (i64, i64)) -> bool {
    let now = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec to a valid pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        (ts.tv_sec, ts.tv_nsec)
    };
    for _ in 0..1000 {
        if now() > time {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    false
}

/// The directory argument of the helper, checked.
pub fn helper_work_dir(arg: &Path) -> Result<PathBuf> {
    if !arg.join(SCRIPT).is_file() {
        bail!("{HELPER_COMMAND} is kiln's own helper, not a command to run by hand");
    }
    Ok(arg.to_owned())
}

/// Sets the modification time of every path of `tree` below `root` (links
/// themselves, not their targets) to `epoch`.
fn date_tree(tree: &Tree, root: &Path, epoch: i64) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let times = [libc::timespec {
        tv_sec: epoch,
        tv_nsec: 0,
    }; 2];
    for (path, _) in tree.iter() {
        let host = kiln_tree::host_path(root, path);
        let name = std::ffi::CString::new(host.as_os_str().as_bytes())
            .context("a path with a NUL byte")?;
        // SAFETY: `name` is a NUL-terminated path and `times` two timespecs.
        let rc = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                name.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot date {}", host.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_tree::{Entry, ImagePath, Meta};

    /// A script that rewrites a file in place, to the same size, and dates
    /// it back as it was still gets its change read: the change time moved.
    #[test]
    fn only_files_the_scripts_left_alone_are_taken_as_handed() {
        // SAFETY: getuid and getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let meta = Meta {
            mode: 0o644,
            uid,
            gid,
            xattrs: Default::default(),
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let mut tree = Tree::new();
        let mut root_meta = meta.clone();
        root_meta.mode = 0o755;
        tree.set_meta(&ImagePath::root(), root_meta);
        for (path, content) in [("/kept", "kept"), ("/edited", "old!"), ("/replaced", "was")] {
            let entry = Entry::file(&store, content.as_bytes(), meta.clone()).unwrap();
            tree.insert(ImagePath::new(path).unwrap(), entry).unwrap();
        }
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        kiln_tree::write_dir(&tree, &store, &root).unwrap();
        date_tree(&tree, &root, 1_700_000_000).unwrap();
        let written = Written::note(&tree, &root).unwrap();
        assert_eq!(written.files.len(), 3);

        // the scripts: one file edited in place and dated back, one replaced
        std::fs::write(root.join("edited"), "new!").unwrap();
        let mut back_dated = Tree::new();
        back_dated
            .insert(
                ImagePath::new("/edited").unwrap(),
                Entry::file(&store, b"new!", meta.clone()).unwrap(),
            )
            .unwrap();
        date_tree(&back_dated, &root, 1_700_000_000).unwrap();
        std::fs::write(root.join("replaced.new"), "now").unwrap();
        std::fs::rename(root.join("replaced.new"), root.join("replaced")).unwrap();

        let back_store = Store::open(&dir.path().join("back")).unwrap();
        let back =
            load_dir_taking_changed(&root, &back_store, &|_| false, &|e| written.unchanged(e))
                .unwrap();
        let digest = |path: &str| match back.get(&ImagePath::new(path).unwrap()).unwrap().kind {
            Kind::File { digest, .. } => digest,
            _ => panic!("{path} is a file"),
        };
        assert_eq!(digest("/kept"), Digest::of(b"kept"));
        assert!(root.join("kept").exists(), "not read back");
        assert_eq!(digest("/edited"), Digest::of(b"new!"));
        assert_eq!(digest("/replaced"), Digest::of(b"now"));
        assert!(back_store.read_to_vec(&Digest::of(b"new!")).is_ok());
        assert!(written.contents.contains(&Digest::of(b"kept")));
    }
}
