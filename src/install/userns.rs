//! Configuring without root. A helper process (kiln itself, re-executed)
//! enters a new user namespace in which the building user is root and
//! 65535 subordinate ids from /etc/subuid and /etc/subgid (mapped by the
//! setuid newuidmap and newgidmap, package uidmap) are the image's other
//! users. The helper writes the tree into a tmpfs of its own, runs the
//! scripts there (isolated as in `isolate.rs`, one level down), and packs
//! the result into a tar the build reads back. Nothing owned by a
//! subordinate id ever lands on disk, so nothing is left that the user
//! could not remove, whatever happens to the build.

use super::isolate::{Job, Outcome, Phases, run_shell};
use anyhow::{Context, Result, anyhow, bail};
use kiln_tree::pack::{ArchiveCompression, pack_rootfs};
use kiln_tree::{Store, Tree, load_dir, load_tar, write_dir};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The hidden command line of the helper: `kiln __configure-helper WORK`.
pub const HELPER_COMMAND: &str = "__configure-helper";

/// Ids of the image besides root: 1..=65535 (65534 is nobody).
const SUBORDINATE_IDS: u32 = 65535;

/// The helper's exit code when a script failed (its wait status is in
/// `configure.status`); any other failure exits 1 with a message.
const SCRIPT_FAILED: i32 = 3;

/// The building user and the subordinate ids the host grants it.
pub struct IdRanges {
    uid: u32,
    gid: u32,
    sub_uid: u32,
    sub_gid: u32,
}

impl std::fmt::Display for IdRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "image ids 1-{SUBORDINATE_IDS} as subordinate uids from {} and gids from {}",
            self.sub_uid, self.sub_gid
        )
    }
}

impl IdRanges {
    /// This user's ranges, or why there are none.
    pub fn of_this_user() -> Result<IdRanges, String> {
        // SAFETY: getuid and getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let name = user_name(uid).unwrap_or_else(|| uid.to_string());
        for tool in ["newuidmap", "newgidmap"] {
            if !on_path(tool) {
                return Err(format!("{tool} is missing: apt-get install uidmap"));
            }
        }
        Ok(IdRanges {
            uid,
            gid,
            sub_uid: range_start("/etc/subuid", &name, uid)?,
            sub_gid: range_start("/etc/subgid", &name, uid)?,
        })
    }
}

/// The user's name as the system knows it (NSS: files, LDAP, …).
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 1 << 16];
    // SAFETY: an all-zero passwd is a valid value to be filled in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, `buf` for its length.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// The start of the first range in `file` (`name:start:count` lines, by
/// user name or uid) large enough for an image.
fn range_start(file: &str, name: &str, uid: u32) -> Result<u32, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
            let (start, count): (u32, u32) = (start.parse().ok()?, count.parse().ok()?);
            ((owner == name || owner == uid.to_string()) && count >= SUBORDINATE_IDS)
                .then_some(start)
        })
        .next()
        .ok_or_else(|| {
            format!(
                "{file} gives {name} no range of {SUBORDINATE_IDS} ids; as root: \
                 usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}"
            )
        })
}

/// The build's side: hands the tree to the helper and takes back the
/// configured one.
pub fn run(ids: &IdRanges, tree: &Tree, store: &Store, job: &Job) -> Result<Outcome> {
    let mut phases = Phases::start();
    let work = job.work_dir;
    let input = work.join("configure-in.tar");
    let file = std::fs::File::create(&input)?;
    let (writer, _) = pack_rootfs(
        tree,
        store,
        0,
        ArchiveCompression::None,
        BufWriter::with_capacity(1 << 20, file),
        &|_| {},
    )?;
    drop(writer.into_inner().map_err(|e| e.into_error())?);
    std::fs::write(work.join("configure.sh"), &job.script)?;
    let env: String = job.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(work.join("configure.env"), env)?;

    phases.end("handing the tree over");
    let errors = work.join("configure-helper.err");
    let exe = std::env::current_exe().context("cannot find the kiln binary to run its helper")?;
    let mut command = Command::new(exe);
    command
        .arg(HELPER_COMMAND)
        .arg(work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&errors)?);
    // SAFETY: prctl is a plain system call, allowed between fork and exec.
    unsafe {
        command.pre_exec(|| {
            // The helper dies with kiln.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .context("cannot start kiln's configure helper")?;
    let helper_error = || std::fs::read_to_string(&errors).unwrap_or_default();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut ready)
        .ok();
    if ready.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "the configure helper could not enter a user namespace ({}): this kernel or container \
             forbids unprivileged user namespaces (see sysctl user.max_user_namespaces and, on Debian, \
             kernel.unprivileged_userns_clone); run kiln build as root instead",
            helper_error().trim()
        );
    }
    let pid = child.id().to_string();
    for (tool, own, sub) in [
        ("newuidmap", ids.uid, ids.sub_uid),
        ("newgidmap", ids.gid, ids.sub_gid),
    ] {
        let out = Command::new(tool)
            .args([&pid, "0", &own.to_string(), "1", "1", &sub.to_string()])
            .arg(SUBORDINATE_IDS.to_string())
            .output()
            .with_context(|| format!("cannot run {tool}"))?;
        if !out.status.success() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{tool} refused to map the ids ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(b"go\n")
        .context("the configure helper went away")?;
    let status = child.wait()?;
    phases.end("writing, scripts and reading back in the namespace");
    match status.code() {
        Some(0) => {
            let output = work.join("configure-out.tar");
            let file = std::fs::File::open(&output)
                .with_context(|| format!("cannot read {}", output.display()))?;
            let tree = load_tar(
                BufReader::with_capacity(1 << 20, file),
                "the configured image",
                store,
            )?;
            for done in [input, output] {
                std::fs::remove_file(done)?;
            }
            phases.end("taking it back");
            Ok(Outcome::Configured(tree, phases))
        }
        Some(SCRIPT_FAILED) => {
            let raw: i32 = std::fs::read_to_string(work.join("configure.status"))?
                .trim()
                .parse()?;
            Ok(Outcome::Failed(std::process::ExitStatus::from_raw(raw)))
        }
        _ => bail!(
            "kiln's configure helper failed ({status}): {}",
            helper_error().trim()
        ),
    }
}

/// The helper's side (`kiln __configure-helper WORK`); must run before the
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
    // Root of the user namespace now: the image goes into a tmpfs that
    // disappears with this process's mount namespace.
    let root = work.join("configure-root");
    std::fs::create_dir(&root)?;
    let root_c = std::ffi::CString::new(root.as_os_str().as_encoded_bytes())?;
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
        check(
            libc::mount(
                c"tmpfs".as_ptr(),
                root_c.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"mode=0755".as_ptr().cast(),
            ),
            "cannot mount a tmpfs for the image",
        )?;
    }
    let store = Store::open(&work.join("configure-store"))?;
    let input = std::fs::File::open(work.join("configure-in.tar"))?;
    let tree = load_tar(
        BufReader::with_capacity(1 << 20, input),
        "the image",
        &store,
    )?;
    write_dir(&tree, &store, &root)?;
    let script = std::fs::read_to_string(work.join("configure.sh"))?;
    let env: Vec<(String, String)> = std::fs::read_to_string(work.join("configure.env"))?
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let status = run_shell(&root, &script, &env, &work.join("configure.log"))?;
    if !status.success() {
        std::fs::write(work.join("configure.status"), status.into_raw().to_string())?;
        return Ok(SCRIPT_FAILED);
    }
    let configured = load_dir(&root, &store, &|_| false)?;
    let out = std::fs::File::create(work.join("configure-out.tar"))?;
    let (writer, _) = pack_rootfs(
        &configured,
        &store,
        0,
        ArchiveCompression::None,
        BufWriter::with_capacity(1 << 20, out),
        &|_| {},
    )?;
    writer
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    std::fs::remove_dir_all(work.join("configure-store"))?;
    Ok(0)
}

/// The work directory argument of the helper, checked.
pub fn helper_work_dir(arg: &Path) -> Result<PathBuf> {
    if !arg.join("configure-in.tar").is_file() {
        bail!("{HELPER_COMMAND} is kiln's own helper, not a command to run by hand");
    }
    Ok(arg.to_owned())
}
