//! A build killed midway leaves no file in the output directory.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A recipe whose base holds enough incompressible data that packing takes
/// a noticeable time.
fn slow_recipe(work: &Path) -> PathBuf {
    sh(
        work,
        "mkdir -p src/data && head -c 96M /dev/urandom > src/data/blob && tar -C src -cf base.tar .",
    );
    let recipe = work.join("r.toml");
    std::fs::write(
        &recipe,
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"slow\"\nversion = \"1\"\n[base]\npath = \"base.tar\"\nsha256 = \"{}\"\n",
            sha256_file(&work.join("base.tar"))
        ),
    )
    .unwrap();
    recipe
}

/// Starts a build and waits until it is writing the archive.
fn start_and_wait_for_packing(recipe: &Path, out: &Path) -> Child {
    let mut child = kiln()
        .arg("build")
        .arg(recipe)
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let packing = std::fs::read_dir(out)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let archive = e.path().join("slow-1.rootfs.tar.zst");
                std::fs::metadata(archive).is_ok_and(|m| m.len() > 0)
            });
        if packing {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended ({status}) before it could be interrupted");
        }
        assert!(Instant::now() < deadline, "the build never started packing");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    let rc = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(rc, 0, "kill failed");
}

#[test]
fn sigterm_and_sigint_leave_an_empty_output_directory() {
    let work = tempfile::tempdir().unwrap();
    let recipe = slow_recipe(work.path());
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let out = work.path().join(format!("out-{sig}"));
        let mut child = start_and_wait_for_packing(&recipe, &out);
        signal(&child, sig);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "signal {sig}");
        assert_eq!(
            list_dir(&out),
            Vec::<String>::new(),
            "signal {sig} left files"
        );
    }
}

#[test]
fn sigkill_leaves_no_artifact_and_the_next_build_cleans_up() {
    let work = tempfile::tempdir().unwrap();
    let recipe = slow_recipe(work.path());
    let out = work.path().join("out");
    let mut child = start_and_wait_for_packing(&recipe, &out);
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let left = list_dir(&out);
    assert!(
        left.iter().all(|p| p.starts_with(".kiln-work-")),
        "SIGKILL left a visible file: {left:?}"
    );
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("build")
            .arg(&recipe)
            .arg("-o")
            .arg(&out)
            .arg("-q"),
    );
    assert_eq!(
        list_dir(&out),
        ["slow-1.manifest.json", "slow-1.rootfs.tar.zst"]
    );
}
