//! The whole disk, taken apart again with the real tools: sfdisk and
//! sgdisk for the table, mtools for the ESP, objcopy for the UKI inside
//! it, veritysetup for the root and its hash tree, unsquashfs for the
//! files.

use crate::common::*;
use crate::esp::{fsck_clean, mtools};
use crate::gpt::{sfdisk_json, tables_are_clean};
use crate::rootfs::{expected_listing, listing};
use crate::uki::section_bytes;
use kiln_disk::guid::{Guid, dps};
use kiln_disk::{Arch, Disk, DiskReport, Identity};
use kiln_tree::Store;
use std::path::{Path, PathBuf};

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    tar: Vec<u8>,
    tree: kiln_tree::Tree,
    stub: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let store = Store::open(&dir.join("store")).unwrap();
    let tree = sample_tree(&store, (0, 0));
    let tar = kiln_tar(&tree, &store);
    let kernel = dir.join("vmlinuz");
    std::fs::write(&kernel, noise(2_000_000, 11)).unwrap();
    let initrd = dir.join("initrd");
    std::fs::write(&initrd, noise(500_000, 12)).unwrap();
    Fixture {
        _dir: tmp,
        dir,
        tar,
        tree,
        stub: stub(),
        kernel,
        initrd,
    }
}

fn disk(f: &Fixture, epoch: u64) -> Disk<'_> {
    Disk {
        identity: Identity {
            name: "k3s-node".into(),
            version: "2025.1".into(),
            arch: Arch::X86_64,
        },
        stub: &f.stub,
        kernel: &f.kernel,
        initrd: &f.initrd,
        cmdline: "console=ttyS0 quiet",
        os_release: "ID=debian\nIMAGE_ID=k3s-node\nIMAGE_VERSION=2025.1\n",
        source_date_epoch: epoch,
        secure_boot: None,
    }
}

fn sha256(bytes: &[u8]) -> kiln_tree::Digest {
    kiln_tree::Digest::of(bytes)
}

fn part<'a>(report: &'a DiskReport, role: &str) -> &'a kiln_disk::Part {
    report.parts.iter().find(|p| p.role == role).unwrap()
}

#[test]
fn a_disk_that_every_tool_reads_back() {
    let f = fixture();
    let out = f.dir.join("disk.raw");
    let report = disk(&f, EPOCH).build(&f.tar[..], &out).unwrap();
    let root_hash = report.root_hash_hex();

    // Written whole, nothing left behind in the output directory.
    let mut names: Vec<String> = std::fs::read_dir(&f.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["disk.raw", "initrd", "store", "vmlinuz"]);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes.len() as u64, report.size);
    assert_eq!(sha256(&bytes), report.sha256);

    // The partition table, as sfdisk and sgdisk read it.
    tables_are_clean(&out);
    let t = sfdisk_json(&out);
    assert_eq!(t["id"], report.disk_guid.to_string().to_uppercase());
    let parts = t["partitions"].as_array().unwrap();
    let expect = [
        (dps::ESP, "esp", 0),
        (dps::ROOT_X86_64, "k3s-node_2025.1", 60),
        (dps::ROOT_VERITY_X86_64, "k3s-node_2025.1", 60),
    ];
    assert_eq!(parts.len(), 3);
    for ((sf, ours), (type_guid, name, flag)) in parts.iter().zip(&report.parts).zip(expect) {
        assert_eq!(sf["type"], type_guid.to_string().to_uppercase());
        assert_eq!(sf["name"], name);
        assert_eq!(sf["uuid"], ours.uuid.to_string().to_uppercase());
        assert_eq!(sf["start"].as_u64().unwrap() * 512, ours.offset);
        assert_eq!(sf["size"].as_u64().unwrap() * 512, ours.size);
        if flag != 0 {
            assert_eq!(sf["attrs"], format!("GUID:{flag}"));
        }
        // Each part's digest is that of the bytes at its place.
        let data = slice(&out, ours.offset, ours.data_size);
        assert_eq!(sha256(&data), ours.sha256, "{}", ours.role);
        assert!(
            slice(
                &out,
                ours.offset + ours.data_size,
                ours.size - ours.data_size
            )
            .iter()
            .all(|&b| b == 0)
        );
    }
    // DPS: the root's partition UUID is the first half of the root hash,
    // the verity partition's the second half.
    let (root, verity) = (part(&report, "root"), part(&report, "root-verity"));
    assert_eq!(root.uuid, Guid(report.root_hash[..16].try_into().unwrap()));
    assert_eq!(
        verity.uuid,
        Guid(report.root_hash[16..].try_into().unwrap())
    );
    assert_eq!(
        format!("{}{}", root.uuid, verity.uuid).replace('-', ""),
        root_hash
    );

    // The root and its hash tree, as veritysetup checks them.
    let root_img = f.dir.join("root.img");
    let verity_img = f.dir.join("verity.img");
    std::fs::write(&root_img, slice(&out, root.offset, root.data_size)).unwrap();
    std::fs::write(&verity_img, slice(&out, verity.offset, verity.data_size)).unwrap();
    let ok = tool("veritysetup", "cryptsetup-bin")
        .arg("verify")
        .args([&root_img, &verity_img])
        .arg(&root_hash)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // The whole verity partition (padding included) works as the kernel
    // will see it.
    std::fs::write(&verity_img, slice(&out, verity.offset, verity.size)).unwrap();
    run(tool("veritysetup", "cryptsetup-bin")
        .arg("verify")
        .args([&root_img, &verity_img])
        .arg(&root_hash));
    assert_eq!(listing(&root_img), expected_listing(&f.tree));

    // The ESP and the UKI on it, as mtools and objcopy read them.
    let esp = part(&report, "esp");
    let esp_img = f.dir.join("esp.img");
    std::fs::write(&esp_img, slice(&out, esp.offset, esp.data_size)).unwrap();
    fsck_clean(&esp_img);
    assert_eq!(esp.data_size, 64 << 20);
    let uki = run(mtools("mtype", &esp_img).arg("::/EFI/BOOT/BOOTX64.EFI")).stdout;
    assert_eq!(uki.len() as u64, report.uki_size);
    assert_eq!(sha256(&uki), report.uki_sha256);
    // mtools also reads the ESP in place inside the disk.
    let in_place = run(tool("mtype", "mtools")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(format!("{}@@{}", out.display(), esp.offset))
        .arg("::/EFI/BOOT/BOOTX64.EFI"))
    .stdout;
    assert!(in_place == uki);
    let uki_file = f.dir.join("uki.efi");
    std::fs::write(&uki_file, &uki).unwrap();
    let cmdline = String::from_utf8(section_bytes(&uki_file, ".cmdline")).unwrap();
    assert_eq!(cmdline, report.cmdline);
    assert_eq!(
        cmdline,
        format!("console=ttyS0 quiet root=/dev/mapper/root roothash={root_hash}")
    );
    assert!(section_bytes(&uki_file, ".linux") == std::fs::read(&f.kernel).unwrap());
}

#[test]
fn the_same_inputs_give_the_same_disk_and_the_time_matters() {
    let f = fixture();
    let a = f.dir.join("a.raw");
    let b = f.dir.join("b.raw");
    let c = f.dir.join("c.raw");
    let ra = disk(&f, EPOCH).build(&f.tar[..], &a).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let rb = disk(&f, EPOCH).build(&f.tar[..], &b).unwrap();
    assert_eq!(ra.sha256, rb.sha256);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    assert_eq!(ra.root_hash, rb.root_hash);

    // Another SOURCE_DATE_EPOCH: the squashfs superblock time changes, so
    // the root hash and every identifier derived from it change.
    let rc = disk(&f, EPOCH + 1).build(&f.tar[..], &c).unwrap();
    assert_ne!(ra.root_hash, rc.root_hash);
    assert_ne!(ra.disk_guid, rc.disk_guid);
    assert_ne!(ra.sha256, rc.sha256);
}

#[test]
fn bad_inputs_are_refused_before_anything_is_written() {
    let f = fixture();
    let out = f.dir.join("bad.raw");
    let mut d = disk(&f, EPOCH);
    d.cmdline = "root=/dev/sda2";
    let e = d.build(&f.tar[..], &out).unwrap_err();
    assert!(e.to_string().contains("must not set root="), "{e}");
    let mut d = disk(&f, EPOCH);
    d.identity.arch = Arch::Arm64;
    let e = d.build(&f.tar[..], &out).unwrap_err();
    assert!(e.to_string().contains("not arm64"), "{e:#}");
    let mut d = disk(&f, EPOCH);
    let missing = f.dir.join("missing-stub");
    d.stub = &missing;
    let e = d.build(&f.tar[..], &out).unwrap_err();
    assert!(
        format!("{e:#}").contains("cannot read the EFI stub"),
        "{e:#}"
    );
    assert!(!Path::new(&out).exists());
    // No work directory is left behind either.
    assert!(std::fs::read_dir(&f.dir).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".kiln-disk")
    }));
}
