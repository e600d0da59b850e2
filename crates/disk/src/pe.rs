//! Just enough of the PE/COFF format (Microsoft's "PE Format"
//! specification) to place sections after an EFI stub's own, and to make
//! objcopy's output reproducible: its header timestamp and checksum.

use anyhow::{Result, bail, ensure};

pub const MACHINE_X86_64: u16 = 0x8664;
pub const MACHINE_ARM64: u16 = 0xaa64;
const PE32_PLUS: u16 = 0x20b;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// Relative to the image base.
    pub virtual_address: u32,
    pub virtual_size: u32,
    pub raw_size: u32,
    pub raw_offset: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pe {
    pub machine: u16,
    pub image_base: u64,
    pub section_alignment: u32,
    pub timestamp: u32,
    pub checksum: u32,
    pub sections: Vec<Section>,
    /// File offsets of the fields that `set_timestamp` rewrites.
    timestamp_at: usize,
    checksum_at: usize,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_le_bytes([s[0], s[1]])),
        None => bail!("the PE file ends at byte {} inside its headers", b.len()),
    }
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        None => bail!("the PE file ends at byte {} inside its headers", b.len()),
    }
}

impl Pe {
    /// Reads the headers and section table of a PE32+ image.
    pub fn parse(b: &[u8]) -> Result<Pe> {
        ensure!(b.starts_with(b"MZ"), "not a PE file: no MZ signature");
        let pe = u32_at(b, 0x3c)? as usize;
        ensure!(
            b.get(pe..pe + 4) == Some(b"PE\0\0".as_slice()),
            "not a PE file: no PE signature at byte {pe}"
        );
        let coff = pe + 4;
        let machine = u16_at(b, coff)?;
        let count = u16_at(b, coff + 2)? as usize;
        let optional_size = u16_at(b, coff + 16)? as usize;
        let opt = coff + 20;
        ensure!(
            u16_at(b, opt)? == PE32_PLUS,
            "not a 64-bit (PE32+) image: EFI stubs for x86-64 and arm64 are"
        );
        ensure!(optional_size >= 68, "the PE optional header is too short");
        let image_base = u64::from(u32_at(b, opt + 24)?) | (u64::from(u32_at(b, opt + 28)?) << 32);
        let section_alignment = u32_at(b, opt + 32)?;
        ensure!(
            section_alignment.is_power_of_two(),
            "the PE section alignment {section_alignment} is not a power of two"
        );
        let table = opt + optional_size;
        let mut sections = Vec::with_capacity(count);
        for i in 0..count {
            let s = table + 40 * i;
            let raw_name = b
                .get(s..s + 8)
                .ok_or_else(|| anyhow::anyhow!("the PE section table is cut short"))?;
            let end = raw_name.iter().position(|&c| c == 0).unwrap_or(8);
            sections.push(Section {
                name: String::from_utf8_lossy(&raw_name[..end]).into_owned(),
                virtual_size: u32_at(b, s + 8)?,
                virtual_address: u32_at(b, s + 12)?,
                raw_size: u32_at(b, s + 16)?,
                raw_offset: u32_at(b, s + 20)?,
            });
        }
        Ok(Pe {
            machine,
            image_base,
            section_alignment,
            timestamp: u32_at(b, coff + 4)?,
            checksum: u32_at(b, opt + 64)?,
            sections,
            timestamp_at: coff + 4,
            checksum_at: opt + 64,
        })
    }

    /// The first address (relative to the image base) after every section.
    pub fn end_of_sections(&self) -> u64 {
        self.sections
            .iter()
            .map(|s| u64::from(s.virtual_address) + u64::from(s.virtual_size.max(s.raw_size)))
            .max()
            .unwrap_or(0)
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// Sets the COFF header's timestamp in `image` and recomputes the
/// optional header's checksum to match.
pub fn set_timestamp(image: &mut [u8], timestamp: u32) -> Result<()> {
    let pe = Pe::parse(image)?;
    image[pe.timestamp_at..pe.timestamp_at + 4].copy_from_slice(&timestamp.to_le_bytes());
    let sum = checksum(image, pe.checksum_at);
    image[pe.checksum_at..pe.checksum_at + 4].copy_from_slice(&sum.to_le_bytes());
    Ok(())
}

/// The PE image checksum (as `CheckSumMappedFile` computes it): the
/// one's-complement-folded sum of the file's 16-bit words, the checksum
/// field itself read as zeros, plus the file length.
pub fn checksum(image: &[u8], checksum_at: usize) -> u32 {
    let field = checksum_at..checksum_at + 4;
    let byte = |i: usize| {
        if field.contains(&i) {
            0
        } else {
            u64::from(image.get(i).copied().unwrap_or(0))
        }
    };
    let mut sum: u64 = 0;
    for i in (0..image.len()).step_by(2) {
        sum += byte(i) | (byte(i + 1) << 8);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(image.len() as u32)
}

impl Pe {
    pub fn checksum_offset(&self) -> usize {
        self.checksum_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ header with two sections.
    pub fn tiny_pe() -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x84..0x86].copy_from_slice(&MACHINE_X86_64.to_le_bytes());
        b[0x86..0x88].copy_from_slice(&2u16.to_le_bytes());
        b[0x94..0x96].copy_from_slice(&240u16.to_le_bytes());
        let opt = 0x98;
        b[opt..opt + 2].copy_from_slice(&PE32_PLUS.to_le_bytes());
        b[opt + 32..opt + 36].copy_from_slice(&0x200u32.to_le_bytes());
        let table = opt + 240;
        for (i, (name, va, size)) in [(".text", 0x1000u32, 0x300u32), (".sbat", 0x2000, 0x10)]
            .into_iter()
            .enumerate()
        {
            let s = table + 40 * i;
            b[s..s + name.len()].copy_from_slice(name.as_bytes());
            b[s + 8..s + 12].copy_from_slice(&size.to_le_bytes());
            b[s + 12..s + 16].copy_from_slice(&va.to_le_bytes());
        }
        b
    }

    #[test]
    fn parses_headers_and_sections() {
        let pe = Pe::parse(&tiny_pe()).unwrap();
        assert_eq!(pe.machine, MACHINE_X86_64);
        assert_eq!(pe.section_alignment, 0x200);
        assert_eq!(pe.sections.len(), 2);
        assert_eq!(pe.sections[1].name, ".sbat");
        assert_eq!(pe.end_of_sections(), 0x2010);
    }

    #[test]
    fn timestamp_and_checksum() {
        let mut b = tiny_pe();
        set_timestamp(&mut b, 1_700_000_000).unwrap();
        let pe = Pe::parse(&b).unwrap();
        assert_eq!(pe.timestamp, 1_700_000_000);
        assert_eq!(pe.checksum, checksum(&b, pe.checksum_offset()));
        assert_ne!(pe.checksum, 0);
    }

    #[test]
    fn damaged_files_are_errors() {
        assert!(Pe::parse(b"").unwrap_err().to_string().contains("no MZ"));
        let b = tiny_pe();
        for cut in [0x3e, 0x82, 0x90, 0x100, 0x1a0] {
            let e = Pe::parse(&b[..cut]).unwrap_err().to_string();
            assert!(
                e.contains("ends at byte") || e.contains("cut short") || e.contains("PE signature"),
                "{cut}: {e}"
            );
        }
        let mut b32 = tiny_pe();
        b32[0x98] = 0x0b;
        b32[0x99] = 0x01;
        assert!(Pe::parse(&b32).unwrap_err().to_string().contains("PE32+"));
    }
}
