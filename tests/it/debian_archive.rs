//! The Debian archive client against a real repository made by the tests
//! (dpkg-deb, apt-ftparchive, gpg), over file:// and loopback HTTP: locking,
//! updates with a patch report, downloads and the cache, and every staged
//! failure refused with a message that names what failed.

use crate::common;

use common::debrepo::{Deb, TestRepo};
use common::http::{Fault, Server};
use common::*;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const SUITE: &str = "kilntest";

/// A repository with an essential package, a library in two versions, an
/// application, a virtual package and a conflict.
fn repo(dir: &Path) -> TestRepo {
    let repo = TestRepo::new(dir);
    let debs = [
        Deb {
            name: "base-files",
            version: "1.0",
            essential: true,
            priority: "required",
            files: vec![("/etc/os-release", "ID=kilntest\n")],
            ..Deb::default()
        },
        Deb {
            name: "libfoo1",
            version: "1.0",
            ..Deb::default()
        },
        Deb {
            name: "libfoo1",
            version: "2.0",
            files: vec![("/usr/lib/libfoo.so.1", "foo 2.0\n")],
            ..Deb::default()
        },
        Deb {
            name: "app",
            version: "1.0",
            depends: "libfoo1 (>= 2.0), mail-transport-agent | exim4",
            files: vec![("/usr/bin/app", "#!/bin/sh\n")],
            ..Deb::default()
        },
        Deb {
            name: "mta-lite",
            version: "0.1",
            arch: "all",
            provides: "mail-transport-agent",
            ..Deb::default()
        },
        Deb {
            name: "needs-newer",
            version: "1.0",
            depends: "libfoo1 (>= 3.0)",
            ..Deb::default()
        },
        Deb {
            name: "troublemaker",
            version: "1.0",
            conflicts: "app",
            ..Deb::default()
        },
    ];
    for deb in &debs {
        repo.add(SUITE, deb);
    }
    repo.publish(SUITE, "");
    repo
}

/// A recipe for the test repository; `mirror` goes in the recipe unless
/// it is empty (then the command line or apt config supplies it).
fn recipe(dir: &Path, repo: &TestRepo, packages: &str, mirror: &str) {
    let mirror_line = if mirror.is_empty() {
        String::new()
    } else {
        format!("mirror = \"{mirror}\"\n")
    };
    std::fs::copy(&repo.keyring, dir.join("keyring.gpg")).unwrap();
    std::fs::write(
        dir.join("r.toml"),
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"deb\"\nversion = \"1\"\n\n[debian]\nsuite = \"{SUITE}\"\nupdates = false\nsecurity = false\n\
             variant = \"essential\"\npackages = [{packages}]\nkeyring = \"keyring.gpg\"\n{mirror_line}"
        ),
    )
    .unwrap();
}

fn kiln_in(dir: &Path, args: &[&str]) -> Output {
    kiln()
        .current_dir(dir)
        .env("KILN_HTTP_TIMEOUT", "2")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", output_text(&out));
    out
}

fn fails(out: Output, expected: &str) -> String {
    let text = output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure with {expected:?}\n{text}"
    );
    assert!(text.contains(expected), "expected {expected:?} in\n{text}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

fn locked_versions(dir: &Path) -> Vec<String> {
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("r.lock")).unwrap()).unwrap();
    lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn lock_over_file_and_http_gives_the_same_lock() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let repo = repo(w);
    recipe(w, &repo, "\"app\"", &repo.url());
    let out = ok(kiln_in(w, &["lock", "r.toml"]));
    assert_eq!(
        locked_versions(w),
        ["app 1.0", "base-files 1.0", "libfoo1 2.0", "mta-lite 0.1"]
    );
    assert!(
        output_text(&out).contains("added      app 1.0"),
        "{}",
        output_text(&out)
    );
    let lock_text = std::fs::read_to_string(w.join("r.lock")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(w.join("r.lock"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        mode, 0o644,
        "the lockfile is meant to be committed and shared"
    );
    assert!(
        !lock_text.contains("file://") && !lock_text.contains(repo.root.to_str().unwrap()),
        "the lock names a mirror:\n{lock_text}"
    );
    // every pinned digest is the real .deb's
    let lock: toml::Value = toml::from_str(&lock_text).unwrap();
    for p in lock["package"].as_array().unwrap() {
        let deb = repo.root.join(p["filename"].as_str().unwrap());
        assert_eq!(p["sha256"].as_str().unwrap(), sha256_file(&deb));
    }
    // the same over HTTP, with the mirror on the command line
    let server = Server::start(&repo.root);
    recipe(w, &repo, "\"app\"", "");
    std::fs::remove_file(w.join("r.lock")).unwrap();
    ok(kiln_in(w, &["lock", "r.toml", "--mirror", &server.addr]));
    assert_eq!(
        std::fs::read_to_string(w.join("r.lock")).unwrap(),
        lock_text
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.ends_with("/dists/kilntest/InRelease"))
    );
    // an up-to-date lock needs no network at all
    let before = server.requests().len();
    let out = ok(kiln_in(w, &["lock", "r.toml", "--mirror", &server.addr]));
    assert_eq!(server.requests().len(), before, "{}", output_text(&out));
}

#[test]
fn host_apt_sources_name_the_mirror() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let repo = repo(w);
    recipe(w, &repo, "\"app\"", "");
    std::fs::create_dir_all(w.join("apt/sources.list.d")).unwrap();
    std::fs::write(
        w.join("apt/sources.list.d/test.sources"),
        format!(
            "Types: deb\nURIs: {}\nSuites: {SUITE}\nComponents: main\n",
            repo.url()
        ),
    )
    .unwrap();
    ok(kiln_in(
        w,
        &[
            "lock",
            "r.toml",
            "--apt-dir",
            w.join("apt").to_str().unwrap(),
        ],
    ));
    assert_eq!(locked_versions(w).len(), 4);
    let out = kiln_in(
        w,
        &[
            "lock",
            "r.toml",
            "--update",
            "--apt-dir",
            w.join("empty-apt").to_str().unwrap(),
        ],
    );
    fails(out, "no mirror for suite kilntest");
}

#[test]
fn update_prints_the_patch_report_and_partial_updates_keep_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let repo = repo(w);
    recipe(w, &repo, "\"app\"", &repo.url());
    ok(kiln_in(w, &["lock", "r.toml"]));
    repo.add(
        SUITE,
        &Deb {
            name: "libfoo1",
            version: "2.1",
            ..Deb::default()
        },
    );
    repo.add(
        SUITE,
        &Deb {
            name: "app",
            version: "1.1",
            depends: "libfoo1 (>= 2.0), mail-transport-agent",
            ..Deb::default()
        },
    );
    repo.publish(SUITE, "");
    // a plain lock keeps what is locked
    let out = ok(kiln_in(w, &["lock", "r.toml"]));
    assert!(
        output_text(&out).contains("up to date"),
        "{}",
        output_text(&out)
    );
    // updating one package keeps the others at their locked versions
    ok(kiln_in(w, &["lock", "r.toml", "--update", "app"]));
    assert_eq!(
        locked_versions(w),
        ["app 1.1", "base-files 1.0", "libfoo1 2.0", "mta-lite 0.1"]
    );
    // a full update moves everything and says so
    let out = ok(kiln_in(w, &["lock", "r.toml", "--update"]));
    assert!(
        output_text(&out).contains("upgraded   libfoo1 2.0 -> 2.1"),
        "{}",
        output_text(&out)
    );
    assert_eq!(
        locked_versions(w),
        ["app 1.1", "base-files 1.0", "libfoo1 2.1", "mta-lite 0.1"]
    );
    fails(
        kiln_in(w, &["lock", "r.toml", "--update", "nosuch"]),
        "nosuch is not in",
    );
}

#[test]
fn staged_index_tampering_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let repo = repo(w);
    recipe(w, &repo, "\"app\"", &repo.url());

    // a key the keyring does not hold
    std::fs::copy(TestRepo::foreign_keyring(w), w.join("keyring.gpg")).unwrap();
    fails(
        kiln_in(w, &["lock", "r.toml"]),
        "which the keyring does not hold",
    );
    std::fs::copy(&repo.keyring, w.join("keyring.gpg")).unwrap();

    // a modified signed text
    let inrelease = repo.inrelease(SUITE);
    let original = std::fs::read_to_string(&inrelease).unwrap();
    std::fs::write(
        &inrelease,
        original.replace("Suite: kilntest", "Suite: kilntesu"),
    )
    .unwrap();
    fails(kiln_in(w, &["lock", "r.toml"]), "the signature is BAD");
    std::fs::write(&inrelease, &original).unwrap();

    // a modified Packages index
    let packages = repo
        .root
        .join("dists/kilntest/main/binary-amd64/Packages.xz");
    let good = std::fs::read(&packages).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    std::fs::write(&packages, &bad).unwrap();
    fails(
        kiln_in(w, &["lock", "r.toml"]),
        "does not match the signed Release",
    );
    std::fs::write(&packages, &good).unwrap();

    // an expired Release
    repo.publish(SUITE, "Valid-Until: Thu, 01 Jan 2015 00:00:00 UTC\n");
    fails(
        kiln_in(w, &["lock", "r.toml"]),
        "the Release expired at Thu, 01 Jan 2015 00:00:00 UTC",
    );
    // a Release of another suite served in its place
    repo.add(
        "other",
        &Deb {
            name: "base-files",
            version: "9.0",
            essential: true,
            ..Deb::default()
        },
    );
    repo.publish("other", "");
    std::fs::copy(repo.inrelease("other"), &inrelease).unwrap();
    fails(
        kiln_in(w, &["lock", "r.toml"]),
        "the signed Release is for \"other other\", not for kilntest",
    );
    assert!(!w.join("r.lock").exists(), "a failed lock wrote a lockfile");
}

/// Asserts that `out` is an invalid recipe (exit 3) whose error, after
/// kiln's progress lines, is exactly `error: r.toml:LINE:COLUMN: {expected}`
/// and the snippet of that line of `dir/r.toml`, `underlined` marked.
fn invalid_recipe(
    dir: &Path,
    out: Output,
    expected: &str,
    (line, column): (usize, usize),
    underlined: &str,
) {
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error: Vec<&str> = stderr
        .lines()
        .skip_while(|l| l.starts_with("kiln: ") && !l.starts_with("kiln: warning"))
        .collect();
    let source = std::fs::read_to_string(dir.join("r.toml")).unwrap();
    let source_line = source.lines().nth(line - 1).unwrap();
    assert!(
        source_line[column - 1..].starts_with(underlined),
        "{source_line:?} at {column}"
    );
    let number = line.to_string();
    let gutter = " ".repeat(number.len());
    let mut want: Vec<String> = format!("error: r.toml:{line}:{column}: {expected}")
        .lines()
        .map(str::to_owned)
        .collect();
    want.extend([
        format!("{gutter} |"),
        format!("{number} | {source_line}"),
        format!(
            "{gutter} | {}{}",
            " ".repeat(column - 1),
            "^".repeat(underlined.len())
        ),
    ]);
    assert_eq!(error, want, "{stderr}");
}

#[test]
fn resolution_failures_are_recipe_errors_at_the_package() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let repo = repo(w);
    // line 12 of the recipe is `packages = [...]`
    recipe(w, &repo, "\"apq\"", &repo.url());
    invalid_recipe(
        w,
        kiln_in(w, &["lock", "r.toml"]),
        "package \"apq\" is not in the package index; did you mean \"app\"?",
        (12, 13),
        "\"apq\"",
    );
    recipe(w, &repo, "\"app\", \"needs-newer\"", &repo.url());
    invalid_recipe(
        w,
        kiln_in(w, &["lock", "r.toml"]),
        "needs-newer (requested) depends on libfoo1 (>= 3.0), but the newest libfoo1 is 2.0 (kilntest)",
        (12, 20),
        "\"needs-newer\"",
    );
    recipe(w, &repo, "\"app\", \"troublemaker\"", &repo.url());
    let conflict = "cannot install troublemaker 1.0 (requested): it conflicts with app (requested)";
    invalid_recipe(
        w,
        kiln_in(w, &["lock", "r.toml"]),
        conflict,
        (12, 20),
        "\"troublemaker\"",
    );
    // a build that locks on its way reports it the same, after its progress
    invalid_recipe(
        w,
        kiln_in(w, &["build", "r.toml", "-o", "out"]),
        conflict,
        (12, 20),
        "\"troublemaker\"",
    );
    assert_eq!(list_dir(&w.join("out")), Vec::<String>::new());
    // an exclusion is reported at its place in `exclude` (line 15)
    recipe(w, &repo, "\"app\"", &repo.url());
    let text = std::fs::read_to_string(w.join("r.toml")).unwrap();
    std::fs::write(w.join("r.toml"), format!("{text}exclude = [\"libfo01\"]\n")).unwrap();
    invalid_recipe(
        w,
        kiln_in(w, &["lock", "r.toml"]),
        "excluded package \"libfo01\" is not in the package index; did you mean \"libfoo1\"?",
        (15, 12),
        "\"libfo01\"",
    );
    assert!(!w.join("r.lock").exists());
}

#[test]
fn oversized_lockfiles_and_release_files_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let repo = repo(w);
    recipe(w, &repo, "\"app\"", &repo.url());
    // a 2 GiB lockfile (sparse) is refused by its size
    crate::exits::sparse_file(&w.join("r.lock"), 2 << 30);
    let mut cmd = kiln();
    cmd.current_dir(w)
        .env("XDG_CACHE_HOME", w.join("cache"))
        .args(["lock", "r.toml"]);
    let (out, rss) = crate::exits::with_max_rss(&cmd);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: r.lock is larger than the 16 MiB a lockfile may be\n"
    );
    assert!(rss < 64 << 10, "kiln peaked at {rss} KiB");
    std::fs::remove_file(w.join("r.lock")).unwrap();
    // an InRelease past 16 MiB is not read further, nor fetched again
    let inrelease = repo.inrelease(SUITE);
    let mut big = std::fs::read(&inrelease).unwrap();
    big.resize((16 << 20) + 1, b'\n');
    std::fs::write(&inrelease, big).unwrap();
    let out = kiln_in(w, &["lock", "r.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("kiln: "))
            .collect::<Vec<_>>(),
        [
            "error: suite kilntest: cannot fetch InRelease".to_owned(),
            format!(
                "  caused by: {}/dists/kilntest/InRelease is larger than the 16 MiB an InRelease file may be",
                repo.url()
            ),
        ]
    );
    assert!(!w.join("r.lock").exists());
}

#[test]
fn downloads_are_verified_retried_bounded_and_cached() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let repo = repo(w);
    let server = Server::start(&repo.root);
    recipe(w, &repo, "\"app\"", &server.addr);
    ok(kiln_in(w, &["lock", "r.toml"]));

    // transient 500s are retried
    server.fault("app_1.0_amd64.deb", Fault::FailTimes(2));
    ok(kiln_in(w, &["fetch", "r.toml"]));
    let app_requests = server
        .requests()
        .iter()
        .filter(|r| r.ends_with("app_1.0_amd64.deb"))
        .count();
    assert_eq!(app_requests, 3, "two failures, then success");
    // the cache serves the second fetch; nothing is downloaded again
    let before = server.requests().len();
    ok(kiln_in(w, &["fetch", "r.toml"]));
    assert_eq!(server.requests().len(), before);
    // a corrupted cache blob is detected and fetched again
    let cached = std::fs::read_dir(w.join("cache/kiln/sha256"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let blob = std::fs::read_dir(&cached)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::write(&blob, b"rotten").unwrap();
    ok(kiln_in(w, &["fetch", "r.toml"]));
    assert_eq!(server.requests().len(), before + 1);

    // each failure below starts from an empty cache
    let fresh_cache = || {
        let _ = std::fs::remove_dir_all(w.join("cache"));
    };
    // a package changed on the mirror after locking
    fresh_cache();
    let deb = repo.root.join("pool/kilntest/mta-lite_0.1_all.deb");
    let good = std::fs::read(&deb).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 10] ^= 1;
    std::fs::write(&deb, &bad).unwrap();
    fails(
        kiln_in(w, &["fetch", "r.toml"]),
        "the file was modified or corrupted",
    );
    std::fs::write(&deb, &good).unwrap();

    // a truncated body, every time
    fresh_cache();
    server.fault("libfoo1_2.0_amd64.deb", Fault::Truncate(100));
    fails(kiln_in(w, &["fetch", "r.toml"]), "libfoo1 2.0");
    // a server error that does not pass
    fresh_cache();
    server.fault("libfoo1_2.0_amd64.deb", Fault::Status(500));
    fails(kiln_in(w, &["fetch", "r.toml"]), "after 4 attempts");
    // a missing file is not retried
    fresh_cache();
    server.fault("libfoo1_2.0_amd64.deb", Fault::Status(404));
    let libfoo_requests = || {
        server
            .requests()
            .iter()
            .filter(|r| r.ends_with("libfoo1_2.0_amd64.deb"))
            .count()
    };
    let before = libfoo_requests();
    fails(kiln_in(w, &["fetch", "r.toml"]), "404");
    assert_eq!(libfoo_requests(), before + 1, "a 404 was retried");
    // a hanging server is bounded by the timeout (KILN_HTTP_TIMEOUT=2 s)
    fresh_cache();
    server.fault(
        "libfoo1_2.0_amd64.deb",
        Fault::Hang(Duration::from_secs(60)),
    );
    let started = Instant::now();
    fails(kiln_in(w, &["fetch", "r.toml"]), "libfoo1 2.0");
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );
    let stray: Vec<String> = list_dir(&w.join("cache"))
        .into_iter()
        .filter(|p| p.contains(".tmp"))
        .collect();
    assert!(
        stray.is_empty(),
        "temporary files left in the cache: {stray:?}"
    );
}

#[test]
fn locked_builds_refuse_a_stale_lock_and_artifacts_are_pinned() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let repo = repo(w);
    recipe(w, &repo, "\"app\"", &repo.url());
    fails(
        kiln_in(w, &["fetch", "r.toml", "--locked"]),
        "--locked was given but",
    );
    ok(kiln_in(w, &["lock", "r.toml"]));
    recipe(w, &repo, "\"app\", \"mta-lite\"", &repo.url());
    fails(
        kiln_in(w, &["fetch", "r.toml", "--locked"]),
        "does not match the recipe",
    );

    // [[artifact]]: supplied offline, checked against its pin
    std::fs::write(w.join("k3s-standin"), b"#!/bin/sh\necho k3s\n").unwrap();
    let sha = sha256_file(&w.join("k3s-standin"));
    std::fs::write(
        w.join("a.toml"),
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"a\"\nversion = \"1\"\n[[artifact]]\nname = \"k3s\"\nurl = \"https://example.invalid/k3s\"\n\
             sha256 = \"{sha}\"\ndest = \"/usr/local/bin/k3s\"\nmode = \"0755\"\n"
        ),
    )
    .unwrap();
    ok(kiln_in(
        w,
        &[
            "build",
            "a.toml",
            "-o",
            "out",
            "--artifact",
            "k3s=k3s-standin",
        ],
    ));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("out/a-1.manifest.json")).unwrap()).unwrap();
    let k3s = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/usr/local/bin/k3s")
        .unwrap();
    assert_eq!(k3s["sha256"], sha.as_str());
    assert_eq!(k3s["mode"], "0755");
    std::fs::write(w.join("impostor"), b"#!/bin/sh\necho evil\n").unwrap();
    let out = kiln_in(
        w,
        &[
            "build",
            "a.toml",
            "-o",
            "out2",
            "--artifact",
            "k3s=impostor",
        ],
    );
    fails(out, &format!("expected {sha}"));
    assert_eq!(list_dir(&w.join("out2")), Vec::<String>::new());
    fails(
        kiln_in(
            w,
            &[
                "build",
                "a.toml",
                "-o",
                "out3",
                "--artifact",
                "k3z=impostor",
            ],
        ),
        "no [[artifact]] named k3z",
    );
}

#[test]
fn a_cache_directory_that_is_a_file_is_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let repo = repo(w);
    recipe(w, &repo, "\"app\"", &repo.url());
    ok(kiln_in(w, &["lock", "r.toml"]));
    std::fs::write(w.join("cachefile"), "").unwrap();
    let out = kiln_in(w, &["fetch", "r.toml", "--cache-dir", "cachefile"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("kiln: "))
            .collect::<Vec<_>>(),
        ["error: cache directory cachefile: is a file, not a directory"]
    );
}
