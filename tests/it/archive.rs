//! The rootfs archive against the real GNU tar: every owner, mode, link,
//! device and capability survives tar → kiln → tar, and kiln's own output
//! round-trips byte for byte.

use crate::common;

use common::*;
use std::path::Path;

const EPOCH: &str = "1700000000";

/// A directory with every kind of entry an image can hold, made with the
/// real tools (mknod, mkfifo, setcap, chown).
fn special_tree(dir: &Path) {
    sh(
        dir,
        r#"
        mkdir -p usr/bin usr/sbin dev tmp etc secret
        ln -s usr/bin bin
        printf 'setuid program\n' > usr/bin/su && chmod 4755 usr/bin/su
        ln usr/bin/su usr/sbin/su-hardlink
        printf 'setgid program\n' > usr/bin/wall && chown 0:5 usr/bin/wall && chmod 2755 usr/bin/wall
        printf 'ping\n' > usr/bin/ping && chmod 0755 usr/bin/ping
        setcap cap_net_raw+ep usr/bin/ping
        chmod 1777 tmp
        mknod dev/null c 1 3 && chmod 0666 dev/null
        mknod dev/sda b 8 0 && chmod 0660 dev/sda
        mkfifo dev/initctl && chmod 0600 dev/initctl
        printf 'owned\n' > etc/owned && chown 1234:5678 etc/owned
        chmod 0700 secret
        long=usr/share/$(printf 'd%.0s' $(seq 1 60))/$(printf 'f%.0s' $(seq 1 60))
        mkdir -p "$(dirname "$long")" && printf 'long\n' > "$long"
        ln -s "/$long" etc/long-link
        printf 'unicode\n' > 'etc/grüße'
        "#,
    );
}

fn recipe(dir: &Path, base: &Path) -> std::path::PathBuf {
    let text = format!(
        "[audit]\nfail_on = \"none\"\n[image]\nname = \"special\"\nversion = \"1\"\n\n[base]\npath = \"{}\"\nsha256 = \"{}\"\n",
        base.file_name().unwrap().to_str().unwrap(),
        sha256_file(base)
    );
    let path = dir.join("special.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Packs the special tree with GNU tar and builds it with kiln into
/// `WORK/OUT`; returns the output directory.
fn build_special(work: &Path, out: &str) -> std::path::PathBuf {
    let src = work.join("src");
    std::fs::create_dir(&src).unwrap();
    special_tree(&src);
    let base = work.join("base.tar");
    gnu_tar(&src, &base);
    let out = work.join(out);
    run_ok(
        kiln()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .arg("build")
            .arg(recipe(work, &base))
            .arg("-o")
            .arg(&out),
    );
    out
}

fn stat(path: &Path, format: &str) -> String {
    let out = run_ok(
        std::process::Command::new("stat")
            .args(["-c", format])
            .arg(path),
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
#[ignore = "needs root"]
fn gnu_tar_extracts_every_owner_mode_link_device_and_capability() {
    require_root("gnu_tar_extracts_every_owner_mode_link_device_and_capability");
    let work = tempfile::tempdir().unwrap();
    let out = build_special(work.path(), "out");

    let extracted = work.path().join("x");
    std::fs::create_dir(&extracted).unwrap();
    run_ok(
        std::process::Command::new("tar")
            .args([
                "--zstd",
                "--xattrs",
                "--xattrs-include=*",
                "--numeric-owner",
                "-xpf",
            ])
            .arg(out.join("special-1.rootfs.tar.zst"))
            .arg("-C")
            .arg(&extracted),
    );
    let x = |p: &str| extracted.join(p);
    assert_eq!(stat(&x("usr/bin/su"), "%a %u:%g"), "4755 0:0");
    assert_eq!(stat(&x("usr/bin/wall"), "%a %u:%g"), "2755 0:5");
    assert_eq!(stat(&x("tmp"), "%a %F"), "1777 directory");
    assert_eq!(stat(&x("secret"), "%a"), "700");
    assert_eq!(stat(&x("etc/owned"), "%u:%g"), "1234:5678");
    assert_eq!(
        stat(&x("usr/bin/su"), "%i %h"),
        stat(&x("usr/sbin/su-hardlink"), "%i %h")
    );
    assert_eq!(stat(&x("usr/bin/su"), "%h"), "2");
    assert_eq!(
        std::fs::read_link(x("bin")).unwrap().to_str(),
        Some("usr/bin")
    );
    assert_eq!(
        stat(&x("dev/null"), "%F %t:%T %a"),
        "character special file 1:3 666"
    );
    assert_eq!(
        stat(&x("dev/sda"), "%F %t:%T %a"),
        "block special file 8:0 660"
    );
    assert_eq!(stat(&x("dev/initctl"), "%F %a"), "fifo 600");
    assert_eq!(
        std::fs::read_to_string(x("etc/grüße")).unwrap(),
        "unicode\n"
    );
    let long = std::fs::read_link(x("etc/long-link")).unwrap();
    assert!(long.to_str().unwrap().len() > 100);
    assert_eq!(
        std::fs::read_to_string(extracted.join(long.strip_prefix("/").unwrap())).unwrap(),
        "long\n"
    );
    let getcap = run_ok(std::process::Command::new("getcap").arg(x("usr/bin/ping")));
    let getcap = String::from_utf8(getcap.stdout).unwrap();
    assert!(
        getcap.contains("cap_net_raw=ep"),
        "getcap printed {getcap:?}"
    );
    // mtimes are SOURCE_DATE_EPOCH, on every member
    assert_eq!(stat(&x("etc/owned"), "%Y"), EPOCH);
    assert_eq!(stat(&x("tmp"), "%Y"), EPOCH);
}

#[test]
#[ignore = "needs root"]
fn kiln_output_round_trips_byte_for_byte() {
    require_root("kiln_output_round_trips_byte_for_byte");
    let work = tempfile::tempdir().unwrap();
    let first = build_special(work.path(), "first");

    // kiln's archive, decompressed by the real zstd, is what the manifest says
    let tar = work.path().join("first.tar");
    sh(
        work.path(),
        "zstd -q -d -c first/special-1.rootfs.tar.zst > first.tar",
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("special-1.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["artifacts"][0]["uncompressed_sha256"]
            .as_str()
            .unwrap(),
        sha256_file(&tar)
    );

    // tar → Tree → tar: using kiln's own tar as the base gives the same tar
    let second_dir = work.path().join("again");
    std::fs::create_dir(&second_dir).unwrap();
    std::fs::copy(&tar, second_dir.join("first.tar")).unwrap();
    let second = work.path().join("second");
    run_ok(
        kiln()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .arg("build")
            .arg(recipe(&second_dir, &second_dir.join("first.tar")))
            .arg("-o")
            .arg(&second),
    );
    sh(
        work.path(),
        "zstd -q -d -c second/special-1.rootfs.tar.zst > second.tar",
    );
    assert_eq!(
        sha256_file(&work.path().join("second.tar")),
        sha256_file(&tar)
    );
    assert_eq!(
        std::fs::read(second.join("special-1.rootfs.tar.zst")).unwrap(),
        std::fs::read(first.join("special-1.rootfs.tar.zst")).unwrap()
    );
}

#[test]
fn gzip_archive_is_read_by_gnu_tar_and_gzip() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("r.toml"),
        "[audit]\nfail_on = \"none\"\n[image]\nname = \"g\"\nversion = \"1\"\n[[file]]\ndest = \"/etc/hostname\"\ncontent = \"node\\n\"\n",
    )
    .unwrap();
    run_ok(kiln().current_dir(work.path()).args([
        "build",
        "r.toml",
        "-o",
        "out",
        "--compression",
        "gzip",
    ]));
    sh(work.path(), "gzip -t out/g-1.rootfs.tar.gz");
    let listing = sh(
        work.path(),
        "tar -tzvf out/g-1.rootfs.tar.gz --numeric-owner",
    );
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(
        listing.contains("-rw-r--r-- 0/0               5 1970-01-01 00:00 ./etc/hostname"),
        "{listing}"
    );
    // gzip header: no name, mtime 0 (bytes 4..8), so the bytes depend only on the content
    let bytes = std::fs::read(work.path().join("out/g-1.rootfs.tar.gz")).unwrap();
    assert_eq!(
        &bytes[3..8],
        &[0, 0, 0, 0, 0],
        "gzip header has flags or an mtime"
    );
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
fn gnu_tar_extracts_the_longest_names_and_paths_kiln_accepts() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    sh(
        w,
        "mkdir src && printf 'name\\n' > src/f && printf 'path\\n' > src/g && ln -s f src/link",
    );
    // GNU tar names members longer than any file the test could create,
    // and writes the link with the mode it is told
    let name = "n".repeat(255);
    let deep = deep_path(4094);
    run_ok(
        std::process::Command::new("tar")
            .arg("-C")
            .arg(w.join("src"))
            .arg(format!("--transform=s,^\\./f$,./etc/{name},"))
            .arg(format!("--transform=s,^\\./g$,.{deep},"))
            .args(["--owner=0", "--group=0", "-cf", "base.tar", "./f", "./g"])
            .current_dir(w),
    );
    sh(
        w,
        "tar -C src --owner=0 --group=0 --mode=0644 -rf base.tar ./link && tar -tvf base.tar | grep -q '^lrw-r--r-- .* ./link -> f$'",
    );
    let out = w.join("out");
    run_ok(
        kiln()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .arg("build")
            .arg(recipe(w, &w.join("base.tar")))
            .arg("-o")
            .arg(&out),
    );
    let archive = out.join("special-1.rootfs.tar.zst");
    std::fs::create_dir(w.join("x")).unwrap();
    // GNU tar extracts every member, and finds them all equal to the archive's
    run_ok(
        std::process::Command::new("tar")
            .args(["--zstd", "-xf"])
            .arg(&archive)
            .arg("-C")
            .arg(w.join("x")),
    );
    run_ok(
        std::process::Command::new("tar")
            .args(["--zstd", "-df"])
            .arg(&archive)
            .arg("-C")
            .arg(w.join("x")),
    );
    assert_eq!(
        std::fs::read_to_string(w.join("x/etc").join(&name)).unwrap(),
        "name\n"
    );
    let listing = sh(w, &format!("tar --zstd -tvf {}", archive.display()));
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(
        listing.contains(&format!(".{deep}\n")),
        "the deep path is missing"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("lrwxrwxrwx 0/0") && l.ends_with(" ./link -> f")),
        "the symlink is not 0777: {}",
        listing.lines().find(|l| l.contains("./link")).unwrap_or("")
    );
}
