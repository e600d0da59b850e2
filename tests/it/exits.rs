//! How kiln ends when its reader goes away: every command, with stdout (or
//! stdout and stderr) a pipe whose reader closes after one line, or before
//! kiln writes anything, must end quietly — killed by SIGPIPE as coreutils
//! are (141 in a shell), or 0 when it had nothing left to write — and never
//! with a panic (exit 101, "failed printing to stdout", a backtrace).

use crate::common;

use common::debrepo::{Deb, TestRepo};
use common::*;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

const RECIPE: &str = "[audit]\nfail_on = \"none\"\n[image]\nname = \"piped\"\nversion = \"1.0.0\"\nsource_date_epoch = 1700000000\n\
    [[file]]\ndest = \"/etc/motd\"\ncontent = \"hello\\n\"\n[[file]]\ndest = \"/etc/app.conf\"\ncontent = \"a = 1\\nb = 2\\n\"\n";
const RECIPE_2: &str = "[audit]\nfail_on = \"none\"\n[image]\nname = \"piped\"\nversion = \"2.0.0\"\nsource_date_epoch = 1700000000\n\
    [[file]]\ndest = \"/etc/issue\"\ncontent = \"new\\n\"\n[[file]]\ndest = \"/etc/app.conf\"\ncontent = \"a = 1\\nb = 3\\nc = 4\\n\"\n";

const MANIFEST: &str = "dist/piped-1.0.0.manifest.json";
const ARCHIVE: &str = "dist/piped-1.0.0.rootfs.tar.zst";
const ARCHIVE_2: &str = "dist2/piped-2.0.0.rootfs.tar.zst";

/// A signed image, a second one to diff against, a Debian repository and
/// a recipe of it, locked.
fn fixture() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    run_ok(
        kiln()
            .current_dir(w)
            .args(["keygen", "-o", "k", "--no-password"]),
    );
    std::fs::write(w.join("r.toml"), RECIPE).unwrap();
    std::fs::write(w.join("r2.toml"), RECIPE_2).unwrap();
    run_ok(
        kiln()
            .current_dir(w)
            .args(["build", "r.toml", "-o", "dist", "--key", "k.key", "-q"]),
    );
    run_ok(
        kiln()
            .current_dir(w)
            .args(["build", "r2.toml", "-o", "dist2", "-q"]),
    );
    std::fs::create_dir(w.join("root")).unwrap();

    let repo = TestRepo::new(w);
    for name in ["base-files", "libpipe1", "pipe-app"] {
        repo.add(
            "pipetest",
            &Deb {
                name,
                version: "1.0",
                essential: name == "base-files",
                depends: if name == "pipe-app" { "libpipe1" } else { "" },
                ..Deb::default()
            },
        );
    }
    repo.publish("pipetest", "");
    std::fs::copy(&repo.keyring, w.join("keyring.gpg")).unwrap();
    std::fs::write(
        w.join("d.toml"),
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"deb\"\nversion = \"1\"\n[debian]\nsuite = \"pipetest\"\n\
             updates = false\nsecurity = false\nvariant = \"essential\"\npackages = [\"pipe-app\"]\n\
             keyring = \"keyring.gpg\"\nmirror = \"{}\"\n",
            repo.url()
        ),
    )
    .unwrap();
    run_ok(kiln_at(w).args(["lock", "d.toml"]));
    work
}

fn kiln_at(dir: &Path) -> Command {
    let mut cmd = kiln();
    cmd.current_dir(dir)
        .env("RUST_BACKTRACE", "1")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .stdin(Stdio::null());
    cmd
}

/// Every command, each with what it prints on stdout.
fn commands(w: &Path, run: usize) -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    // each run writes where the previous one did not
    let out = format!("out-{run}");
    let key = format!("key-{run}");
    let signed = format!("copy-{run}.manifest.json");
    std::fs::copy(w.join(MANIFEST), w.join(&signed)).unwrap();
    let _ = std::fs::remove_file(w.join("d.lock"));
    vec![
        ("build", s(&["build", "r.toml", "-o", &out])),
        ("lock", s(&["lock", "d.toml"])),
        ("fetch", s(&["fetch", "d.toml"])),
        ("inspect", s(&["inspect", MANIFEST])),
        ("keygen", s(&["keygen", "-o", &key, "--no-password"])),
        ("sign", s(&["sign", "--key", "k.key", &signed])),
        ("verify", s(&["verify", "--key", "k.pub", MANIFEST])),
        (
            "check",
            s(&[
                "check",
                "--manifest",
                MANIFEST,
                "--key",
                "k.pub",
                "--root",
                "root",
            ]),
        ),
        ("diff", s(&["diff", ARCHIVE, ARCHIVE_2])),
        ("audit", s(&["audit", ARCHIVE])),
        ("audit --list-rules", s(&["audit", "--list-rules"])),
        ("--help", s(&["--help"])),
    ]
}

/// Commands that print nothing on stdout when they succeed.
const SILENT_ON_STDOUT: &[&str] = &["fetch"];

/// A pipe with the smallest buffer Linux allows (one page), so that a
/// closed reader is noticed after a few lines, not after 64 KiB.
fn small_pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
    let (reader, writer) = std::io::pipe().unwrap();
    // SAFETY: F_SETPIPE_SZ on a pipe we own; failure leaves the default size.
    unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    (reader, writer)
}

/// Reads up to and including the first newline, then closes the pipe.
fn read_one_line(mut reader: std::io::PipeReader) -> Vec<u8> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = reader.read(&mut byte) {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    line
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// The pipe is closed before kiln starts: its first write fails.
    ClosedAtStart,
    /// `kiln … | head -1`.
    OneLine,
    /// `kiln … 2>&1 | head -1`.
    OneLineBothStreams,
}

struct Ended {
    status: ExitStatus,
    /// stderr, when it was not the pipe.
    stderr: String,
    first_line: String,
}

fn run_piped(w: &Path, args: &[String], reader_kind: Reader) -> Ended {
    let (reader, writer) = small_pipe();
    let mut cmd = kiln_at(w);
    cmd.args(args);
    if reader_kind == Reader::OneLineBothStreams {
        cmd.stderr(writer.try_clone().unwrap());
    } else {
        cmd.stderr(Stdio::piped());
    }
    cmd.stdout(writer);
    let mut first_line = Vec::new();
    let child = if reader_kind == Reader::ClosedAtStart {
        drop(reader);
        let child = cmd.spawn().unwrap();
        drop(cmd);
        child
    } else {
        let child = cmd.spawn().unwrap();
        // The parent's copies of the write end must go, or EOF never comes.
        drop(cmd);
        first_line = read_one_line(reader);
        child
    };
    let out = child.wait_with_output().unwrap();
    Ended {
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        first_line: String::from_utf8_lossy(&first_line).into_owned(),
    }
}

fn killed_by_sigpipe(status: &ExitStatus) -> bool {
    status.signal() == Some(libc::SIGPIPE)
}

fn assert_no_panic(what: &str, ended: &Ended) {
    assert_ne!(
        ended.status.code(),
        Some(101),
        "{what}: exit 101 (a panic)\n{}",
        ended.stderr
    );
    for text in [&ended.stderr, &ended.first_line] {
        for sign in [
            "panicked",
            "Broken pipe",
            "failed printing",
            "stack backtrace",
        ] {
            assert!(!text.contains(sign), "{what}: {sign:?} in\n{text}");
        }
    }
}

#[test]
fn every_command_ends_quietly_when_its_reader_goes_away() {
    let work = fixture();
    let w = work.path();
    for (run, reader) in [
        Reader::ClosedAtStart,
        Reader::OneLine,
        Reader::OneLineBothStreams,
    ]
    .into_iter()
    .enumerate()
    {
        for (name, args) in commands(w, run) {
            let what = format!(
                "kiln {name} ({})",
                match reader {
                    Reader::ClosedAtStart => "stdout closed at start",
                    Reader::OneLine => "| head -1",
                    Reader::OneLineBothStreams => "2>&1 | head -1",
                }
            );
            let ended = run_piped(w, &args, reader);
            assert_no_panic(&what, &ended);
            let silent = SILENT_ON_STDOUT.contains(&name);
            match reader {
                // clap prints --help itself and ignores a closed pipe (0);
                // everything else that writes is killed by SIGPIPE.
                Reader::ClosedAtStart if name == "--help" || silent => assert_eq!(
                    ended.status.code(),
                    Some(0),
                    "{what}: {:?}\n{}",
                    ended.status,
                    ended.stderr
                ),
                Reader::ClosedAtStart => assert!(
                    killed_by_sigpipe(&ended.status),
                    "{what}: {:?}, expected death by SIGPIPE\n{}",
                    ended.status,
                    ended.stderr
                ),
                // Whether a write comes after the reader left depends on
                // how much fit in the pipe: SIGPIPE, or the usual status.
                _ => {
                    // check finds every file removed from the empty root;
                    // the audit finds an image that is not hardened
                    let usual = match name {
                        "check" => 4,
                        "audit" => 5,
                        _ => 0,
                    };
                    assert!(
                        killed_by_sigpipe(&ended.status) || ended.status.code() == Some(usual),
                        "{what}: {:?}\n{}",
                        ended.status,
                        ended.stderr
                    );
                    if !(silent && reader == Reader::OneLine) {
                        assert!(!ended.first_line.is_empty(), "{what}: printed nothing");
                    }
                }
            }
            if reader != Reader::OneLineBothStreams {
                assert_eq!(
                    ended.stderr.lines().find(|l| l.starts_with("error")),
                    None,
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn a_build_whose_log_reader_leaves_stops_and_leaves_nothing_behind() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("r.toml"), RECIPE).unwrap();
    let args: Vec<String> = ["build", "r.toml", "-o", "out"].map(String::from).to_vec();
    let ended = run_piped(w, &args, Reader::OneLineBothStreams);
    assert_no_panic("kiln build 2>&1 | head -1", &ended);
    assert_eq!(
        ended.first_line,
        "kiln: building piped-1.0.0 (amd64) from r.toml, SOURCE_DATE_EPOCH=1700000000\n"
    );
    // the next progress line finds the pipe closed
    assert!(killed_by_sigpipe(&ended.status), "{:?}", ended.status);
    assert_eq!(list_dir(&w.join("out")), Vec::<String>::new());
}

/// What a shell reports for `kiln … | head -1` when kiln has more to say
/// than the pipe holds: 141, as for `yes | head -1`.
#[test]
fn a_shell_sees_141_as_for_coreutils() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // 3000 files, all missing from an empty root: ~100 KB of drift lines
    let many = w.join("overlay/srv/many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..3000 {
        std::fs::write(many.join(format!("file-{i:04}")), "x").unwrap();
    }
    std::fs::create_dir(w.join("root")).unwrap();
    std::fs::write(
        w.join("r.toml"),
        format!("{RECIPE}[[overlay]]\nsource = \"overlay\"\n"),
    )
    .unwrap();
    run_ok(
        kiln()
            .current_dir(w)
            .args(["keygen", "-o", "k", "--no-password"]),
    );
    run_ok(
        kiln()
            .current_dir(w)
            .args(["build", "r.toml", "-o", "dist", "--key", "k.key", "-q"]),
    );
    let script = format!(
        "set -o pipefail; RUST_BACKTRACE=1 '{}' check --manifest {MANIFEST} --key k.pub --root root 2>err | head -1; echo $?; cat err",
        env!("CARGO_BIN_EXE_kiln")
    );
    let out = run_ok(Command::new("bash").arg("-c").arg(&script).current_dir(w));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // head's line, kiln's status, and kiln's stderr: one progress line
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[..2], ["removed   /etc", "141"], "{text}");
    assert!(
        lines[2].starts_with("kiln: manifest of piped 1.0.0 signed by key ")
            && lines[2].ends_with("; checking root"),
        "{text}"
    );
    let coreutils = run_ok(
        Command::new("bash")
            .arg("-c")
            .arg("set -o pipefail; yes | head -1 >/dev/null; echo $?"),
    );
    assert_eq!(String::from_utf8(coreutils.stdout).unwrap(), "141\n");
}

/// An error that cannot be printed (stderr is a closed pipe) ends kiln as
/// any write to a closed pipe does, not with a panic about it.
#[test]
fn an_error_written_to_a_closed_stderr_ends_by_sigpipe() {
    let work = tempfile::tempdir().unwrap();
    let (reader, writer) = small_pipe();
    drop(reader);
    let status = kiln_at(work.path())
        .args(["inspect", "missing.manifest.json"])
        .stdout(Stdio::null())
        .stderr(writer)
        .status()
        .unwrap();
    assert!(killed_by_sigpipe(&status), "{status:?}");
}

/// Runs `cmd` under GNU time; returns its output and its peak resident
/// memory in KiB, for the tests that refuse oversized inputs: kiln must
/// refuse them without reading them into memory.
pub(crate) fn with_max_rss(cmd: &Command) -> (std::process::Output, u64) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("rss");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(cwd) = cmd.get_current_dir() {
        timed.current_dir(cwd);
    }
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    let out = timed.output().expect("GNU time (the time package) runs");
    let text = std::fs::read_to_string(&report).unwrap();
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak memory in {text:?}"));
    (out, kib)
}

/// A file of `len` bytes that takes no disk space (a hole).
pub(crate) fn sparse_file(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}
