//! kiln-oci: an OCI distribution client, knowing nothing of kiln images.
//! `reference` parses `REGISTRY/REPOSITORY:TAG@DIGEST`; `auth` finds
//! credentials where container tools keep them and reads challenges;
//! `client` speaks the HTTP API to one registry (retries, resumable
//! uploads, verified downloads); `spec` holds the documents; `referrers`
//! attaches artifacts to a manifest, through the referrers API or, on
//! registries without it, the tag schema.

pub mod auth;
pub mod client;
pub mod reference;
pub mod referrers;
pub mod spec;

pub use client::{Client, ClientOptions, Fetched, WrongContent};
pub use reference::Reference;
pub use spec::{Descriptor, ImageManifest, Index};

use sha2::{Digest as _, Sha256};

/// `sha256:HEX` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
