//! The image manifest: every artifact and every path of an image, in
//! canonical JSON (sorted keys, integers only, two-space indent, trailing
//! newline), so the same image always gives the same bytes. Signing the
//! manifest signs everything it lists. Schema: docs/manifest.md.

use anyhow::{Context, Result, bail};
use kiln_tree::{Kind, Tree};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped on any incompatible change of the schema.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub manifest_version: u32,
    pub image: ImageInfo,
    pub source_date_epoch: u64,
    pub builder: BuilderInfo,
    pub recipe: RecipeInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseInfo>,
    /// The Debian packages the build installed, as locked: what a
    /// vulnerability scanner or a patch review needs without the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageRecord>,
    pub artifacts: Vec<ArtifactRecord>,
    pub files: Vec<FileRecord>,
    /// Globs of paths a running node may change (logs, K3s state, first-boot
    /// files): `kiln check` skips them and everything below them.
    pub mutable_paths: Vec<String>,
    /// The release gate's outcome (`kiln audit` of the image tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<kiln_policy::audit::AuditSummary>,
}

/// What every node changes at run time, whatever the recipe: kernel file
/// systems, logs, caches, K3s and container state, first-boot identity
/// (machine-id, hostname, dbus's link to the machine-id), fsck's
/// lost+found on a /var file system of its own.
pub const DEFAULT_MUTABLE_PATHS: &[&str] = &[
    "/dev",
    "/etc/hostname",
    "/etc/machine-id",
    "/etc/rancher/node",
    "/etc/ssh/ssh_host_*",
    "/proc",
    "/run",
    "/sys",
    "/tmp",
    "/var/cache",
    "/var/lib/cni",
    "/var/lib/containerd",
    "/var/lib/dbus/machine-id",
    "/var/lib/kiln",
    "/var/lib/kubelet",
    "/var/lib/rancher",
    "/var/lib/systemd",
    "/var/log",
    "/var/lost+found",
    "/var/tmp",
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    pub name: String,
    pub version: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderInfo {
    pub name: String,
    pub version: String,
}

impl BuilderInfo {
    pub fn this() -> BuilderInfo {
        BuilderInfo {
            name: "kiln".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The recipe files that made the image: the top one first, then each
/// file it extends. Paths are relative to the top recipe's folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeInfo {
    pub sha256: String,
    pub files: Vec<RecipeFileRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeFileRecord {
    pub path: String,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseInfo {
    pub sha256: String,
}

/// One installed Debian package: name, version, architecture and the
/// sha256 of the .deb it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageRecord {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRecord {
    /// File name in the output directory.
    pub name: String,
    pub format: String,
    pub size: u64,
    pub sha256: String,
    /// For compressed archives: the digest and size of the uncompressed
    /// stream, which do not depend on the compressor build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_size: Option<u64>,
    /// For a bootable disk: what it boots and how it is verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskRecord>,
}

/// The boot facts of a `raw` disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskRecord {
    /// The dm-verity root hash of the root partition (also in the UKI's
    /// command line: what the node trusts while booting).
    pub root_hash: String,
    /// The kernel command line sealed in the UKI.
    pub cmdline: String,
    pub uki_sha256: String,
    pub partitions: Vec<PartitionRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionRecord {
    /// `esp`, `root` or `root-verity`.
    pub role: String,
    pub uuid: String,
    pub offset: u64,
    pub size: u64,
    /// Of the partition's content (the padding after it is zeros).
    pub data_size: u64,
    pub sha256: String,
}

/// One path of the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Four octal digits, setuid/setgid/sticky included: "4755".
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symlink target, or the path a hard link shares its content with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<u32>,
    /// Extended attribute values, hex-encoded, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
}

/// One record per path of `tree`, in tree order.
pub fn file_records(tree: &Tree) -> Vec<FileRecord> {
    tree.iter()
        .map(|(path, entry)| {
            let mut record = FileRecord {
                path: path.to_string(),
                kind: entry.kind.name().to_owned(),
                mode: format!("{:04o}", entry.meta.mode & 0o7777),
                uid: entry.meta.uid,
                gid: entry.meta.gid,
                size: None,
                sha256: None,
                target: None,
                major: None,
                minor: None,
                xattrs: entry
                    .meta
                    .xattrs
                    .iter()
                    .map(|(k, v)| (k.clone(), hex::encode(v)))
                    .collect(),
            };
            match &entry.kind {
                Kind::File { digest, size } => {
                    record.size = Some(*size);
                    record.sha256 = Some(digest.hex());
                }
                Kind::Symlink { target } => record.target = Some(target.clone()),
                Kind::HardLink { target } => record.target = Some(target.to_string()),
                Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                    record.major = Some(*major);
                    record.minor = Some(*minor);
                }
                Kind::Dir | Kind::Fifo => {}
            }
            record
        })
        .collect()
}

impl Manifest {
    /// The canonical JSON text: sorted keys, two-space indent, trailing
    /// newline. Sorting is done here rather than trusted to serde_json's
    /// map type, which a dependency's feature flag could change.
    pub fn to_canonical_json(&self) -> String {
        canonical_json(&serde_json::to_value(self).expect("a manifest always serialises"))
    }

    /// Parses a manifest, refusing unknown schema versions.
    pub fn parse(text: &str) -> Result<Manifest> {
        #[derive(Deserialize)]
        struct VersionOnly {
            manifest_version: Option<u32>,
        }
        let probe: VersionOnly = serde_json::from_str(text).context("not a JSON manifest")?;
        match probe.manifest_version {
            Some(MANIFEST_VERSION) => {}
            Some(v) => bail!(
                "manifest_version {v} is not supported by kiln {} (it reads version {MANIFEST_VERSION})",
                env!("CARGO_PKG_VERSION")
            ),
            None => bail!("not a kiln manifest: it has no manifest_version field"),
        }
        serde_json::from_str(text).context("the manifest does not match schema version 1")
    }
}

/// Any JSON document in the manifest's canonical form (the SBOMs use it).
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, 0, &mut out);
    out.push('\n');
    out
}

fn write_canonical(value: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    let pad = |n: usize, out: &mut String| out.extend(std::iter::repeat_n("  ", n));
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("{\n");
            for (i, key) in keys.iter().enumerate() {
                pad(indent + 1, out);
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push_str(": ");
                write_canonical(&map[*key], indent + 1, out);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            pad(indent, out);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(indent + 1, out);
                write_canonical(item, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(indent, out);
            out.push(']');
        }
        // Scalars, `{}` and `[]`: serde_json's compact form is canonical
        // (the manifest holds no floats).
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value =
            serde_json::json!({"b": 1, "a": {"z": [], "y": [{"d": "x", "c": null}]}, "c": {}});
        let mut out = String::new();
        write_canonical(&value, 0, &mut out);
        assert_eq!(
            out,
            "{\n  \"a\": {\n    \"y\": [\n      {\n        \"c\": null,\n        \"d\": \"x\"\n      }\n    ],\n    \"z\": []\n  },\n  \"b\": 1,\n  \"c\": {}\n}"
        );
    }

    #[test]
    fn parse_refuses_other_versions_and_non_manifests() {
        let err = Manifest::parse(r#"{"manifest_version": 9}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("manifest_version 9 is not supported"),
            "{err}"
        );
        let err = Manifest::parse(r#"{"name": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("no manifest_version"), "{err}");
        assert!(Manifest::parse("not json").is_err());
    }
}
