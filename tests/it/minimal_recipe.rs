//! The example recipe builds from the base tarball the tests create, and
//! `kiln inspect` reports what was built.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};

/// Copies recipes/ and overlays/ into `dir` and makes the base tarball
/// there, so tests never write into the repository.
fn checkout(dir: &Path) -> PathBuf {
    let root = repo_root();
    sh(
        dir,
        &format!(
            "cp -r '{}/recipes' '{}/overlays' . && rm -f recipes/base/*.tar && sh recipes/base/make-minimal-base.sh recipes/base/minimal-base.tar",
            root.display(),
            root.display()
        ),
    );
    dir.join("recipes/minimal.toml")
}

#[test]
fn minimal_recipe_builds_and_inspects() {
    let work = tempfile::tempdir().unwrap();
    let recipe = checkout(work.path());
    let out = work.path().join("dist");
    let built = run_ok(kiln().arg("build").arg(&recipe).arg("-o").arg(&out));
    let printed = String::from_utf8(built.stdout).unwrap();
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [
            out.join("minimal-0.1.0.rootfs.tar.zst")
                .display()
                .to_string(),
            out.join("minimal-0.1.0.manifest.json")
                .display()
                .to_string()
        ]
    );
    assert_eq!(
        list_dir(&out),
        [
            "minimal-0.1.0.manifest.json",
            "minimal-0.1.0.rootfs.tar.zst"
        ]
    );

    let manifest_path = out.join("minimal-0.1.0.manifest.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(text.ends_with("}\n"), "canonical JSON ends with a newline");
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(m["manifest_version"], 1);
    assert_eq!(m["image"]["name"], "minimal");
    assert_eq!(m["image"]["arch"], "amd64");
    assert_eq!(m["source_date_epoch"], 1700000000);
    assert_eq!(m["builder"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m["recipe"]["sha256"], sha256_file(&recipe));
    assert_eq!(m["recipe"]["files"][0]["path"], "minimal.toml");
    assert_eq!(
        m["base"]["sha256"],
        sha256_file(&work.path().join("recipes/base/minimal-base.tar"))
    );
    let artifact = &m["artifacts"][0];
    let archive = out.join("minimal-0.1.0.rootfs.tar.zst");
    assert_eq!(artifact["sha256"], sha256_file(&archive));
    assert_eq!(artifact["size"], std::fs::metadata(&archive).unwrap().len());
    assert_eq!(artifact["format"], "rootfs-tar-zstd");
    let files = m["files"].as_array().unwrap();
    let find = |p: &str| files.iter().find(|f| f["path"] == p);
    assert!(
        find("/var/cache/apt").is_none() && find("/usr/share/doc").is_none(),
        "[[remove]] did not apply"
    );
    assert_eq!(find("/etc/machine-id").unwrap()["size"], 0);
    assert_eq!(find("/etc/machine-id").unwrap()["mode"], "0444");
    assert_eq!(find("/etc/issue.net").unwrap()["mode"], "0644");
    assert_eq!(
        find("/etc/localtime").unwrap()["target"],
        "/usr/share/zoneinfo/Etc/UTC"
    );
    assert_eq!(find("/tmp").unwrap()["mode"], "1777");
    // every file record's digest matches the archive's content (GNU tar extracts it)
    let x = work.path().join("x");
    std::fs::create_dir(&x).unwrap();
    sh(
        work.path(),
        &format!("tar --zstd -xf '{}' -C x", archive.display()),
    );
    for f in files.iter().filter(|f| f["type"] == "file") {
        let path = x.join(f["path"].as_str().unwrap().trim_start_matches('/'));
        assert_eq!(
            f["sha256"].as_str().unwrap(),
            sha256_file(&path),
            "{path:?}"
        );
    }

    // inspect: the manifest and the archive tell the same story
    let text = String::from_utf8(run_ok(kiln().arg("inspect").arg(&manifest_path)).stdout).unwrap();
    assert!(
        text.contains("image        minimal 0.1.0 (amd64)"),
        "{text}"
    );
    assert!(text.contains("built by     kiln "), "{text}");
    let from_manifest: serde_json::Value = serde_json::from_slice(
        &run_ok(kiln().arg("inspect").arg("--json").arg(&manifest_path)).stdout,
    )
    .unwrap();
    let from_archive: serde_json::Value =
        serde_json::from_slice(&run_ok(kiln().arg("inspect").arg("--json").arg(&archive)).stdout)
            .unwrap();
    assert_eq!(from_manifest["paths"], files.len());
    assert_eq!(from_manifest["paths"], from_archive["paths"]);
    assert_eq!(from_manifest["types"], from_archive["types"]);
    assert_eq!(
        from_manifest["content_bytes"],
        from_archive["content_bytes"]
    );
    assert_eq!(from_archive["artifacts"][0]["sha256"], artifact["sha256"]);
    assert_eq!(from_archive["source"], "archive");
}

#[test]
fn inspect_rejects_what_it_cannot_read() {
    let work = tempfile::tempdir().unwrap();
    let bogus = work.path().join("m.json");
    std::fs::write(&bogus, "{\"manifest_version\": 7}").unwrap();
    let out = kiln().arg("inspect").arg(&bogus).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("manifest_version 7 is not supported"),
        "{stderr}"
    );
    let out = kiln()
        .arg("inspect")
        .arg(work.path().join("missing.tar"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
    let out = kiln().arg("inspect").arg(work.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is a directory: inspect takes a manifest or a rootfs archive"),
        "{stderr}"
    );
}

#[test]
fn an_output_directory_that_is_a_file_is_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    let recipe = checkout(work.path());
    let w = work.path();
    std::fs::write(w.join("dist"), "not a directory\n").unwrap();
    for (out_dir, expected) in [
        ("dist", "error: -o dist: is a file, not a directory"),
        (
            "dist/sub",
            "error: -o dist/sub: dist is a file, not a directory",
        ),
    ] {
        let out = kiln()
            .current_dir(w)
            .arg("build")
            .arg(&recipe)
            .args(["-o", out_dir, "-q"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .collect::<Vec<_>>(),
            [expected],
            "-o {out_dir}"
        );
        assert!(out.stdout.is_empty());
    }
    assert_eq!(
        std::fs::read_to_string(w.join("dist")).unwrap(),
        "not a directory\n"
    );
}
