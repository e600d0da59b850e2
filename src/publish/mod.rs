//! Publishing images to an OCI registry (docs/registry.md): `push` makes
//! an output directory one OCI artifact, its files layers and its
//! signature, SBOMs and provenance referrers; `pull` fetches one back,
//! verifying the signature and every digest before a byte reaches the
//! output directory. The registry client is kiln-oci.

pub mod cache;
pub mod pull;
pub mod push;

use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// The artifactType of a kiln image.
pub const IMAGE_ARTIFACT: &str = "application/vnd.kiln.image.v1";
/// The layer holding the signed kiln manifest.
pub const MANIFEST_LAYER: &str = "application/vnd.kiln.manifest.v1+json";
/// Referrers, by what they hold.
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.kiln.signature.v1";
pub const SIGNATURE_LAYER: &str = "application/vnd.minisign.signature";
pub const SPDX_ARTIFACT: &str = "application/spdx+json";
pub const CYCLONEDX_ARTIFACT: &str = "application/vnd.cyclonedx+json";
pub const PROVENANCE_ARTIFACT: &str = "application/vnd.in-toto+json";
pub const PROVENANCE_LAYER: &str = "application/vnd.dsse.envelope.v1+json";

/// The media type of an artifact's layer, from its manifest format.
pub fn layer_media_type(format: &str) -> String {
    format!("application/vnd.kiln.{format}")
}

/// Artifacts that are published as referrers rather than layers, with
/// their artifactType.
pub fn referrer_type(format: &str) -> Option<&'static str> {
    match format {
        "spdx-json" => Some(SPDX_ARTIFACT),
        "cyclonedx-json" => Some(CYCLONEDX_ARTIFACT),
        _ => None,
    }
}

/// The manifest of an output directory (or the manifest file itself).
pub fn find_manifest(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_owned());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path)
        .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", path.display()))?
    {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(".manifest.json")
        {
            found.push(entry.path());
        }
    }
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "{} holds no *.manifest.json: give the output directory of a kiln build",
            path.display()
        ),
        _ => bail!(
            "{} holds {} manifests ({}): name the one to publish",
            path.display(),
            found.len(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `NAME-VERSION` of `NAME-VERSION.manifest.json`.
pub fn stem(manifest_name: &str) -> Option<&str> {
    manifest_name.strip_suffix(".manifest.json")
}

/// Whether an artifact name from a manifest is a plain relative path
/// (`file` or `dir/file`): nothing that could leave the output directory.
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 1024
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}
