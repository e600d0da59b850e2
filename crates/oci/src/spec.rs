//! The OCI image-spec documents kiln writes and reads: descriptors, image
//! manifests and image indexes. Field order and `BTreeMap`s make the JSON
//! of the same content the same bytes, so a manifest's digest is
//! reproducible.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's schema 2 types, accepted when reading so that a reference to
/// a container image gets a clear "not a kiln image" instead of a 404.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The empty config of an artifact (image-spec 1.1): the two bytes `{}`.
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG_BYTES: &[u8] = b"{}";
/// The annotation ORAS and kiln name a layer's file by.
pub const TITLE: &str = "org.opencontainers.image.title";
pub const CREATED: &str = "org.opencontainers.image.created";
pub const VERSION: &str = "org.opencontainers.image.version";
pub const DESCRIPTION: &str = "org.opencontainers.image.description";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// In an index: the platform the manifest is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// image-spec's platform: `architecture` in Go's names (`amd64`,
/// `arm64`, which are also Debian's for these two), `os` is `linux`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

impl Descriptor {
    /// The descriptor of `bytes` as a blob of `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: crate::digest_of(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }

    /// The `org.opencontainers.image.title` annotation: the file name.
    pub fn title(&self) -> Option<&str> {
        self.annotations.get(TITLE).map(String::as_str)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// An artifact manifest (image-spec 1.1): the empty config, the type
    /// in `artifactType`.
    pub fn artifact(artifact_type: &str, layers: Vec<Descriptor>) -> ImageManifest {
        ImageManifest {
            schema_version: 2,
            media_type: Some(IMAGE_MANIFEST.to_owned()),
            artifact_type: Some(artifact_type.to_owned()),
            config: Descriptor::of(EMPTY_CONFIG, EMPTY_CONFIG_BYTES),
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The artifact's type: `artifactType`, else the config's media type
    /// (how image-spec 1.1 says to read manifests written before it).
    pub fn kind(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(&self.config.media_type)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest of strings and integers serialises")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    pub fn empty() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(IMAGE_INDEX.to_owned()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an index of strings and integers serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_has_the_digest_the_spec_gives() {
        let d = Descriptor::of(EMPTY_CONFIG, EMPTY_CONFIG_BYTES);
        assert_eq!(
            d.digest,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(d.size, 2);
    }

    #[test]
    fn manifest_json_is_stable_and_round_trips() {
        let mut layer = Descriptor::of("application/x", b"abc");
        layer.annotations.insert(TITLE.into(), "a.txt".into());
        let m = ImageManifest::artifact("application/vnd.test", vec![layer]);
        let bytes = m.to_bytes();
        assert_eq!(bytes, m.clone().to_bytes());
        let back: ImageManifest = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(back.kind(), "application/vnd.test");
        assert_eq!(back.layers[0].title(), Some("a.txt"));
        assert!(!String::from_utf8_lossy(&bytes).contains("subject"));
    }
}
