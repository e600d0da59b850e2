//! Subcommands that read what a build made, apart from the pipeline:
//! `verify` (signature, artifacts, contents), `inspect` (summaries) and
//! `diff` (two images compared). `check` (drift of a live root) is in
//! kiln-check, which the node's own program shares.

pub mod diff;
pub mod inspect;
pub mod verify;

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::Path;

/// What a path given to `inspect` or `diff` holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Input {
    Manifest,
    Archive,
}

/// Tells a manifest from an archive by its name and first bytes: a
/// `*.manifest.json`, or text starting with `{`, is a manifest; anything
/// else must be an archive. An empty file is neither.
pub(crate) fn classify(path: &Path) -> Result<Input> {
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .take(512)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if head.is_empty() {
        bail!(
            "{} is empty: it is neither a kiln manifest nor a rootfs archive",
            path.display()
        );
    }
    let named = path.to_string_lossy().ends_with(".manifest.json");
    let starts_json = head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    Ok(if named || starts_json {
        Input::Manifest
    } else {
        Input::Archive
    })
}

/// The tar stream of a rootfs archive (plain, gzip or zstd), refused when
/// it does not start with a tar header: a file that is no archive must not
/// read as an empty image.
pub(crate) fn open_archive(path: &Path) -> Result<impl Read + Send + use<>> {
    let mut reader = kiln_tree::open_decompressed(path)?;
    let mut block = Vec::with_capacity(512);
    (&mut reader)
        .take(512)
        .read_to_end(&mut block)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let problem = if block.len() < 512 {
        Some(format!(
            "it holds {} bytes of tar data, less than one 512-byte header",
            block.len()
        ))
    } else if !is_tar_header(&block) {
        Some("its first 512 bytes are not a tar header".to_owned())
    } else {
        None
    };
    if let Some(problem) = problem {
        bail!(
            "{} is neither a kiln manifest nor a rootfs archive (tar, gzip or zstd): {problem}",
            path.display()
        );
    }
    Ok(std::io::Cursor::new(block).chain(reader))
}

/// A ustar/GNU/pax header block with a valid checksum, or the zero block
/// that ends an archive (an empty archive is still an archive).
fn is_tar_header(block: &[u8]) -> bool {
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let Some(field) = block.get(148..156) else {
        return false;
    };
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| !matches!(c, '\0' | ' '))
        .collect();
    let Ok(stored) = u64::from_str_radix(&digits, 8) else {
        return false;
    };
    // The checksum is computed with its own field as eight spaces; old
    // tars summed signed bytes.
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_are_recognised() {
        let mut header = tar::Header::new_ustar();
        header.set_path("etc/hostname").unwrap();
        header.set_size(0);
        header.set_cksum();
        assert!(is_tar_header(header.as_bytes()));
        assert!(is_tar_header(&[0; 512]));
        let mut bad = *header.as_bytes();
        bad[0] ^= 1;
        assert!(!is_tar_header(&bad));
        assert!(!is_tar_header(&[b'x'; 512]));
    }
}
