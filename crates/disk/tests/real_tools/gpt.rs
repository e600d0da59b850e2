//! The GPT writer against util-linux's sfdisk and gdisk's sgdisk.

use crate::common::*;
use kiln_disk::gpt::{self, PartitionSpec, Source};
use kiln_disk::guid::{Guid, dps};
use serde_json::Value;
use std::path::Path;

pub fn sfdisk_json(disk: &Path) -> Value {
    let text = stdout(tool("sfdisk", "fdisk").arg("--json").arg(disk));
    serde_json::from_str::<Value>(&text).unwrap()["partitiontable"].clone()
}

/// sfdisk and sgdisk both find nothing wrong.
pub fn tables_are_clean(disk: &Path) {
    let verify = stdout(tool("sfdisk", "fdisk").arg("--verify").arg(disk));
    assert!(verify.contains("No errors detected."), "{verify}");
    let sgdisk = stdout(tool("sgdisk", "gdisk").arg("-v").arg(disk));
    assert!(sgdisk.contains("No problems found."), "{sgdisk}");
    assert!(!sgdisk.to_lowercase().contains("warning"), "{sgdisk}");
}

fn upper(g: Guid) -> String {
    g.to_string().to_uppercase()
}

#[test]
fn sfdisk_and_sgdisk_read_the_table_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let esp = dir.path().join("esp");
    let root = dir.path().join("root");
    let verity = dir.path().join("verity");
    std::fs::write(&esp, noise(1_500_000, 1)).unwrap();
    std::fs::write(&root, noise(3 << 20, 2)).unwrap();
    std::fs::write(&verity, noise(40_000, 3)).unwrap();
    let root_hash = noise(32, 4);
    let spec = |type_guid, uuid, name: &str, attributes, source, size| PartitionSpec {
        type_guid,
        uuid,
        name: name.into(),
        attributes,
        source,
        size,
    };
    let specs = [
        spec(
            dps::ESP,
            Guid::derive("esp", &[]),
            "esp",
            0,
            Source::File(esp.clone()),
            None,
        ),
        spec(
            dps::ROOT_X86_64,
            Guid(root_hash[..16].try_into().unwrap()),
            "kiln_1.0",
            dps::FLAG_READ_ONLY,
            Source::File(root.clone()),
            None,
        ),
        spec(
            dps::ROOT_VERITY_X86_64,
            Guid(root_hash[16..].try_into().unwrap()),
            "kiln_1.0",
            dps::FLAG_READ_ONLY,
            Source::File(verity.clone()),
            None,
        ),
        spec(
            dps::VAR,
            Guid::derive("var", &[]),
            "var",
            dps::FLAG_GROW_FS,
            Source::Zero,
            Some(4 << 20),
        ),
    ];
    let disk_guid = Guid::derive("disk", &[b"test"]);
    let disk = dir.path().join("disk.img");
    let mut f = std::fs::File::create(&disk).unwrap();
    let layout = gpt::write(&mut f, disk_guid, &specs).unwrap();
    drop(f);
    assert_eq!(layout.disk_size, (1 + 2 + 3 + 1 + 4 + 1) << 20);

    tables_are_clean(&disk);
    let t = sfdisk_json(&disk);
    assert_eq!(t["label"], "gpt");
    assert_eq!(t["id"], upper(disk_guid));
    assert_eq!(t["firstlba"], 34);
    assert_eq!(t["lastlba"], layout.disk_size / 512 - 34);
    let parts = t["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    let sizes_mib = [2, 3, 1, 4];
    for (i, (part, spec)) in parts.iter().zip(&specs).enumerate() {
        assert_eq!(part["type"], upper(spec.type_guid), "partition {i}");
        assert_eq!(part["uuid"], upper(spec.uuid), "partition {i}");
        assert_eq!(part["name"], spec.name.as_str(), "partition {i}");
        assert_eq!(part["start"], layout.extents[i].first_lba, "partition {i}");
        assert_eq!(part["start"].as_u64().unwrap() % 2048, 0, "partition {i}");
        assert_eq!(part["size"], sizes_mib[i] * 2048, "partition {i}");
    }
    // sfdisk names GPT attribute bits by number.
    assert!(parts[0].get("attrs").is_none());
    assert_eq!(parts[1]["attrs"], "GUID:60");
    assert_eq!(parts[2]["attrs"], "GUID:60");
    assert_eq!(parts[3]["attrs"], "GUID:59");
    // util-linux knows the DPS types by name.
    let listing = stdout(tool("sfdisk", "fdisk").arg("-l").arg(&disk));
    for name in [
        "EFI System",
        "Linux root (x86-64)",
        "Linux root verity (x86-64)",
        "Linux variable data",
    ] {
        assert!(listing.contains(name), "{name} missing from:\n{listing}");
    }
    // The data is where the table says.
    let e = layout.extents[1];
    assert!(slice(&disk, e.offset(), 3 << 20) == std::fs::read(&root).unwrap());
    let e = layout.extents[0];
    assert!(
        slice(&disk, e.offset() + 1_500_000, 548_576)
            .iter()
            .all(|&b| b == 0)
    );

    // The same inputs give the same bytes.
    let again = dir.path().join("again.img");
    let mut f = std::fs::File::create(&again).unwrap();
    gpt::write(&mut f, disk_guid, &specs).unwrap();
    drop(f);
    assert!(std::fs::read(&disk).unwrap() == std::fs::read(&again).unwrap());

    // Our reader agrees with sfdisk.
    let table = gpt::read(&mut std::fs::File::open(&disk).unwrap()).unwrap();
    assert_eq!(table.disk_guid, disk_guid);
    assert_eq!(table.entries.len(), 4);
    assert_eq!(table.entries[3].attributes, dps::FLAG_GROW_FS);
}

#[test]
fn sgdisk_and_our_reader_see_a_damaged_backup() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let mut f = std::fs::File::create(&disk).unwrap();
    let specs = [PartitionSpec {
        type_guid: dps::LINUX_DATA,
        uuid: Guid::derive("x", &[]),
        name: "x".into(),
        attributes: 0,
        source: Source::Zero,
        size: None,
    }];
    let layout = gpt::write(&mut f, Guid::derive("d", &[]), &specs).unwrap();
    drop(f);
    tables_are_clean(&disk);
    // Flip a byte of the backup entry array: our checks must be the
    // ones sgdisk makes.
    let mut bytes = std::fs::read(&disk).unwrap();
    let backup_array = (layout.disk_size / 512 - 33) as usize * 512;
    bytes[backup_array + 20] ^= 0xff;
    std::fs::write(&disk, &bytes).unwrap();
    let out = tool("sgdisk", "gdisk")
        .arg("-v")
        .arg(&disk)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains("No problems found."), "{said}");
    let e = gpt::read(&mut std::fs::File::open(&disk).unwrap()).unwrap_err();
    assert!(e.to_string().contains("backup"), "{e}");
}
