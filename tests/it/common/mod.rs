//! Helpers shared by the integration tests: running the real `kiln`
//! binary and making inputs with real tools (GNU tar, mknod, setcap).
#![allow(dead_code)] // each test binary uses a different subset

pub mod debrepo;
pub mod http;
pub mod oracle;
pub mod qemu;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The packages of a K3s node on top of minbase: the set the tests of the
/// real archive compare with apt and mmdebstrap.
pub const NODE_SET: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "openssh-server",
    "nftables",
    "iproute2",
    "ca-certificates",
    "kmod",
    "udev",
];

/// stdout and stderr of a finished command, for assertions and messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `kiln` command with a clean, fixed environment.
pub fn kiln() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// Build conditions that must not reach an image: umask, time zone,
/// locale and the wall clock (moved with libfaketime).
pub struct Conditions {
    pub umask: &'static str,
    pub tz: &'static str,
    pub locale: &'static str,
    pub clock: &'static str,
}

/// Two sets of conditions that differ in every respect.
pub const CONDITIONS: [Conditions; 2] = [
    Conditions {
        umask: "022",
        tz: "UTC",
        locale: "C",
        clock: "2020-01-01 00:00:00",
    },
    Conditions {
        umask: "077",
        tz: "Asia/Kathmandu",
        locale: "de_DE.UTF-8",
        clock: "2031-07-04 13:37:00",
    },
];

/// `program` run under `conditions`; add arguments, directory and
/// environment as to any command.
pub fn under(conditions: &Conditions, program: &str) -> Command {
    assert!(
        Path::new("/usr/bin/faketime").exists(),
        "faketime is missing: apt-get install faketime (`just deps` installs it)"
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "umask {}; exec faketime '{}' \"$@\"",
            conditions.umask, conditions.clock
        ))
        .arg("sh")
        .arg(program)
        .env("TZ", conditions.tz)
        .env("LC_ALL", conditions.locale);
    cmd
}

/// `kiln` (as [`kiln`] sets it up) under `conditions`.
pub fn kiln_under(conditions: &Conditions) -> Command {
    let mut cmd = under(conditions, env!("CARGO_BIN_EXE_kiln"));
    cmd.env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// Runs `cmd`, panicking with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("cannot start command");
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a shell script with `sh -euc`, panicking on failure.
pub fn sh(dir: &Path, script: &str) -> Output {
    run_ok(Command::new("sh").arg("-euc").arg(script).current_dir(dir))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Tests that need root (devices, owners, capabilities, namespaces) are
/// marked `#[ignore = "needs root"]` and call this first: a plain `cargo
/// test` lists them as ignored, and when `--include-ignored` asks for them
/// without root they fail here rather than pass without running.
pub fn require_root(test: &str) {
    assert!(
        is_root(),
        "{test}: needs root: run as root, or leave out --include-ignored"
    );
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    hex::encode(Sha256::digest(bytes))
}

/// Packs `dir` with GNU tar, keeping owners, modes, devices and xattrs.
pub fn gnu_tar(dir: &Path, out: &Path) {
    run_ok(
        Command::new("tar")
            .args([
                "--xattrs",
                "--xattrs-include=*",
                "--sort=name",
                "--numeric-owner",
                "-C",
            ])
            .arg(dir)
            .args(["-cpf"])
            .arg(out)
            .arg("."),
    );
}

/// Files in `dir` (recursively), as sorted relative paths.
/// The regular files below `dir` (relative paths, sorted) with the
/// sha256 of each: two directories with the same list hold the same bytes.
pub fn file_digests(dir: &Path) -> Vec<(String, String)> {
    list_dir(dir)
        .into_iter()
        .filter(|p| dir.join(p).is_file())
        .map(|p| {
            let digest = sha256_file(&dir.join(&p));
            (p, digest)
        })
        .collect()
}

pub fn list_dir(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
