//! The raw disk in the formats clouds import, each deterministic:
//!
//! - `qcow2` (OpenStack, Proxmox, libvirt): `qemu-img convert`, which
//!   writes no timestamps or random data;
//! - `vhd` (Azure): the raw disk and a 512-byte fixed-VHD footer whose
//!   timestamp is SOURCE_DATE_EPOCH and whose unique id is derived from
//!   the disk's digest; Azure wants the size a whole number of MiB, which
//!   kiln's disks are;
//! - `gce` (Google Compute Engine): `disk.raw` alone in a gzip'd tar
//!   (GNU format), as `gcloud compute images create --source-uri` reads.
//!
//! The raw disk itself is what AWS `import-snapshot` takes.

use crate::guid::derive_bytes;
use crate::tool::Tool;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

pub const QEMU_IMG: Tool = Tool {
    program: "qemu-img",
    package: "qemu-utils",
};

/// `qemu-img convert -O qcow2`, uncompressed (clusters that are all
/// zeros are left out).
pub fn qcow2(raw: &Path, out: &Path) -> Result<()> {
    QEMU_IMG.run(
        QEMU_IMG
            .command()
            .args([
                "convert",
                "-q",
                "-f",
                "raw",
                "-O",
                "qcow2",
                "-o",
                "compat=1.1",
            ])
            .arg(raw)
            .arg(out),
    )?;
    Ok(())
}

/// Seconds from 1970 to 2000-01-01 00:00:00 UTC, the VHD epoch.
const VHD_EPOCH: u64 = 946_684_800;

/// The raw disk followed by a fixed-VHD footer.
pub fn vhd(raw: &Path, disk_sha256: &[u8], source_date_epoch: u64, out: &Path) -> Result<()> {
    let size = std::fs::metadata(raw)
        .with_context(|| format!("cannot read {}", raw.display()))?
        .len();
    if size % (1 << 20) != 0 {
        bail!("a VHD for Azure must be a whole number of MiB; the disk is {size} bytes");
    }
    let mut input = BufReader::with_capacity(1 << 20, File::open(raw)?);
    let mut output = BufWriter::with_capacity(
        1 << 20,
        File::create(out).with_context(|| format!("cannot create {}", out.display()))?,
    );
    let copied = std::io::copy(&mut input, &mut output)?;
    if copied != size {
        bail!("{} changed while it was read", raw.display());
    }
    output.write_all(&vhd_footer(size, disk_sha256, source_date_epoch))?;
    output
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(())
}

/// The 512-byte footer of a fixed VHD (Virtual Hard Disk Image Format
/// Specification, "Hard Disk Footer Format"), big-endian fields.
pub fn vhd_footer(size: u64, disk_sha256: &[u8], source_date_epoch: u64) -> [u8; 512] {
    let mut f = [0u8; 512];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // format version 1.0
    f[16..24].copy_from_slice(&u64::MAX.to_be_bytes()); // data offset: none (fixed)
    let stamp = source_date_epoch
        .saturating_sub(VHD_EPOCH)
        .min(u32::MAX as u64) as u32;
    f[24..28].copy_from_slice(&stamp.to_be_bytes());
    f[28..32].copy_from_slice(b"kiln");
    f[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // creator version
    f[36..40].copy_from_slice(b"Wi2k"); // creator host OS, as Azure's tools write
    f[40..48].copy_from_slice(&size.to_be_bytes()); // original size
    f[48..56].copy_from_slice(&size.to_be_bytes()); // current size
    let (c, h, s) = chs(size);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f[58] = h;
    f[59] = s;
    f[60..64].copy_from_slice(&2u32.to_be_bytes()); // disk type: fixed
    let id = derive_bytes("vhd-unique-id", &[disk_sha256]);
    f[68..84].copy_from_slice(&id[..16]);
    let sum: u32 = f.iter().map(|&b| b as u32).fold(0, u32::wrapping_add);
    f[64..68].copy_from_slice(&(!sum).to_be_bytes());
    f
}

/// The specification's CHS algorithm (appendix "CHS Calculation").
fn chs(size: u64) -> (u16, u8, u8) {
    let mut sectors = (size / 512).min(65535 * 16 * 255);
    let (spt, heads, cyl_x_heads);
    if sectors >= 65535 * 16 * 63 {
        sectors = sectors.min(65535 * 16 * 255);
        spt = 255;
        heads = 16;
        cyl_x_heads = sectors / spt;
    } else {
        let mut s = 17;
        let mut cth = sectors / s;
        let mut h = cth.div_ceil(1024);
        if h < 4 {
            h = 4;
        }
        if cth >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            cth = sectors / s;
        }
        if cth >= h * 1024 {
            s = 63;
            h = 16;
            cth = sectors / s;
        }
        spt = s;
        heads = h;
        cyl_x_heads = cth;
    }
    ((cyl_x_heads / heads) as u16, heads as u8, spt as u8)
}

/// `disk.raw` in a gzip'd GNU tar, every field fixed.
pub fn gce(raw: &Path, source_date_epoch: u64, out: &Path) -> Result<()> {
    let size = std::fs::metadata(raw)
        .with_context(|| format!("cannot read {}", raw.display()))?
        .len();
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let gz = flate2::GzBuilder::new().mtime(0).write(
        BufWriter::with_capacity(1 << 20, file),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_path("disk.raw")?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(source_date_epoch);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let reader = BufReader::with_capacity(1 << 20, File::open(raw)?).take(size);
    tar.append(&header, reader)?;
    let gz = tar.into_inner()?;
    let buffered = gz.finish()?;
    buffered
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_fields_and_checksum() {
        let f = vhd_footer(181 << 20, &[7; 32], VHD_EPOCH + 10);
        assert_eq!(&f[0..8], b"conectix");
        assert_eq!(u32::from_be_bytes(f[24..28].try_into().unwrap()), 10);
        assert_eq!(u64::from_be_bytes(f[48..56].try_into().unwrap()), 181 << 20);
        assert_eq!(u32::from_be_bytes(f[60..64].try_into().unwrap()), 2);
        let mut zeroed = f;
        zeroed[64..68].fill(0);
        let sum: u32 = zeroed.iter().map(|&b| b as u32).sum();
        assert_eq!(u32::from_be_bytes(f[64..68].try_into().unwrap()), !sum);
        assert_eq!(
            f,
            vhd_footer(181 << 20, &[7; 32], VHD_EPOCH + 10),
            "deterministic"
        );
        assert_ne!(
            f[68..84],
            vhd_footer(181 << 20, &[8; 32], VHD_EPOCH + 10)[68..84]
        );
        assert_eq!(
            vhd_footer(1 << 20, &[0; 32], 0)[24..28],
            [0; 4],
            "before 2000: 0"
        );
    }

    #[test]
    fn chs_as_the_specification_computes_it() {
        // 181 MiB = 370688 sectors: 17 sectors/track, heads 22 -> 31/16.
        let (c, h, s) = chs(181 << 20);
        assert_eq!((h, s), (16, 31));
        assert_eq!(c as u64, (370_688 / 31) / 16);
        // Past 127 GiB the geometry saturates.
        assert_eq!(chs(1 << 40), (65535, 16, 255));
    }
}
