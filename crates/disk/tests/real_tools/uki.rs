//! The UKI against binutils (objdump, objcopy) and sbsigntool.

use crate::common::*;
use kiln_disk::pe::{self, Pe};
use kiln_disk::uki::{self, UkiInputs};
use std::path::Path;

/// `name -> (size, vma)` from `objdump -h`.
pub fn objdump_sections(image: &Path) -> Vec<(String, u64, u64)> {
    let text = stdout(tool("objdump", "binutils").arg("-h").arg("-w").arg(image));
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 4 || w[0].parse::<u32>().is_err() {
                return None;
            }
            let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
            Some((w[1].to_string(), hex(w[2]), hex(w[3])))
        })
        .collect()
}

/// A section's bytes, as objcopy extracts them.
pub fn section_bytes(image: &Path, name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("section");
    run(tool("objcopy", "binutils")
        .args(["-O", "binary", "--only-section", name])
        .arg(image)
        .arg(&out));
    std::fs::read(out).unwrap()
}

/// `Key value` from `objdump -p`.
fn objdump_p(image: &Path, key: &str) -> String {
    let text = stdout(tool("objdump", "binutils").arg("-p").arg(image));
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in objdump -p"))
        .trim()
        .to_string()
}

#[test]
fn our_pe_reader_agrees_with_objdump_on_the_stub() {
    let stub = stub();
    let pe = Pe::parse(&std::fs::read(&stub).unwrap()).unwrap();
    let ours: Vec<(String, u64, u64)> = pe
        .sections
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                u64::from(s.virtual_size),
                pe.image_base + u64::from(s.virtual_address),
            )
        })
        .collect();
    assert_eq!(ours, objdump_sections(&stub));
    assert_eq!(pe.machine, pe::MACHINE_X86_64);
    assert_eq!(
        format!("{:08x}", pe.section_alignment),
        objdump_p(&stub, "SectionAlignment")
    );
}

#[test]
fn our_checksum_is_binutils_checksum() {
    // objcopy writes a correct PE checksum; ours must match it so the
    // rewritten timestamp leaves a valid image.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.efi");
    let payload = dir.path().join("payload");
    std::fs::write(&payload, noise(12_345, 9)).unwrap();
    run(tool("objcopy", "binutils")
        .arg("--add-section")
        .arg(format!(".extra={}", payload.display()))
        .arg(stub())
        .arg(&copy));
    let bytes = std::fs::read(&copy).unwrap();
    let pe = Pe::parse(&bytes).unwrap();
    assert_eq!(pe.checksum, pe::checksum(&bytes, pe.checksum_offset()));
    assert_eq!(format!("{:08x}", pe.checksum), objdump_p(&copy, "CheckSum"));
}

#[test]
fn sections_are_placed_exact_reproducible_and_signable() {
    let dir = tempfile::tempdir().unwrap();
    let fake_kernel = dir.path().join("vmlinuz");
    std::fs::write(&fake_kernel, noise(1_000_001, 1)).unwrap();
    let kernel = kernel_or(&fake_kernel);
    let initrd = dir.path().join("initrd");
    std::fs::write(&initrd, noise(200_000, 2)).unwrap();
    let stub = stub();
    let cmdline = "console=ttyS0 quiet root=/dev/mapper/root roothash=00ff";
    let os_release = "ID=kiln\nIMAGE_ID=node\nIMAGE_VERSION=1.0\n";
    let inputs = UkiInputs {
        stub: &stub,
        kernel: &kernel,
        initrd: &initrd,
        cmdline,
        os_release,
    };
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let a = dir.path().join("a.efi");
    let b = dir.path().join("b.efi");
    let (machine, placed) = uki::build_uki(&inputs, &a, &scratch, EPOCH).unwrap();
    assert_eq!(machine, pe::MACHINE_X86_64);
    // objcopy stamps the current second: let it change.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    uki::build_uki(&inputs, &b, &scratch, EPOCH).unwrap();
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());

    let sections = objdump_sections(&a);
    let stub_sections = objdump_sections(&stub);
    assert_eq!(&sections[..stub_sections.len()], stub_sections.as_slice());
    let stub_end = stub_sections
        .iter()
        .map(|(_, size, vma)| vma + size)
        .max()
        .unwrap();
    let added: Vec<&str> = sections[stub_sections.len()..]
        .iter()
        .map(|(n, _, _)| n.as_str())
        .collect();
    assert_eq!(added, [".osrel", ".cmdline", ".initrd", ".linux"]);
    let mut previous_end = stub_end;
    for ((name, size, vma), p) in sections[stub_sections.len()..].iter().zip(&placed) {
        assert_eq!((name.as_str(), *size, *vma), (p.name, p.size, p.vma));
        assert_eq!(vma % 4096, 0, "{name} at {vma:#x}");
        assert!(*vma >= previous_end, "{name} overlaps what comes before");
        previous_end = vma + size;
    }
    assert_eq!(section_bytes(&a, ".cmdline"), cmdline.as_bytes());
    assert_eq!(section_bytes(&a, ".osrel"), os_release.as_bytes());
    assert!(section_bytes(&a, ".initrd") == std::fs::read(&initrd).unwrap());
    assert!(section_bytes(&a, ".linux") == std::fs::read(&kernel).unwrap());

    // SOURCE_DATE_EPOCH in the header, and a checksum that matches it.
    assert_eq!(objdump_p(&a, "Time/Date"), "Tue Nov 14 22:13:20 2023");
    let bytes = std::fs::read(&a).unwrap();
    let pe = Pe::parse(&bytes).unwrap();
    assert_eq!(pe.checksum, pe::checksum(&bytes, pe.checksum_offset()));

    // sbsign can sign it and sbverify checks the signature: the PE is
    // sound enough for Secure Boot signing later.
    let key = dir.path().join("db.key");
    let cert = dir.path().join("db.crt");
    run(tool("openssl", "openssl")
        .args(["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-subj", "/CN=kiln test", "-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let signed = dir.path().join("signed.efi");
    run(tool("sbsign", "sbsigntool")
        .arg("--key")
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .arg("--output")
        .arg(&signed)
        .arg(&a));
    let verified = stdout(
        tool("sbverify", "sbsigntool")
            .arg("--cert")
            .arg(&cert)
            .arg(&signed),
    );
    assert!(verified.contains("Signature verification OK"), "{verified}");
}

#[test]
fn a_different_command_line_is_a_different_uki() {
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("payload");
    std::fs::write(&payload, b"k").unwrap();
    let stub = stub();
    let make = |cmdline: &str, out: &str| {
        let out = dir.path().join(out);
        let inputs = UkiInputs {
            stub: &stub,
            kernel: &payload,
            initrd: &payload,
            cmdline,
            os_release: "ID=kiln\n",
        };
        uki::build_uki(&inputs, &out, dir.path(), EPOCH).unwrap();
        std::fs::read(out).unwrap()
    };
    assert!(make("roothash=00", "a.efi") != make("roothash=01", "b.efi"));
    // A UKI is not a stub: adding the sections twice is refused.
    let uki = dir.path().join("a.efi");
    let inputs = UkiInputs {
        stub: &uki,
        kernel: &payload,
        initrd: &payload,
        cmdline: "",
        os_release: "",
    };
    let e = uki::build_uki(&inputs, &dir.path().join("c.efi"), dir.path(), EPOCH).unwrap_err();
    assert!(
        e.to_string().contains("already has a .osrel section"),
        "{e}"
    );
}
