//! The image manifest. Its schema is in kiln-check, which the node's own
//! program reads it with too (docs/manifest.md); the builder adds how a
//! disk it made is recorded.

pub use kiln_check::manifest::*;

/// The record of a `raw` disk: what it boots and how it is verified.
pub fn disk_record(name: String, report: &kiln_disk::DiskReport) -> ArtifactRecord {
    ArtifactRecord {
        name,
        format: "raw".into(),
        size: report.size,
        sha256: report.sha256.hex(),
        uncompressed_sha256: None,
        uncompressed_size: None,
        disk: Some(DiskRecord {
            root_hash: hex::encode(report.root_hash),
            cmdline: report.cmdline.clone(),
            uki_sha256: report.uki_sha256.hex(),
            partitions: report
                .parts
                .iter()
                .map(|p| PartitionRecord {
                    role: p.role.into(),
                    uuid: p.uuid.to_string(),
                    offset: p.offset,
                    size: p.size,
                    data_size: p.data_size,
                    sha256: p.sha256.hex(),
                })
                .collect(),
        }),
    }
}
