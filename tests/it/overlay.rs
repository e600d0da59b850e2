//! Overlay and file semantics that recipes rely on, checked through the
//! manifest of real builds.

use crate::common;

use common::*;
use std::path::Path;

fn build(dir: &Path, recipe: &str) -> serde_json::Value {
    std::fs::write(dir.join("r.toml"), recipe).unwrap();
    run_ok(
        kiln()
            .current_dir(dir)
            .args(["build", "r.toml", "-o", "out", "-q"]),
    );
    let name = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .unwrap();
    serde_json::from_slice(&std::fs::read(name).unwrap()).unwrap()
}

fn meta(m: &serde_json::Value, path: &str) -> String {
    let f = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path);
    let f = f.unwrap_or_else(|| panic!("{path} is not in the image"));
    format!(
        "{} {} {}:{}",
        f["type"].as_str().unwrap(),
        f["mode"].as_str().unwrap(),
        f["uid"],
        f["gid"]
    )
}

const IMAGE: &str = "[audit]\nfail_on = \"none\"\n[image]\nname = \"o\"\nversion = \"1\"\n";

#[test]
fn owners_defined_by_the_recipe_itself_resolve() {
    let work = tempfile::tempdir().unwrap();
    sh(
        work.path(),
        "mkdir -p ov/etc ov/home/k3s && printf 'root:x:0:0::/root:/bin/sh\\nk3s:x:990:991::/home/k3s:/usr/sbin/nologin\\n' > ov/etc/passwd && printf 'root:x:0:\\nk3s:x:991:\\n' > ov/etc/group && echo hi > ov/home/k3s/file",
    );
    let m = build(
        work.path(),
        &format!(
            "{IMAGE}[[overlay]]\nsource = \"ov\"\n[[overlay.rule]]\npath = \"/home/k3s/**\"\nowner = \"k3s\"\ngroup = \"k3s\"\n\
             [[file]]\ndest = \"/etc/passwd\"\ncontent = \"root:x:0:0::/root:/bin/sh\\nk3s:x:990:991::/:/x\\nops:x:1000:1000::/:/x\\n\"\nowner = 0\n\
             [[file]]\ndest = \"/srv/ops-file\"\ncontent = \"x\"\nowner = \"ops\"\ngroup = \"k3s\"\n"
        ),
    );
    assert_eq!(meta(&m, "/home/k3s/file"), "file 0644 990:991");
    assert_eq!(
        meta(&m, "/srv/ops-file"),
        "file 0644 1000:991",
        "a later [[file]] sees the new /etc/passwd"
    );
}

#[test]
#[ignore = "needs root"]
fn overlay_dest_rules_parents_and_existing_directories() {
    common::require_root("overlay_dest_rules_parents_and_existing_directories");
    let work = tempfile::tempdir().unwrap();
    sh(
        work.path(),
        "mkdir -p ov/.ssh ov/tmp && echo key > ov/.ssh/authorized_keys && ln -s ov ov-link",
    );
    let m = build(
        work.path(),
        &format!(
            "{IMAGE}[[file]]\ndest = \"/tmp/.keep\"\ncontent = \"\"\n\
             [[overlay]]\nsource = \"ov-link\"\ndest = \"/home/ops\"\nowner = 1000\ngroup = 1000\ndir_mode = \"0750\"\n\
             [[overlay.rule]]\npath = \"/home/ops\"\nmode = \"0700\"\n\
             [[overlay.rule]]\npath = \"/home/ops/.ssh/*\"\nmode = \"0600\"\n"
        ),
    );
    assert_eq!(
        meta(&m, "/home"),
        "dir 0755 0:0",
        "parents of dest stay root 0755"
    );
    assert_eq!(
        meta(&m, "/home/ops"),
        "dir 0700 1000:1000",
        "a rule names dest itself"
    );
    assert_eq!(meta(&m, "/home/ops/.ssh"), "dir 0750 1000:1000");
    assert_eq!(
        meta(&m, "/home/ops/.ssh/authorized_keys"),
        "file 0600 1000:1000"
    );
    assert_eq!(meta(&m, "/home/ops/tmp"), "dir 0750 1000:1000");
    // an overlay onto / does not touch existing directories
    let work = tempfile::tempdir().unwrap();
    sh(
        work.path(),
        "mkdir -p base/tmp ov/tmp && chmod 1777 base/tmp && echo x > ov/tmp/x && tar -C base -cf base.tar .",
    );
    let sha = sha256_file(&work.path().join("base.tar"));
    let m = build(
        work.path(),
        &format!(
            "{IMAGE}[base]\npath = \"base.tar\"\nsha256 = \"{sha}\"\n[[overlay]]\nsource = \"ov\"\n"
        ),
    );
    assert_eq!(meta(&m, "/tmp"), "dir 1777 0:0");
    assert_eq!(meta(&m, "/tmp/x"), "file 0644 0:0");
}

#[test]
fn file_dest_with_trailing_slash_is_refused() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("r.toml"),
        format!("{IMAGE}[[file]]\ndest = \"/etc/\"\ncontent = \"x\"\n"),
    )
    .unwrap();
    let out = kiln()
        .current_dir(work.path())
        .args(["build", "r.toml", "-o", "out"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: r.toml:7:8: dest \"/etc/\" ends with '/'; name the file itself, like \"/etc\""
        ),
        "{stderr}"
    );
}

/// Runs a build in `dir` that must fail with a recipe error; returns the
/// first line of the error.
fn build_fails(dir: &Path, recipe: &str) -> String {
    std::fs::write(dir.join("r.toml"), recipe).unwrap();
    let out = kiln()
        .current_dir(dir)
        .args(["build", "r.toml", "-o", "out"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(list_dir(&dir.join("out")).is_empty(), "output left behind");
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_owned()
}

#[test]
fn an_overlay_writes_below_its_dest_only() {
    let work = tempfile::tempdir().unwrap();
    sh(
        work.path(),
        "mkdir -p base/etc/app base/usr/share/app base/usr/bin && ln -s /usr/share/app base/etc/app/conf.d \
         && ln -s usr/bin base/bin && tar -C base -cf base.tar . \
         && mkdir -p ov/conf.d root/bin && echo x > ov/conf.d/x && echo tool > root/bin/tool",
    );
    let sha = sha256_file(&work.path().join("base.tar"));
    let base = format!("{IMAGE}[base]\npath = \"base.tar\"\nsha256 = \"{sha}\"\n");
    // a symlink of the image that leads out of dest is not followed
    let line = build_fails(
        work.path(),
        &format!("{base}[[overlay]]\nsource = \"ov\"\ndest = \"/etc/app\"\n"),
    );
    assert_eq!(
        line,
        "error: r.toml:9:1: overlay file ov/conf.d: /etc/app/conf.d: the symlink /etc/app/conf.d -> \"/usr/share/app\" leads to /usr/share/app, outside /etc/app, the directory this input may write"
    );
    // one that stays below dest is, as cp would
    let m = build(
        work.path(),
        &format!("{base}[[overlay]]\nsource = \"root\"\n"),
    );
    assert_eq!(meta(&m, "/usr/bin/tool"), "file 0644 0:0");
    assert_eq!(meta(&m, "/bin"), "symlink 0777 0:0");
}

#[test]
fn an_overlay_source_never_follows_a_host_symlink_out_of_the_recipe_folder() {
    let work = tempfile::tempdir().unwrap();
    let recipe_dir = work.path().join("recipe");
    sh(
        work.path(),
        "mkdir -p host/etc recipe && echo 'root:HOST-ONLY:19000::::::' > host/etc/shadow \
         && ln -s ../host recipe/ov",
    );
    let line = build_fails(
        &recipe_dir,
        &format!("{IMAGE}[[overlay]]\nsource = \"ov\"\n"),
    );
    let real = std::fs::canonicalize(&recipe_dir).unwrap();
    assert_eq!(
        line,
        format!(
            "error: r.toml:6:1: overlay source ov: {}/ov is a symlink to ../host, which leads to {}, outside the recipe's folder; kiln does not follow host symlinks out of it",
            real.display(),
            std::fs::canonicalize(work.path().join("host"))
                .unwrap()
                .display()
        )
    );
}
