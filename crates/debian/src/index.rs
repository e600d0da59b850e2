//! A package index: the binary packages of several suites and components
//! of one architecture, parsed from their `Packages` files.
//!
//! Decisions:
//! - Only stanzas of the index's architecture and `all` are kept; others
//!   are skipped before the rest of their fields are read.
//! - `Package`, `Version`, `Architecture`, `Filename`, `Size` and `SHA256`
//!   are required (a package kiln cannot download and verify is of no
//!   use); `Essential` must be `yes` or `no` and `Multi-Arch` one of dpkg's
//!   four values, as dpkg insists. An unknown or missing `Priority` is
//!   [`Priority::Unknown`].
//! - `Provides` may only use `=` (Policy 7.5, dpkg refuses anything else),
//!   and no alternatives or architecture qualifiers.
//! - The same package (name, version, architecture and SHA256) listed by
//!   several suites is kept once, from the suite added first: this is what
//!   apt does when bookworm and bookworm-security carry the same build.
//!   The same version with different contents is kept twice.
//! - [`PackageIndex::candidates`] lists a name's packages newest first;
//!   equal versions keep the order in which they were added, so the result
//!   only depends on the sequence of `add_packages_file` calls.

use std::collections::HashMap;
use std::fmt;

use rayon::prelude::*;

use super::deb822::{self, Paragraph};
use super::relation::{Op, Relations};
use super::version::Version;
use kiln_diag::quote;
use kiln_tree::Digest;

/// The `Multi-Arch` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MultiArch {
    #[default]
    No,
    Same,
    Foreign,
    Allowed,
}

/// The `Priority` field, highest first (so `Required < Important`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    Required,
    Important,
    Standard,
    Optional,
    Extra,
    #[default]
    Unknown,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Required => "required",
            Priority::Important => "important",
            Priority::Standard => "standard",
            Priority::Optional => "optional",
            Priority::Extra => "extra",
            Priority::Unknown => "unknown",
        }
    }
}

/// One stanza of a `Packages` index.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: Version,
    pub architecture: String,
    pub multi_arch: MultiArch,
    pub essential: bool,
    pub priority: Priority,
    pub depends: Relations,
    pub pre_depends: Relations,
    pub recommends: Relations,
    pub conflicts: Relations,
    pub breaks: Relations,
    /// Virtual names with their version, if one is given (`= version`).
    pub provides: Vec<(String, Option<Version>)>,
    /// The suite whose index listed it, e.g. `bookworm-security`.
    pub suite: String,
    pub filename: String,
    pub size: u64,
    pub sha256: Digest,
    /// The `Source` field as written: `name` or `name (version)`; `None`
    /// when the source package has the binary's name and version.
    pub source: Option<String>,
}

impl Package {
    /// The source package's name (the package's own name when the
    /// `Source` field is absent).
    pub fn source_name(&self) -> &str {
        match &self.source {
            Some(source) => source.split_whitespace().next().unwrap_or(&self.name),
            None => &self.name,
        }
    }

    /// Whether this package provides `name`, and with which version.
    pub fn provided_version(&self, name: &str) -> Option<Option<&Version>> {
        self.provides
            .iter()
            .find(|(provided, _)| provided == name)
            .map(|(_, version)| version.as_ref())
    }
}

impl fmt::Display for Package {
    /// `name version (suite)`, as used in reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.name, self.version, self.suite)
    }
}

/// A package that provides a virtual name.
#[derive(Debug, Clone, Copy)]
pub struct Provider<'a> {
    pub package: &'a Package,
    /// The provided version; `None` for an unversioned `Provides`.
    pub version: Option<&'a Version>,
}

/// A problem in a `Packages` file, located by suite and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexError {
    pub suite: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "Packages index of {}, line {line}: {}",
                self.suite, self.message
            ),
            None => write!(f, "Packages index of {}: {}", self.suite, self.message),
        }
    }
}

impl std::error::Error for IndexError {}

/// All packages of several suites and components for one architecture.
#[derive(Debug, Clone)]
pub struct PackageIndex {
    arch: String,
    /// Name to its packages, newest first.
    packages: HashMap<String, Vec<Package>>,
    /// Virtual name to the names of packages (any version) providing it,
    /// sorted and without duplicates.
    providers: HashMap<String, Vec<String>>,
    suites: Vec<String>,
    len: usize,
}

impl PackageIndex {
    pub fn new(arch: &str) -> Self {
        PackageIndex {
            arch: arch.to_string(),
            packages: HashMap::new(),
            providers: HashMap::new(),
            suites: Vec::new(),
            len: 0,
        }
    }

    /// The architecture this index holds (besides `all`).
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The suites added so far, in the order they were added.
    pub fn suites(&self) -> &[String] {
        &self.suites
    }

    /// Parses a whole `Packages` file and adds its packages. Returns how
    /// many were added: stanzas of other architectures and packages already
    /// in the index are not counted. On error nothing is added.
    pub fn add_packages_file(&mut self, text: &str, suite: &str) -> Result<usize, IndexError> {
        self.add_in_chunks(text, suite, CHUNK_BYTES)
    }

    fn add_in_chunks(
        &mut self,
        text: &str,
        suite: &str,
        chunk_bytes: usize,
    ) -> Result<usize, IndexError> {
        // Stanzas are independent: parse slices of the file in parallel.
        // A line with nothing on it always ends a paragraph, so cutting
        // after one changes nothing but line numbers, which are shifted
        // back when an error is reported (the first one in file order).
        let chunks = split_at_blank_lines(text, chunk_bytes);
        let results: Vec<Result<Vec<Package>, StanzaError>> = chunks
            .par_iter()
            .map(|&(_, chunk)| parse_chunk(chunk, &self.arch, suite))
            .collect();
        let mut parsed = Vec::with_capacity(results.len());
        for (&(start, _), result) in chunks.iter().zip(results) {
            match result {
                Ok(packages) => parsed.push(packages),
                Err((line, message)) => {
                    let before = text.as_bytes()[..start]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count();
                    return Err(IndexError {
                        suite: suite.to_string(),
                        line: line.map(|l| l + before),
                        message,
                    });
                }
            }
        }

        self.packages
            .reserve(parsed.iter().map(Vec::len).sum::<usize>());
        let mut added = 0;
        // Only names (and virtual names) listed more than once need their
        // lists sorted afterwards.
        let mut unsorted = Vec::new();
        let mut unsorted_virtual = Vec::new();
        for package in parsed.into_iter().flatten() {
            let versions = self.packages.entry(package.name.clone()).or_default();
            let duplicate = versions.iter().any(|p| {
                p.version.as_str() == package.version.as_str()
                    && p.architecture == package.architecture
                    && p.sha256 == package.sha256
            });
            if duplicate {
                continue;
            }
            for (provided, _) in &package.provides {
                let names = self.providers.entry(provided.clone()).or_default();
                names.push(package.name.clone());
                if names.len() > 1 {
                    unsorted_virtual.push(provided.clone());
                }
            }
            if !versions.is_empty() {
                unsorted.push(package.name.clone());
            }
            versions.push(package);
            added += 1;
        }
        unsorted.sort_unstable();
        unsorted.dedup();
        for name in &unsorted {
            if let Some(versions) = self.packages.get_mut(name) {
                // Stable: equal versions keep the order they were added in.
                versions.sort_by(|a, b| b.version.cmp(&a.version));
            }
        }
        unsorted_virtual.sort_unstable();
        unsorted_virtual.dedup();
        for name in &unsorted_virtual {
            if let Some(names) = self.providers.get_mut(name) {
                names.sort_unstable();
                names.dedup();
            }
        }
        self.len += added;
        if !self.suites.iter().any(|s| s == suite) {
            self.suites.push(suite.to_string());
        }
        Ok(added)
    }

    /// Every package called `name`, newest first (equal versions in the
    /// order they were added). Empty when there is none.
    pub fn candidates(&self, name: &str) -> &[Package] {
        self.packages.get(name).map_or(&[], Vec::as_slice)
    }

    /// Keeps only the `version` of `name`, when the index still has it,
    /// so the resolver chooses it (a lockfile pin). Returns false, and
    /// changes nothing, when that version is gone from the archive.
    pub fn pin(&mut self, name: &str, version: &str) -> bool {
        let Some(candidates) = self.packages.get_mut(name) else {
            return false;
        };
        if !candidates.iter().any(|p| p.version.as_str() == version) {
            return false;
        }
        let before = candidates.len();
        candidates.retain(|p| p.version.as_str() == version);
        self.len -= before - candidates.len();
        true
    }

    /// The newest package called `name`: apt's candidate when nothing is
    /// pinned.
    pub fn candidate(&self, name: &str) -> Option<&Package> {
        self.candidates(name).first()
    }

    /// Every package (of any version) whose `Provides` names
    /// `virtual_name`, by package name and then newest first.
    pub fn providers(&self, virtual_name: &str) -> Vec<Provider<'_>> {
        let Some(names) = self.providers.get(virtual_name) else {
            return Vec::new();
        };
        names
            .iter()
            .flat_map(|name| self.candidates(name))
            .filter_map(|package| {
                package
                    .provided_version(virtual_name)
                    .map(|version| Provider { package, version })
            })
            .collect()
    }

    /// Whether some package provides `virtual_name`.
    pub fn is_provided(&self, virtual_name: &str) -> bool {
        self.providers.contains_key(virtual_name)
    }

    /// The names of all real packages, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.packages.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// All packages, in no particular order.
    pub fn packages(&self) -> impl Iterator<Item = &Package> {
        self.packages.values().flatten()
    }

    /// How many packages the index holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Roughly how much text one parallel parsing job gets.
const CHUNK_BYTES: usize = 1 << 20;

/// Cuts `text` into pieces of about `size` bytes, each ending after an
/// empty line (or at the end), with their byte offsets.
fn split_at_blank_lines(text: &str, size: usize) -> Vec<(usize, &str)> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = match text.get(start + size..).and_then(|rest| rest.find("\n\n")) {
            Some(i) => start + size + i + 2,
            None => text.len(),
        };
        chunks.push((start, &text[start..end]));
        start = end;
    }
    chunks
}

/// Parses the paragraphs of one piece of a Packages file; line numbers
/// are relative to the piece.
fn parse_chunk(chunk: &str, arch: &str, suite: &str) -> Result<Vec<Package>, StanzaError> {
    let mut packages = Vec::new();
    for paragraph in deb822::paragraphs(chunk) {
        let paragraph = paragraph.map_err(|e| {
            let message = e.to_string();
            let message = match e.line() {
                Some(line) => message
                    .strip_prefix(&format!("line {line}: "))
                    .unwrap_or(&message)
                    .to_string(),
                None => message,
            };
            (e.line(), message)
        })?;
        if let Some(package) = parse_stanza(&paragraph, arch, suite)
            .map_err(|(line, message)| (line.or(paragraph.line()), message))?
        {
            packages.push(package);
        }
    }
    Ok(packages)
}

/// A stanza problem: the line of the offending field (the stanza's first
/// line when `None`) and a message.
type StanzaError = (Option<usize>, String);

/// Parses one stanza; `None` for another architecture.
fn parse_stanza(
    para: &Paragraph<'_>,
    arch: &str,
    suite: &str,
) -> Result<Option<Package>, StanzaError> {
    let mut name = None;
    let mut version = None;
    let mut architecture = None;
    let mut multi_arch = None;
    let mut essential = None;
    let mut priority = None;
    let mut depends = None;
    let mut pre_depends = None;
    let mut recommends = None;
    let mut conflicts = None;
    let mut breaks = None;
    let mut provides = None;
    let mut filename = None;
    let mut size = None;
    let mut sha256 = None;
    let mut source = None;

    for field in para.fields() {
        let mut buf = [0u8; 16];
        let raw = field.name().as_bytes();
        if raw.len() > buf.len() {
            continue;
        }
        let key = &mut buf[..raw.len()];
        key.copy_from_slice(raw);
        key.make_ascii_lowercase();
        let slot = match &*key {
            b"package" => &mut name,
            b"version" => &mut version,
            b"architecture" => &mut architecture,
            b"multi-arch" => &mut multi_arch,
            b"essential" => &mut essential,
            b"priority" => &mut priority,
            b"depends" => &mut depends,
            b"pre-depends" => &mut pre_depends,
            b"recommends" => &mut recommends,
            b"conflicts" => &mut conflicts,
            b"breaks" => &mut breaks,
            b"provides" => &mut provides,
            b"filename" => &mut filename,
            b"size" => &mut size,
            b"sha256" => &mut sha256,
            b"source" => &mut source,
            _ => continue,
        };
        *slot = Some(field);
    }

    let missing = |what: &str| (None, format!("stanza has no {what} field"));
    let architecture = architecture.ok_or_else(|| missing("Architecture"))?;
    let arch_value = architecture.value();
    if arch_value != arch && arch_value != "all" {
        return Ok(None);
    }
    let name_field = name.ok_or_else(|| missing("Package"))?;
    let name = name_field.value();
    check_name(name).map_err(|m| (name_field.line(), m))?;
    // Every later message names the package.
    let at = |field: &deb822::Field<'_>, message: String| {
        (field.line(), format!("package {}: {message}", quote(name)))
    };
    let version_field =
        version.ok_or_else(|| (None, format!("package {}: no Version field", quote(name))))?;
    let version = version_field
        .value()
        .parse::<Version>()
        .map_err(|e| at(version_field, e.to_string()))?;

    let multi_arch = match multi_arch {
        None => MultiArch::No,
        Some(field) => match field.value() {
            "no" => MultiArch::No,
            "same" => MultiArch::Same,
            "foreign" => MultiArch::Foreign,
            "allowed" => MultiArch::Allowed,
            other => {
                return Err(at(
                    field,
                    format!(
                        "Multi-Arch must be no, same, foreign or allowed, not {}",
                        quote(other)
                    ),
                ));
            }
        },
    };
    let essential = match essential {
        None => false,
        Some(field) => match field.value() {
            "yes" => true,
            "no" => false,
            other => {
                return Err(at(
                    field,
                    format!("Essential must be yes or no, not {}", quote(other)),
                ));
            }
        },
    };
    let priority = match priority.map(deb822::Field::value) {
        Some("required") => Priority::Required,
        Some("important") => Priority::Important,
        Some("standard") => Priority::Standard,
        Some("optional") => Priority::Optional,
        Some("extra") => Priority::Extra,
        _ => Priority::Unknown,
    };
    let relations =
        |field: Option<&deb822::Field<'_>>, label: &str| -> Result<Relations, StanzaError> {
            match field {
                None => Ok(Relations::default()),
                Some(field) => Relations::parse_field(label, field.value())
                    .map_err(|e| at(field, e.to_string())),
            }
        };
    let depends = relations(depends, "Depends")?;
    let pre_depends = relations(pre_depends, "Pre-Depends")?;
    let recommends = relations(recommends, "Recommends")?;
    let conflicts = relations(conflicts, "Conflicts")?;
    let breaks = relations(breaks, "Breaks")?;
    let provides = match provides {
        None => Vec::new(),
        Some(field) => parse_provides(field.value()).map_err(|m| at(field, m))?,
    };

    let filename = filename
        .ok_or_else(|| (None, format!("package {}: no Filename field", quote(name))))?
        .value()
        .to_string();
    let size_field =
        size.ok_or_else(|| (None, format!("package {}: no Size field", quote(name))))?;
    let size = size_field.value().parse::<u64>().map_err(|_| {
        at(
            size_field,
            format!("Size {} is not a number", quote(size_field.value())),
        )
    })?;
    let sha_field =
        sha256.ok_or_else(|| (None, format!("package {}: no SHA256 field", quote(name))))?;
    let sha256 = sha_field
        .value()
        .parse::<Digest>()
        .map_err(|e| at(sha_field, format!("SHA256: {}", kiln_diag::clip_quoted(&e))))?;

    Ok(Some(Package {
        name: name.to_string(),
        version,
        architecture: arch_value.to_string(),
        multi_arch,
        essential,
        priority,
        depends,
        pre_depends,
        recommends,
        conflicts,
        breaks,
        provides,
        suite: suite.to_string(),
        filename,
        size,
        sha256,
        source: source.map(|f| f.value().to_string()),
    }))
}

/// Provides: names with at most `(= version)`.
fn parse_provides(value: &str) -> Result<Vec<(String, Option<Version>)>, String> {
    let relations = Relations::parse_field("Provides", value).map_err(|e| e.to_string())?;
    let mut provides = Vec::with_capacity(relations.0.len());
    for group in relations.0 {
        let [relation] = <[_; 1]>::try_from(group.0).map_err(|group| {
            format!(
                "Provides: alternatives ('|') are not allowed: {}",
                super::relation::Alternatives(group)
            )
        })?;
        if relation.arch_qualifier.is_some() || relation.archs.is_some() {
            return Err(format!(
                "Provides: architecture qualifiers and lists are not allowed: {relation}"
            ));
        }
        let version = match relation.constraint {
            None => None,
            Some((Op::Eq, version)) => Some(version),
            Some((op, _)) => {
                return Err(format!(
                    "Provides: only '=' is allowed (Policy 7.5), not '{op}' in {}",
                    quote(&relation.name)
                ));
            }
        };
        provides.push((relation.name, version));
    }
    Ok(provides)
}

/// dpkg's package name rule (as for relations): a letter or digit, then
/// letters, digits, `+`, `-`, `.` (and `_`, which dpkg tolerates).
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid package name {}", quote(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn stanza(fields: &str) -> String {
        format!("{fields}\nFilename: pool/x.deb\nSize: 1\nSHA256: {SHA}\n\n")
    }

    #[test]
    fn parses_fields() {
        let text = stanza(
            "Package: foo\nSource: foo-src (1.0-1)\nVersion: 1.0-1+b1\nArchitecture: amd64\nMulti-Arch: foreign\nEssential: yes\nPriority: required\nPre-Depends: libc6 (>= 2.36)\nDepends: a | b, c [amd64]\nRecommends: r\nConflicts: x (<< 2)\nBreaks: y\nProvides: virt, v2 (= 3)\nDescription: text\n more",
        );
        let mut index = PackageIndex::new("amd64");
        assert_eq!(index.add_packages_file(&text, "bookworm").unwrap(), 1);
        let p = index.candidate("foo").unwrap();
        assert_eq!(p.version.as_str(), "1.0-1+b1");
        assert_eq!(p.multi_arch, MultiArch::Foreign);
        assert!(p.essential);
        assert_eq!(p.priority, Priority::Required);
        assert_eq!(p.pre_depends.to_string(), "libc6 (>= 2.36)");
        assert_eq!(p.depends.to_string(), "a | b, c [amd64]");
        assert_eq!(p.recommends.to_string(), "r");
        assert_eq!(p.conflicts.to_string(), "x (<< 2)");
        assert_eq!(p.breaks.to_string(), "y");
        assert_eq!(p.provides.len(), 2);
        assert_eq!(p.provides[1].1.as_ref().unwrap().as_str(), "3");
        assert_eq!(p.source_name(), "foo-src");
        assert_eq!((p.filename.as_str(), p.size), ("pool/x.deb", 1));
        assert_eq!(p.suite, "bookworm");
        let providers = index.providers("v2");
        assert_eq!(providers.len(), 1);
        assert_eq!(providers[0].version.unwrap().as_str(), "3");
        assert!(index.providers("nothing").is_empty());
    }

    #[test]
    fn skips_other_architectures_and_sorts_newest_first() {
        let text = [
            stanza("Package: a\nVersion: 1\nArchitecture: amd64"),
            stanza("Package: a\nVersion: 3\nArchitecture: arm64"),
            stanza("Package: a\nVersion: 2\nArchitecture: all"),
            // Other architectures are skipped before validation.
            "Package: broken\nArchitecture: i386\nVersion: not valid!\n\n".to_string(),
        ]
        .concat();
        let mut index = PackageIndex::new("amd64");
        assert_eq!(index.add_packages_file(&text, "s1").unwrap(), 2);
        let later = stanza("Package: a\nVersion: 1.5\nArchitecture: amd64");
        assert_eq!(index.add_packages_file(&later, "s2").unwrap(), 1);
        let versions: Vec<_> = index
            .candidates("a")
            .iter()
            .map(|p| p.version.as_str())
            .collect();
        assert_eq!(versions, ["2", "1.5", "1"]);
        assert_eq!(index.len(), 3);
        // A name already listed several times is re-sorted too.
        let newest = stanza("Package: a\nVersion: 9\nArchitecture: amd64");
        let oldest = stanza("Package: a\nVersion: 0.5\nArchitecture: all");
        index.add_packages_file(&oldest, "s4").unwrap();
        index.add_packages_file(&newest, "s5").unwrap();
        let versions: Vec<_> = index
            .candidates("a")
            .iter()
            .map(|p| p.version.as_str())
            .collect();
        assert_eq!(versions, ["9", "2", "1.5", "1", "0.5"]);
        assert_eq!(index.candidate("a").unwrap().suite, "s5");
        assert_eq!(index.len(), 5);
        // The same build from another suite is kept once, from the first.
        assert_eq!(index.add_packages_file(&later, "s3").unwrap(), 0);
        assert_eq!(index.candidates("a")[2].suite, "s2");
        assert_eq!(index.suites(), ["s1", "s2", "s4", "s5", "s3"]);
    }

    #[test]
    fn parallel_pieces_change_nothing() {
        let mut text = String::new();
        for i in 0..50 {
            // Blank lines with spaces, comments and several empty lines
            // between stanzas, as deb822 allows.
            let gap = ["\n", "\n\n\n", " \n# comment\n\n"][i % 3];
            text.push_str(&stanza(&format!(
                "Package: p{}\nVersion: {i}\nArchitecture: {}\nDepends: p{}",
                i % 7,
                ["amd64", "all", "arm64"][i % 3],
                i + 1
            )));
            text.push_str(gap);
        }
        let summary = |index: &PackageIndex| -> Vec<String> {
            index
                .names()
                .into_iter()
                .flat_map(|name| index.candidates(name))
                .map(|p| format!("{} {} {} {}", p.name, p.version, p.architecture, p.depends))
                .collect()
        };
        let mut whole = PackageIndex::new("amd64");
        whole.add_in_chunks(&text, "s", usize::MAX).unwrap();
        assert_eq!(whole.len(), 34);
        for size in [1, 7, 100, 1000] {
            let mut pieces = PackageIndex::new("amd64");
            pieces.add_in_chunks(&text, "s", size).unwrap();
            assert_eq!(summary(&pieces), summary(&whole), "pieces of {size} bytes");
        }
        // Line numbers count from the start of the file in every piece,
        // and the first error in the file is the one reported.
        let bad = format!(
            "{text}Package: x\nVersion: 1\nArchitecture: all\nDepends: (\n\n{text}Package: y\n"
        );
        let line = text.matches('\n').count() + 4;
        for size in [1, 100, usize::MAX] {
            let err = PackageIndex::new("amd64")
                .add_in_chunks(&bad, "s", size)
                .unwrap_err();
            assert_eq!(err.line, Some(line), "pieces of {size} bytes: {err}");
            assert!(err.message.starts_with("package \"x\": Depends:"), "{err}");
        }
    }

    #[test]
    fn errors_name_suite_and_line() {
        let cases = [
            (
                "Package: a\nVersion: 1\nArchitecture: amd64\nDepends: b (>= )\n",
                "Packages index of sid, line 4: package \"a\": Depends: expected a version after \">=\"",
            ),
            (
                "Package: a\nVersion: 1:\nArchitecture: all\n",
                "Packages index of sid, line 2: package \"a\": invalid version \"1:\"",
            ),
            (
                "Package: a\nVersion: 1\nArchitecture: all\nProvides: v (>= 1)\n",
                "line 4: package \"a\": Provides: only '=' is allowed (Policy 7.5), not '>=' in \"v\"",
            ),
            (
                "Package: a\nVersion: 1\nArchitecture: all\nProvides: v | w\n",
                "Provides: alternatives ('|') are not allowed: v | w",
            ),
            (
                "Package: a\nVersion: 1\nArchitecture: all\nEssential: maybe\n",
                "line 4: package \"a\": Essential must be yes or no, not \"maybe\"",
            ),
            (
                "Package: a\nVersion: 1\nArchitecture: all\nMulti-Arch: sometimes\n",
                "Multi-Arch must be no, same, foreign or allowed",
            ),
            (
                "\nPackage: a\nVersion: 1\nArchitecture: all\nFilename: f\nSize: 1\n",
                "Packages index of sid, line 2: package \"a\": no SHA256 field",
            ),
            (
                "Package: a\nVersion: 1\nArchitecture: all\nFilename: f\nSize: x\nSHA256: 00\n",
                "line 5: package \"a\": Size \"x\" is not a number",
            ),
            (
                "Package: a\nVersion: 1\nArchitecture: all\nFilename: f\nSize: 1\nSHA256: 00\n",
                "line 6: package \"a\": SHA256: \"00\" is not a sha256 digest",
            ),
            (
                "Version: 1\nArchitecture: all\n",
                "line 1: stanza has no Package field",
            ),
            (
                "Package: a\nVersion: 1\n",
                "line 1: stanza has no Architecture field",
            ),
            (
                "Package: a\n broken\nnot a field\n",
                "Packages index of sid, line 3: expected 'Name: value'",
            ),
        ];
        for (text, expected) in cases {
            let mut index = PackageIndex::new("amd64");
            let err = index
                .add_packages_file(text, "sid")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected),
                "{text:?}\n  got      {err}\n  expected {expected}"
            );
            assert!(index.is_empty());
        }
    }
}
