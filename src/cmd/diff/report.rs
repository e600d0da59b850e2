//! The report: what a diff found, as `--json` prints it (serde) and as
//! text for a reviewer.

use crate::manifest::FileRecord;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;

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
    /// Not valid UTF-8, contains NUL, or over [`MAX_TEXT_BYTES`](super::MAX_TEXT_BYTES).
    BinaryOrLarge,
    /// A side is a manifest whose archive is not beside it.
    ContentNotAvailable,
}
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
