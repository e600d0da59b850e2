//! The ESP image against mtools (mdir, mtype) and fsck.fat.

use crate::common::*;
use kiln_disk::esp::{self, EspFile};
use std::path::Path;
use std::process::Command;

pub fn mtools(program: &str, image: &Path) -> Command {
    let mut cmd = tool(program, "mtools");
    cmd.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(image);
    cmd
}

/// `fsck.fat -n` (check only) finds nothing to repair.
pub fn fsck_clean(image: &Path) {
    let out = tool("fsck.fat", "dosfstools")
        .arg("-n")
        .arg(image)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "fsck.fat -n failed:\n{said}");
    // Only the version line and the summary: no repairs proposed.
    assert_eq!(said.lines().count(), 2, "{said}");
}

#[test]
fn two_builds_are_identical_and_mtools_read_the_files_back() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot");
    let other = dir.path().join("other");
    std::fs::write(&boot, noise(3_000_000, 1)).unwrap();
    std::fs::write(&other, b"a long name\n").unwrap();
    let files = [
        EspFile {
            path: "EFI/Linux/kiln_1.0+2.efi".into(),
            source: other.clone(),
        },
        EspFile {
            path: "EFI/BOOT/BOOTX64.EFI".into(),
            source: boot.clone(),
        },
    ];
    let size = esp::esp_size(3_000_012);
    assert_eq!(size, 64 << 20);
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    esp::build_esp(&a, size, 0x1a2b_3c4d, "ESP", &files, EPOCH).unwrap();
    // FAT times have a 2-second resolution: let the clock move past one.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    esp::build_esp(&b, size, 0x1a2b_3c4d, "ESP", &files, EPOCH).unwrap();
    assert_eq!(std::fs::metadata(&a).unwrap().len(), size);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());

    fsck_clean(&a);
    let typed = run(mtools("mtype", &a).arg("::/EFI/BOOT/BOOTX64.EFI")).stdout;
    assert!(
        typed == std::fs::read(&boot).unwrap(),
        "mtype read other bytes"
    );
    let typed = run(mtools("mtype", &a).arg("::/EFI/Linux/kiln_1.0+2.efi")).stdout;
    assert_eq!(typed, b"a long name\n");

    let listing = stdout(mtools("mdir", &a).arg("::/EFI/BOOT"));
    assert!(listing.contains("Volume in drive : is ESP"), "{listing}");
    assert!(
        listing.contains("Volume Serial Number is 1A2B-3C4D"),
        "{listing}"
    );
    let line = listing
        .lines()
        .find(|l| l.starts_with("BOOTX64  EFI"))
        .unwrap_or_else(|| panic!("no BOOTX64.EFI in:\n{listing}"));
    assert!(line.contains("3000000"), "{line}");
    // SOURCE_DATE_EPOCH, in UTC.
    assert!(
        line.contains(EPOCH_DATE.replace(' ', "  ").as_str()),
        "{line}"
    );
    let top = stdout(mtools("mdir", &a).args(["-/", "::/"]));
    assert!(top.contains("kiln_1.0+2.efi"), "{top}");

    // The time matters, so a different SOURCE_DATE_EPOCH shows.
    let c = dir.path().join("c.img");
    esp::build_esp(&c, size, 0x1a2b_3c4d, "ESP", &files, EPOCH + 86_400).unwrap();
    assert!(std::fs::read(&a).unwrap() != std::fs::read(&c).unwrap());
}

#[test]
fn too_small_an_esp_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(40 << 20)
        .unwrap();
    let files = [EspFile {
        path: "EFI/BOOT/BOOTX64.EFI".into(),
        source: big,
    }];
    let out = dir.path().join("esp.img");
    let e = esp::build_esp(&out, 64 << 20, 1, "ESP", &files, EPOCH).unwrap_err();
    assert!(
        e.to_string().contains("need an ESP of 88080384 bytes"),
        "{e}"
    );
    // The rule's size holds the file, and fsck.fat agrees.
    esp::build_esp(&out, esp::esp_size(40 << 20), 1, "ESP", &files, EPOCH).unwrap();
    fsck_clean(&out);
}
