//! The raw disk in the clouds' formats, checked with qemu-img (the tool
//! OpenStack, Proxmox and Azure's own guides use) and GNU tar: each reads
//! back to the raw disk's bytes, and two conversions are identical.

use crate::common::*;
use std::path::Path;
use std::process::Command;

/// A stand-in raw disk: 5 MiB, not all zeros (a real disk's conversion
/// is covered by the boot tests).
fn raw_disk(dir: &Path) -> std::path::PathBuf {
    let raw = dir.join("disk.raw");
    let mut bytes = vec![0u8; 5 << 20];
    for (i, b) in bytes.iter_mut().enumerate().step_by(4093) {
        *b = (i % 251) as u8;
    }
    bytes[(3 << 20)..(3 << 20) + 4].copy_from_slice(b"kiln");
    std::fs::write(&raw, &bytes).unwrap();
    raw
}

fn qemu_img(args: &[&str]) -> String {
    let out = run_ok(Command::new("qemu-img").args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn qcow2_reads_back_as_the_raw_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d);
    let (a, b) = (d.join("a.qcow2"), d.join("b.qcow2"));
    kiln_disk::cloud::qcow2(&raw, &a).unwrap();
    kiln_disk::cloud::qcow2(&raw, &b).unwrap();
    assert_eq!(
        sha256_file(&a),
        sha256_file(&b),
        "two conversions are identical"
    );
    qemu_img(&["check", "-q", a.to_str().unwrap()]);
    let info = qemu_img(&["info", "--output=json", a.to_str().unwrap()]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 5 << 20);
    let back = d.join("back.raw");
    qemu_img(&[
        "convert",
        "-f",
        "qcow2",
        "-O",
        "raw",
        a.to_str().unwrap(),
        back.to_str().unwrap(),
    ]);
    assert_eq!(sha256_file(&back), sha256_file(&raw));
}

#[test]
fn vhd_is_fixed_with_the_disks_size() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d);
    let digest = [9u8; 32];
    let (a, b) = (d.join("a.vhd"), d.join("b.vhd"));
    kiln_disk::cloud::vhd(&raw, &digest, 1_700_000_000, &a).unwrap();
    kiln_disk::cloud::vhd(&raw, &digest, 1_700_000_000, &b).unwrap();
    assert_eq!(
        sha256_file(&a),
        sha256_file(&b),
        "two conversions are identical"
    );
    assert_eq!(std::fs::metadata(&a).unwrap().len(), (5 << 20) + 512);
    let info = qemu_img(&["info", "--output=json", "-f", "vpc", a.to_str().unwrap()]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["virtual-size"], 5 << 20, "{info}");
    // qemu-img's own fixed VHD of the same disk: same length, and the same
    // footer fields for sizes and disk type (2: fixed). The geometry
    // differs: kiln follows the specification's CHS algorithm, qemu-img
    // writes its "use the size" marker; Azure and qemu read the size.
    let reference = d.join("qemu.vhd");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        "-o",
        "subformat=fixed,force_size=on",
        raw.to_str().unwrap(),
        reference.to_str().unwrap(),
    ]);
    let ours = std::fs::read(&a).unwrap();
    let theirs = std::fs::read(&reference).unwrap();
    assert_eq!(ours.len(), theirs.len());
    let footer = |f: &[u8]| f[f.len() - 512..].to_vec();
    let (ours, theirs) = (footer(&ours), footer(&theirs));
    assert_eq!(&ours[0..8], b"conectix");
    assert_eq!(ours[40..56], theirs[40..56], "original and current size");
    assert_eq!(ours[60..64], theirs[60..64], "disk type");
    assert_eq!(ours[60..64], [0, 0, 0, 2]);
    let back = d.join("back.raw");
    qemu_img(&[
        "convert",
        "-f",
        "vpc",
        "-O",
        "raw",
        a.to_str().unwrap(),
        back.to_str().unwrap(),
    ]);
    assert_eq!(sha256_file(&back), sha256_file(&raw));
    // Azure takes whole MiB only.
    let odd = d.join("odd.raw");
    std::fs::write(&odd, vec![0u8; (1 << 20) + 512]).unwrap();
    let err = kiln_disk::cloud::vhd(&odd, &digest, 0, &d.join("odd.vhd")).unwrap_err();
    assert!(err.to_string().contains("whole number of MiB"), "{err}");
}

#[test]
fn gce_is_disk_raw_alone_in_a_gzipped_tar() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d);
    let (a, b) = (d.join("a.tar.gz"), d.join("b.tar.gz"));
    kiln_disk::cloud::gce(&raw, 1_700_000_000, &a).unwrap();
    kiln_disk::cloud::gce(&raw, 1_700_000_000, &b).unwrap();
    assert_eq!(
        sha256_file(&a),
        sha256_file(&b),
        "two conversions are identical"
    );
    let list = run_ok(Command::new("tar").args(["-tzvf"]).arg(&a));
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 1, "{list}");
    assert!(lines[0].starts_with("-rw-r--r-- 0/0"), "{list}");
    assert!(lines[0].ends_with(" disk.raw"), "{list}");
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    run_ok(Command::new("tar").arg("-xzf").arg(&a).arg("-C").arg(&out));
    assert_eq!(sha256_file(&out.join("disk.raw")), sha256_file(&raw));
}
