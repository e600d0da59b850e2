//! The PXE bundle (`kiln build --format pxe`), booted for real: QEMU's
//! UEFI firmware runs iPXE (Debian's ipxe-qemu ROM), which gets its boot
//! script's URL from QEMU's DHCP server and fetches the bundle from a
//! loopback HTTP server (the guest sees the host as 10.0.2.2). The
//! initramfs fetches the signed manifest and the root, checks them, and
//! boots a diskless node that the operator reaches over SSH; every kind
//! of tampering stops the boot with its own console message.
//!
//! The refusals are also checked without a VM: kiln-node's `pxe-root`
//! against a small hand-made bundle (the default tier).

use crate::boot::{fresh_dir, needs};
use crate::common;
use crate::harden_image::{build_with, write_recipe};

use common::http::Server;
use common::qemu::{BOOT_TIMEOUT, Node};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A throwaway signing key pair `dir/NAME.key`, `dir/NAME.pub`.
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    run_ok(
        kiln()
            .args(["keygen", "--no-password", "-o"])
            .arg(dir.join(name)),
    );
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// A copy of the bundle `from` in `to` (links to its files), whose
/// `change` replaces some of them.
fn variant(from: &Path, to: &Path, change: impl FnOnce(&Path)) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), to.join(entry.file_name())).unwrap();
    }
    change(to);
}

/// Replaces the link `dir/name` by a copy of its target with `edit` applied.
fn edit_copy(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let path = dir.join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
}

fn sign(manifest: &Path, key: &Path) {
    let _ = std::fs::remove_file(manifest.with_extension("json.minisig"));
    run_ok(kiln().arg("sign").arg(manifest).arg("--key").arg(key));
}

/// The token the node's metadata service gives; never on the console.
const TOKEN: &str = "K10kilnpxetest::server:secret";
const USER_DATA: &str = "#cloud-config\nwrite_files:\n  - path: /var/lib/rancher/k3s/agent-token\n    content: K10kilnpxetest::server:secret\n";

#[test]
#[ignore = "needs root, network and boot"]
fn a_pxe_node_boots_from_a_verified_root_and_refuses_any_other() {
    let _vm = needs("a_pxe_node_boots_from_a_verified_root_and_refuses_any_other");
    let dir = fresh_dir("pxe");
    write_recipe(&dir, "10.0.2.0/24", "");
    let (key, _) = keygen(&dir, "release");
    let started = Instant::now();
    build_with(&dir, &["--format", "pxe", "--key", key.to_str().unwrap()]);
    eprintln!("pxe: built the bundle in {:?}", started.elapsed());
    let bundle = dir.join("dist/node-1.pxe");
    let mut names = list_dir(&bundle);
    names.sort();
    assert_eq!(
        names,
        [
            "boot.ipxe",
            "initrd.img",
            "manifest.json",
            "manifest.json.minisig",
            "root.squashfs",
            "root.verity",
            "vmlinuz"
        ]
    );
    run_ok(
        kiln()
            .args(["verify", "--key"])
            .arg(dir.join("release.pub"))
            .arg(dir.join("dist/node-1.manifest.json")),
    );

    // The PXE server takes the image from a registry, as a fleet's would:
    // pushed, pulled (verified) and the bundle complete again, byte for byte.
    let registry = common::registry::Registry::start(Default::default());
    let reference = format!("{}/nodes/pxe:1", registry.host());
    run_ok(
        kiln()
            .arg("push")
            .arg(dir.join("dist"))
            .arg(&reference)
            .arg("--plain-http"),
    );
    let pulled = dir.join("pulled");
    run_ok(
        kiln()
            .args(["pull", &reference, "--plain-http", "--key"])
            .arg(dir.join("release.pub"))
            .arg("-o")
            .arg(&pulled),
    );
    assert_eq!(
        file_digests(&pulled.join("node-1.pxe")),
        file_digests(&bundle)
    );
    let bundle = pulled.join("node-1.pxe");

    // What the web server serves: the bundle, and a menu that chains it
    // with per-node arguments: the node is provisioned from an EC2-style
    // metadata service (IMDSv2: a session token first) on the host.
    let www = dir.join("www");
    variant(&bundle, &www.join("good"), |_| {});
    let server = Server::start(&www);
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    let guest = format!("http://10.0.2.2:{port}");
    let (imds, imds_requests) = crate::provision::imds(USER_DATA);
    let imds = imds.replace("127.0.0.1", "10.0.2.2");
    std::fs::write(
        www.join("menu.ipxe"),
        format!(
            "#!ipxe\nset kiln-url {guest}/good/boot.ipxe\nset kiln-args kiln.provision=ec2 kiln.metadata={imds}\nchain ${{kiln-url}}\n"
        ),
    )
    .unwrap();

    let node_dir = dir.join("node");
    std::fs::create_dir_all(&node_dir).unwrap();
    let mut node = Node::diskless(&node_dir, &dir.join("ops"), &format!("{guest}/menu.ipxe"));
    let mut vm = node.boot(&[]);
    let up = vm.wait_for_ssh("ops", false, BOOT_TIMEOUT);
    eprintln!("pxe: diskless node: SSH after {up:?}");
    let log = vm.serial_log();
    assert!(
        log.contains("kiln-pxe: root of node 1 verified"),
        "{}",
        common::qemu::tail(&vm.serial, 60)
    );
    assert!(
        !log.contains("server:secret"),
        "the token reached the console"
    );
    let mounts = vm.ssh(
        "ops",
        "findmnt -n -o SOURCE,FSTYPE,OPTIONS /; findmnt -n -o SOURCE,FSTYPE,OPTIONS /var",
    );
    let fields: Vec<Vec<&str>> = mounts
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(fields.len(), 2, "{mounts}");
    assert_eq!(fields[0][..2], ["/dev/mapper/root", "squashfs"], "{mounts}");
    assert!(fields[0][2].starts_with("ro,"), "{mounts}");
    assert_eq!(
        fields[1][..2],
        ["tmpfs", "tmpfs"],
        "/var is not in memory: {mounts}"
    );
    // What the metadata service gave: the hostname, the instance's key
    // (for the default user, ops), the token from user-data.
    assert_eq!(vm.ssh("ops", "hostname").trim(), "ip-10-0-0-9.ec2.internal");
    assert!(
        vm.ssh("ops", "cat /var/lib/kiln/authorized_keys/ops")
            .contains(crate::provision::KEY)
    );
    let requests = imds_requests.lock().unwrap().clone();
    assert_eq!(
        requests.first().map(String::as_str),
        Some("PUT /latest/api/token"),
        "token first: {requests:?}"
    );
    assert_eq!(
        vm.ssh("ops", "stat -c '%a %U %s' /var/lib/rancher/k3s/agent-token")
            .trim(),
        format!("600 root {}", TOKEN.len())
    );
    // Every unit started (the stand-in K3s has its token); up to 90 s of
    // waiting for a clock no time server sets here.
    let deadline = Instant::now() + Duration::from_secs(300);
    let state = loop {
        let state = vm.ssh("ops", "systemctl is-system-running || true");
        let state = state.trim().to_owned();
        if !matches!(state.as_str(), "starting" | "initializing") || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_secs(5));
    };
    let failed = vm.ssh("ops", "systemctl --failed --plain --no-legend --no-pager");
    assert_eq!(state, "running", "failed units: {failed}");
    let (_, took) = vm.power_off(Duration::from_secs(120));
    eprintln!("pxe: powered off {took:?} after the button");
    drop(vm);

    // Each change stops the boot in the initramfs, with its own message.
    let manifest = bundle.join("manifest.json");
    let (other, _) = keygen(&dir, "unknown");
    type Change = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "root",
            Box::new(|d: &Path| {
                edit_copy(d, "root.squashfs", |b| {
                    let middle = b.len() / 2;
                    b[middle] ^= 1;
                })
            }),
            "root.squashfs has sha256",
        ),
        (
            "manifest",
            Box::new(|d: &Path| {
                edit_copy(d, "manifest.json", |b| {
                    let at = b.len() - 10;
                    b[at] ^= 1;
                })
            }),
            "the manifest's signature is not valid: signature does not match the data",
        ),
        (
            "unknown-key",
            Box::new(move |d: &Path| {
                edit_copy(d, "manifest.json", |_| {});
                edit_copy(d, "manifest.json.minisig", |_| {});
                sign(&d.join("manifest.json"), &other);
            }),
            "the manifest's signature is not valid: signature was made with key",
        ),
        (
            "older",
            Box::new({
                let key = key.clone();
                let manifest = manifest.clone();
                move |d: &Path| {
                    let mut value: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
                    value["image"]["version"] = "0".into();
                    std::fs::remove_file(d.join("manifest.json")).unwrap();
                    std::fs::remove_file(d.join("manifest.json.minisig")).unwrap();
                    std::fs::write(d.join("manifest.json"), serde_json::to_vec(&value).unwrap())
                        .unwrap();
                    sign(&d.join("manifest.json"), &key);
                }
            }),
            "refusing node 0: older than 1, the oldest version this initramfs accepts (a rollback)",
        ),
    ];
    for (name, change, message) in cases {
        variant(&bundle, &www.join(name), change);
        let case_dir = dir.join(format!("node-{name}"));
        std::fs::create_dir_all(&case_dir).unwrap();
        let mut node = Node::diskless(
            &case_dir,
            &dir.join("ops"),
            &format!("{guest}/{name}/boot.ipxe"),
        );
        let mut vm = node.boot(&[]);
        let started = Instant::now();
        if vm
            .wait_for_serial(&[message], Duration::from_secs(240))
            .is_none()
        {
            vm.fail(&format!("{name}: no {message:?} on the console"));
        }
        eprintln!("pxe: {name}: refused after {:?}", started.elapsed());
        // The initramfs halts the machine: the root is never mounted.
        if vm
            .wait_for_serial(&["reboot: System halted"], Duration::from_secs(60))
            .is_none()
        {
            vm.fail(&format!("{name}: the initramfs did not halt"));
        }
        assert!(
            !vm.serial_log().contains("Reached target initrd-root-fs"),
            "{name}: the root was mounted"
        );
    }
}

/// kiln-node's `pxe-root` against a hand-made bundle served on loopback:
/// the one signed by a trusted key passes; each tampering is refused with
/// its message, and the refused file is not left behind.
#[test]
fn pxe_root_refuses_each_kind_of_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (key, public) = keygen(dir, "release");
    let (other, _) = keygen(dir, "other");
    let trust = dir.join("trust");
    std::fs::create_dir_all(trust.join("keys")).unwrap();
    std::fs::copy(&public, trust.join("keys/release.pub")).unwrap();
    std::fs::write(trust.join("image"), "name=node\nminimum_version=1.2\n").unwrap();

    let www = dir.join("www");
    let good = www.join("good");
    std::fs::create_dir_all(&good).unwrap();
    let root = vec![7u8; 70_000];
    let verity = vec![9u8; 4096];
    std::fs::write(good.join("root.squashfs"), &root).unwrap();
    std::fs::write(good.join("root.verity"), &verity).unwrap();
    let record = |name: &str, format: &str, bytes: &[u8]| {
        serde_json::json!({
            "name": format!("node-1.2.pxe/{name}"),
            "format": format,
            "size": bytes.len(),
            "sha256": sha256_hex(bytes),
            "disk": {"root_hash": "ab".repeat(32)},
        })
    };
    let manifest = |version: &str| {
        serde_json::json!({
            "image": {"name": "node", "version": version},
            "artifacts": [
                record("root.squashfs", "pxe-root", &root),
                record("root.verity", "pxe-root-verity", &verity),
            ],
        })
        .to_string()
    };
    // Signed as kiln signs a file it did not write: minisign's own format.
    let minisign = |dir: &Path, key: &Path| {
        run_ok(
            Command::new("minisign")
                .args(["-S", "-s"])
                .arg(key)
                .arg("-m")
                .arg(dir.join("manifest.json"))
                .arg("-x")
                .arg(dir.join("manifest.json.minisig")),
        );
    };
    std::fs::write(good.join("manifest.json"), manifest("1.2")).unwrap();
    minisign(&good, &key);
    let run = |case: &str| {
        let server = Server::start(&www);
        let cmdline = dir.join(format!("cmdline-{case}"));
        std::fs::write(
            &cmdline,
            format!("ro kiln.pxe={}/{case}/boot.ipxe quiet\n", server.addr),
        )
        .unwrap();
        let into = dir.join(format!("into-{case}"));
        let out = Command::new(env!("CARGO_BIN_EXE_kiln-node"))
            .arg("pxe-root")
            .arg("--cmdline")
            .arg(&cmdline)
            .arg("--trust")
            .arg(&trust)
            .arg("--into")
            .arg(&into)
            .arg("--no-attach")
            .output()
            .unwrap();
        (out, into)
    };
    let (out, into) = run("good");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("kiln-pxe: root of node 1.2 verified"),
        "{}",
        output_text(&out)
    );
    assert_eq!(std::fs::read(into.join("root.squashfs")).unwrap(), root);
    // the node keeps the manifest it booted, for `kiln check`
    assert_eq!(
        std::fs::read(into.join("manifest.json")).unwrap(),
        std::fs::read(good.join("manifest.json")).unwrap()
    );

    let copy_good = |name: &str| {
        let to = www.join(name);
        std::fs::create_dir_all(&to).unwrap();
        for file in list_dir(&good) {
            std::fs::copy(good.join(&file), to.join(&file)).unwrap();
        }
        to
    };
    let root_changed = copy_good("root");
    let mut bytes = root.clone();
    bytes[35_000] ^= 1;
    std::fs::write(root_changed.join("root.squashfs"), bytes).unwrap();
    let longer = copy_good("longer");
    let mut bytes = root.clone();
    bytes.push(0);
    std::fs::write(longer.join("root.squashfs"), bytes).unwrap();
    let manifest_changed = copy_good("manifest");
    std::fs::write(
        manifest_changed.join("manifest.json"),
        manifest("1.2").replace("70000", "70001"),
    )
    .unwrap();
    let unknown = copy_good("unknown-key");
    minisign(&unknown, &other);
    let older = copy_good("older");
    std::fs::write(older.join("manifest.json"), manifest("1.1")).unwrap();
    minisign(&older, &key);
    let none = copy_good("unsigned");
    std::fs::remove_file(none.join("manifest.json.minisig")).unwrap();

    for (case, message) in [
        ("root", "root.squashfs has sha256"),
        (
            "longer",
            "is longer than the 70000 bytes the signed manifest says",
        ),
        (
            "manifest",
            "the manifest's signature is not valid: signature does not match the data",
        ),
        (
            "unknown-key",
            "the manifest's signature is not valid: signature was made with key",
        ),
        (
            "older",
            "refusing node 1.1: older than 1.2, the oldest version this initramfs accepts (a rollback)",
        ),
        ("unsigned", "manifest.json.minisig: 404"),
    ] {
        let (out, into) = run(case);
        let text = output_text(&out);
        assert!(!out.status.success(), "{case}: accepted\n{text}");
        assert!(text.contains(message), "{case}: {text}");
        assert!(
            !into.join("root.squashfs").exists() && !into.join("manifest.json").exists(),
            "{case}: the refused root or manifest was left behind"
        );
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
