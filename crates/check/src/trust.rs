//! Trusting a manifest: public keys (files, or a directory of them as
//! baked into images), the signature beside the manifest, and the
//! manifest parsed only once its signature checked out.

use crate::manifest::Manifest;
use anyhow::{Context, Result, bail};
use kiln_diag::{Limit, clip_quoted, quote, quote_max, read_file};
use kiln_minisign::{KeyId, PublicKey, Signature};
use kiln_tree::Digest;
use std::path::{Path, PathBuf};

/// Largest manifest read; one of an image with 100,000 paths is ~40 MB.
pub const MANIFEST_LIMIT: Limit = Limit::mib(256, "manifest");
/// Largest signature file read; kiln's are ~400 bytes.
pub const SIGNATURE_LIMIT: Limit = Limit::kib(64, "signature");
/// Largest key files read; minisign's are under 300 bytes.
pub const PUBLIC_KEY_LIMIT: Limit = Limit::kib(64, "public key");

/// Every key of `paths`: key files, and directories of `*.pub` files.
pub fn load_public_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>> {
    if paths.is_empty() {
        bail!(
            "no trusted key: give --key PUBLIC_KEY (repeat it to trust several during a rotation)"
        );
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            // A directory of keys, as baked into images: every *.pub in it.
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                .collect();
            if found.is_empty() {
                bail!("{} holds no *.pub key", path.display());
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    files
        .iter()
        .map(|p| {
            let text = read_file(p, PUBLIC_KEY_LIMIT)?;
            PublicKey::parse(&text).with_context(|| format!("public key {}", p.display()))
        })
        .collect()
}

/// The signature file of a manifest: `X.manifest.json.minisig`.
pub fn signature_path(manifest: &Path) -> PathBuf {
    let mut name = manifest.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// What the trusted (signed) comment says: enough to tell which image a
/// signature is for without the manifest at hand.
pub fn trusted_comment(manifest: &Manifest, manifest_bytes: &[u8]) -> String {
    format!(
        "kiln image:{} version:{} arch:{} manifest-sha256:{}",
        manifest.image.name,
        manifest.image.version,
        manifest.image.arch,
        Digest::of(manifest_bytes).hex()
    )
}

/// A manifest whose signature checked out.
pub struct VerifiedManifest {
    pub manifest: Manifest,
    pub bytes: Vec<u8>,
    pub key_id: KeyId,
    pub trusted_comment: String,
}

/// Why a manifest was not trusted. Kept apart from I/O errors so the
/// command line can exit with the "verification failed" code.
#[derive(Debug)]
pub struct Untrusted(pub String);

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Untrusted {}

/// A trusted comment as a report shows it: escaped, and long enough for
/// any comment kiln writes (names and versions are at most 64 characters).
pub fn shown_comment(comment: &str) -> String {
    quote_max(comment, 300)
}

/// The bytes of the manifest at `path`, refused past [`MANIFEST_LIMIT`].
pub fn read_manifest(path: &Path) -> Result<Vec<u8>> {
    Ok(read_file(path, MANIFEST_LIMIT)?)
}

/// Parses manifest bytes read from `path`; an error says what the file
/// is instead: empty, not JSON, not a kiln manifest, or which field does
/// not match the schema.
pub fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest> {
    let shown = path.display();
    if bytes.is_empty() {
        bail!("{shown} is empty: not a kiln manifest");
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        bail!("{shown} is not a kiln manifest: it is not UTF-8 text");
    };
    let error = match Manifest::parse(text) {
        Ok(manifest) => return Ok(manifest),
        Err(error) => error,
    };
    // Say which of the layers failed, each checked without building a
    // document in memory.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        bail!("{shown} is not JSON: {}", clip_quoted(&e.to_string()));
    }
    let Ok(top) =
        serde_json::from_str::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>(text)
    else {
        bail!("{shown} is not a kiln manifest: it is JSON, but not an object");
    };
    if !top.contains_key("manifest_version") {
        bail!("{shown} is not a kiln manifest: it has no manifest_version field");
    }
    let cause = clip_quoted(&error.root_cause().to_string());
    if error.chain().count() > 1 {
        bail!("{shown} does not match the kiln manifest schema (version 1): {cause}");
    }
    bail!("{shown}: {cause}")
}

/// Checks the signature of the manifest at `path` (from `PATH.minisig`)
/// with any of `keys`, and only then parses it.
pub fn verify_manifest(path: &Path, keys: &[PublicKey]) -> Result<VerifiedManifest> {
    let bytes = read_manifest(path)?;
    if bytes.is_empty() {
        bail!("{} is empty: not a kiln manifest", path.display());
    }
    let sig_path = signature_path(path);
    let sig_text = match read_file(&sig_path, SIGNATURE_LIMIT) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => {
            return Err(Untrusted(format!(
                "no signature: {} does not exist",
                sig_path.display()
            ))
            .into());
        }
        // An oversized signature file is not a signature kiln wrote.
        Err(e @ kiln_diag::ReadError::TooLarge { .. }) => {
            return Err(Untrusted(e.to_string()).into());
        }
        Err(e) => return Err(e.into()),
    };
    let signature = Signature::parse(&sig_text).map_err(|e| {
        Untrusted(format!(
            "signature file {}: {}",
            sig_path.display(),
            clip_quoted(&e.to_string())
        ))
    })?;
    let key = kiln_minisign::verify(keys, &signature, bytes.as_slice())
        .map_err(|e| Untrusted(format!("signature of {}: {e}", path.display())))?;
    let manifest = parse_manifest(path, &bytes)?;
    let comment = signature.trusted_comment().to_owned();
    // The signature already covers the manifest; a comment naming another
    // manifest means the two were paired by mistake or by design.
    if comment.starts_with("kiln ") && comment != trusted_comment(&manifest, &bytes) {
        return Err(Untrusted(format!(
            "the signature's trusted comment {} does not describe this manifest",
            quote(&comment)
        ))
        .into());
    }
    Ok(VerifiedManifest {
        manifest,
        bytes,
        key_id: key.key_id(),
        trusted_comment: comment,
    })
}
