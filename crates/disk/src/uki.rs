//! The Unified Kernel Image: systemd's EFI stub with the kernel, the
//! initrd, the kernel command line and os-release added as PE sections
//! (systemd-stub(7), the UAPI UKI specification), made with
//! `objcopy --add-section` as systemd's documentation describes (the
//! build host's objcopy for its own architecture's stub, the cross
//! binutils' for another: `aarch64-linux-gnu-objcopy` on amd64).
//!
//! Placement: the stub's own section table is read (the same table
//! `objdump -h` prints); the new sections follow its last one, in the
//! order `.osrel`, `.cmdline`, `.initrd`, `.linux`, each at an address
//! aligned to the stub's section alignment and at least 4 KiB (page
//! aligned, so firmware can map them with memory protections). `.linux`
//! comes last as ukify places it: the kernel may need memory past its
//! section's end while it decompresses.
//!
//! Reproducibility: objcopy (binutils 2.40) writes the current time into
//! the PE header, ignoring `SOURCE_DATE_EPOCH`; kiln rewrites that
//! timestamp with `SOURCE_DATE_EPOCH` and recomputes the PE checksum.
//!
//! Under Secure Boot systemd-stub ignores a command line from the boot
//! loader, so `.cmdline` — carrying the dm-verity root hash — is the one
//! that counts once the UKI is signed. In kiln the stub (systemd-boot-efi)
//! and the kernel come from the image's own packages, never from the
//! build host; the tests take the host's stub only to check the format.

use crate::pe::{self, Pe};
use crate::tool::{Tool, objcopy_for};
use anyhow::{Context, Result, bail, ensure};
use std::ffi::OsString;
use std::path::Path;

/// Alignment floor for added sections.
const PAGE: u64 = 4096;

/// What goes into a UKI.
#[derive(Clone, Debug)]
pub struct UkiInputs<'a> {
    /// systemd's `linuxx64.efi.stub` (or `linuxaa64.efi.stub`).
    pub stub: &'a Path,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub cmdline: &'a str,
    /// The os-release text systemd-boot shows and the stub measures.
    pub os_release: &'a str,
}

/// A section kiln added, as placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub name: &'static str,
    /// Virtual address including the image base, as objdump shows it.
    pub vma: u64,
    pub size: u64,
}

/// Writes the UKI to `out` (replaced). `scratch` is a directory for the
/// section files. Returns the PE machine of the stub and the sections.
pub fn build_uki(
    inputs: &UkiInputs<'_>,
    out: &Path,
    scratch: &Path,
    source_date_epoch: u64,
) -> Result<(u16, Vec<Placed>)> {
    let timestamp = u32::try_from(source_date_epoch).map_err(|_| {
        anyhow::anyhow!("SOURCE_DATE_EPOCH {source_date_epoch} does not fit a PE timestamp")
    })?;
    check_cmdline(inputs.cmdline)?;
    ensure!(
        !inputs.os_release.contains('\0'),
        "the os-release text contains a NUL byte"
    );
    let stub_bytes = std::fs::read(inputs.stub)
        .with_context(|| format!("cannot read the EFI stub {}", inputs.stub.display()))?;
    let stub = Pe::parse(&stub_bytes)
        .with_context(|| format!("{} is not a usable EFI stub", inputs.stub.display()))?;
    for name in [".osrel", ".cmdline", ".initrd", ".linux"] {
        ensure!(
            stub.section(name).is_none(),
            "{} already has a {name} section: is it a UKI rather than a stub?",
            inputs.stub.display()
        );
    }

    let osrel = scratch.join("osrel");
    let cmdline = scratch.join("cmdline");
    std::fs::write(&osrel, inputs.os_release)?;
    std::fs::write(&cmdline, inputs.cmdline)?;
    let parts: [(&'static str, &Path); 4] = [
        (".osrel", &osrel),
        (".cmdline", &cmdline),
        (".initrd", inputs.initrd),
        (".linux", inputs.kernel),
    ];

    let align = u64::from(stub.section_alignment).max(PAGE);
    let mut next = stub.end_of_sections().next_multiple_of(align);
    let mut placed = Vec::new();
    let objcopy = objcopy_for(stub.machine);
    let mut cmd = objcopy.command();
    for (name, path) in parts {
        let size = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let vma = stub.image_base + next;
        let mut section = OsString::from(format!("{name}="));
        section.push(path);
        cmd.arg("--add-section")
            .arg(section)
            .arg("--change-section-vma")
            .arg(format!("{name}={vma:#x}"))
            .arg("--set-section-flags")
            .arg(format!("{name}=data,readonly"));
        placed.push(Placed { name, vma, size });
        next = (next + size.max(1)).next_multiple_of(align);
    }
    ensure!(
        next <= u64::from(u32::MAX),
        "the UKI would span {next} bytes of address space; PE allows 4 GiB"
    );
    match std::fs::remove_file(out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", out.display())),
    }
    cmd.arg(inputs.stub).arg(out);
    objcopy.run(&mut cmd)?;

    let mut image = std::fs::read(out)?;
    pe::set_timestamp(&mut image, timestamp)?;
    let made = Pe::parse(&image)?;
    for p in &placed {
        match made.section(p.name) {
            Some(s) if made.image_base + u64::from(s.virtual_address) == p.vma => {}
            _ => bail!("objcopy did not place {} at {:#x}", p.name, p.vma),
        }
    }
    std::fs::write(out, &image)?;
    Ok((stub.machine, placed))
}

/// A command line the kernel reads as one line of text.
fn check_cmdline(cmdline: &str) -> Result<()> {
    if let Some(c) = cmdline.chars().find(|c| c.is_control()) {
        bail!("the kernel command line contains the control character {c:?}");
    }
    // x86's COMMAND_LINE_SIZE, terminating NUL included.
    ensure!(
        cmdline.len() < 2048,
        "the kernel command line is {} bytes; the kernel takes at most 2047",
        cmdline.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_the_kernel_cannot_take() {
        assert!(check_cmdline("ro quiet roothash=00").is_ok());
        let e = check_cmdline("ro\nquiet").unwrap_err().to_string();
        assert!(e.contains("'\\n'"), "{e}");
        let e = check_cmdline(&"x".repeat(2048)).unwrap_err().to_string();
        assert!(e.contains("2048 bytes"), "{e}");
    }

    #[test]
    fn a_bad_stub_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let stub = dir.path().join("stub");
        std::fs::write(&stub, b"not a PE").unwrap();
        let inputs = UkiInputs {
            stub: &stub,
            kernel: &stub,
            initrd: &stub,
            cmdline: "ro",
            os_release: "ID=kiln\n",
        };
        let out = dir.path().join("uki.efi");
        let e = build_uki(&inputs, &out, dir.path(), 0).unwrap_err();
        assert!(
            format!("{e:#}").contains("is not a usable EFI stub"),
            "{e:#}"
        );
        let e = build_uki(&inputs, &out, dir.path(), 1 << 33).unwrap_err();
        assert!(e.to_string().contains("does not fit a PE timestamp"), "{e}");
    }
}

pub const SBSIGN: Tool = Tool {
    program: "sbsign",
    package: "sbsigntool",
};
pub const FAKETIME: Tool = Tool {
    program: "faketime",
    package: "faketime",
};

/// A UEFI Secure Boot key pair: the UKI is signed with it (Authenticode,
/// as sbsign makes it) and boots where its certificate is in the
/// firmware's db. The root hash is inside the signed UKI, so the whole
/// root is sealed by the signature.
#[derive(Clone, Copy, Debug)]
pub struct Signer<'a> {
    /// PEM private key (RSA, unencrypted).
    pub key: &'a Path,
    /// PEM certificate.
    pub cert: &'a Path,
}

impl Signer<'_> {
    /// Signs `uki` into `out`. sbsign stamps the signature with the
    /// current time; run under libfaketime at SOURCE_DATE_EPOCH (frozen),
    /// the signature and so the file are the same in every build.
    pub fn sign(&self, uki: &Path, out: &Path, source_date_epoch: u64) -> Result<()> {
        let sbsign = SBSIGN.require()?;
        FAKETIME.run(
            FAKETIME
                .command()
                .env("FAKETIME_FMT", "%s")
                .arg("-f")
                .arg(source_date_epoch.to_string())
                .arg(sbsign)
                .arg("--key")
                .arg(self.key)
                .arg("--cert")
                .arg(self.cert)
                .arg("--output")
                .arg(out)
                .arg(uki),
        )?;
        Ok(())
    }
}
