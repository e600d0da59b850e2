//! Artifacts that refer to a manifest (signatures, SBOMs, provenance):
//! the OCI 1.1 referrers API where the registry has it, else the
//! distribution spec's fallback, an index tagged `sha256-HEX` after the
//! subject's digest.

use crate::client::Client;
use crate::reference::check_digest;
use crate::spec::{Descriptor, IMAGE_INDEX, IMAGE_MANIFEST, ImageManifest, Index};
use anyhow::{Context, Result};

/// The fallback tag of `digest`.
pub fn fallback_tag(digest: &str) -> Result<String> {
    Ok(format!("sha256-{}", check_digest(digest)?))
}

/// The referrers of `subject` in `repository`, with their artifact types.
pub fn list(client: &Client, repository: &str, subject: &str) -> Result<Vec<Descriptor>> {
    let what = format!("referrers of {}/{repository}@{subject}", client.registry());
    if let Some(bytes) = client.referrers_api(repository, subject)? {
        let index: Index = serde_json::from_slice(&bytes)
            .with_context(|| format!("{what}: the registry's answer is not an image index"))?;
        return Ok(index.manifests);
    }
    match client.get_manifest(repository, &fallback_tag(subject)?)? {
        None => Ok(Vec::new()),
        Some(fetched) => {
            let index: Index = serde_json::from_slice(&fetched.bytes).with_context(|| {
                format!(
                    "{what}: tag {} is not an image index",
                    fallback_tag(subject).unwrap_or_default()
                )
            })?;
            Ok(index.manifests)
        }
    }
}

/// Stores `manifest` (whose `subject` is set) and makes it findable as a
/// referrer of its subject. Returns its descriptor.
///
/// The fallback index is read, extended and written back; two builders
/// attaching to one subject at the same moment can lose one entry, which
/// attaching again restores (the spec's own caveat for the tag schema).
pub fn attach(client: &Client, repository: &str, manifest: &ImageManifest) -> Result<Descriptor> {
    let subject = manifest
        .subject
        .as_ref()
        .expect("attach is given a manifest with a subject");
    let bytes = manifest.to_bytes();
    let digest = crate::digest_of(&bytes);
    let (_, processed) = client.put_manifest(repository, &digest, IMAGE_MANIFEST, &bytes)?;
    let mut descriptor = Descriptor::of(IMAGE_MANIFEST, &bytes);
    descriptor.artifact_type = Some(manifest.kind().to_owned());
    descriptor.annotations = manifest.annotations.clone();
    if processed {
        return Ok(descriptor);
    }
    let tag = fallback_tag(&subject.digest)?;
    let mut index = match client.get_manifest(repository, &tag)? {
        Some(fetched) => {
            serde_json::from_slice::<Index>(&fetched.bytes).unwrap_or_else(|_| Index::empty())
        }
        None => Index::empty(),
    };
    if !index
        .manifests
        .iter()
        .any(|d| d.digest == descriptor.digest)
    {
        index.manifests.push(descriptor.clone());
        index.manifests.sort_by(|a, b| a.digest.cmp(&b.digest));
        client.put_manifest(repository, &tag, IMAGE_INDEX, &index.to_bytes())?;
    }
    Ok(descriptor)
}
