//! `kiln diff OLD NEW`: what changed between two images — the review a
//! release engineer reads before promoting one. Packages (from dpkg's
//! status database), every path whose attributes changed, and a unified
//! diff of each changed text file under `/etc`.
//!
//! Each side is a kiln manifest or a rootfs archive (plain, gzip or zstd
//! tar). A manifest gives the file list; the rootfs archive it lists is
//! read as well when it sits beside the manifest, after checking it
//! against the digest the manifest records, so that file contents can be
//! compared. Without the archive, changes are still found (the manifest
//! has every digest), but no text diff and no package list can be made
//! from that side: the report says so rather than guessing.
//!
//! File contents go to a content store in a temporary directory that lives
//! only while [`diff`] runs (and is removed on SIGINT/SIGTERM as well); the
//! report holds the finished text diffs, never the store.
//!
//! The text diffs are in the exact format of GNU `diff -u` (3 lines of
//! context, `@@ -a,b +c,d @@` headers, `\ No newline at end of file`),
//! computed with Myers' O(ND) algorithm (linear-space variant), lines
//! with no equal on the other side set aside first, and change groups slid
//! into place afterwards, all in the order GNU diff does it: where several
//! shortest diffs exist, the hunks are in practice the ones GNU prints
//! (the tests check thousands of random pairs byte for byte).

use crate::cleanup::Registration;
use crate::manifest::{FileRecord, Manifest, file_records};
use anyhow::{Context, Result, anyhow, bail};
use kiln_debian::deb822;
use kiln_debian::version::Version;
use kiln_tree::{Digest, Store, hash_reader, load_tar, open_decompressed};
use serde::Serialize;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Lines of context around each change in the unified diffs.
pub const CONTEXT_LINES: usize = 3;

/// Larger files get "binary or large file changed" instead of a text diff.
pub const MAX_TEXT_BYTES: u64 = 1 << 20;

/// dpkg's database of installed packages.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// Everything that differs between two images. `--json` prints it as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffReport {
    pub image: ImageChange,
    pub packages: PackageChanges,
    pub files: FileChanges,
    /// Changed regular files under `/etc`, sorted by path.
    pub config: Vec<ConfigChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChange {
    pub old: ImageSide,
    pub new: ImageSide,
}

/// What one side of the comparison is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSide {
    /// The path as given.
    pub path: String,
    /// `manifest` or `archive`.
    pub source: &'static str,
    /// Image name and version: known from a manifest only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The rootfs archive file contents were read from: the path itself
    /// for an archive; for a manifest, the archive it lists when that
    /// sits beside it. Absent: only digests could be compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
}

/// Installed Debian packages that changed, each list sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackageChanges {
    /// Why packages could not be compared (a side's dpkg status is not
    /// available); the lists are then empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
    pub upgraded: Vec<PackageUpdate>,
    pub downgraded: Vec<PackageUpdate>,
    /// Names installed for several architectures on either side (as
    /// `libc6` for amd64 and i386): the text report writes them
    /// `name:arch`.
    #[serde(skip)]
    pub multi_arch: BTreeSet<String>,
}

/// An installed package, as dpkg's status database lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: String,
    /// The `Architecture` field (`amd64`, `all`, …); absent in very old
    /// status files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub version: String,
}

/// A package as dpkg's status database (or, later, a manifest) lists it:
/// what [`package_changes`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    pub name: String,
    pub arch: Option<String>,
    pub version: Version,
}

impl InstalledPackage {
    fn to_package(&self) -> Package {
        Package {
            name: self.name.clone(),
            arch: self.arch.clone(),
            version: self.version.to_string(),
        }
    }
}

/// A package installed on both sides in versions that dpkg orders apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageUpdate {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub old_version: String,
    pub new_version: String,
}

/// Paths added, removed or changed, each list sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileChanges {
    /// The new image's record of each added path.
    pub added: Vec<FileRecord>,
    /// The old image's record of each removed path.
    pub removed: Vec<FileRecord>,
    pub changed: Vec<ChangedPath>,
}

/// A path on both sides whose attributes differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedPath {
    pub path: String,
    /// In a fixed order: type, sha256, size, target, device, mode, owner,
    /// then xattrs by name.
    pub changes: Vec<AttributeChange>,
}

/// One attribute, old → new; `None` where a side does not have it (the
/// size of a symlink, an xattr that was added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeChange {
    /// `type`, `sha256` (content), `size`, `target` (symlink or hard link),
    /// `device` (`major:minor`), `mode` (four octal digits), `owner`
    /// (`uid:gid`) or `xattr NAME` (value in hex).
    pub attribute: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A regular file under `/etc` whose content changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    pub path: String,
    /// `added` or `removed` when the path is a regular file (or a hard
    /// link to one) on one side only.
    pub change: ConfigChangeKind,
    pub diff: ConfigDiff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigChangeKind {
    Added,
    Removed,
    Changed,
}

impl ConfigChangeKind {
    pub fn word(self) -> &'static str {
        match self {
            ConfigChangeKind::Added => "added",
            ConfigChangeKind::Removed => "removed",
            ConfigChangeKind::Changed => "changed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "text", rename_all = "snake_case")]
pub enum ConfigDiff {
    /// `--- old/etc/x` / `+++ new/etc/x` (`/dev/null` for a missing
    /// side), then the hunks: none for an empty file added or removed.
    Unified(String),
    /// Not valid UTF-8, contains NUL, or over [`MAX_TEXT_BYTES`].
    BinaryOrLarge,
    /// A side is a manifest whose archive is not beside it.
    ContentNotAvailable,
}

/// Compares two images, each a kiln manifest or a rootfs archive.
pub fn diff(old: &Path, new: &Path) -> Result<DiffReport> {
    let work = tempfile::Builder::new()
        .prefix("kiln-diff-")
        .tempdir()
        .context("cannot create a temporary directory for file contents")?;
    let registration = Registration::new(work.path());
    let result = (|| {
        let store = Store::open(work.path())?;
        let old = load(old, &store).with_context(|| format!("old image {}", old.display()))?;
        let new = load(new, &store).with_context(|| format!("new image {}", new.display()))?;
        compare(&old, &new, &store)
    })();
    // Contents are only needed while the text diffs are made.
    let _ = work.close();
    drop(registration);
    result
}

/// One side, loaded.
struct Side {
    info: ImageSide,
    /// By path.
    records: BTreeMap<String, FileRecord>,
    /// Whether blobs of its regular files are in the store.
    has_contents: bool,
}

impl Side {
    /// The sha256 and size of the content at `record`, following a hard
    /// link to the file holding it; `None` for anything but a file.
    fn content_of<'a>(&'a self, record: &'a FileRecord) -> Option<(&'a str, u64)> {
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

    fn read(&self, sha256: &str, store: &Store) -> Result<Vec<u8>> {
        let digest: Digest = sha256.parse().map_err(|e: String| anyhow!(e))?;
        store.read_to_vec(&digest)
    }

    /// Why this side's contents cannot be read.
    fn why_no_contents(&self) -> String {
        format!(
            "{} is a manifest whose rootfs archive is not beside it",
            self.info.path
        )
    }
}

fn load(path: &Path, store: &Store) -> Result<Side> {
    let shown = path.display().to_string();
    let mut file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
    let mut head = [0u8; 1];
    let is_json = file.read(&mut head)? == 1 && head[0] == b'{';
    drop(file);
    if !is_json {
        let tree = load_tar(open_decompressed(path)?, &shown, store)?;
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
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
    let manifest = Manifest::parse(&text).with_context(|| shown.clone())?;
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
            bail!("the manifest lists an artifact named {name:?}, which is not a file name");
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

fn compare(old: &Side, new: &Side, store: &Store) -> Result<DiffReport> {
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
            (None, None) => unreachable!("the path comes from one of the sides"),
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

// ---------------------------------------------------------------------
// Packages

/// The packages dpkg's status database lists as installed: `Status`
/// `install ok installed`, or `hold ok installed` (held packages are
/// installed too). Errors name the line of the problem.
pub fn installed_packages(status: &str) -> Result<Vec<InstalledPackage>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for paragraph in deb822::paragraphs(status) {
        let paragraph = paragraph?;
        let line = paragraph.line().unwrap_or(0);
        let installed = paragraph.get("Status").is_some_and(|status| {
            matches!(
                status.split_ascii_whitespace().collect::<Vec<_>>()[..],
                ["install" | "hold", "ok", "installed"]
            )
        });
        if !installed {
            continue;
        }
        let name = paragraph
            .get("Package")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow!("line {line}: an installed package has no Package field"))?;
        let version: Version = paragraph
            .get("Version")
            .ok_or_else(|| anyhow!("line {line}: package {name} has no Version field"))?
            .parse()
            .with_context(|| format!("line {line}: package {name}"))?;
        let arch = paragraph.get("Architecture").map(str::to_owned);
        if !seen.insert((name.to_owned(), arch.clone())) {
            bail!("line {line}: package {name} is listed twice");
        }
        out.push(InstalledPackage {
            name: name.to_owned(),
            arch,
            version,
        });
    }
    Ok(out)
}

/// Added, removed, upgraded and downgraded packages, by dpkg's version
/// ordering. Versions that dpkg holds equal (`1.0` and `1.0-0`) are not
/// a change.
pub fn package_changes(old: &[InstalledPackage], new: &[InstalledPackage]) -> PackageChanges {
    let mut out = PackageChanges::default();
    for list in [old, new] {
        let mut arches: BTreeMap<&str, usize> = BTreeMap::new();
        for package in list {
            *arches.entry(&package.name).or_default() += 1;
        }
        let several = arches.into_iter().filter(|(_, n)| *n > 1);
        out.multi_arch
            .extend(several.map(|(name, _)| name.to_owned()));
    }
    let (old, new) = (by_package(old), by_package(new));
    for (key, package) in &old {
        if !new.contains_key(key) {
            out.removed.push(package.to_package());
        }
    }
    for (key, package) in &new {
        let Some(old_package) = old.get(key) else {
            out.added.push(package.to_package());
            continue;
        };
        let update = || PackageUpdate {
            name: package.name.clone(),
            arch: package.arch.clone(),
            old_version: old_package.version.to_string(),
            new_version: package.version.to_string(),
        };
        match package.version.cmp(&old_package.version) {
            Ordering::Greater => out.upgraded.push(update()),
            Ordering::Less => out.downgraded.push(update()),
            Ordering::Equal => {}
        }
    }
    out
}

/// Packages by name and architecture.
fn by_package(list: &[InstalledPackage]) -> BTreeMap<(&str, Option<&str>), &InstalledPackage> {
    list.iter()
        .map(|p| ((p.name.as_str(), p.arch.as_deref()), p))
        .collect()
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

// ---------------------------------------------------------------------
// The text report

impl DiffReport {
    /// No package, path or content changed. Name and version are not
    /// looked at: a rebuild under a new version with nothing else changed
    /// is empty.
    pub fn is_empty(&self) -> bool {
        let p = &self.packages;
        let f = &self.files;
        p.added.is_empty()
            && p.removed.is_empty()
            && p.upgraded.is_empty()
            && p.downgraded.is_empty()
            && f.added.is_empty()
            && f.removed.is_empty()
            && f.changed.is_empty()
            && self.config.is_empty()
    }

    /// The human-readable report: the two sides, then one section each for
    /// packages, files and /etc contents, each a header line with counts
    /// and then its entries sorted by name or path. Text from the images
    /// (paths, targets, names, file contents) is printed with control
    /// characters and bidi overrides escaped (`\u{1b}`), so that an image
    /// cannot move the cursor, fake a line or hide one from the reviewer.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (label, side) in [("old", &self.image.old), ("new", &self.image.new)] {
            let _ = writeln!(out, "{label}: {}", printable(&describe_side(side), &[]));
        }
        self.packages_text(&mut out);
        self.files_text(&mut out);
        self.config_text(&mut out);
        out
    }

    fn packages_text(&self, out: &mut String) {
        let p = &self.packages;
        if let Some(why) = &p.not_compared {
            let _ = writeln!(out, "\npackages: not compared: {why}");
            return;
        }
        let counts = [
            (p.added.len(), "added"),
            (p.removed.len(), "removed"),
            (p.upgraded.len(), "upgraded"),
            (p.downgraded.len(), "downgraded"),
        ];
        let _ = writeln!(out, "\npackages: {}", counts_line(&counts));
        let shown = |name: &str, arch: &Option<String>| match arch {
            Some(arch) if p.multi_arch.contains(name) => format!("{name}:{arch}"),
            _ => name.to_owned(),
        };
        let mut lines: Vec<(String, &str, String)> = Vec::new();
        for (list, what) in [(&p.added, "added"), (&p.removed, "removed")] {
            for x in list {
                lines.push((shown(&x.name, &x.arch), what, x.version.clone()));
            }
        }
        for (list, what) in [(&p.upgraded, "upgraded"), (&p.downgraded, "downgraded")] {
            for x in list {
                let versions = format!("{} → {}", x.old_version, x.new_version);
                lines.push((shown(&x.name, &x.arch), what, versions));
            }
        }
        lines.sort();
        for (name, what, detail) in lines {
            let line = format!("{name} {detail}");
            let _ = writeln!(out, "  {what:<10}  {}", printable(&line, &[]));
        }
    }

    fn files_text(&self, out: &mut String) {
        let f = &self.files;
        let counts = [
            (f.added.len(), "added"),
            (f.removed.len(), "removed"),
            (f.changed.len(), "changed"),
        ];
        let _ = writeln!(out, "\nfiles: {}", counts_line(&counts));
        let mut entries: Vec<(&str, String)> = Vec::new();
        for (list, what) in [(&f.added, "added"), (&f.removed, "removed")] {
            for r in list {
                let line = format!("{}  {}", r.path, describe(r));
                entries.push((&r.path, format!("  {what:<8} {}\n", printable(&line, &[]))));
            }
        }
        for c in &f.changed {
            let mut text = format!("  changed  {}\n", printable(&c.path, &[]));
            let width = c
                .changes
                .iter()
                .map(|a| a.attribute.len())
                .max()
                .unwrap_or(0);
            for a in &c.changes {
                let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
                let line = format!(
                    "{:<width$}  {} → {}",
                    a.attribute,
                    value(&a.old),
                    value(&a.new)
                );
                let _ = writeln!(text, "             {}", printable(&line, &[]));
            }
            entries.push((&c.path, text));
        }
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (_, text) in entries {
            out.push_str(&text);
        }
    }

    fn config_text(&self, out: &mut String) {
        let count = |kind| self.config.iter().filter(|c| c.change == kind).count();
        let counts = [
            (count(ConfigChangeKind::Added), "added"),
            (count(ConfigChangeKind::Removed), "removed"),
            (count(ConfigChangeKind::Changed), "changed"),
        ];
        let _ = writeln!(out, "\n/etc contents: {}", counts_line(&counts));
        for c in &self.config {
            match &c.diff {
                ConfigDiff::Unified(text) => {
                    out.push('\n');
                    out.push_str(&printable(text, &['\n', '\t']));
                }
                ConfigDiff::BinaryOrLarge => {
                    let _ = writeln!(
                        out,
                        "\n{}: binary or large file {}",
                        printable(&c.path, &[]),
                        c.change.word()
                    );
                }
                ConfigDiff::ContentNotAvailable => {
                    let _ = writeln!(
                        out,
                        "\n{}: {}; contents not available to compare",
                        printable(&c.path, &[]),
                        c.change.word()
                    );
                }
            }
        }
    }
}

/// `text` with control characters and bidi overrides, except those in
/// `keep`, written as `\u{...}` escapes.
fn printable<'a>(text: &'a str, keep: &[char]) -> Cow<'a, str> {
    let escaped = |c: char| {
        let bidi = matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        );
        let risky = c.is_control() || bidi;
        risky && !keep.contains(&c)
    };
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if escaped(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn counts_line(counts: &[(usize, &str)]) -> String {
    if counts.iter().all(|(n, _)| *n == 0) {
        return "no changes".into();
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    parts.join(", ")
}

fn describe_side(side: &ImageSide) -> String {
    let mut text = match (&side.name, &side.version) {
        (Some(name), Some(version)) => format!("{name} {version}, "),
        _ => String::new(),
    };
    let _ = write!(text, "{} {}", side.source, side.path);
    if side.source == "manifest" {
        match &side.contents {
            Some(archive) => {
                let _ = write!(text, " with {archive}");
            }
            None => text.push_str(" (no archive beside it: contents not compared)"),
        }
    }
    text
}

/// `file 0644 0:0 12 B`, `symlink 0777 0:0 -> target`.
fn describe(r: &FileRecord) -> String {
    let mut text = format!("{} {} {}:{}", r.kind, r.mode, r.uid, r.gid);
    if let Some(size) = r.size {
        let _ = write!(text, " {}", crate::ui::human_bytes(size));
    }
    if let Some(target) = &r.target {
        let _ = write!(text, " -> {target}");
    }
    if let (Some(major), Some(minor)) = (r.major, r.minor) {
        let _ = write!(text, " {major}:{minor}");
    }
    for name in r.xattrs.keys() {
        let _ = write!(text, " +{name}");
    }
    text
}

// ---------------------------------------------------------------------
// Unified diff

/// The unified diff of two texts as GNU `diff -u --label OLD_LABEL
/// --label NEW_LABEL` prints it: empty when they are equal.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    let bytes = unified(
        old.as_bytes(),
        new.as_bytes(),
        old_label,
        new_label,
        CONTEXT_LINES,
        COST_LIMIT,
    );
    String::from_utf8(bytes).expect("lines of UTF-8 text are UTF-8")
}

/// Beyond this many edits from either end of one middle-snake search,
/// settle for the point that got furthest: the diff stays correct but
/// may be a little longer than the shortest. Stretches of up to twice
/// this many changed lines still get the shortest diff; two unrelated
/// 100,000-line files take about 2 s (release build) instead of minutes.
const COST_LIMIT: usize = 1024;

fn unified(
    old: &[u8],
    new: &[u8],
    old_label: &str,
    new_label: &str,
    context: usize,
    cost_limit: usize,
) -> Vec<u8> {
    let a: Vec<&[u8]> = old.split_inclusive(|&b| b == b'\n').collect();
    let b: Vec<&[u8]> = new.split_inclusive(|&b| b == b'\n').collect();
    let (deleted, inserted) = windowed_edit_flags(&a, &b, context, cost_limit);
    let changes = changes(&deleted, &inserted);
    let mut out = Vec::new();
    if changes.is_empty() {
        return out;
    }
    out.extend_from_slice(format!("--- {old_label}\n+++ {new_label}\n").as_bytes());
    let line = |out: &mut Vec<u8>, prefix: u8, line: &[u8]| {
        out.push(prefix);
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.extend_from_slice(b"\n\\ No newline at end of file\n");
        }
    };
    let mut first = 0;
    while first < changes.len() {
        // A hunk takes every following change whose gap from the one
        // before is at most twice the context, as GNU diff does.
        let mut last = first;
        while last + 1 < changes.len()
            && changes[last + 1].old - changes[last].old_end() <= 2 * context
        {
            last += 1;
        }
        let (start, end) = (&changes[first], &changes[last]);
        let old_lo = start.old.saturating_sub(context);
        let new_lo = start.new - (start.old - old_lo);
        let old_hi = (end.old_end() + context).min(a.len());
        let new_hi = end.new_end() + (old_hi - end.old_end());
        out.extend_from_slice(
            format!(
                "@@ -{} +{} @@\n",
                hunk_range(old_lo, old_hi),
                hunk_range(new_lo, new_hi)
            )
            .as_bytes(),
        );
        let mut i = old_lo;
        for change in &changes[first..=last] {
            for l in &a[i..change.old] {
                line(&mut out, b' ', l);
            }
            for l in &a[change.old..change.old_end()] {
                line(&mut out, b'-', l);
            }
            for l in &b[change.new..change.new_end()] {
                line(&mut out, b'+', l);
            }
            i = change.old_end();
        }
        for l in &a[i..old_hi] {
            line(&mut out, b' ', l);
        }
        first = last + 1;
    }
    out
}

/// GNU's `start,count` for lines `[lo, hi)` (0-based): the count is left
/// out when it is 1; an empty range names the line before it.
fn hunk_range(lo: usize, hi: usize) -> String {
    match hi - lo {
        0 => format!("{lo},0"),
        1 => format!("{}", lo + 1),
        n => format!("{},{n}", lo + 1),
    }
}

/// Lines `old..old+deleted` of the old text replaced by `new..new+inserted`
/// of the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    old: usize,
    new: usize,
    deleted: usize,
    inserted: usize,
}

impl Change {
    fn old_end(&self) -> usize {
        self.old + self.deleted
    }

    fn new_end(&self) -> usize {
        self.new + self.inserted
    }
}

/// The runs of deleted and inserted lines, in order.
fn changes(deleted: &[bool], inserted: &[bool]) -> Vec<Change> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < deleted.len() || j < inserted.len() {
        let (old, new) = (i, j);
        while i < deleted.len() && deleted[i] {
            i += 1;
        }
        while j < inserted.len() && inserted[j] {
            j += 1;
        }
        if i > old || j > new {
            out.push(Change {
                old,
                new,
                deleted: i - old,
                inserted: j - new,
            });
        }
        // Unchanged lines pair up, one on each side.
        i += 1;
        j += 1;
    }
    out
}

/// [`edit_flags`] on the lines between the common prefix and the common
/// suffix, each kept to `context` lines. GNU diff compares just that
/// window, so runs of changes slide no further than it: doing the same
/// gives the same hunks.
fn windowed_edit_flags(
    a: &[&[u8]],
    b: &[&[u8]],
    context: usize,
    cost_limit: usize,
) -> (Vec<bool>, Vec<bool>) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let start = prefix.saturating_sub(context);
    let suffix = (a.iter().rev().zip(b.iter().rev()))
        .take(a.len().min(b.len()) - start)
        .take_while(|(x, y)| x == y)
        .count();
    let cut = suffix - suffix.min(context);
    let (a_end, b_end) = (a.len() - cut, b.len() - cut);
    let (window_deleted, window_inserted) =
        edit_flags(&a[start..a_end], &b[start..b_end], cost_limit);
    let mut deleted = vec![false; a.len()];
    let mut inserted = vec![false; b.len()];
    deleted[start..a_end].copy_from_slice(&window_deleted);
    inserted[start..b_end].copy_from_slice(&window_inserted);
    (deleted, inserted)
}

/// Which lines of `a` are deleted and which of `b` inserted by a shortest
/// edit script from `a` to `b` (within `cost_limit`, see [`COST_LIMIT`]),
/// its runs of changes then slid to where they read best.
fn edit_flags<'t>(a: &[&'t [u8]], b: &[&'t [u8]], cost_limit: usize) -> (Vec<bool>, Vec<bool>) {
    // Number the distinct lines, so comparing is comparing integers.
    let mut ids: HashMap<&'t [u8], u32> = HashMap::new();
    let mut number = |lines: &[&'t [u8]]| -> Vec<u32> {
        lines
            .iter()
            .map(|&line| {
                let next = ids.len() as u32;
                *ids.entry(line).or_insert(next)
            })
            .collect()
    };
    let a_ids = number(a);
    let b_ids = number(b);
    let mut in_a = vec![false; ids.len()];
    let mut in_b = vec![false; ids.len()];
    for &id in &a_ids {
        in_a[id as usize] = true;
    }
    for &id in &b_ids {
        in_b[id as usize] = true;
    }
    // A line with no equal on the other side is a change in every edit
    // script: leave it out of the search, which gets cheaper.
    let keep = |ids: &[u32], present: &[bool], changed: &mut Vec<bool>| {
        let mut kept = Vec::new();
        let mut index = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            if present[id as usize] {
                kept.push(id);
                index.push(i);
            } else {
                changed[i] = true;
            }
        }
        (kept, index)
    };
    let mut deleted = vec![false; a.len()];
    let mut inserted = vec![false; b.len()];
    let (xa, a_index) = keep(&a_ids, &in_b, &mut deleted);
    let (xb, b_index) = keep(&b_ids, &in_a, &mut inserted);
    let mut xdeleted = vec![false; xa.len()];
    let mut xinserted = vec![false; xb.len()];
    Myers::new(&xa, &xb, cost_limit).run(&mut xdeleted, &mut xinserted);
    for (i, _) in xdeleted.iter().enumerate().filter(|(_, d)| **d) {
        deleted[a_index[i]] = true;
    }
    for (j, _) in xinserted.iter().enumerate().filter(|(_, d)| **d) {
        inserted[b_index[j]] = true;
    }
    slide(&a_ids, &mut deleted, &inserted);
    slide(&b_ids, &mut inserted, &deleted);
    (deleted, inserted)
}

/// Myers' O(ND) difference algorithm, linear-space variant: find the
/// middle of a shortest edit path searching from both ends at once,
/// split the problem there, repeat on both halves.
struct Myers<'a> {
    a: &'a [u32],
    b: &'a [u32],
    /// Furthest x reached on each diagonal, forward and (on the reversed
    /// sequences) backward.
    forward: Vec<isize>,
    backward: Vec<isize>,
    cost_limit: usize,
}

impl<'a> Myers<'a> {
    fn new(a: &'a [u32], b: &'a [u32], cost_limit: usize) -> Self {
        Myers {
            a,
            b,
            forward: Vec::new(),
            backward: Vec::new(),
            cost_limit: cost_limit.max(1),
        }
    }

    fn run(&mut self, deleted: &mut [bool], inserted: &mut [bool]) {
        let mut work = vec![(0, self.a.len(), 0, self.b.len())];
        while let Some((mut x0, mut x1, mut y0, mut y1)) = work.pop() {
            while x0 < x1 && y0 < y1 && self.a[x0] == self.b[y0] {
                x0 += 1;
                y0 += 1;
            }
            while x0 < x1 && y0 < y1 && self.a[x1 - 1] == self.b[y1 - 1] {
                x1 -= 1;
                y1 -= 1;
            }
            if x0 == x1 || y0 == y1 {
                inserted[y0..y1].fill(true);
                deleted[x0..x1].fill(true);
                continue;
            }
            match self.split(x0, x1, y0, y1) {
                Some((x, y)) => {
                    work.push((x, x1, y, y1));
                    work.push((x0, x, y0, y));
                }
                None => {
                    deleted[x0..x1].fill(true);
                    inserted[y0..y1].fill(true);
                }
            }
        }
    }

    /// A point on a shortest path from (x0, y0) to (x1, y1), other than
    /// its ends. Both ranges are non-empty and differ in their first and
    /// last lines. `None` only if the cost limit left no usable point.
    fn split(&mut self, x0: usize, x1: usize, y0: usize, y1: usize) -> Option<(usize, usize)> {
        let a = &self.a[x0..x1];
        let b = &self.b[y0..y1];
        let (n, m) = (a.len() as isize, b.len() as isize);
        let delta = n - m;
        let odd = delta & 1 == 1;
        let max_d = (n + m + 1) / 2;
        let limit = max_d.min(self.cost_limit as isize);
        let offset = limit + 1;
        let size = (2 * limit + 3) as usize;
        if self.forward.len() < size {
            self.forward.resize(size, 0);
            self.backward.resize(size, 0);
        }
        let (vf, vb) = (&mut self.forward, &mut self.backward);
        let at = |k: isize| (offset + k) as usize;
        vf[at(1)] = 0;
        vb[at(1)] = 0;
        // On diagonal k = x - y. The backward search runs on the reversed
        // sequences, where its diagonal c is delta - k.
        // Diagonals are visited from the most deletions to the most
        // insertions, as GNU diff does: of several shortest diffs, this
        // finds the one it prints.
        for d in 0..=limit {
            for k in (-d..=d).rev().step_by(2) {
                let mut x = if k == -d || (k != d && vf[at(k - 1)] < vf[at(k + 1)]) {
                    vf[at(k + 1)]
                } else {
                    vf[at(k - 1)] + 1
                };
                let mut y = x - k;
                while x < n && y < m && a[x as usize] == b[y as usize] {
                    x += 1;
                    y += 1;
                }
                vf[at(k)] = x;
                let c = delta - k;
                if odd && c.abs() < d && x + vb[at(c)] >= n {
                    // Met the backward search of cost d - 1.
                    debug_assert!(x <= n && y <= m, "split off the grid");
                    return (x <= n && y <= m).then(|| (x0 + x as usize, y0 + y as usize));
                }
            }
            for c in (-d..=d).step_by(2) {
                let mut u = if c == -d || (c != d && vb[at(c - 1)] < vb[at(c + 1)]) {
                    vb[at(c + 1)]
                } else {
                    vb[at(c - 1)] + 1
                };
                let mut v = u - c;
                while u < n && v < m && a[(n - 1 - u) as usize] == b[(m - 1 - v) as usize] {
                    u += 1;
                    v += 1;
                }
                vb[at(c)] = u;
                let k = delta - c;
                if !odd && k.abs() <= d && u + vf[at(k)] >= n {
                    // Met the forward search of cost d.
                    debug_assert!(u <= n && v <= m, "split off the grid");
                    return (u <= n && v <= m)
                        .then(|| (x0 + (n - u) as usize, y0 + (m - v) as usize));
                }
            }
        }
        // Too expensive: take the point that got furthest from its corner.
        let mut best: Option<(isize, isize, isize)> = None;
        for k in (-limit..=limit).step_by(2) {
            let (x, y) = (vf[at(k)], vf[at(k)] - k);
            let (u, v) = (vb[at(k)], vb[at(k)] - k);
            for (progress, x, y) in [(x + y, x, y), (u + v, n - u, m - v)] {
                let inside = (0..=n).contains(&x) && (0..=m).contains(&y);
                let corner = (x, y) == (0, 0) || (x, y) == (n, m);
                if inside && !corner && best.is_none_or(|b| progress > b.0) {
                    best = Some((progress, x, y));
                }
            }
        }
        best.map(|(_, x, y)| (x0 + x as usize, y0 + y as usize))
    }
}

/// Slides each run of changed lines of one text as far up as it can go,
/// then as far down, merging with the runs it meets (a run can move by
/// one when the line it would take in equals the line it would give
/// up); then back up to the last place where it faced changed lines of
/// the other text, so deletions and insertions line up. The edit script
/// stays as short; it reads as a person would write it: GNU diff and git
/// do the same. `other` marks the other text's changed lines.
fn slide(ids: &[u32], changed: &mut [bool], other: &[bool]) {
    let n = changed.len();
    let run_end = |flags: &[bool], mut i: usize| {
        while i < flags.len() && flags[i] {
            i += 1;
        }
        i
    };
    let run_start = |flags: &[bool], mut i: usize| {
        while i > 0 && flags[i - 1] {
            i -= 1;
        }
        i
    };
    // Groups: the (possibly empty) runs of changes between unchanged
    // lines. The k-th group of one text faces the k-th of the other.
    let (mut start, mut end) = (0, run_end(changed, 0));
    let (mut other_start, mut other_end) = (0, run_end(other, 0));
    loop {
        if end > start {
            let mut earliest_end;
            let mut facing_end;
            loop {
                let size = end - start;
                while start > 0 && ids[start - 1] == ids[end - 1] {
                    start -= 1;
                    end -= 1;
                    changed[start] = true;
                    changed[end] = false;
                    start = run_start(changed, start);
                    other_end = other_start - 1;
                    other_start = run_start(other, other_end);
                }
                earliest_end = end;
                facing_end = (other_end > other_start).then_some(end);
                while end < n && ids[start] == ids[end] {
                    changed[start] = false;
                    changed[end] = true;
                    start += 1;
                    end = run_end(changed, end + 1);
                    other_start = other_end + 1;
                    other_end = run_end(other, other_start);
                    if other_end > other_start {
                        facing_end = Some(end);
                    }
                }
                if end - start == size {
                    break;
                }
            }
            if let Some(target) = facing_end.filter(|_| end != earliest_end) {
                while end > target {
                    start -= 1;
                    end -= 1;
                    changed[start] = true;
                    changed[end] = false;
                    start = run_start(changed, start);
                    other_end = other_start - 1;
                    other_start = run_start(other, other_end);
                }
            }
        }
        if end == n {
            break;
        }
        start = end + 1;
        end = run_end(changed, start);
        other_start = other_end + 1;
        other_end = run_end(other, other_start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// GNU `diff -U CONTEXT` of two byte strings, with fixed labels.
    fn gnu_diff(old: &[u8], new: &[u8], context: usize) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (o, n) = (dir.path().join("o"), dir.path().join("n"));
        std::fs::write(&o, old).unwrap();
        std::fs::write(&n, new).unwrap();
        let out = Command::new("diff")
            .arg(format!("-U{context}"))
            .args(["--label", "a/f", "--label", "b/f"])
            .args([&o, &n])
            .output()
            .expect("GNU diff runs");
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(1),
            "{out:?}"
        );
        out.stdout
    }

    fn ours(old: &[u8], new: &[u8], context: usize) -> Vec<u8> {
        unified(old, new, "a/f", "b/f", context, COST_LIMIT)
    }

    fn show(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Edge cases of the format: empty texts, missing final newlines,
    /// changes at either end, hunks merged or not.
    const CASES: &[(&str, &str)] = &[
        ("", ""),
        ("a\nb\n", "a\nb\n"),
        ("", "a\nb\nc\n"),
        ("a\nb\nc\n", ""),
        ("x", ""),
        ("", "x"),
        ("a\nb\nc", "a\nb\nc\n"),
        ("a\nb\nc\n", "a\nb\nc"),
        ("a\nb\nc", "a\nb\nd"),
        ("a\nb\nc\nd\ne\nf\ng", "a\nB\nc\nd\ne\nf\ng"),
        ("a\nb\nc\nd\ne\nf\ng", "a\nb\nc\nd\ne\nF\ng"),
        ("one\n", "two\n"),
        ("one", "two"),
        // insertion at the start and at the end
        ("b\nc\nd\ne\nf\n", "a\nb\nc\nd\ne\nf\n"),
        ("a\nb\nc\nd\ne\n", "a\nb\nc\nd\ne\nf\n"),
        ("a\nb\nc\nd\ne", "a\nb\nc\nd\ne\nf\n"),
        // deletion at the start and at the end
        ("a\nb\nc\nd\ne\nf\n", "b\nc\nd\ne\nf\n"),
        ("a\nb\nc\nd\ne\nf\n", "a\nb\nc\nd\ne\n"),
        // changes 6 unchanged lines apart share a hunk, 7 apart do not
        (
            "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
            "1\nX\n3\n4\n5\n6\n7\n8\nY\n10\n11\n12\n",
        ),
        (
            "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
            "1\nX\n3\n4\n5\n6\n7\n8\n9\nY\n11\n12\n",
        ),
        // several hunks, insertions and deletions mixed
        (
            "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\nr\n",
            "a\nc\nd\ne\nf\ng\nh\nI\ni\nj\nk\nl\nm\nn\nN2\nN3\no\np\nq\nr\ns",
        ),
    ];

    #[test]
    fn matches_gnu_diff_on_fixed_cases() {
        for (old, new) in CASES {
            for context in [0, 1, 3, 5] {
                let expected = gnu_diff(old.as_bytes(), new.as_bytes(), context);
                let got = ours(old.as_bytes(), new.as_bytes(), context);
                assert_eq!(
                    show(&got),
                    show(&expected),
                    "old {old:?}, new {new:?}, context {context}"
                );
            }
        }
    }

    #[test]
    fn exact_output_for_documented_cases() {
        assert_eq!(unified_diff("same\n", "same\n", "o", "n"), "");
        assert_eq!(unified_diff("", "", "o", "n"), "");
        assert_eq!(
            unified_diff("", "a\n", "/dev/null", "new/etc/x"),
            "--- /dev/null\n+++ new/etc/x\n@@ -0,0 +1 @@\n+a\n"
        );
        assert_eq!(
            unified_diff("a\nb", "a\nb\n", "o", "n"),
            "--- o\n+++ n\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"
        );
        // An unchanged last line without a newline is marked in the context too.
        assert_eq!(
            unified_diff("a\nb", "A\nb", "o", "n"),
            "--- o\n+++ n\n@@ -1,2 +1,2 @@\n-a\n+A\n b\n\\ No newline at end of file\n"
        );
    }

    /// Of several equally short diffs, the search picks the one GNU diff
    /// prints (same search order, same grouping of changes): checked here
    /// byte for byte, context sizes and missing final newlines included.
    /// (Should a future diffutils choose differently, the test below still
    /// proves every diff correct and shortest.)
    #[test]
    fn random_diffs_match_gnu_diff() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for round in 0..400 {
            let letters = 2 + rng.below(if round % 2 == 0 { 5 } else { 24 });
            let old = rng.text(30, letters);
            let new = rng.text(30, letters);
            let context = [3, 3, 1, 0][round % 4];
            let expected = gnu_diff(old.as_bytes(), new.as_bytes(), context);
            let got = ours(old.as_bytes(), new.as_bytes(), context);
            assert_eq!(
                show(&got),
                show(&expected),
                "old {old:?}, new {new:?}, context {context}"
            );
        }
    }

    #[test]
    fn dpkg_status_packages_and_version_ordering() {
        let installed = |text: &str| installed_packages(text).unwrap_or_else(|e| panic!("{e:#}"));
        let old = installed(
            "Package: a\nStatus: install ok installed\nVersion: 1.0~rc1\n\n\
             Package: b\nStatus: install ok installed\nVersion: 2\n\n\
             Package: e\nStatus: install ok installed\nVersion: 1.0\n",
        );
        let new = installed(
            "Package: a\nStatus: install ok installed\nVersion: 1.0\n\n\
             Package: c\nStatus: hold ok installed\nVersion: 1\n\n\
             Package: d\nStatus: install ok unpacked\nVersion: 1\n\n\
             Package: e\nStatus: install ok installed\nVersion: 0:1.0-0\n",
        );
        let changes = package_changes(&old, &new);
        let names = |list: &[Package]| list.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&changes.added),
            ["c"],
            "held is installed, unpacked is not"
        );
        assert_eq!(names(&changes.removed), ["b"]);
        let update = &changes.upgraded[..];
        assert_eq!(
            (
                update.len(),
                update[0].old_version.as_str(),
                update[0].new_version.as_str()
            ),
            (1, "1.0~rc1", "1.0")
        );
        assert!(changes.downgraded.is_empty(), "1.0 and 0:1.0-0 are equal");
        // the other way round, an upgrade is a downgrade
        let back = package_changes(&new, &old);
        assert_eq!(back.downgraded.len(), 1);
        assert!(back.upgraded.is_empty());

        for (text, expected) in [
            (
                "Package: x\nStatus: install ok installed\nVersion: 1:\n",
                "line 1: package x: invalid version '1:': nothing after the epoch colon",
            ),
            (
                "Package: x\nStatus: install ok installed\nVersion: 1\n\n\
                 Package: x\nStatus: install ok installed\nVersion: 2\n",
                "line 5: package x is listed twice",
            ),
            (
                "Status: install ok installed\nVersion: 1\n",
                "line 1: an installed package has no Package field",
            ),
            ("Package: x\nbroken\n", "line 2: expected 'Name: value'"),
        ] {
            let error = format!("{:#}", installed_packages(text).unwrap_err());
            assert!(error.starts_with(expected), "{error}");
        }
    }

    /// A small deterministic generator (xorshift64*), for random inputs.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }

        /// Up to `max` lines over an alphabet of `letters` lines; sometimes
        /// without the final newline.
        fn text(&mut self, max: u64, letters: u64) -> String {
            let len = self.below(max + 1);
            let mut text: String = (0..len)
                .map(|_| format!("{}\n", (b'a' + self.below(letters) as u8) as char))
                .collect();
            if !text.is_empty() && self.below(4) == 0 {
                text.pop();
            }
            text
        }
    }

    /// Length of the longest common subsequence of lines, by dynamic
    /// programming: the reference for "shortest".
    fn lcs(a: &[&[u8]], b: &[&[u8]]) -> usize {
        let mut row = vec![0usize; b.len() + 1];
        for x in a {
            let mut diagonal = 0;
            for (j, y) in b.iter().enumerate() {
                let above = row[j + 1];
                row[j + 1] = if x == y {
                    diagonal + 1
                } else {
                    above.max(row[j])
                };
                diagonal = above;
            }
        }
        row[b.len()]
    }

    /// Applies a unified diff made by `unified` to `old`.
    fn apply(old: &[u8], diff: &[u8]) -> Vec<u8> {
        let old_lines: Vec<&[u8]> = old.split_inclusive(|&b| b == b'\n').collect();
        let mut out: Vec<u8> = Vec::new();
        let mut next = 0; // next old line to copy
        let lines: Vec<&[u8]> = diff.split_inclusive(|&b| b == b'\n').skip(2).collect();
        let mut i = 0;
        while i < lines.len() {
            let header = std::str::from_utf8(lines[i]).unwrap();
            let old_range = header.split(' ').nth(1).unwrap().trim_start_matches('-');
            let mut parts = old_range.split(',');
            let start: usize = parts.next().unwrap().parse().unwrap();
            let count: usize = parts.next().map_or(1, |c| c.parse().unwrap());
            let first = if count == 0 { start } else { start - 1 };
            for l in &old_lines[next..first] {
                out.extend_from_slice(l);
            }
            next = first;
            i += 1;
            while i < lines.len() && !lines[i].starts_with(b"@@") {
                let prefix = lines[i][0];
                let mut line = lines[i][1..].to_vec();
                i += 1;
                if lines.get(i).is_some_and(|l| l.starts_with(b"\\ ")) {
                    line.pop(); // the newline the marker stands for
                    i += 1;
                }
                match prefix {
                    b' ' => {
                        assert_eq!(old_lines[next], &line[..], "context");
                        out.extend_from_slice(&line);
                        next += 1;
                    }
                    b'-' => {
                        assert_eq!(old_lines[next], &line[..], "deleted line");
                        next += 1;
                    }
                    b'+' => out.extend_from_slice(&line),
                    other => panic!("unexpected line prefix {other:?}"),
                }
            }
        }
        for l in &old_lines[next..] {
            out.extend_from_slice(l);
        }
        out
    }

    #[test]
    fn random_diffs_are_shortest_and_apply() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let letters = 1 + rng.below(6);
            let old = rng.text(14, letters);
            let new = rng.text(14, letters);
            let diff = ours(old.as_bytes(), new.as_bytes(), 1 + round % 4);
            assert_eq!(
                show(&apply(old.as_bytes(), &diff)),
                new,
                "{old:?} → {new:?}\n{}",
                show(&diff)
            );
            let a: Vec<&[u8]> = old.as_bytes().split_inclusive(|&b| b == b'\n').collect();
            let b: Vec<&[u8]> = new.as_bytes().split_inclusive(|&b| b == b'\n').collect();
            let (deleted, inserted) = edit_flags(&a, &b, COST_LIMIT);
            let edits = deleted.iter().chain(&inserted).filter(|c| **c).count();
            assert_eq!(
                edits,
                a.len() + b.len() - 2 * lcs(&a, &b),
                "{old:?} → {new:?}"
            );
        }
    }

    #[test]
    fn cost_limit_still_gives_a_correct_diff() {
        let mut rng = Rng(42);
        for _ in 0..500 {
            let old = rng.text(30, 3);
            let new = rng.text(30, 3);
            let diff = unified(old.as_bytes(), new.as_bytes(), "a", "b", 3, 1);
            assert_eq!(
                show(&apply(old.as_bytes(), &diff)),
                new,
                "{old:?} → {new:?}"
            );
        }
    }

    #[test]
    fn gnu_patch_applies_random_diffs() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(7);
        for _ in 0..60 {
            let old = rng.text(20, 4);
            let new = rng.text(20, 4);
            let diff = ours(old.as_bytes(), new.as_bytes(), 3);
            if diff.is_empty() {
                assert_eq!(old, new);
                continue;
            }
            let (o, d, out) = (
                dir.path().join("o"),
                dir.path().join("d"),
                dir.path().join("out"),
            );
            std::fs::write(&o, &old).unwrap();
            std::fs::write(&d, &diff).unwrap();
            let status = Command::new("patch")
                .args(["-s", "-f", "-o"])
                .arg(&out)
                .arg(&o)
                .arg(&d)
                .status()
                .expect("GNU patch runs");
            assert!(status.success(), "{old:?} → {new:?}\n{}", show(&diff));
            assert_eq!(show(&std::fs::read(&out).unwrap()), new, "{}", show(&diff));
        }
    }
}
