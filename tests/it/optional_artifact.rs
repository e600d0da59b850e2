//! An [[artifact]] that cannot be downloaded: the error says how to supply
//! it; `--optional-artifact NAME` builds without it and says so in one
//! line; content that does not match its pin fails either way.

use crate::common::http::{Fault, Server};
use crate::common::*;
use std::path::Path;

fn recipe(dir: &Path, url: &str, sha256: &str) {
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "[image]\nname = \"node\"\nversion = \"1\"\nsource_date_epoch = 1700000000\n\n\
             [[artifact]]\nname = \"k3s\"\nurl = \"{url}\"\nsha256 = \"{sha256}\"\n\
             dest = \"/usr/local/bin/k3s\"\nmode = \"0755\"\n\n[audit]\nfail_on = \"none\"\n"
        ),
    )
    .unwrap();
}

fn build(dir: &Path, extra: &[&str]) -> std::process::Output {
    kiln()
        .current_dir(dir)
        .args(["build", "node.toml", "-o", "dist", "--cache-dir", "cache"])
        .args(extra)
        .env("KILN_HTTP_TIMEOUT", "2")
        .output()
        .unwrap()
}

#[test]
fn an_unreachable_artifact_is_left_out_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let served = d.join("served");
    std::fs::create_dir(&served).unwrap();
    std::fs::write(served.join("k3s"), "#!/bin/sh\n").unwrap();
    let server = Server::start(&served);
    server.fault("/k3s", Fault::Status(404));
    let sha = sha256_file(&served.join("k3s"));
    recipe(d, &format!("{}/k3s", server.addr), &sha);

    let refused = build(d, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("supply the file with --artifact k3s=FILE")
            && stderr.contains("--optional-artifact k3s")
            && stderr.contains("404"),
        "{stderr}"
    );
    assert!(!d.join("dist/node-1.manifest.json").exists());

    let built = build(d, &["--optional-artifact", "k3s"]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "{stderr}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("left out artifact k3s"))
        .collect();
    assert_eq!(said.len(), 1, "one line says what was left out: {stderr}");
    assert!(said[0].contains("--artifact k3s=FILE"), "{}", said[0]);
    let manifest = std::fs::read_to_string(d.join("dist/node-1.manifest.json")).unwrap();
    assert!(!manifest.contains("usr/local/bin/k3s"), "{manifest}");
}

#[test]
fn an_optional_artifact_with_the_wrong_content_still_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let served = d.join("served");
    std::fs::create_dir(&served).unwrap();
    std::fs::write(served.join("k3s"), "#!/bin/sh\necho tampered\n").unwrap();
    let server = Server::start(&served);
    recipe(d, &format!("{}/k3s", server.addr), &"ab".repeat(32));
    let out = build(d, &["--optional-artifact", "k3s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("sha256 is"), "{stderr}");
    assert!(!stderr.contains("left out"), "{stderr}");
}

#[test]
fn optional_artifact_names_an_artifact_of_the_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    recipe(d, "http://127.0.0.1:9/k3s", &"ab".repeat(32));
    let out = build(d, &["--optional-artifact", "k8s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the recipe has no [[artifact]] named k8s (it has: k3s)"),
        "{stderr}"
    );
}

/// One build of both architectures with a binary per architecture
/// supplied on the command line: `--artifact k3s:ARCH=FILE` goes to that
/// architecture's build, against that architecture's pin; `--artifact
/// k3s=FILE` goes to every build, and the other architecture's pin
/// refuses it.
#[test]
fn each_architecture_takes_its_own_supplied_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("k3s-amd64"), "amd64 k3s\n").unwrap();
    std::fs::write(d.join("k3s-arm64"), "arm64 k3s\n").unwrap();
    let pin = |arch: &str| {
        format!(
            "[[artifact]]\nname = \"k3s\"\narch = \"{arch}\"\nurl = \"http://127.0.0.1:9/k3s-{arch}\"\n\
             sha256 = \"{}\"\ndest = \"/usr/local/bin/k3s\"\nmode = \"0755\"\n\n",
            sha256_file(&d.join(format!("k3s-{arch}")))
        )
    };
    std::fs::write(
        d.join("node.toml"),
        format!(
            "[image]\nname = \"node\"\nversion = \"1\"\nsource_date_epoch = 1700000000\n\n{}{}[audit]\nfail_on = \"none\"\n",
            pin("amd64"),
            pin("arm64")
        ),
    )
    .unwrap();
    let both = [
        "--arch",
        "amd64,arm64",
        "--artifact",
        "k3s:amd64=k3s-amd64",
        "--artifact",
        "k3s:arm64=k3s-arm64",
    ];
    let built = build(d, &both);
    assert!(built.status.success(), "{}", output_text(&built));
    for arch in ["amd64", "arm64"] {
        let out = run_ok(
            std::process::Command::new("tar")
                .args(["--zstd", "-xOf"])
                .arg(d.join(format!("dist/{arch}/node-1.rootfs.tar.zst")))
                .arg("./usr/local/bin/k3s"),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{arch} k3s\n")
        );
    }

    let one_file = build(d, &["--arch", "amd64,arm64", "--artifact", "k3s=k3s-amd64"]);
    let text = output_text(&one_file);
    assert!(!one_file.status.success(), "{text}");
    assert!(
        text.contains("--artifact k3s=k3s-amd64") && text.contains("sha256"),
        "{text}"
    );
}
