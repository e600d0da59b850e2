//! Comparing two loaded sides: paths and their attributes, the text diffs
//! of changed files under /etc, and the installed packages.

use super::dpkg::{DPKG_STATUS, InstalledPackage, installed_packages, package_changes};
use super::load::Side;
use super::{
    AttributeChange, ChangedPath, ConfigChange, ConfigChangeKind, ConfigDiff, DiffReport,
    FileChanges, ImageChange, PackageChanges, unified_diff,
};
use crate::manifest::FileRecord;
use anyhow::{Context, Result, anyhow};
use kiln_tree::Store;
use std::collections::BTreeSet;

/// Larger files get "binary or large file changed" instead of a text diff.
pub const MAX_TEXT_BYTES: u64 = 1 << 20;

pub(super) fn compare(old: &Side, new: &Side, store: &Store) -> Result<DiffReport> {
    let paths: BTreeSet<&str> = old
        .records
        .keys()
        .chain(new.records.keys())
        .map(String::as_str)
        .collect();
    let mut files = FileChanges::default();
    let mut config = Vec::new();
    for path in paths {
        let (o, n) = (old.records.get(path), new.records.get(path));
        match (o, n) {
            (Some(o), None) => files.removed.push(o.clone()),
            (None, Some(n)) => files.added.push(n.clone()),
            (Some(o), Some(n)) => {
                let changes = attribute_changes(o, n);
                if !changes.is_empty() {
                    files.changed.push(ChangedPath {
                        path: path.to_owned(),
                        changes,
                    });
                }
            }
            // Every path comes from one of the sides.
            (None, None) => continue,
        }
        if path.starts_with("/etc/")
            && let Some(change) = config_change(path, old, o, new, n, store)?
        {
            config.push(change);
        }
    }
    Ok(DiffReport {
        image: ImageChange {
            old: old.info.clone(),
            new: new.info.clone(),
        },
        packages: package_changes_between(old, new, store)?,
        files,
        config,
    })
}

/// The attributes that differ between two records of the same path.
pub fn attribute_changes(old: &FileRecord, new: &FileRecord) -> Vec<AttributeChange> {
    let mut out = Vec::new();
    let mut check = |attribute: &str, old: Option<String>, new: Option<String>| {
        if old != new {
            out.push(AttributeChange {
                attribute: attribute.to_owned(),
                old,
                new,
            });
        }
    };
    let device = |r: &FileRecord| match (r.major, r.minor) {
        (None, None) => None,
        (major, minor) => Some(format!(
            "{}:{}",
            major.unwrap_or_default(),
            minor.unwrap_or_default()
        )),
    };
    check("type", Some(old.kind.clone()), Some(new.kind.clone()));
    check("sha256", old.sha256.clone(), new.sha256.clone());
    check(
        "size",
        old.size.map(|s| s.to_string()),
        new.size.map(|s| s.to_string()),
    );
    check("target", old.target.clone(), new.target.clone());
    check("device", device(old), device(new));
    check("mode", Some(old.mode.clone()), Some(new.mode.clone()));
    check(
        "owner",
        Some(format!("{}:{}", old.uid, old.gid)),
        Some(format!("{}:{}", new.uid, new.gid)),
    );
    let names: BTreeSet<&String> = old.xattrs.keys().chain(new.xattrs.keys()).collect();
    for name in names {
        check(
            &format!("xattr {name}"),
            old.xattrs.get(name).cloned(),
            new.xattrs.get(name).cloned(),
        );
    }
    out
}

/// The text diff of a path under /etc, when it is a regular file on at
/// least one side and its content changed.
fn config_change(
    path: &str,
    old: &Side,
    o: Option<&FileRecord>,
    new: &Side,
    n: Option<&FileRecord>,
    store: &Store,
) -> Result<Option<ConfigChange>> {
    let is_file = |r: Option<&FileRecord>| r.is_some_and(|r| r.kind == "file");
    if !is_file(o) && !is_file(n) {
        // Hard links are covered by the file holding their content.
        return Ok(None);
    }
    let old_content = o.and_then(|r| old.content_of(r));
    let new_content = n.and_then(|r| new.content_of(r));
    if old_content.map(|c| c.0) == new_content.map(|c| c.0) {
        return Ok(None);
    }
    let change = match (old_content, new_content) {
        (None, _) => ConfigChangeKind::Added,
        (_, None) => ConfigChangeKind::Removed,
        _ => ConfigChangeKind::Changed,
    };
    enum Content {
        Text(String),
        Binary,
        Unavailable,
    }
    let read = |side: &Side, content: Option<(&str, u64)>| -> Result<Content> {
        Ok(match content {
            None => Content::Text(String::new()),
            Some((_, size)) if size > MAX_TEXT_BYTES => Content::Binary,
            Some(_) if !side.has_contents => Content::Unavailable,
            Some((sha256, _)) => {
                as_text(side.read(sha256, store)?).map_or(Content::Binary, Content::Text)
            }
        })
    };
    // One binary side makes the diff binary, even when the other side's
    // contents are not available.
    let diff = match (read(old, old_content)?, read(new, new_content)?) {
        (Content::Binary, _) | (_, Content::Binary) => ConfigDiff::BinaryOrLarge,
        (Content::Unavailable, _) | (_, Content::Unavailable) => ConfigDiff::ContentNotAvailable,
        (Content::Text(old_text), Content::Text(new_text)) => {
            let label = |prefix: &str, present: bool| {
                if present {
                    format!("{prefix}{path}")
                } else {
                    "/dev/null".to_owned()
                }
            };
            let (old_label, new_label) = (
                label("old", old_content.is_some()),
                label("new", new_content.is_some()),
            );
            let text = unified_diff(&old_text, &new_text, &old_label, &new_label);
            // An empty file added or removed has no hunks (GNU diff prints
            // nothing): the headers alone say what happened.
            ConfigDiff::Unified(if text.is_empty() {
                format!("--- {old_label}\n+++ {new_label}\n")
            } else {
                text
            })
        }
    };
    Ok(Some(ConfigChange {
        path: path.to_owned(),
        change,
        diff,
    }))
}

/// Text: valid UTF-8 without NUL (the size was checked before).
fn as_text(bytes: Vec<u8>) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

fn package_changes_between(old: &Side, new: &Side, store: &Store) -> Result<PackageChanges> {
    let old_db =
        dpkg_database(old, store).with_context(|| format!("old image {}", old.info.path))?;
    let new_db =
        dpkg_database(new, store).with_context(|| format!("new image {}", new.info.path))?;
    Ok(match (old_db, new_db) {
        (Ok(old), Ok(new)) => package_changes(&old, &new),
        (Err(why), _) | (_, Err(why)) => PackageChanges {
            not_compared: Some(why),
            ..PackageChanges::default()
        },
    })
}

/// The installed packages of a side: none without a status file; `Err`
/// (with the reason) when the status file cannot be read.
fn dpkg_database(
    side: &Side,
    store: &Store,
) -> Result<std::result::Result<Vec<InstalledPackage>, String>> {
    let Some(record) = side.records.get(DPKG_STATUS) else {
        return Ok(Ok(Vec::new()));
    };
    let Some((sha256, _)) = side.content_of(record) else {
        return Ok(Err(format!(
            "{DPKG_STATUS} in {} is a {}, not a regular file",
            side.info.path, record.kind
        )));
    };
    if !side.has_contents {
        return Ok(Err(side.why_no_contents()));
    }
    let bytes = side.read(sha256, store)?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("{DPKG_STATUS} is not UTF-8"))?;
    Ok(Ok(installed_packages(&text).context(DPKG_STATUS)?))
}
