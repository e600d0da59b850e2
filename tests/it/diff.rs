//! `kiln::cmd::diff` on real builds: two images that differ in every way a
//! recipe can make them differ, compared as manifests, as archives and
//! mixed; the /etc text diffs checked against GNU diff on the files GNU tar
//! extracts from the archives; packages from dpkg status files, both in
//! built images and in hand-made tarballs.

use crate::common;

use common::*;
use kiln::cmd::diff::{
    AttributeChange, ChangedPath, ConfigChange, ConfigChangeKind, ConfigDiff, DiffReport, Package,
    PackageUpdate, diff,
};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Built {
    manifest: PathBuf,
    archive: PathBuf,
}

/// Builds `recipe` with the real binary into `dir/name`.
fn build(dir: &Path, name: &str, recipe: &str) -> Built {
    std::fs::write(dir.join(format!("{name}.toml")), recipe).unwrap();
    run_ok(
        kiln()
            .current_dir(dir)
            .args(["build", &format!("{name}.toml"), "-o", name, "-q"]),
    );
    let find = |suffix: &str| {
        std::fs::read_dir(dir.join(name))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("no *{suffix} in {name}"))
    };
    Built {
        manifest: find(".manifest.json"),
        archive: find(".rootfs.tar.zst"),
    }
}

const APP_OLD: &str = "\
# app.conf: the example service
[server]
listen = 0.0.0.0
port = 8080
workers = 4
timeout = 30

[log]
level = info
file = /var/log/app.log
rotate = daily

[cache]
size = 64M
path = /var/cache/app

[features]
metrics = on
tracing = off
";

/// Line 3 and line 10 change (6 unchanged lines apart: one hunk, its
/// context cut short by the start of the file); a line is inserted after
/// line 17 (7 unchanged lines further: a second hunk), and the last line
/// changes and loses its newline.
const APP_NEW: &str = "\
# app.conf: the example service
[server]
listen = 127.0.0.1
port = 8080
workers = 4
timeout = 30

[log]
level = info
file = /var/log/app/app.log
rotate = daily

[cache]
size = 64M
path = /var/cache/app

[features]
audit = on
metrics = on
tracing = on";

/// What GNU diff 3.8 prints for APP_OLD → APP_NEW (checked again below
/// against the real tool).
const APP_DIFF: &str = "\
--- old/etc/app/app.conf
+++ new/etc/app/app.conf
@@ -1,13 +1,13 @@
 # app.conf: the example service
 [server]
-listen = 0.0.0.0
+listen = 127.0.0.1
 port = 8080
 workers = 4
 timeout = 30
 
 [log]
 level = info
-file = /var/log/app.log
+file = /var/log/app/app.log
 rotate = daily
 
 [cache]
@@ -15,5 +15,6 @@
 path = /var/cache/app
 
 [features]
+audit = on
 metrics = on
-tracing = off
+tracing = on
\\ No newline at end of file
";

const ADDED_DIFF: &str =
    "--- /dev/null\n+++ new/etc/app/added.conf\n@@ -0,0 +1,2 @@\n+a = 1\n+b = 2\n";

/// An empty file has no hunks: the headers alone.
const EMPTY_DIFF: &str = "--- /dev/null\n+++ new/etc/app/empty\n";

const STATUS_OLD: &str = "\
Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5

Package: k3s
Status: install ok installed
Architecture: amd64
Version: 1.30.0~rc1-1

Package: oldtool
Status: install ok installed
Architecture: all
Version: 2.0

Package: pinned
Status: install ok installed
Architecture: amd64
Version: 2:1.0-1

Package: leftover
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
";

const STATUS_NEW: &str = "\
Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5

Package: held
Status: hold ok installed
Architecture: amd64
Version: 3.0

Package: k3s
Status: install ok installed
Architecture: amd64
Version: 1.30.0-1

Package: newtool
Status: install ok installed
Architecture: all
Version: 0.1

Package: pinned
Status: install ok installed
Architecture: amd64
Version: 1:9.9-1

Package: leftover
Status: purge ok not-installed
Architecture: amd64
Version: 1.0
";

fn recipe(version: &str, body: &str) -> String {
    format!(
        "[audit]\nfail_on = \"none\"\n[image]\nname = \"d\"\nversion = \"{version}\"\nsource_date_epoch = 1700000000\n\n{body}"
    )
}

/// A file entry with the content verbatim (TOML literal string).
fn file(dest: &str, content: &str, extra: &str) -> String {
    assert!(!content.contains("'''"));
    format!("[[file]]\ndest = \"{dest}\"\ncontent = '''\n{content}'''\n{extra}\n")
}

/// Two images differing in an added and a removed file, a chmod, an owner,
/// a symlink target, a type, text and binary files under /etc, and dpkg
/// status.
fn two_images(dir: &Path) -> (Built, Built) {
    let blob = |seed: u8| -> Vec<u8> { (0..=255u8).map(|b| b ^ seed).chain([0, 0]).collect() };
    std::fs::write(dir.join("blob-old.bin"), blob(0)).unwrap();
    std::fs::write(dir.join("blob-new.bin"), blob(0x5a)).unwrap();
    let large = "line\n".repeat(250_000); // 1.2 MiB of text
    std::fs::write(dir.join("large-old.txt"), &large).unwrap();
    std::fs::write(dir.join("large-new.txt"), large.replacen("line", "LINE", 1)).unwrap();
    let common = "[[file]]\ndest = \"/etc/app/large.txt\"\nsource = \"large-{side}.txt\"\n\n\
        [[file]]\ndest = \"/etc/app/blob.bin\"\nsource = \"blob-{side}.bin\"\n\n";
    let old = build(
        dir,
        "old",
        &recipe(
            "1",
            &[
                common.replace("{side}", "old"),
                file("/etc/app/app.conf", APP_OLD, ""),
                file("/etc/app/removed.conf", "gone = yes\n", ""),
                file("/srv/removed", "bye\n", ""),
                file("/srv/mode", "m\n", "mode = \"0644\""),
                file("/srv/owned", "o\n", ""),
                file("/srv/kind", "k\n", ""),
                file("/var/lib/dpkg/status", STATUS_OLD, ""),
                "[[symlink]]\npath = \"/srv/link\"\ntarget = \"/srv/mode\"\n".into(),
            ]
            .concat(),
        ),
    );
    let new = build(
        dir,
        "new",
        &recipe(
            "2",
            &[
                common.replace("{side}", "new"),
                file("/etc/app/app.conf", APP_NEW, ""),
                file("/etc/app/added.conf", "a = 1\nb = 2\n", ""),
                file("/etc/app/empty", "", ""),
                file("/srv/added", "hi\n", ""),
                file("/srv/mode", "m\n", "mode = \"0600\""),
                file("/srv/owned", "o\n", "owner = 1000\ngroup = 1000"),
                file("/var/lib/dpkg/status", STATUS_NEW, ""),
                "[[symlink]]\npath = \"/srv/link\"\ntarget = \"/srv/owned\"\n\n".into(),
                "[[symlink]]\npath = \"/srv/kind\"\ntarget = \"mode\"\n".into(),
            ]
            .concat(),
        ),
    );
    (old, new)
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

fn change(attribute: &str, old: Option<&str>, new: Option<&str>) -> AttributeChange {
    AttributeChange {
        attribute: attribute.into(),
        old: old.map(Into::into),
        new: new.map(Into::into),
    }
}

fn content_changes(old: &[u8], new: &[u8]) -> Vec<AttributeChange> {
    let mut out = vec![change("sha256", Some(&sha256(old)), Some(&sha256(new)))];
    if old.len() != new.len() {
        let (o, n) = (old.len().to_string(), new.len().to_string());
        out.push(change("size", Some(&o), Some(&n)));
    }
    out
}

fn changed(path: &str, changes: Vec<AttributeChange>) -> ChangedPath {
    ChangedPath {
        path: path.into(),
        changes,
    }
}

fn unified(text: &str) -> ConfigDiff {
    ConfigDiff::Unified(text.into())
}

fn config(path: &str, change: ConfigChangeKind, diff: ConfigDiff) -> ConfigChange {
    ConfigChange {
        path: path.into(),
        change,
        diff,
    }
}

fn package(name: &str, arch: &str, version: &str) -> Package {
    Package {
        name: name.into(),
        arch: Some(arch.into()),
        version: version.into(),
    }
}

fn update(name: &str, arch: &str, old: &str, new: &str) -> PackageUpdate {
    PackageUpdate {
        name: name.into(),
        arch: Some(arch.into()),
        old_version: old.into(),
        new_version: new.into(),
    }
}

/// Checks everything but the sides' descriptions.
fn assert_full_report(report: &DiffReport, dir: &Path) {
    let paths = |records: &[kiln::manifest::FileRecord]| -> Vec<String> {
        records.iter().map(|r| r.path.clone()).collect()
    };
    assert_eq!(
        paths(&report.files.added),
        ["/etc/app/added.conf", "/etc/app/empty", "/srv/added"]
    );
    assert_eq!(
        paths(&report.files.removed),
        ["/etc/app/removed.conf", "/srv/removed"]
    );
    let added = &report.files.added[2];
    assert_eq!(
        (
            added.kind.as_str(),
            added.mode.as_str(),
            added.size,
            added.sha256.clone()
        ),
        ("file", "0644", Some(3), Some(sha256(b"hi\n")))
    );
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let expected_changed = vec![
        changed(
            "/etc/app/app.conf",
            content_changes(APP_OLD.as_bytes(), APP_NEW.as_bytes()),
        ),
        changed(
            "/etc/app/blob.bin",
            content_changes(&read("blob-old.bin"), &read("blob-new.bin")),
        ),
        changed(
            "/etc/app/large.txt",
            content_changes(&read("large-old.txt"), &read("large-new.txt")),
        ),
        changed(
            "/srv/kind",
            vec![
                change("type", Some("file"), Some("symlink")),
                change("sha256", Some(&sha256(b"k\n")), None),
                change("size", Some("2"), None),
                change("target", None, Some("mode")),
                change("mode", Some("0644"), Some("0777")),
            ],
        ),
        changed(
            "/srv/link",
            vec![change("target", Some("/srv/mode"), Some("/srv/owned"))],
        ),
        changed(
            "/srv/mode",
            vec![change("mode", Some("0644"), Some("0600"))],
        ),
        changed(
            "/srv/owned",
            vec![change("owner", Some("0:0"), Some("1000:1000"))],
        ),
        changed(
            "/var/lib/dpkg/status",
            content_changes(STATUS_OLD.as_bytes(), STATUS_NEW.as_bytes()),
        ),
    ];
    assert_eq!(report.files.changed, expected_changed);

    assert_eq!(
        report.config,
        vec![
            config(
                "/etc/app/added.conf",
                ConfigChangeKind::Added,
                unified(ADDED_DIFF),
            ),
            config(
                "/etc/app/app.conf",
                ConfigChangeKind::Changed,
                unified(APP_DIFF)
            ),
            config(
                "/etc/app/blob.bin",
                ConfigChangeKind::Changed,
                ConfigDiff::BinaryOrLarge
            ),
            config(
                "/etc/app/empty",
                ConfigChangeKind::Added,
                unified(EMPTY_DIFF),
            ),
            config(
                "/etc/app/large.txt",
                ConfigChangeKind::Changed,
                ConfigDiff::BinaryOrLarge
            ),
            config(
                "/etc/app/removed.conf",
                ConfigChangeKind::Removed,
                unified(
                    "--- old/etc/app/removed.conf\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone = yes\n"
                ),
            ),
        ]
    );

    let p = &report.packages;
    assert_eq!(p.not_compared, None);
    assert_eq!(
        p.added,
        [
            package("held", "amd64", "3.0"),
            package("newtool", "all", "0.1")
        ]
    );
    assert_eq!(p.removed, [package("oldtool", "all", "2.0")]);
    assert_eq!(
        p.upgraded,
        [update("k3s", "amd64", "1.30.0~rc1-1", "1.30.0-1")]
    );
    assert_eq!(
        p.downgraded,
        [update("pinned", "amd64", "2:1.0-1", "1:9.9-1")]
    );
    assert!(!report.is_empty());
}

#[test]
fn every_kind_of_change_is_reported_from_manifests_and_archives() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (old, new) = two_images(dir);
    let pairs = [
        (&old.manifest, &new.manifest),
        (&old.archive, &new.archive),
        (&old.manifest, &new.archive),
        (&old.archive, &new.manifest),
    ];
    for (a, b) in pairs {
        let report = diff(a, b).unwrap_or_else(|e| panic!("{a:?} {b:?}: {e:#}"));
        assert_full_report(&report, dir);
        for (side, path, version, built) in [
            (&report.image.old, a, "1", &old),
            (&report.image.new, b, "2", &new),
        ] {
            let is_manifest = *path == built.manifest;
            assert_eq!(side.path, path.display().to_string());
            assert_eq!(
                side.source,
                if is_manifest { "manifest" } else { "archive" }
            );
            assert_eq!(side.name.as_deref(), is_manifest.then_some("d"));
            assert_eq!(side.version.as_deref(), is_manifest.then_some(version));
            assert_eq!(side.contents, Some(built.archive.display().to_string()));
        }
    }
}

/// The /etc diffs are byte for byte what GNU diff prints for the files
/// GNU tar extracts from the two archives.
#[test]
fn etc_diffs_match_gnu_diff_on_extracted_files() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (old, new) = two_images(dir);
    for (name, built) in [("x-old", &old), ("x-new", &new)] {
        std::fs::create_dir(dir.join(name)).unwrap();
        run_ok(
            Command::new("tar")
                .args(["--zstd", "-xf"])
                .arg(&built.archive)
                .arg("-C")
                .arg(dir.join(name)),
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("x-new/etc/app/app.conf")).unwrap(),
        APP_NEW
    );
    let report = diff(&old.archive, &new.archive).unwrap();
    let mut checked = 0;
    for c in &report.config {
        let ConfigDiff::Unified(ours) = &c.diff else {
            continue;
        };
        let side = |name: &str, present: bool| -> (String, PathBuf) {
            if present {
                let label = format!("{}{}", &name[2..], c.path);
                (label, dir.join(name).join(&c.path[1..]))
            } else {
                ("/dev/null".into(), PathBuf::from("/dev/null"))
            }
        };
        let (old_label, old_file) = side("x-old", c.change != ConfigChangeKind::Added);
        let (new_label, new_file) = side("x-new", c.change != ConfigChangeKind::Removed);
        let out = Command::new("diff")
            .args(["-u", "--label", &old_label, "--label", &new_label])
            .arg(old_file)
            .arg(new_file)
            .output()
            .unwrap();
        let gnu = String::from_utf8(out.stdout).unwrap();
        if *ours == format!("--- {old_label}\n+++ {new_label}\n") {
            // An empty file added: GNU diff finds no difference to print.
            assert_eq!(
                (out.status.code(), gnu.as_str()),
                (Some(0), ""),
                "{}",
                c.path
            );
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert_eq!(*ours, gnu, "{}", c.path);
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn a_manifest_without_its_archive_still_gives_every_path_change() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (old, new) = two_images(dir);
    let lone = dir.join("lone.manifest.json");
    std::fs::copy(&old.manifest, &lone).unwrap();
    let full = diff(&old.manifest, &new.archive).unwrap();
    let report = diff(&lone, &new.archive).unwrap();
    assert_eq!(report.files, full.files);
    assert_eq!(report.image.old.contents, None);
    let why = report.packages.not_compared.as_deref().unwrap_or_default();
    assert!(
        why.contains("lone.manifest.json is a manifest whose rootfs archive is not beside it"),
        "{why}"
    );
    assert!(report.packages.added.is_empty() && report.packages.upgraded.is_empty());
    let kinds: Vec<(&str, &ConfigDiff)> = report
        .config
        .iter()
        .map(|c| (c.path.as_str(), &c.diff))
        .collect();
    assert_eq!(
        kinds,
        [
            // nothing to read on the old side
            ("/etc/app/added.conf", &full.config[0].diff),
            ("/etc/app/app.conf", &ConfigDiff::ContentNotAvailable),
            // the new side alone is binary; the sizes say it is large
            ("/etc/app/blob.bin", &ConfigDiff::BinaryOrLarge),
            ("/etc/app/empty", &unified(EMPTY_DIFF)),
            ("/etc/app/large.txt", &ConfigDiff::BinaryOrLarge),
            ("/etc/app/removed.conf", &ConfigDiff::ContentNotAvailable),
        ]
    );
    let text = report.to_text();
    assert!(
        text.contains("\n/etc/app/app.conf: changed; contents not available to compare\n"),
        "{text}"
    );
    assert!(
        text.contains("(no archive beside it: contents not compared)"),
        "{text}"
    );
}

#[test]
fn an_archive_that_is_not_the_one_the_manifest_lists_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (old, new) = two_images(dir);
    let bad = dir.join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::copy(&old.manifest, bad.join("m.manifest.json")).unwrap();
    std::fs::copy(&new.archive, bad.join(old.archive.file_name().unwrap())).unwrap();
    let err = format!(
        "{:#}",
        diff(&bad.join("m.manifest.json"), &new.archive).unwrap_err()
    );
    assert!(
        err.contains("is not the archive the manifest lists"),
        "{err}"
    );
    assert!(err.starts_with("old image "), "{err}");
}

#[test]
fn an_image_against_itself_is_empty() {
    let work = tempfile::tempdir().unwrap();
    let (old, _) = two_images(work.path());
    let report = diff(&old.manifest, &old.archive).unwrap();
    assert!(report.is_empty(), "{report:#?}");
    let text = report.to_text();
    let body: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(
        body,
        [
            "",
            "packages: no changes",
            "",
            "files: no changes",
            "",
            "/etc contents: no changes"
        ]
    );
}

#[test]
fn text_report_has_counted_sections_sorted_by_path() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (old, new) = two_images(dir);
    let text = diff(&old.manifest, &new.archive).unwrap().to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "old: d 1, manifest {} with {}",
            old.manifest.display(),
            old.archive.display()
        )
    );
    assert_eq!(lines[1], format!("new: archive {}", new.archive.display()));
    let section = |header: &str| -> Vec<&str> {
        let start = lines.iter().position(|l| l.starts_with(header)).unwrap();
        lines[start..]
            .iter()
            .take_while(|l| !l.is_empty())
            .copied()
            .collect()
    };
    assert_eq!(
        section("packages:"),
        [
            "packages: 2 added, 1 removed, 1 upgraded, 1 downgraded",
            "  added       held 3.0",
            "  upgraded    k3s 1.30.0~rc1-1 → 1.30.0-1",
            "  added       newtool 0.1",
            "  removed     oldtool 2.0",
            "  downgraded  pinned 2:1.0-1 → 1:9.9-1",
        ]
    );
    let files = section("files:");
    assert_eq!(files[0], "files: 3 added, 2 removed, 8 changed");
    let firsts: Vec<&str> = files[1..]
        .iter()
        .filter(|l| !l.starts_with("     "))
        .copied()
        .collect();
    assert_eq!(
        firsts,
        [
            "  added    /etc/app/added.conf  file 0644 0:0 12 B",
            "  changed  /etc/app/app.conf",
            "  changed  /etc/app/blob.bin",
            "  added    /etc/app/empty  file 0644 0:0 0 B",
            "  changed  /etc/app/large.txt",
            "  removed  /etc/app/removed.conf  file 0644 0:0 11 B",
            "  added    /srv/added  file 0644 0:0 3 B",
            "  changed  /srv/kind",
            "  changed  /srv/link",
            "  changed  /srv/mode",
            "  changed  /srv/owned",
            "  removed  /srv/removed  file 0644 0:0 4 B",
            "  changed  /var/lib/dpkg/status",
        ]
    );
    let kind = files
        .iter()
        .position(|l| *l == "  changed  /srv/kind")
        .unwrap();
    assert_eq!(
        files[kind + 1..kind + 6],
        [
            "             type    file → symlink".to_string(),
            format!("             sha256  {} → (none)", sha256(b"k\n")),
            "             size    2 → (none)".to_string(),
            "             target  (none) → mode".to_string(),
            "             mode    0644 → 0777".to_string(),
        ]
    );
    assert!(text.contains("\n  changed  /srv/owned\n             owner  0:0 → 1000:1000\n"));
    assert!(text.contains(&format!(
        "\n/etc contents: 2 added, 1 removed, 3 changed\n\n{}",
        ADDED_DIFF
    )));
    assert!(text.contains(&format!(
        "\n{APP_DIFF}\n/etc/app/blob.bin: binary or large file changed\n\n{EMPTY_DIFF}\n\
         /etc/app/large.txt: binary or large file changed\n"
    )));
}

/// Packages from dpkg status files in tarballs made by GNU tar (plain and
/// gzip): Debian version ordering, architectures, states that are not
/// "installed", and a side without any status file.
#[test]
fn packages_from_dpkg_status_in_hand_made_tarballs() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let old = "\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9

Package: agent
Status: install ok installed
Architecture: amd64
Version: 1.0~rc1

Package: same
Status: install ok installed
Architecture: all
Version: 1.0

Package: epoch
Status: install ok installed
Architecture: amd64
Version: 1:0.9

Package: removed
Status: install ok installed
Architecture: amd64
Version: 5

Package: half
Status: install ok half-configured
Architecture: amd64
Version: 1
";
    let new = "\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u1

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9

Package: agent
Status: install ok installed
Architecture: amd64
Version: 1.0

Package: same
Status: install ok installed
Architecture: all
Version: 1.0-0

Package: epoch
Status: install ok installed
Architecture: amd64
Version: 10.0

Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 5

Package: half
Status: install ok installed
Architecture: amd64
Version: 1
";
    sh(
        dir,
        "mkdir -p old/var/lib/dpkg new/var/lib/dpkg empty/etc && echo x > empty/etc/x",
    );
    std::fs::write(dir.join("old/var/lib/dpkg/status"), old).unwrap();
    std::fs::write(dir.join("new/var/lib/dpkg/status"), new).unwrap();
    gnu_tar(&dir.join("old"), &dir.join("old.tar"));
    gnu_tar(&dir.join("new"), &dir.join("new.tar"));
    gnu_tar(&dir.join("empty"), &dir.join("empty.tar"));
    sh(dir, "gzip -n new.tar");

    let report = diff(&dir.join("old.tar"), &dir.join("new.tar.gz")).unwrap();
    let p = &report.packages;
    assert_eq!(p.added, [package("half", "amd64", "1")]);
    assert_eq!(p.removed, [package("removed", "amd64", "5")]);
    assert_eq!(
        p.upgraded,
        [
            update("agent", "amd64", "1.0~rc1", "1.0"),
            update("libc6", "amd64", "2.36-9", "2.36-9+deb12u1"),
        ]
    );
    // 1:0.9 is newer than 10.0: the epoch wins. 1.0 and 1.0-0 are equal.
    assert_eq!(p.downgraded, [update("epoch", "amd64", "1:0.9", "10.0")]);
    let text = report.to_text();
    assert!(
        text.contains("\n  upgraded    libc6:amd64 2.36-9 → 2.36-9+deb12u1\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  upgraded    agent 1.0~rc1 → 1.0\n"),
        "{text}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["packages"]["downgraded"],
        serde_json::json!([{"arch": "amd64", "name": "epoch", "new_version": "10.0", "old_version": "1:0.9"}])
    );

    // No status file at all: no packages installed.
    let report = diff(&dir.join("empty.tar"), &dir.join("old.tar")).unwrap();
    let names: Vec<&str> = report
        .packages
        .added
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["agent", "epoch", "libc6", "libc6", "removed", "same"]
    );
    assert!(report.packages.removed.is_empty());

    // A broken status file is an error that says where.
    std::fs::write(
        dir.join("old/var/lib/dpkg/status"),
        "Package: x\nStatus: install ok installed\n",
    )
    .unwrap();
    gnu_tar(&dir.join("old"), &dir.join("broken.tar"));
    let err = format!(
        "{:#}",
        diff(&dir.join("broken.tar"), &dir.join("old.tar")).unwrap_err()
    );
    let path = dir.join("broken.tar");
    assert_eq!(
        err,
        format!(
            "old image {}: /var/lib/dpkg/status: line 1: package \"x\" has no Version field",
            path.display()
        )
    );
}

/// Devices, capabilities and hard links, which only a base tarball can
/// carry: trees made with mknod, setcap and ln, packed by GNU tar.
#[test]
#[ignore = "needs root"]
fn devices_capabilities_and_hard_links_from_gnu_tar() {
    require_root("devices_capabilities_and_hard_links_from_gnu_tar");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    sh(
        dir,
        r#"
        mkdir -p old/dev old/usr/bin new/dev new/usr/bin
        mknod old/dev/x c 1 3 && mknod new/dev/x c 1 5
        mknod old/dev/blk b 8 0 && mknod new/dev/blk c 8 0
        for side in old new; do
            printf 'ping\n' > $side/usr/bin/ping
            printf 'tool\n' > $side/usr/bin/tool
            printf 'one\n' > $side/usr/bin/a-one
            printf 'two\n' > $side/usr/bin/a-two
        done
        setcap cap_net_raw+ep old/usr/bin/ping && setcap cap_net_admin+ep new/usr/bin/ping
        setcap cap_net_bind_service+ep old/usr/bin/tool
        ln old/usr/bin/a-one old/usr/bin/link && ln new/usr/bin/a-two new/usr/bin/link
        "#,
    );
    gnu_tar(&dir.join("old"), &dir.join("old.tar"));
    gnu_tar(&dir.join("new"), &dir.join("new.tar"));
    let report = diff(&dir.join("old.tar"), &dir.join("new.tar")).unwrap();
    let caps = |bits: &str| format!("01000002{bits}000000000000000000000000");
    let (raw, admin, bind) = (caps("00200000"), caps("00100000"), caps("00040000"));
    let xattr = "xattr security.capability";
    assert_eq!(
        report.files.changed,
        [
            changed(
                "/dev/blk",
                vec![change("type", Some("block"), Some("char"))]
            ),
            changed("/dev/x", vec![change("device", Some("1:3"), Some("1:5"))]),
            changed(
                "/usr/bin/link",
                vec![change(
                    "target",
                    Some("/usr/bin/a-one"),
                    Some("/usr/bin/a-two")
                )]
            ),
            changed(
                "/usr/bin/ping",
                vec![change(xattr, Some(&raw), Some(&admin))]
            ),
            changed("/usr/bin/tool", vec![change(xattr, Some(&bind), None)]),
        ]
    );
    assert!(report.files.added.is_empty() && report.files.removed.is_empty());
    assert!(report.config.is_empty());
}

/// Paths and contents come from untrusted images: the text report must not
/// let them drive the reviewer's terminal or fake a line.
#[test]
#[ignore = "needs root"]
fn hostile_names_and_contents_are_escaped_in_the_text_report() {
    common::require_root("hostile_names_and_contents_are_escaped_in_the_text_report");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    sh(
        dir,
        r#"
        mkdir -p old/etc new/etc
        printf 'a = 1\n' > old/etc/app.conf
        printf 'a = 2\033[1A\033[2K\r\n' > new/etc/app.conf
        printf 'x\n' > "new/etc/$(printf 'evil\033[2K\rfake\nline')"
        "#,
    );
    gnu_tar(&dir.join("old"), &dir.join("old.tar"));
    gnu_tar(&dir.join("new"), &dir.join("new.tar"));
    let report = diff(&dir.join("old.tar"), &dir.join("new.tar")).unwrap();
    // The report itself keeps the exact bytes...
    assert_eq!(report.files.added[0].path, "/etc/evil\u{1b}[2K\rfake\nline");
    let ConfigDiff::Unified(exact) = &report.config[0].diff else {
        panic!("{:?}", report.config[0]);
    };
    assert!(exact.ends_with("+a = 2\u{1b}[1A\u{1b}[2K\r\n"), "{exact}");
    // ...the text shows them escaped.
    let text = report.to_text();
    assert!(!text.contains(['\u{1b}', '\r']), "{text:?}");
    assert!(
        text.contains("\n  added    /etc/evil\\u{1b}[2K\\u{d}fake\\u{a}line  file 0644 0:0 2 B\n"),
        "{text}"
    );
    assert!(
        text.contains("\n+a = 2\\u{1b}[1A\\u{1b}[2K\\u{d}\n"),
        "{text}"
    );
}

/// Neither side may be something that merely reads as an empty image: an
/// empty file, text, a compressed file that is not a tar, a manifest that
/// is not one. Each is refused with what it is not.
#[test]
fn inputs_that_are_not_images_are_refused_with_what_they_are_not() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let good = build(dir, "one", &recipe("1", &file("/etc/motd", "hi\n", "")));
    std::fs::write(dir.join("empty.manifest.json"), "").unwrap();
    std::fs::write(dir.join("empty.tar.zst"), "").unwrap();
    std::fs::write(dir.join("notes.txt"), "hello\n").unwrap();
    std::fs::write(
        dir.join("text.tar.zst"),
        zstd::encode_all(&[b'x'; 1000][..], 3).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("broken.manifest.json"), "{ not json").unwrap();
    let empty = "is empty: it is neither a kiln manifest nor a rootfs archive";
    let not_an_image = "is neither a kiln manifest nor a rootfs archive (tar, gzip or zstd)";
    for (side, path, problem) in [
        ("old", "empty.manifest.json", empty.to_owned()),
        ("old", "empty.tar.zst", empty.to_owned()),
        (
            "new",
            "notes.txt",
            format!("{not_an_image}: it holds 6 bytes of tar data, less than one 512-byte header"),
        ),
        (
            "new",
            "text.tar.zst",
            format!("{not_an_image}: its first 512 bytes are not a tar header"),
        ),
        (
            "new",
            "broken.manifest.json",
            "is not JSON: key must be a string at line 1 column 3".to_owned(),
        ),
    ] {
        let good = good.archive.strip_prefix(dir).unwrap();
        let (old, new) = if side == "old" {
            (Path::new(path), good)
        } else {
            (good, Path::new(path))
        };
        let out = kiln()
            .current_dir(dir)
            .arg("diff")
            .arg(old)
            .arg(new)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{path}: {}", output_text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("error: {side} image {path}\n  caused by: {path} {problem}\n"),
        );
        assert!(out.stdout.is_empty(), "{path}");
    }
    // inspect says the same of an empty file
    let out = kiln()
        .current_dir(dir)
        .args(["inspect", "empty.tar.zst"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: empty.tar.zst is empty: it is neither a kiln manifest nor a rootfs archive\n"
    );
}
