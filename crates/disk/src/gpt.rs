//! A deterministic GUID Partition Table disk writer (UEFI 2.10, ch. 5):
//! protective MBR, primary header and entry array at the start, their
//! backup at the end, CRC32s over both. Every byte is chosen here: GUIDs
//! come from the caller, partitions start on 1 MiB boundaries, unused
//! space is zeros, so the same inputs always give the same disk.
//!
//! Geometry: 512-byte sectors; 128 entries of 128 bytes (32 sectors) on
//! each side; the first partition at 1 MiB; the disk ends 1 MiB after the
//! last partition (the backup needs 33 sectors; rounding keeps the disk a
//! whole number of MiB, which virtual disk formats and `dd` like).

use crate::guid::Guid;
use anyhow::{Context, Result, bail, ensure};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

pub const SECTOR: u64 = 512;
/// Partition alignment.
pub const ALIGN: u64 = 1 << 20;
const ENTRIES: usize = 128;
const ENTRY_SIZE: usize = 128;
const ARRAY_SECTORS: u64 = (ENTRIES * ENTRY_SIZE) as u64 / SECTOR;
const HEADER_SIZE: usize = 92;
/// UTF-16 code units in an entry's name.
pub const NAME_UNITS: usize = 36;

/// Where a partition's bytes come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Zeros (an empty partition for the node to format).
    Zero,
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct PartitionSpec {
    pub type_guid: Guid,
    pub uuid: Guid,
    pub name: String,
    /// GPT attribute bits (see `dps::FLAG_*`).
    pub attributes: u64,
    pub source: Source,
    /// Bytes; `None` fits the source. Rounded up to [`ALIGN`].
    pub size: Option<u64>,
}

/// Where a partition landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub first_lba: u64,
    /// Inclusive, as GPT counts.
    pub last_lba: u64,
}

impl Extent {
    pub fn offset(self) -> u64 {
        self.first_lba * SECTOR
    }

    pub fn size(self) -> u64 {
        (self.last_lba - self.first_lba + 1) * SECTOR
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub disk_size: u64,
    pub extents: Vec<Extent>,
}

/// An entry read back from a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub type_guid: Guid,
    pub uuid: Guid,
    pub extent: Extent,
    pub attributes: u64,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub disk_guid: Guid,
    pub disk_size: u64,
    pub entries: Vec<Entry>,
}

fn source_len(source: &Source) -> Result<u64> {
    match source {
        Source::Zero => Ok(0),
        Source::File(path) => Ok(std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len()),
    }
}

/// Places the partitions one after another, each on a 1 MiB boundary,
/// after checking what GPT cannot hold.
pub fn layout(specs: &[PartitionSpec]) -> Result<Layout> {
    ensure!(!specs.is_empty(), "a disk needs at least one partition");
    ensure!(
        specs.len() <= ENTRIES,
        "{} partitions; GPT holds {ENTRIES}",
        specs.len()
    );
    let mut extents = Vec::new();
    let mut next = ALIGN;
    for (i, spec) in specs.iter().enumerate() {
        let what = format!("partition {} (\"{}\")", i + 1, spec.name);
        ensure!(
            !spec.type_guid.is_zero(),
            "{what} has the zero type GUID, which marks unused entries"
        );
        ensure!(!spec.uuid.is_zero(), "{what} has the zero partition GUID");
        if let Some(other) = specs[..i].iter().position(|s| s.uuid == spec.uuid) {
            bail!(
                "{what} has the same GUID {} as partition {}",
                spec.uuid,
                other + 1
            );
        }
        let units = spec.name.encode_utf16().count();
        ensure!(
            units <= NAME_UNITS && !spec.name.contains('\0'),
            "{what}: a GPT name holds at most {NAME_UNITS} UTF-16 units and no NUL ({units} given)"
        );
        let data = source_len(&spec.source).with_context(|| what.clone())?;
        let wanted = spec.size.unwrap_or(data);
        ensure!(
            data <= wanted,
            "{what}: its data is {data} bytes, more than its size {wanted}"
        );
        let size = wanted.max(1).next_multiple_of(ALIGN);
        extents.push(Extent {
            first_lba: next / SECTOR,
            last_lba: (next + size) / SECTOR - 1,
        });
        next += size;
    }
    Ok(Layout {
        disk_size: next + ALIGN,
        extents,
    })
}

/// Writes the whole disk into `out` (truncated first) and returns where
/// each partition is.
pub fn write(out: &mut File, disk_guid: Guid, specs: &[PartitionSpec]) -> Result<Layout> {
    ensure!(!disk_guid.is_zero(), "the disk GUID is zero");
    let layout = layout(specs)?;
    let sectors = layout.disk_size / SECTOR;
    let last = sectors - 1;
    // A sparse file of zeros; only the tables and data are written.
    out.set_len(0)?;
    out.set_len(layout.disk_size)?;

    let mut array = vec![0u8; ENTRIES * ENTRY_SIZE];
    for (i, (spec, extent)) in specs.iter().zip(&layout.extents).enumerate() {
        let e = &mut array[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE];
        e[0..16].copy_from_slice(&spec.type_guid.to_gpt());
        e[16..32].copy_from_slice(&spec.uuid.to_gpt());
        e[32..40].copy_from_slice(&extent.first_lba.to_le_bytes());
        e[40..48].copy_from_slice(&extent.last_lba.to_le_bytes());
        e[48..56].copy_from_slice(&spec.attributes.to_le_bytes());
        for (j, unit) in spec.name.encode_utf16().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let array_crc = crc32fast::hash(&array);
    let first_usable = 2 + ARRAY_SECTORS;
    let last_usable = last - 1 - ARRAY_SECTORS;
    let header = |mine: u64, other: u64, array_lba: u64| {
        let mut h = [0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        h[24..32].copy_from_slice(&mine.to_le_bytes());
        h[32..40].copy_from_slice(&other.to_le_bytes());
        h[40..48].copy_from_slice(&first_usable.to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&disk_guid.to_gpt());
        h[72..80].copy_from_slice(&array_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..HEADER_SIZE]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };

    write_at(out, 0, &protective_mbr(sectors))?;
    write_at(out, SECTOR, &header(1, last, 2))?;
    write_at(out, 2 * SECTOR, &array)?;
    write_at(out, (last - ARRAY_SECTORS) * SECTOR, &array)?;
    write_at(out, last * SECTOR, &header(last, 1, last - ARRAY_SECTORS))?;

    for (spec, extent) in specs.iter().zip(&layout.extents) {
        let Source::File(path) = &spec.source else {
            continue;
        };
        let input = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        out.seek(SeekFrom::Start(extent.offset()))?;
        let copied = kiln_tree::copy(input.take(extent.size() + 1), out)
            .with_context(|| format!("cannot copy {} into the disk", path.display()))?;
        ensure!(
            copied <= extent.size(),
            "{} grew while the disk was written",
            path.display()
        );
    }
    out.flush()?;
    Ok(layout)
}

fn write_at(out: &mut File, offset: u64, bytes: &[u8]) -> Result<()> {
    out.seek(SeekFrom::Start(offset))?;
    out.write_all(bytes)?;
    Ok(())
}

/// One 0xEE partition covering the disk, so MBR-only tools leave it alone.
fn protective_mbr(sectors: u64) -> [u8; SECTOR as usize] {
    let mut m = [0u8; SECTOR as usize];
    let p = &mut m[446..462];
    p[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    p[4] = 0xee;
    p[5..8].copy_from_slice(&[0xff, 0xff, 0xff]); // CHS beyond reach
    p[8..12].copy_from_slice(&1u32.to_le_bytes());
    let size = (sectors - 1).min(u64::from(u32::MAX)) as u32;
    p[12..16].copy_from_slice(&size.to_le_bytes());
    m[510] = 0x55;
    m[511] = 0xaa;
    m
}

/// Reads the primary table of a disk image and checks both headers'
/// signatures and CRCs and the entry array's CRC.
pub fn read(disk: &mut (impl Read + Seek)) -> Result<Table> {
    let disk_size = disk.seek(SeekFrom::End(0))?;
    ensure!(
        disk_size >= 2 * (2 + ARRAY_SECTORS) * SECTOR && disk_size.is_multiple_of(SECTOR),
        "{disk_size} bytes is not a GPT disk image"
    );
    let primary = read_header(disk, 1)?;
    let backup_lba = u64::from_le_bytes(primary[32..40].try_into()?);
    ensure!(
        backup_lba == disk_size / SECTOR - 1,
        "the backup GPT header is at LBA {backup_lba}, not at the end of the disk"
    );
    let backup = read_header(disk, backup_lba)?;
    ensure!(
        primary[56..72] == backup[56..72] && primary[88..92] == backup[88..92],
        "the primary and backup GPT headers disagree"
    );
    let array_lba = u64::from_le_bytes(primary[72..80].try_into()?);
    let count = u32::from_le_bytes(primary[80..84].try_into()?) as usize;
    let size = u32::from_le_bytes(primary[84..88].try_into()?) as usize;
    ensure!(
        (1..=1024).contains(&count) && (128..=4096).contains(&size) && size.is_multiple_of(8),
        "implausible GPT entry array: {count} entries of {size} bytes"
    );
    let mut array = vec![0u8; count * size];
    disk.seek(SeekFrom::Start(array_lba * SECTOR))?;
    disk.read_exact(&mut array)?;
    ensure!(
        crc32fast::hash(&array).to_le_bytes() == primary[88..92],
        "the GPT entry array's CRC32 is wrong"
    );
    let mut copy = vec![0u8; array.len()];
    disk.seek(SeekFrom::Start(
        u64::from_le_bytes(backup[72..80].try_into()?) * SECTOR,
    ))?;
    disk.read_exact(&mut copy)?;
    ensure!(
        copy == array,
        "the backup GPT entry array differs from the primary"
    );
    let mut entries = Vec::new();
    for e in array.chunks(size) {
        let type_guid = Guid::from_gpt(e[0..16].try_into()?);
        if type_guid.is_zero() {
            continue;
        }
        let units: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        entries.push(Entry {
            type_guid,
            uuid: Guid::from_gpt(e[16..32].try_into()?),
            extent: Extent {
                first_lba: u64::from_le_bytes(e[32..40].try_into()?),
                last_lba: u64::from_le_bytes(e[40..48].try_into()?),
            },
            attributes: u64::from_le_bytes(e[48..56].try_into()?),
            name: String::from_utf16_lossy(&units),
        });
    }
    Ok(Table {
        disk_guid: Guid::from_gpt(primary[56..72].try_into()?),
        disk_size,
        entries,
    })
}

fn read_header(disk: &mut (impl Read + Seek), lba: u64) -> Result<[u8; HEADER_SIZE]> {
    let mut h = [0u8; HEADER_SIZE];
    disk.seek(SeekFrom::Start(lba * SECTOR))?;
    disk.read_exact(&mut h)?;
    ensure!(&h[0..8] == b"EFI PART", "no GPT header at LBA {lba}");
    let stored = u32::from_le_bytes(h[16..20].try_into()?);
    let mut zeroed = h;
    zeroed[16..20].fill(0);
    ensure!(
        crc32fast::hash(&zeroed) == stored,
        "the GPT header at LBA {lba} has a wrong CRC32"
    );
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guid::dps;

    fn spec(name: &str, source: Source, size: Option<u64>) -> PartitionSpec {
        PartitionSpec {
            type_guid: dps::LINUX_DATA,
            uuid: Guid::derive("test", &[name.as_bytes()]),
            name: name.into(),
            attributes: 0,
            source,
            size,
        }
    }

    #[test]
    fn partitions_are_aligned_and_the_disk_ends_a_mib_later() {
        let l = layout(&[
            spec("a", Source::Zero, Some(1)),
            spec("b", Source::Zero, Some(3 << 20)),
        ])
        .unwrap();
        assert_eq!(
            l.extents,
            [
                Extent {
                    first_lba: 2048,
                    last_lba: 4095
                },
                Extent {
                    first_lba: 4096,
                    last_lba: 4096 + 3 * 2048 - 1
                }
            ]
        );
        assert_eq!(l.disk_size, 6 << 20);
    }

    #[test]
    fn write_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::write(&data, vec![0x5a; 1_500_000]).unwrap();
        let mut specs = vec![
            spec("data", Source::File(data), None),
            spec("empty", Source::Zero, Some(ALIGN)),
        ];
        specs[1].attributes = dps::FLAG_READ_ONLY;
        specs[1].name = "ÿ-é".into();
        let disk_guid = Guid::derive("disk", &[]);
        let mut f = tempfile::tempfile().unwrap();
        let l = write(&mut f, disk_guid, &specs).unwrap();
        let t = read(&mut f).unwrap();
        assert_eq!(t.disk_guid, disk_guid);
        assert_eq!(t.disk_size, l.disk_size);
        assert_eq!(t.entries.len(), 2);
        assert_eq!(t.entries[0].extent, l.extents[0]);
        assert_eq!(t.entries[0].extent.size(), 2 << 20);
        assert_eq!(t.entries[1].name, "ÿ-é");
        assert_eq!(t.entries[1].attributes, 1 << 60);
        assert_eq!(t.entries[1].uuid, specs[1].uuid);
        let mut byte = [0u8; 1];
        f.seek(SeekFrom::Start(l.extents[0].offset() + 1_499_999))
            .unwrap();
        f.read_exact(&mut byte).unwrap();
        assert_eq!(byte, [0x5a]);

        // A flipped bit in the array is caught.
        f.seek(SeekFrom::Start(2 * SECTOR + 60)).unwrap();
        f.write_all(&[1]).unwrap();
        let e = read(&mut f).unwrap_err();
        assert!(e.to_string().contains("CRC32"), "{e}");
    }

    #[test]
    fn refuses_what_gpt_cannot_hold() {
        let long = "x".repeat(37);
        let cases: Vec<(Vec<PartitionSpec>, &str)> = vec![
            (vec![], "at least one partition"),
            (
                vec![spec(&long, Source::Zero, None)],
                "at most 36 UTF-16 units",
            ),
            (
                vec![spec("a", Source::Zero, None), spec("a", Source::Zero, None)],
                "same GUID",
            ),
            (
                vec![spec("a", Source::File("/nonexistent/kiln".into()), None)],
                "partition 1 (\"a\")",
            ),
        ];
        for (specs, wanted) in cases {
            let e = format!("{:#}", layout(&specs).unwrap_err());
            assert!(e.contains(wanted), "{e} (wanted {wanted})");
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::write(&data, [0; 10]).unwrap();
        let e = layout(&[spec("a", Source::File(data), Some(5))]).unwrap_err();
        assert!(e.to_string().contains("more than its size 5"), "{e}");
        let mut zero = spec("z", Source::Zero, None);
        zero.type_guid = Guid([0; 16]);
        assert!(
            layout(&[zero])
                .unwrap_err()
                .to_string()
                .contains("zero type")
        );
    }

    #[test]
    fn protective_mbr_caps_the_size() {
        let m = protective_mbr(1 << 40);
        assert_eq!(&m[458..462], &u32::MAX.to_le_bytes());
        assert_eq!(m[450], 0xee);
        assert_eq!(&m[510..], &[0x55, 0xaa]);
    }
}
