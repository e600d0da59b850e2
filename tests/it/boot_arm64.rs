//! The boot tier for arm64: recipes/k3s-agent.toml built on this amd64
//! host with `--arch arm64` (the recipe's `[arm64]` kernel and console;
//! maintainer scripts under qemu-user; the aarch64 kiln-node of
//! `just node-program arm64`), then booted as a raw disk under
//! `qemu-system-aarch64 -M virt` with AAVMF, Debian's UEFI for arm64,
//! and checked from outside with the real OpenSSH client, as boot.rs
//! checks the amd64 node; its PXE bundle is built beside (iPXE for arm64
//! is not packaged for QEMU in Debian, so it is not booted). Software
//! emulation of another architecture:
//! the build takes minutes, the boot several more.
//!
//! The test holds boot.rs's one-VM guard from the build on: the build's
//! emulated maintainer scripts would slow another test's boot.

use crate::boot::{
    KUBELET_PORT, OPEN_PORT, SSH_FROM, assert_clean_power_off, check_dhcp,
    check_kubelet_port_closed, check_layout, check_logins, check_units, extra, fresh_dir,
    manifest_disk, manifest_partition, needs,
};
use crate::common;
use crate::harden_image::{build_with, write_recipe};

use common::qemu::{ARM64_BOOT_TIMEOUT, Machine, Node};
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// The Discoverable Partitions Specification's arm64 types.
const ROOT_ARM64: &str = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE";
const ROOT_VERITY_ARM64: &str = "DF3300CE-D69F-4C92-978C-9BFB0F38D820";
const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// The partition types of `raw`, in table order, as sfdisk reads them.
fn partition_types(raw: &std::path::Path) -> Vec<String> {
    let out = run_ok(Command::new("sfdisk").arg("--json").arg(raw));
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    table["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap().to_uppercase())
        .collect()
}

/// The PE machine of the UKI on the disk's ESP (mtools reads the FAT in
/// place): 0xaa64 for arm64.
fn uki_machine(raw: &std::path::Path, esp_offset: u64) -> u16 {
    let out = run_ok(
        Command::new("mcopy")
            .arg("-i")
            .arg(format!("{}@@{esp_offset}", raw.display()))
            .args(["::EFI/BOOT/BOOTAA64.EFI", "-"])
            .env("MTOOLS_SKIP_CHECK", "1"),
    );
    let pe = &out.stdout;
    let at = u32::from_le_bytes(pe[0x3c..0x40].try_into().unwrap()) as usize;
    assert_eq!(
        &pe[at..at + 4],
        b"PE\0\0",
        "the ESP's BOOTAA64.EFI is not a PE image"
    );
    u16::from_le_bytes([pe[at + 4], pe[at + 5]])
}

/// What the test builds: the arm64 image, signed, with its disk and PXE
/// bundle.
const ARM64_BUILD: &[&str] = &[
    "--arch",
    "arm64",
    "--key",
    "release.key",
    "--format",
    "rootfs",
    "--format",
    "raw",
    "--format",
    "pxe",
];

/// The arm64 node: built for arm64 on amd64, the disk laid out with the
/// arm64 types and an aa64 UKI; it boots under emulation to key-only SSH
/// with its root verified, firewalls the kubelet's port like the amd64
/// node, runs its units and powers off cleanly; built again, it is the
/// same bytes.
#[test]
#[ignore = "needs root, network and boot"]
fn an_arm64_node_built_on_amd64_boots_under_emulation() {
    let _vm = needs("an_arm64_node_built_on_amd64_boots_under_emulation");
    common::qemu::require_qemu_arm64();
    let dir = fresh_dir("arm64");
    write_recipe(&dir, SSH_FROM, &extra());
    // signed, as a release is (and as the PXE bundle needs)
    run_ok(
        kiln()
            .current_dir(&dir)
            .args(["keygen", "-o", "release", "--no-password"]),
    );
    let started = Instant::now();
    build_with(&dir, ARM64_BUILD);
    eprintln!("boot_arm64: built the image in {:?}", started.elapsed());
    // the recipe names no architecture: arm64's lock is its own file
    assert!(dir.join("node.arm64.lock").is_file());
    assert!(!dir.join("node.lock").exists());

    let dist = dir.join("dist");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("node-1.manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["image"]["arch"], "arm64");
    let raw = dist.join("node-1.raw");
    assert_eq!(
        partition_types(&raw),
        [ESP, ROOT_ARM64, ROOT_VERITY_ARM64],
        "the arm64 types of the Discoverable Partitions Specification"
    );
    let (esp_offset, _) = manifest_partition(&manifest, "esp");
    assert_eq!(uki_machine(&raw, esp_offset), 0xaa64);
    let cmdline = manifest_disk(&manifest)["cmdline"].as_str().unwrap();
    assert!(
        cmdline.contains("console=ttyAMA0,115200") && !cmdline.contains("ttyS0"),
        "the recipe's arm64 console: {cmdline}"
    );

    // the PXE bundle carries the arm64 kernel: an Image with its magic
    let kernel = std::fs::read(dist.join("node-1.pxe/vmlinuz")).unwrap();
    assert_eq!(&kernel[0x38..0x3c], b"ARM\x64", "not an arm64 kernel Image");

    let mut node = Node::new_for(
        Machine::Arm64,
        &fresh_dir("arm64-node"),
        &raw,
        &dir.join("ops"),
        |_| {},
    );
    let mut vm = node.boot(&[KUBELET_PORT, OPEN_PORT]);
    let up = vm.wait_for_ssh("ops", false, ARM64_BOOT_TIMEOUT);
    eprintln!("boot_arm64: SSH after {up:?}");
    assert_eq!(vm.ssh("ops", "uname -m").trim(), "aarch64");
    check_logins(&vm);
    check_dhcp(&vm);
    check_kubelet_port_closed(&vm);
    check_units(&vm);
    check_layout(&vm);
    let log = vm.serial_log();
    assert!(
        log.contains("kiln-state: first boot: adding the state partition"),
        "{}",
        common::qemu::tail(&vm.serial, 40)
    );
    let (status, took) = vm.power_off(Duration::from_secs(300));
    eprintln!("boot_arm64: powered off {took:?} after the button");
    assert!(status.success(), "QEMU: {status}");
    assert_clean_power_off(&vm);
    drop(vm);
    node.remove_disk();

    // Built again in another directory and configured afresh (dracut
    // making the initrd under qemu-user again): the same bytes.
    let other = fresh_dir("arm64-b");
    for file in ["node.toml", "k3s", "node.arm64.lock", "release.key"] {
        std::fs::copy(dir.join(file), other.join(file)).unwrap();
    }
    let started = Instant::now();
    build_with(&other, &[ARM64_BUILD, &["--no-install-cache"]].concat());
    eprintln!("boot_arm64: built again in {:?}", started.elapsed());
    for name in [
        "node-1.raw",
        "node-1.rootfs.tar.zst",
        "node-1.pxe/initrd.img",
        "node-1.manifest.json",
        "node-1.manifest.json.minisig",
    ] {
        assert_eq!(
            sha256_file(&dist.join(name)),
            sha256_file(&other.join("dist").join(name)),
            "{name} differs between target/boot-test/arm64 and arm64-b"
        );
    }
}
