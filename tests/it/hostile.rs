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

/// Every path below `dir` but `skip` and what is below it, with its type
/// and content: compared before and after a refused build, it shows that
/// nothing was written anywhere kiln could reach from the test.
fn snapshot(dir: &Path, skip: &str) -> Vec<String> {
    list_dir(dir)
        .into_iter()
        .filter(|p| p != skip && !p.starts_with(&format!("{skip}/")))
        .map(|p| {
            let full = dir.join(&p);
            let meta = std::fs::symlink_metadata(&full).unwrap();
            if meta.is_file() {
                format!("{p} {}", sha256_file(&full))
            } else if meta.is_symlink() {
                format!("{p} -> {}", std::fs::read_link(&full).unwrap().display())
            } else {
                format!("{p} {:?}", meta.file_type())
            }
        })
        .collect()
}

/// Runs `kiln build r.toml -o out` in `work`, with the temporary directory
/// inside `work` too, and returns the output. Whatever the result, nothing
/// outside `out` may change: no file escaped, no temporary file left.
fn build_in(work: &Path) -> std::process::Output {
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let before = snapshot(work, "out");
    let out = kiln()
        .current_dir(work)
        .env("TMPDIR", &tmp)
        .args(["build", "r.toml", "-o", "out"])
        .output()
        .unwrap();
    assert_eq!(
        snapshot(work, "out"),
        before,
        "the build wrote outside its output directory: {}",
        output_text(&out)
    );
    out
}

/// Builds a recipe on `base` (in `work`) and returns stderr, asserting
/// failure, an empty output directory and nothing written elsewhere.
fn build_fails(work: &Path, base: &Path) -> String {
    std::fs::write(
        work.join("r.toml"),
        format!(
            "[image]\nname = \"h\"\nversion = \"1\"\n[base]\npath = \"{}\"\nsha256 = \"{}\"\n",
            base.file_name().unwrap().to_str().unwrap(),
            sha256_file(base)
        ),
    )
    .unwrap();
    let out = build_in(work);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure, got {}: {stderr}",
        out.status
    );
    assert_eq!(
        list_dir(&work.join("out")),
        Vec::<String>::new(),
        "output directory is not empty"
    );
    stderr
}

/// The line of `stderr` that starts with "error:".
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in {stderr}"))
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
        stderr.contains(&format!(
            "error: base tarball symlink.tar: /etc/passwd: /etc is a symlink to \"{}\" placed by this same input; an input never writes through its own symlinks",
            outside.display()
        )),
        "{stderr}"
    );
    assert_eq!(list_dir(&outside), Vec::<String>::new());
    // the relative form of the same trick, and a link that stays inside
    for (link, target) in [("up", "../../.."), ("sub", "etc")] {
        let base = work.path().join(format!("symlink-{link}.tar"));
        python_tar(
            &base,
            &format!(r#"[("{link}", "symlink", "{target}"), ("{link}/tmp/x", "file", b"pwned")]"#),
        );
        let stderr = build_fails(work.path(), &base);
        assert!(
            stderr.contains(&format!(
                "/{link}/tmp/x: /{link} is a symlink to \"{target}\" placed by this same input"
            )),
            "{stderr}"
        );
    }
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
        stderr.contains("/a: hard link to /nowhere: the target does not exist"),
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

/// The kinds of special file, with the command that makes one at `x`.
const SPECIAL: &[(&str, &str)] = &[
    ("fifo", "mkfifo x"),
    ("character device", "mknod x c 1 3"),
    ("block device", "mknod x b 8 0"),
];

#[test]
#[ignore = "needs root"]
fn devices_and_fifos_outside_dev_are_refused_in_a_base_tarball() {
    require_root("devices_and_fifos_outside_dev_are_refused_in_a_base_tarball");
    for (i, (what, make)) in SPECIAL.iter().enumerate() {
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("src");
        // one of each below /dev is fine; the same outside is not
        std::fs::create_dir_all(src.join("dev")).unwrap();
        std::fs::create_dir_all(src.join("var/tmp")).unwrap();
        sh(&src.join("dev"), make);
        sh(&src.join("var/tmp"), make);
        let base = work.path().join(format!("special-{i}.tar"));
        gnu_tar(&src, &base);
        let stderr = build_fails(work.path(), &base);
        assert!(
            error_line(&stderr).ends_with(&format!(
                "base tarball special-{i}.tar: /var/tmp/x: a {what} outside /dev; device nodes and fifos are only accepted below /dev"
            )),
            "{stderr}"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn devices_and_fifos_outside_dev_are_refused_in_an_overlay() {
    require_root("devices_and_fifos_outside_dev_are_refused_in_an_overlay");
    for (what, make) in SPECIAL {
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(work.path().join("ov/srv")).unwrap();
        sh(&work.path().join("ov/srv"), make);
        std::fs::write(
            work.path().join("r.toml"),
            "[image]\nname = \"h\"\nversion = \"1\"\n[[overlay]]\nsource = \"ov\"\n",
        )
        .unwrap();
        let out = build_in(work.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            error_line(&stderr).starts_with(&format!(
                "error: r.toml:4:1: overlay file ov/srv/x: /srv/x: a {what} outside /dev; device nodes and fifos are only accepted below /dev"
            )),
            "{stderr}"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn the_tree_read_back_after_scripts_refuses_devices_outside_dev() {
    require_root("the_tree_read_back_after_scripts_refuses_devices_outside_dev");
    let store_dir = tempfile::tempdir().unwrap();
    let store = kiln_tree::Store::open(store_dir.path()).unwrap();
    for (what, make) in SPECIAL {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        std::fs::create_dir_all(root.path().join("run/x")).unwrap();
        sh(&root.path().join("dev"), make);
        // below /dev it is kept
        let tree = kiln_tree::load_dir(root.path(), &store, &|_| false).unwrap();
        assert!(tree.contains(&kiln_tree::ImagePath::new("/dev/x").unwrap()));
        std::fs::remove_dir(root.path().join("run/x")).unwrap();
        sh(&root.path().join("run"), make);
        let err = kiln_tree::load_dir(root.path(), &store, &|_| false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "directory {}: /run/x: a {what} outside /dev; device nodes and fifos are only accepted below /dev",
                root.path().display()
            )
        );
    }
}

#[test]
#[ignore = "needs root"]
fn the_audit_flags_devices_and_fifos_outside_dev_in_a_directory() {
    require_root("the_audit_flags_devices_and_fifos_outside_dev_in_a_directory");
    let root = tempfile::tempdir().unwrap();
    sh(
        root.path(),
        "mkdir -p dev var/tmp srv && mknod dev/null c 1 3 && mkfifo dev/initctl \
         && mkfifo var/tmp/pipe && mknod srv/disk b 8 0 && mknod srv/mem c 1 1",
    );
    let out = kiln()
        .args(["audit", "--format", "json", "--fail-on", "critical"])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rule = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "fs.devices")
        .unwrap_or_else(|| panic!("no fs.devices in {report}"));
    assert_eq!(rule["status"], "fail", "{rule}");
    let found: Vec<String> = rule["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["path"].as_str().unwrap(),
                f["value"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            "/srv/disk block 8:0 0644",
            "/srv/mem char 1:1 0644",
            "/var/tmp/pipe fifo 0644"
        ]
    );
}

/// A file of the build host that no image may contain, and its bytes.
fn host_secret(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let secret = dir.join("host-secret");
    std::fs::create_dir_all(&secret).unwrap();
    let bytes = format!("root:HOST-ONLY-{}:19000::::::\n", std::process::id()).into_bytes();
    std::fs::write(secret.join("shadow"), &bytes).unwrap();
    (secret, bytes)
}

/// Whether `needle` occurs in any file below `dir`, archives decompressed.
fn output_contains(dir: &Path, needle: &[u8]) -> bool {
    list_dir(dir).iter().any(|p| {
        let path = dir.join(p);
        if !path.is_file() {
            return false;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        if p.ends_with(".zst") {
            bytes = zstd::decode_all(&bytes[..]).unwrap();
        }
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn a_file_source_never_follows_a_host_symlink_out_of_the_recipe_folder() {
    let work = tempfile::tempdir().unwrap();
    let (secret, bytes) = host_secret(work.path());
    let recipe_dir = work.path().join("recipe");
    std::fs::create_dir_all(recipe_dir.join("files")).unwrap();
    let shadow = secret.join("shadow");
    // the source a link out (absolute, climbing), or a directory on the way
    std::os::unix::fs::symlink(&shadow, recipe_dir.join("files/abs")).unwrap();
    std::os::unix::fs::symlink("../../host-secret/shadow", recipe_dir.join("files/up")).unwrap();
    std::os::unix::fs::symlink(&secret, recipe_dir.join("hostdir")).unwrap();
    for (source, link, target) in [
        ("files/abs", "files/abs", shadow.display().to_string()),
        (
            "files/up",
            "files/up",
            "../../host-secret/shadow".to_owned(),
        ),
        ("hostdir/shadow", "hostdir", secret.display().to_string()),
    ] {
        std::fs::write(
            recipe_dir.join("r.toml"),
            format!("[audit]\nfail_on = \"none\"\n[image]\nname = \"h\"\nversion = \"1\"\n[[file]]\ndest = \"/etc/motd\"\nsource = \"{source}\"\n"),
        )
        .unwrap();
        let out = build_in(&recipe_dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !output_contains(&recipe_dir.join("out"), &bytes),
            "the host file's bytes are in the output"
        );
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        let real = std::fs::canonicalize(&recipe_dir).unwrap();
        assert!(
            error_line(&stderr).starts_with(&format!(
                "error: r.toml:6:1: [[file]] source {source}: {}/{link} is a symlink to {target}, which leads to {}, outside the recipe's folder",
                real.display(),
                std::fs::canonicalize(recipe_dir.join(link)).unwrap().display()
            )),
            "{stderr}"
        );
    }
    // a link that stays inside the folder is read like the file it names
    std::fs::write(recipe_dir.join("files/motd.real"), "welcome\n").unwrap();
    std::os::unix::fs::symlink("motd.real", recipe_dir.join("files/motd")).unwrap();
    std::fs::write(
        recipe_dir.join("r.toml"),
        "[audit]\nfail_on = \"none\"\n[image]\nname = \"h\"\nversion = \"1\"\n[[file]]\ndest = \"/etc/motd\"\nsource = \"files/motd\"\n",
    )
    .unwrap();
    let out = build_in(&recipe_dir);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_contains(&recipe_dir.join("out"), b"welcome\n"));
    assert!(!output_contains(&recipe_dir.join("out"), &bytes));
}

/// A recipe with one path value 8 columns into line 5 (`dest = "…"`).
fn long_dest_fails(dest: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("r.toml"),
        format!(
            "[image]\nname = \"h\"\nversion = \"1\"\n[[file]]\ndest = \"{dest}\"\ncontent = \"x\"\n"
        ),
    )
    .unwrap();
    let out = build_in(work.path());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(list_dir(&work.path().join("out")).is_empty());
    error_line(&stderr).to_owned()
}

/// `/` and components of 200 bytes up to `len` bytes in all.
fn deep_path(len: usize) -> String {
    let mut p = String::new();
    while p.len() < len {
        let room = (len - p.len() - 1).clamp(1, 200);
        p.push('/');
        p.push_str(&"d".repeat(room));
    }
    assert_eq!(p.len(), len);
    p
}

#[test]
fn over_long_names_and_paths_are_refused_naming_them_briefly() {
    let name = "n".repeat(256);
    let line = long_dest_fails(&format!("/etc/{name}"));
    assert_eq!(
        line,
        format!(
            "error: r.toml:5:8: dest: path \"/etc/{}…\" has a name of 256 bytes; names are at most 255 bytes (ext4, EROFS, squashfs)",
            "n".repeat(75)
        )
    );
    let line = long_dest_fails(&deep_path(4096));
    assert!(
        line.starts_with("error: r.toml:5:8: dest: path \"/ddd")
            && line.ends_with("…\" is 4096 bytes long; image paths are at most 4094 bytes (the archive member ./path must fit in PATH_MAX for tar to extract it)"),
        "{line}"
    );
    assert!(line.len() < 300, "{line}");

    // the same in a base tarball made by GNU tar
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("src")).unwrap();
    std::fs::write(work.path().join("src/f"), "x").unwrap();
    for (i, long) in [format!("./etc/{name}"), format!(".{}", deep_path(4095))]
        .iter()
        .enumerate()
    {
        let base = work.path().join(format!("long-{i}.tar"));
        run_ok(
            std::process::Command::new("tar")
                .arg("-C")
                .arg(work.path().join("src"))
                .arg(format!("--transform=s,^\\./f$,{long},"))
                .arg("-cf")
                .arg(&base)
                .arg("./f"),
        );
        let stderr = build_fails(work.path(), &base);
        let shown = format!("{}…", &long[..80]);
        assert_eq!(
            error_line(&stderr),
            format!("error: base tarball long-{i}.tar: member \"{shown}\"")
        );
        let cause = stderr
            .lines()
            .find(|l| l.starts_with("  caused by: "))
            .unwrap_or_else(|| panic!("{stderr}"));
        assert!(
            cause.starts_with(&format!("  caused by: path \"{}", &long[1..60])),
            "{cause}"
        );
        assert!(!stderr.contains(&long[..100]), "{stderr}");
        let line = cause;
        assert!(line.len() < 400 && !line.contains(&long[..200]), "{line}");
    }
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
