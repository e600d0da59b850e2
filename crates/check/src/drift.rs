//! `kiln check`: file-integrity drift of a live root against a signed
//! manifest — the host intrusion detection baseline.
//!
//! Compared, as AIDE would with "p i l n u g s m sha256 caps": type, mode,
//! owner, size, content digest, symlink target, device numbers, hard-link
//! identity and file capabilities (`security.capability`; other xattrs,
//! such as SELinux labels, belong to the running system, not the image).
//! Paths matching the manifest's `mutable_paths` are skipped with all
//! below them.

use crate::manifest::{FileRecord, Manifest};
use anyhow::{Context, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use kiln_policy::node::{IMAGE_MANIFEST, IMAGE_MANIFEST_SIGNATURE};
use kiln_tree::{HostEntry, HostKind, ImagePath, hash_reader, read_xattrs, walk_host_dir};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Every kind of drift event, as [`Drift::event`] names them.
pub const DRIFT_EVENTS: [&str; 10] = [
    "modified", "mode", "owner", "type", "target", "device", "hardlink", "xattr", "removed",
    "added",
];

/// One difference between the root and the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// `modified`, `mode`, `owner`, `type`, `target`, `device`,
    /// `hardlink`, `xattr`, `removed` or `added`.
    pub event: &'static str,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<9} {}", self.event, self.path)?;
        match (&self.expected, &self.found) {
            (Some(e), Some(x)) => write!(f, ": expected {e}, found {x}"),
            _ => Ok(()),
        }
    }
}

pub struct CheckOptions<'a> {
    pub root: &'a Path,
    /// Trust a file whose size matches and whose mtime is still the
    /// image's SOURCE_DATE_EPOCH, without hashing it.
    pub fast: bool,
}

/// Compares `options.root` with `manifest`; returns the drift, sorted by path.
pub fn check(manifest: &Manifest, options: &CheckOptions<'_>) -> Result<Vec<Drift>> {
    let mutable = mutable_matcher(&manifest.mutable_paths)?;
    let own = own_files(manifest);
    let is_mutable = |p: &ImagePath| is_mutable(&mutable, p) || own.contains(&p.as_str());
    let found = walk_host_dir(options.root, &is_mutable)
        .with_context(|| format!("cannot walk {}", options.root.display()))?;
    let expected: BTreeMap<&str, &FileRecord> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();

    // Hash what needs hashing, in parallel.
    let digests: Vec<Option<String>> = found
        .par_iter()
        .map(|host| -> Result<Option<String>> {
            let Some(record) = expected.get(host.path.as_str()) else {
                return Ok(None);
            };
            if host.kind != HostKind::File || record.sha256.is_none() {
                return Ok(None);
            }
            let unchanged_by_stat = options.fast
                && record.size == Some(host.size)
                && host.mtime == manifest.source_date_epoch as i64;
            if unchanged_by_stat {
                return Ok(record.sha256.clone());
            }
            let file = std::fs::File::open(&host.host_path)
                .with_context(|| format!("cannot read {}", host.host_path.display()))?;
            Ok(Some(
                hash_reader(std::io::BufReader::with_capacity(1 << 20, file))?
                    .0
                    .hex(),
            ))
        })
        .collect::<Result<_>>()?;

    let inode_of: HashMap<&str, (u64, u64)> = found
        .iter()
        .map(|h| (h.path.as_str(), (h.inode.0, h.inode.1)))
        .collect();
    let mut drift = Vec::new();
    for (host, digest) in found.iter().zip(&digests) {
        match expected.get(host.path.as_str()) {
            None => drift.push(event(
                "added",
                host.path.as_str(),
                None,
                Some(host_kind(host)),
            )),
            Some(record) => compare(record, host, digest.as_deref(), &inode_of, &mut drift)?,
        }
    }
    let present: std::collections::HashSet<&str> = found.iter().map(|h| h.path.as_str()).collect();
    for record in &manifest.files {
        let path = ImagePath::new(&record.path).context("the manifest has an invalid path")?;
        if !present.contains(record.path.as_str())
            && !is_mutable(&path)
            && !below_mutable(&mutable, &path)
        {
            drift.push(event(
                "removed",
                &record.path,
                Some(record.kind.clone()),
                None,
            ));
        }
    }
    drift.sort_by(|a, b| a.path.cmp(&b.path).then(a.event.cmp(b.event)));
    Ok(drift)
}

/// The image's own manifest and its signature (a signed build's,
/// [`IMAGE_MANIFEST`]) are in the root it describes but cannot list
/// themselves: a manifest that does not list them is not compared with
/// them. A manifest that does (the release manifest, checked against a
/// rootfs) compares them as any other file.
fn own_files(manifest: &Manifest) -> Vec<&'static str> {
    const OWN: [&str; 2] = [IMAGE_MANIFEST, IMAGE_MANIFEST_SIGNATURE];
    let listed = manifest
        .files
        .iter()
        .any(|f| OWN.contains(&f.path.as_str()));
    if listed { Vec::new() } else { OWN.to_vec() }
}

fn event(kind: &'static str, path: &str, expected: Option<String>, found: Option<String>) -> Drift {
    Drift {
        event: kind,
        path: path.to_owned(),
        expected,
        found,
    }
}

fn host_kind(host: &HostEntry) -> String {
    match host.kind {
        HostKind::File => "file",
        HostKind::Dir => "dir",
        HostKind::Symlink { .. } => "symlink",
        HostKind::CharDevice { .. } => "char",
        HostKind::BlockDevice { .. } => "block",
        HostKind::Fifo => "fifo",
        HostKind::Socket => "socket",
    }
    .to_owned()
}

fn compare(
    record: &FileRecord,
    host: &HostEntry,
    digest: Option<&str>,
    inode_of: &HashMap<&str, (u64, u64)>,
    drift: &mut Vec<Drift>,
) -> Result<()> {
    let path = host.path.as_str();
    let kind = host_kind(host);
    // A hard link is a regular file on disk sharing its inode with the
    // path the manifest names.
    let expected_kind = if record.kind == "hardlink" {
        "file"
    } else {
        record.kind.as_str()
    };
    if kind != expected_kind {
        drift.push(event("type", path, Some(record.kind.clone()), Some(kind)));
        return Ok(());
    }
    let mode = format!("{:04o}", host.mode);
    // Symlink modes mean nothing on Linux; do not report them.
    if mode != record.mode && record.kind != "symlink" {
        drift.push(event("mode", path, Some(record.mode.clone()), Some(mode)));
    }
    if (host.uid, host.gid) != (record.uid, record.gid) {
        drift.push(event(
            "owner",
            path,
            Some(format!("{}:{}", record.uid, record.gid)),
            Some(format!("{}:{}", host.uid, host.gid)),
        ));
    }
    let device = |major: &u32, minor: &u32| (Some(*major), Some(*minor));
    match (&host.kind, record.kind.as_str()) {
        (HostKind::File, "file") => match (digest, &record.sha256) {
            (Some(found), Some(expected)) if found != expected => drift.push(event(
                "modified",
                path,
                Some(format!("sha256 {expected}")),
                Some(format!("sha256 {found}")),
            )),
            _ => {}
        },
        (HostKind::File, "hardlink") => {
            let target = record.target.as_deref().unwrap_or_default();
            if inode_of.get(path) != inode_of.get(target) {
                drift.push(event(
                    "hardlink",
                    path,
                    Some(format!("same file as {target}")),
                    Some("a separate file".into()),
                ));
            }
        }
        (HostKind::Symlink { target }, _) if record.target.as_deref() != Some(target.as_str()) => {
            drift.push(event(
                "target",
                path,
                record.target.clone(),
                Some(target.clone()),
            ));
        }
        (HostKind::CharDevice { major, minor } | HostKind::BlockDevice { major, minor }, _)
            if device(major, minor) != (record.major, record.minor) =>
        {
            let expected = format!(
                "{}:{}",
                record.major.unwrap_or(0),
                record.minor.unwrap_or(0)
            );
            drift.push(event(
                "device",
                path,
                Some(expected),
                Some(format!("{major}:{minor}")),
            ));
        }
        _ => {}
    }
    if !matches!(host.kind, HostKind::Symlink { .. }) {
        let caps = read_xattrs(&host.host_path)?
            .remove("security.capability")
            .map(hex::encode);
        let expected = record.xattrs.get("security.capability").cloned();
        if caps != expected {
            drift.push(event(
                "xattr",
                path,
                Some(format!(
                    "security.capability {}",
                    expected.as_deref().unwrap_or("absent")
                )),
                Some(format!(
                    "security.capability {}",
                    caps.as_deref().unwrap_or("absent")
                )),
            ));
        }
    }
    Ok(())
}

fn mutable_matcher(patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .with_context(|| {
                format!(
                    "the manifest's mutable path {} is not a valid glob",
                    kiln_diag::quote(pattern)
                )
            })?;
        set.add(glob);
    }
    Ok(set.build()?)
}

fn is_mutable(set: &GlobSet, path: &ImagePath) -> bool {
    set.is_match(path.as_str())
}

/// True when an ancestor of `path` is mutable (the walk never entered it).
fn below_mutable(set: &GlobSet, path: &ImagePath) -> bool {
    let mut dir = path.parent();
    while !dir.is_root() {
        if set.is_match(dir.as_str()) {
            return true;
        }
        dir = dir.parent();
    }
    false
}
