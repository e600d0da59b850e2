//! arm64 images built on an amd64 host (issue #15): the NODE set for
//! arm64, its maintainer scripts run under qemu-user through binfmt_misc
//! inside kiln's sandbox, equals what `mmdebstrap --arch=arm64` makes of
//! the same packages (the same named differences as on amd64); every ELF
//! file in it is an aarch64 one; dpkg, itself run under qemu-user, finds
//! nothing to audit; and a second build is the same bytes. Needs root
//! (chroots; binfmt_misc), qemu-user-static and the network.

use crate::common;
use crate::install_debian::{EPOCH, INTENDED, SAME_LINES, package_cache, status_versions};

use common::oracle::{compare_with_oracle, read_tar};
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// ELF machine numbers.
const EM_AARCH64: u16 = 183;

fn write_recipe(dir: &Path) {
    let packages: Vec<String> = NODE_SET.iter().map(|p| format!("\"{p}\"")).collect();
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "[image]\nname = \"node\"\nversion = \"1\"\narch = \"arm64\"\nsource_date_epoch = {EPOCH}\n\n\
             [debian]\nsuite = \"bookworm\"\nvariant = \"minbase\"\npackages = [{}]\n\n\
             [audit]\nfail_on = \"none\"\n",
            packages.join(", ")
        ),
    )
    .unwrap();
}

fn build(dir: &Path) -> PathBuf {
    let out = kiln()
        .current_dir(dir)
        .args([
            "build",
            "node.toml",
            "-o",
            "out",
            "--compression",
            "none",
            "--no-install-cache",
        ])
        .arg("--cache-dir")
        .arg(package_cache())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kiln build (arm64) failed:\n{}",
        output_text(&out)
    );
    dir.join("out/node-1.rootfs.tar")
}

/// kiln's arm64 NODE image, built once per test run.
fn built() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let base = repo_root().join("target/kiln-test-cache/install-arm64");
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("a");
        std::fs::create_dir_all(&dir).unwrap();
        write_recipe(&dir);
        build(&dir)
    })
}

/// `mmdebstrap --arch=arm64` of the same set, made once a day.
fn oracle(versions: &BTreeMap<String, String>) -> PathBuf {
    let cache = repo_root().join("target/kiln-test-cache");
    let day = run_ok(Command::new("date").args(["-u", "+%F"]));
    let day = String::from_utf8_lossy(&day.stdout).trim().to_owned();
    let tar = cache.join(format!("oracle-arm64-{day}.tar"));
    if tar.is_file() {
        let members = read_tar(&tar);
        let status = String::from_utf8_lossy(&members["/var/lib/dpkg/status"].1).into_owned();
        if status_versions(&status) == *versions {
            return tar;
        }
    }
    for old in std::fs::read_dir(&cache).unwrap().flatten() {
        if old
            .file_name()
            .to_string_lossy()
            .starts_with("oracle-arm64-")
        {
            let _ = std::fs::remove_file(old.path());
        }
    }
    let partial = cache.join(format!("oracle-arm64.partial-{}", std::process::id()));
    run_ok(
        Command::new("mmdebstrap")
            .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
            .args([
                "--arch=arm64",
                "--variant=minbase",
                "--format=tar",
                "--quiet",
            ])
            .arg(format!("--include={}", NODE_SET.join(",")))
            .arg("bookworm")
            .arg(&partial),
    );
    std::fs::rename(&partial, &tar).unwrap();
    tar
}

/// The ELF machine of a file's bytes, if it is an ELF file.
fn elf_machine(bytes: &[u8]) -> Option<u16> {
    (bytes.len() >= 20 && bytes.starts_with(b"\x7fELF"))
        .then(|| u16::from_le_bytes([bytes[18], bytes[19]]))
}

#[test]
#[ignore = "needs root and network"]
fn arm64_node_set_matches_mmdebstrap_and_is_all_aarch64() {
    require_root("binfmt_misc, mmdebstrap and kiln's install stage");
    let ours = read_tar(built());
    let status = String::from_utf8_lossy(&ours["/var/lib/dpkg/status"].1).into_owned();
    assert!(status.contains("Architecture: arm64"), "{status}");
    assert!(
        !status.contains("Architecture: amd64"),
        "an amd64 package in an arm64 image"
    );
    let versions = status_versions(&status);
    assert!(versions.len() > 100, "too few packages: {versions:?}");

    // Every ELF file is an aarch64 one: nothing of the build host leaked.
    let mut elves = 0;
    for (path, (_, bytes)) in &ours {
        if let Some(machine) = elf_machine(bytes) {
            assert_eq!(
                machine, EM_AARCH64,
                "{path} is an ELF file for machine {machine}"
            );
            elves += 1;
        }
    }
    assert!(elves > 200, "only {elves} ELF files");

    let theirs = read_tar(&oracle(&versions));
    assert_eq!(
        status_versions(&String::from_utf8_lossy(&theirs["/var/lib/dpkg/status"].1)),
        versions,
        "mmdebstrap installed other versions"
    );
    compare_with_oracle(&ours, &theirs, INTENDED, SAME_LINES);
}

#[test]
#[ignore = "needs root and network"]
fn arm64_node_set_is_a_working_system_and_rebuilds_bit_for_bit() {
    require_root("binfmt_misc and kiln's install stage");
    let first = built();
    // dpkg, an aarch64 program, audits the image from inside it.
    let root = first
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .with_file_name("arm64-root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "-xpf"])
            .arg(first)
            .arg("-C")
            .arg(&root),
    );
    let log = root.with_extension("log");
    let env = [
        (
            "PATH".to_owned(),
            "/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        ("LC_ALL".to_owned(), "C.UTF-8".to_owned()),
    ];
    let status = kiln::install::run_shell(
        &root,
        "set -e; dpkg --audit; echo audited; dpkg --print-architecture; uname -m",
        &env,
        &log,
    )
    .unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{said}");
    // Nothing before "audited": dpkg found no half-installed package.
    assert!(said.starts_with("audited\narm64\naarch64\n"), "{said}");

    // A second build, configured afresh in another directory: same bytes.
    let dir = first
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .with_file_name("b");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_recipe(&dir);
    std::fs::copy(
        first.parent().unwrap().parent().unwrap().join("node.lock"),
        dir.join("node.lock"),
    )
    .unwrap();
    let second = build(&dir);
    assert_eq!(
        sha256_file(first),
        sha256_file(&second),
        "a second arm64 build differs"
    );
}

/// A signed arm64 image with the node's check timer: kiln puts kiln-node
/// into it, which must be an aarch64 program.
fn checked_arm64_recipe(dir: &Path) {
    run_ok(
        kiln()
            .current_dir(dir)
            .args(["keygen", "-o", "release", "--no-password"]),
    );
    std::fs::write(
        dir.join("r.toml"),
        "[audit]\nfail_on = \"none\"\n[image]\nname = \"arm\"\nversion = \"1\"\narch = \"arm64\"\n\
         source_date_epoch = 1700000000\n[check]\ntimer = \"hourly\"\n\
         [[file]]\ndest = \"/etc/motd\"\ncontent = \"arm64 node\\n\"\n",
    )
    .unwrap();
}

#[test]
fn an_arm64_image_refuses_a_kiln_node_of_another_architecture() {
    let dir = tempfile::tempdir().unwrap();
    checked_arm64_recipe(dir.path());
    let build = |program: Option<&Path>| {
        let mut cmd = kiln();
        cmd.current_dir(dir.path())
            .args(["build", "r.toml", "-o", "out", "--key", "release.key"]);
        // Where kiln finds none beside itself: only what is given.
        cmd.env(
            "KILN_NODE_PROGRAM_ARM64",
            program.unwrap_or(Path::new("/nonexistent/kiln-node")),
        );
        cmd.output().unwrap()
    };
    let out = build(Some(Path::new(env!("CARGO_BIN_EXE_kiln-node"))));
    assert_eq!(out.status.code(), Some(1));
    let text = output_text(&out);
    assert!(text.contains("ELF machine 62, not for arm64"), "{text}");
    assert!(!dir.path().join("out/arm-1.manifest.json").exists());
    let out = build(None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        output_text(&out).contains("/nonexistent/kiln-node"),
        "{}",
        output_text(&out)
    );
}

/// kiln-node cross-built for aarch64 (`just node-program arm64 dev`, which
/// `just test` runs): where kiln finds it.
fn cross_built_node_program() -> PathBuf {
    let path = repo_root().join("target/aarch64-unknown-linux-gnu/debug/kiln-node");
    assert!(
        path.is_file(),
        "{} is missing: run `just node-program arm64 dev` (just test does)",
        path.display()
    );
    path
}

#[test]
#[ignore = "needs network"]
fn an_arm64_image_carries_an_aarch64_kiln_node_that_works() {
    let cross = cross_built_node_program();
    let dir = tempfile::tempdir().unwrap();
    checked_arm64_recipe(dir.path());
    let out = kiln()
        .current_dir(dir.path())
        .env("KILN_NODE_PROGRAM_ARM64", &cross)
        .args([
            "build",
            "r.toml",
            "-o",
            "out",
            "--key",
            "release.key",
            "--compression",
            "none",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let members = read_tar(&dir.path().join("out/arm-1.rootfs.tar"));
    let program = &members["/usr/lib/kiln/kiln-node"].1;
    assert_eq!(elf_machine(program), Some(EM_AARCH64));
    assert_eq!(program, &std::fs::read(&cross).unwrap());
    // The image's own program, run under qemu-user, audits its image. It
    // links bookworm's glibc, which an arm64 Debian image has; here the
    // cross toolchain's copy stands in for it.
    let extracted = dir.path().join("kiln-node");
    std::fs::write(&extracted, program).unwrap();
    // qemu-user runs only what may be executed.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&extracted, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("qemu-aarch64-static")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(&extracted)
        .args([
            "audit",
            "out/arm-1.rootfs.tar",
            "--format",
            "json",
            "--fail-on",
            "none",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        output_text(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = report["results"].as_array().map_or(0, Vec::len);
    assert!(results > 50, "{report}");
}
