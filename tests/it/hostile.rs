//! Hostile and damaged inputs get a clear error and write nothing: not
//! outside the output directory, and no artifact inside it.

use crate::common;

use common::*;
use std::path::Path;

/// Writes a tar with Python's tarfile, which (unlike GNU tar) stores any
/// member name it is given: `members` is a Python list literal of
/// `(name, type, data_or_linkname)`.
fn python_tar(out: &Path, members: &str) {
    let script = format!(
        r#"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT) as t:
    for name, kind, arg in {members}:
        info = tarfile.TarInfo(name)
        if kind == "file":
            info.size = len(arg)
            t.addfile(info, io.BytesIO(arg))
            continue
        info.type = {{"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}}[kind]
        info.linkname = arg
        t.addfile(info)
"#
    );
    run_ok(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(out),
    );
}

/// Builds a recipe on `base` and returns stderr, asserting failure and an
/// empty output directory.
fn build_fails(work: &Path, base: &Path) -> String {
    let recipe = work.join("r.toml");
    std::fs::write(
        &recipe,
        format!(
            "[image]\nname = \"h\"\nversion = \"1\"\n[base]\npath = \"{}\"\nsha256 = \"{}\"\n",
            base.file_name().unwrap().to_str().unwrap(),
            sha256_file(base)
        ),
    )
    .unwrap();
    let out_dir = work.join("out");
    let out = kiln()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure, got {}: {stderr}",
        out.status
    );
    assert_eq!(
        list_dir(&out_dir),
        Vec::<String>::new(),
        "output directory is not empty"
    );
    stderr
}

#[test]
fn dotdot_member_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("evil.tar");
    python_tar(
        &base,
        r#"[("./etc", "dir", ""), ("../escaped", "file", b"x"), ("etc/../../escaped2", "file", b"x")]"#,
    );
    let stderr = build_fails(work.path(), &base);
    assert!(stderr.contains("member \"../escaped\""), "{stderr}");
    assert!(
        stderr.contains("path contains '..', which could escape the image root"),
        "{stderr}"
    );
    assert!(!work.path().parent().unwrap().join("escaped").exists());
}

#[test]
fn absolute_member_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("abs-target");
    let base = work.path().join("abs.tar");
    python_tar(
        &base,
        &format!(r#"[("{}", "file", b"pwned")]"#, target.display()),
    );
    let stderr = build_fails(work.path(), &base);
    assert!(
        stderr.contains("absolute member names are refused"),
        "{stderr}"
    );
    assert!(
        !target.exists(),
        "an absolute member was written to the host"
    );
}

#[test]
fn file_through_planted_symlink_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let outside = work.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let base = work.path().join("symlink.tar");
    python_tar(
        &base,
        &format!(
            r#"[("etc", "symlink", "{}"), ("etc/passwd", "file", b"pwned")]"#,
            outside.display()
        ),
    );
    let stderr = build_fails(work.path(), &base);
    assert!(
        stderr.contains("/etc/passwd: /etc is a symlink; writing through it could leave the image"),
        "{stderr}"
    );
    assert_eq!(list_dir(&outside), Vec::<String>::new());
    // the relative form of the same trick
    let base = work.path().join("symlink2.tar");
    python_tar(
        &base,
        r#"[("up", "symlink", "../../.."), ("up/tmp/x", "file", b"pwned")]"#,
    );
    let stderr = build_fails(work.path(), &base);
    assert!(stderr.contains("/up/tmp/x: /up is a symlink"), "{stderr}");
}

#[test]
fn hard_link_to_missing_or_escaping_target_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("links.tar");
    python_tar(
        &base,
        r#"[("etc/shadow-copy", "hardlink", "../../etc/shadow")]"#,
    );
    let stderr = build_fails(work.path(), &base);
    assert!(stderr.contains("hard link target"), "{stderr}");
    let base = work.path().join("links2.tar");
    python_tar(&base, r#"[("a", "hardlink", "nowhere")]"#);
    let stderr = build_fails(work.path(), &base);
    assert!(
        stderr.contains("hard link /a -> /nowhere: the target does not exist"),
        "{stderr}"
    );
    // found by fuzzing: a link named like the directory holding its target
    let base = work.path().join("links3.tar");
    python_tar(&base, r#"[("d/f", "file", b""), ("d", "hardlink", "d/f")]"#);
    let stderr = build_fails(work.path(), &base);
    assert!(
        stderr.contains("the link would replace the directory that holds its own target"),
        "{stderr}"
    );
}

#[test]
fn tampered_base_tarball_is_refused_before_reading_it() {
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base.tar");
    python_tar(
        &base,
        r#"[("etc/passwd", "file", b"root:x:0:0::/root:/bin/sh\n")]"#,
    );
    let recipe = work.path().join("r.toml");
    std::fs::write(
        &recipe,
        format!("[image]\nname = \"h\"\nversion = \"1\"\n[base]\npath = \"base.tar\"\nsha256 = \"{}\"\n", sha256_file(&base)),
    )
    .unwrap();
    // flip one byte of the content after pinning
    let mut bytes = std::fs::read(&base).unwrap();
    let at = bytes.windows(4).position(|w| w == b"root").unwrap();
    bytes[at] = b'R';
    std::fs::write(&base, &bytes).unwrap();
    let out = kiln()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(work.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "has sha256 {}, but the recipe pins",
            sha256_file(&base)
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("r.toml:5:8"),
        "the error should point at the pinned path: {stderr}"
    );
    assert_eq!(list_dir(&work.path().join("out")), Vec::<String>::new());
}

#[test]
fn truncated_and_garbage_archives_fail_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("full.tar");
    python_tar(&base, r#"[("big", "file", bytes(range(256)) * 100)]"#);
    let bytes = std::fs::read(&base).unwrap();
    let truncated = work.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..5000]).unwrap();
    let stderr = build_fails(work.path(), &truncated);
    assert!(stderr.contains("truncated.tar"), "{stderr}");
    let garbage = work.path().join("garbage.tar.zst");
    std::fs::write(&garbage, b"\x28\xb5\x2f\xfdnot really zstd at all").unwrap();
    let stderr = build_fails(work.path(), &garbage);
    assert!(stderr.contains("garbage.tar.zst"), "{stderr}");
}
