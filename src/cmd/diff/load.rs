//! Loading one side of a diff: a kiln manifest (with the rootfs archive
//! beside it, when there is one) or a rootfs archive.

use super::ImageSide;
use crate::cmd::{Input, classify, open_archive};
use crate::manifest::{FileRecord, Manifest, file_records};
use crate::signing::{parse_manifest, read_manifest};
use anyhow::{Context, Result, anyhow, bail};
use kiln_diag::quote;
use kiln_tree::{Digest, Store, hash_reader, load_tar, open_decompressed};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// One side, loaded.
pub(super) struct Side {
    pub(super) info: ImageSide,
    /// By path.
    pub(super) records: BTreeMap<String, FileRecord>,
    /// Whether blobs of its regular files are in the store.
    pub(super) has_contents: bool,
}

impl Side {
    /// The sha256 and size of the content at `record`, following a hard
    /// link to the file holding it; `None` for anything but a file.
    pub(super) fn content_of<'a>(&'a self, record: &'a FileRecord) -> Option<(&'a str, u64)> {
        let file = match record.kind.as_str() {
            "file" => record,
            "hardlink" => self.records.get(record.target.as_deref()?)?,
            _ => return None,
        };
        if file.kind != "file" {
            return None;
        }
        Some((file.sha256.as_deref()?, file.size?))
    }

    pub(super) fn read(&self, sha256: &str, store: &Store) -> Result<Vec<u8>> {
        let digest: Digest = sha256
            .parse()
            .map_err(|e: String| anyhow!(kiln_diag::clip_quoted(&e)))?;
        store.read_to_vec(&digest)
    }

    /// Why this side's contents cannot be read.
    pub(super) fn why_no_contents(&self) -> String {
        format!(
            "{} is a manifest whose rootfs archive is not beside it",
            self.info.path
        )
    }
}

pub(super) fn load(path: &Path, store: &Store) -> Result<Side> {
    let shown = path.display().to_string();
    if classify(path)? == Input::Archive {
        let tree = load_tar(open_archive(path)?, &shown, store)?;
        return Ok(Side {
            info: ImageSide {
                path: shown.clone(),
                source: "archive",
                name: None,
                version: None,
                contents: Some(shown),
            },
            records: by_path(file_records(&tree)),
            has_contents: true,
        });
    }
    let manifest = parse_manifest(path, &read_manifest(path)?)?;
    let archive = archive_beside(path, &manifest)?;
    if let Some(archive) = &archive {
        load_tar(
            open_decompressed(archive)?,
            &archive.display().to_string(),
            store,
        )?;
    }
    Ok(Side {
        info: ImageSide {
            path: shown,
            source: "manifest",
            name: Some(manifest.image.name),
            version: Some(manifest.image.version),
            contents: archive.as_ref().map(|a| a.display().to_string()),
        },
        records: by_path(manifest.files),
        has_contents: archive.is_some(),
    })
}

fn by_path(records: Vec<FileRecord>) -> BTreeMap<String, FileRecord> {
    records.into_iter().map(|r| (r.path.clone(), r)).collect()
}

/// The rootfs archive `manifest` lists, when it is beside the manifest
/// file. One that is there but does not match the recorded digest is an
/// error: its contents would describe some other image.
fn archive_beside(manifest_path: &Path, manifest: &Manifest) -> Result<Option<std::path::PathBuf>> {
    let dir = manifest_path.parent().unwrap_or(Path::new(""));
    for artifact in &manifest.artifacts {
        if !artifact.format.starts_with("rootfs-tar") {
            continue;
        }
        let name = artifact.name.as_str();
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            bail!(
                "the manifest lists an artifact named {}, which is not a file name",
                quote(name)
            );
        }
        let path = dir.join(name);
        let exists =
            (path.try_exists()).with_context(|| format!("cannot look for {}", path.display()))?;
        if !exists {
            continue;
        }
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let (digest, _) = hash_reader(BufReader::with_capacity(1 << 20, file))
            .with_context(|| format!("cannot read {}", path.display()))?;
        if digest.hex() != artifact.sha256 {
            bail!(
                "{} is not the archive the manifest lists: its sha256 is {}, the manifest says {}",
                path.display(),
                digest.hex(),
                artifact.sha256
            );
        }
        return Ok(Some(path));
    }
    Ok(None)
}
