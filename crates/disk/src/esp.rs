//! The EFI System Partition image, made without mounting anything:
//! `mkfs.fat --invariant` formats a file, `mmd` and `mcopy` (mtools) fill
//! it. With a given volume serial, `SOURCE_DATE_EPOCH` for every timestamp
//! (mtools honours it) and `TZ=UTC` (FAT stores local time), two builds
//! are identical.
//!
//! FAT32, as the UEFI specification asks of an ESP on a fixed disk.
//! Size rule ([`esp_size`]): twice the files, so an update can write the
//! next UKI beside the current one before removing it, plus 4 MiB for the
//! FATs and directories, rounded up to a MiB, and never below 64 MiB (FAT32
//! needs at least 65 525 clusters; at 512-byte clusters that is 32 MiB).

use crate::tool::{MCOPY, MKFS_FAT, MMD};
use anyhow::{Context, Result, bail, ensure};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;
pub const MIN_SIZE: u64 = 64 * MIB;

/// A file to put on the ESP.
#[derive(Clone, Debug)]
pub struct EspFile {
    /// Path on the ESP, `/`-separated, e.g. `EFI/BOOT/BOOTX64.EFI`.
    pub path: String,
    pub source: PathBuf,
}

/// The ESP size for files totalling `content` bytes (module docs).
pub fn esp_size(content: u64) -> u64 {
    (2 * content + 4 * MIB).next_multiple_of(MIB).max(MIN_SIZE)
}

/// Formats `out` (replaced) as a FAT32 file system of `size` bytes with
/// volume `serial` and `label`, and copies `files` onto it in path order.
pub fn build_esp(
    out: &Path,
    size: u64,
    serial: u32,
    label: &str,
    files: &[EspFile],
    source_date_epoch: u64,
) -> Result<()> {
    ensure!(
        size >= MIN_SIZE && size.is_multiple_of(MIB),
        "an ESP of {size} bytes: it must be a whole number of MiB, at least {MIN_SIZE}"
    );
    ensure!(
        !label.is_empty()
            && label.len() <= 11
            && label
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
        "the FAT label \"{label}\" must be 1 to 11 of A-Z, 0-9, '_' and '-'"
    );
    let mut files: Vec<&EspFile> = files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut dirs = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for f in &files {
        check_path(&f.path)?;
        if !seen.insert(f.path.to_lowercase()) {
            bail!("\"{}\" is on the ESP twice (FAT ignores case)", f.path);
        }
        let mut parts: Vec<&str> = f.path.split('/').collect();
        parts.pop();
        for n in 1..=parts.len() {
            dirs.insert(parts[..n].join("/"));
        }
    }
    let content: u64 = files
        .iter()
        .map(|f| std::fs::metadata(&f.source).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()
        .context("cannot read a file meant for the ESP")?;
    ensure!(
        esp_size(content) <= size,
        "{content} bytes of files need an ESP of {} bytes; {size} given",
        esp_size(content)
    );

    match std::fs::remove_file(out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", out.display())),
    }
    let epoch = source_date_epoch.to_string();
    MKFS_FAT.run(
        MKFS_FAT
            .command()
            .env("SOURCE_DATE_EPOCH", &epoch)
            .args(["--invariant", "-F", "32", "-S", "512", "-i"])
            .arg(format!("{serial:08x}"))
            .args(["-n", label, "-C"])
            .arg(out)
            .arg((size / 1024).to_string()),
    )?;
    let image = out.as_os_str();
    let mtools = |tool: crate::tool::Tool| {
        let mut cmd = tool.command();
        // MTOOLS_SKIP_CHECK: mtools otherwise refuses geometries that a
        // floppy could not have.
        cmd.env("SOURCE_DATE_EPOCH", &epoch)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(image);
        cmd
    };
    if !dirs.is_empty() {
        let mut cmd = mtools(MMD);
        cmd.args(dirs.iter().map(|d| format!("::/{d}")));
        MMD.run(&mut cmd)?;
    }
    for f in files {
        let mut cmd = mtools(MCOPY);
        cmd.arg(&f.source).arg(format!("::/{}", f.path));
        MCOPY
            .run(&mut cmd)
            .with_context(|| format!("cannot copy {} to the ESP", f.source.display()))?;
    }
    Ok(())
}

/// ESP paths: relative, no empty, `.` or `..` components, characters
/// that FAT long names allow.
fn check_path(path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.len() > 255)
        || path
            .chars()
            .any(|c| c.is_control() || "\\:*?\"<>|".contains(c));
    if bad {
        bail!("\"{path}\" is not a valid path on the ESP");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_rule() {
        assert_eq!(esp_size(0), MIN_SIZE);
        assert_eq!(esp_size(30 * MIB), MIN_SIZE);
        assert_eq!(esp_size(30 * MIB + 1), 65 * MIB);
        assert_eq!(esp_size(100 * MIB), 204 * MIB);
    }

    #[test]
    fn bad_paths_and_labels() {
        for p in ["", "/EFI", "EFI//X", "EFI/../X", "A:B", "a\nb"] {
            assert!(check_path(p).is_err(), "{p:?}");
        }
        check_path("EFI/BOOT/BOOTX64.EFI").unwrap();
        check_path("EFI/Linux/kiln_1.0.efi").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("esp.img");
        let e = build_esp(&out, MIN_SIZE, 1, "esp", &[], 0).unwrap_err();
        assert!(e.to_string().contains("FAT label"), "{e}");
        let e = build_esp(&out, MIN_SIZE + 1, 1, "ESP", &[], 0).unwrap_err();
        assert!(e.to_string().contains("whole number of MiB"), "{e}");
        let file = |p: &str| EspFile {
            path: p.into(),
            source: "/dev/null".into(),
        };
        let e = build_esp(&out, MIN_SIZE, 1, "ESP", &[file("a/X"), file("A/x")], 0).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
