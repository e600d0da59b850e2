//! `kiln verify`: proves an image is exactly what the release signed —
//! the manifest's signature, every artifact present beside it, optionally
//! every file inside the rootfs archive, and no rollback.

use crate::manifest::{ArtifactRecord, FileRecord, ImageInfo, Manifest, file_records};
use crate::signing::{Untrusted, parse_manifest, read_manifest, shown_comment, verify_manifest};
use crate::ui::human_bytes;
use anyhow::{Context, Result, bail};
use kiln_debian::version::Version;
use kiln_minisign::PublicKey;
use kiln_tree::{Digest, Store, decompress, hash_reader, load_tar};
use rayon::prelude::*;
use serde::Serialize;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

pub struct VerifyOptions<'a> {
    /// Any of these may have signed the manifest (key rotation).
    pub keys: &'a [PublicKey],
    /// Also open rootfs archives and check every file against the manifest.
    pub contents: bool,
    /// Refuse images older than this version (Debian version ordering).
    pub min_version: Option<&'a str>,
    /// Also check the signed provenance beside the manifest
    /// (NAME-VERSION.provenance.json) and that its subjects are the files.
    pub provenance: bool,
}

/// The outcome of each check, for people (`to_text`) and machines (JSON).
#[derive(Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub manifest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_comment: Option<String>,
    pub checks: Vec<Check>,
}

#[derive(Serialize)]
pub struct Check {
    pub ok: bool,
    /// What was checked: "signature", "version", "artifact NAME", "contents NAME".
    pub subject: String,
    pub detail: String,
}

impl VerifyReport {
    fn check(&mut self, ok: bool, subject: impl Into<String>, detail: impl Into<String>) {
        self.ok &= ok;
        self.checks.push(Check {
            ok,
            subject: subject.into(),
            detail: detail.into(),
        });
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{:<7} {}: {}\n",
                if c.ok { "ok" } else { "FAILED" },
                c.subject,
                c.detail
            ));
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        match (&self.image, self.ok) {
            (Some(image), true) => out.push_str(&format!(
                "verified {} {} ({})\n",
                image.name, image.version, image.arch
            )),
            _ => out.push_str(&format!("verification FAILED: {failed} problem(s)\n")),
        }
        out
    }
}

/// Verifies `path`: a manifest, or an artifact listed by a manifest in the
/// same directory. I/O problems are errors; anything that is not what was
/// signed is a failed check in the report.
pub fn verify(path: &Path, options: &VerifyOptions<'_>) -> Result<VerifyReport> {
    let (manifest_path, named_artifact) = locate_manifest(path)?;
    let mut report = VerifyReport {
        ok: true,
        manifest: manifest_path.display().to_string(),
        image: None,
        key_id: None,
        trusted_comment: None,
        checks: Vec::new(),
    };
    let verified = match verify_manifest(&manifest_path, options.keys) {
        Ok(v) => v,
        Err(e) => match e.downcast::<Untrusted>() {
            Ok(untrusted) => {
                report.check(false, "signature", untrusted.0);
                return Ok(report);
            }
            Err(other) => return Err(other),
        },
    };
    report.check(
        true,
        "signature",
        format!(
            "by key {} ({})",
            verified.key_id,
            shown_comment(&verified.trusted_comment)
        ),
    );
    report.key_id = Some(verified.key_id.to_string());
    report.trusted_comment = Some(verified.trusted_comment.clone());
    let manifest = verified.manifest;
    report.image = Some(manifest.image.clone());

    if let Some(minimum) = options.min_version {
        check_version(&mut report, &manifest, minimum)?;
    }
    let dir = manifest_path
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    if let Some(name) = &named_artifact
        && !manifest.artifacts.iter().any(|a| &a.name == name)
    {
        report.check(
            false,
            format!("artifact {name}"),
            "not listed in the signed manifest",
        );
    }
    // Every artifact present beside the manifest, hashed in parallel.
    let results: Vec<(&ArtifactRecord, Result<Option<String>, String>)> = manifest
        .artifacts
        .par_iter()
        .map(|a| (a, check_artifact(&dir.join(&a.name), a)))
        .collect();
    let mut intact = Vec::new();
    for (artifact, result) in results {
        let subject = format!("artifact {}", artifact.name);
        match result {
            Ok(Some(detail)) => {
                report.check(true, subject, detail);
                intact.push(artifact);
            }
            Ok(None) if named_artifact.as_deref() == Some(artifact.name.as_str()) => {
                report.check(false, subject, "missing")
            }
            Ok(None) => report.check(true, subject, "not present here, skipped"),
            Err(problem) => report.check(false, subject, problem),
        }
    }
    if options.provenance {
        check_provenance(&mut report, &manifest_path, &manifest, options.keys)?;
    }
    if options.contents {
        for artifact in intact.iter().filter(|a| a.format.starts_with("rootfs-tar")) {
            let problems = check_contents(&dir.join(&artifact.name), &manifest.files)?;
            let subject = format!("contents {}", artifact.name);
            if problems.is_empty() {
                report.check(
                    true,
                    subject,
                    format!("all {} paths match the manifest", manifest.files.len()),
                );
            } else {
                report.check(false, subject, problems.join("; "));
            }
        }
    }
    Ok(report)
}

/// The provenance beside the manifest: signed by a trusted key, naming
/// the manifest and every artifact it lists, each with the digest of the
/// file here.
fn check_provenance(
    report: &mut VerifyReport,
    manifest_path: &Path,
    manifest: &crate::manifest::Manifest,
    keys: &[PublicKey],
) -> Result<()> {
    let manifest_name = manifest_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = manifest_name
        .strip_suffix(".manifest.json")
        .unwrap_or(&manifest_name);
    let path = manifest_path.with_file_name(format!("{stem}.provenance.json"));
    let subject = format!("provenance {}", path.display());
    if !path.exists() {
        report.check(false, subject, "missing: only a signed build has one");
        return Ok(());
    }
    let verified = match crate::provenance::verify(&path, keys) {
        Ok(v) => v,
        Err(e) => {
            report.check(false, subject, format!("{e:#}"));
            return Ok(());
        }
    };
    let dir = manifest_path.parent().unwrap_or(Path::new(""));
    let mut named = std::collections::BTreeMap::new();
    for s in verified.statement["subject"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
    {
        if let (Some(name), Some(sha)) = (s["name"].as_str(), s["digest"]["sha256"].as_str()) {
            named.insert(name.to_owned(), sha.to_owned());
        }
    }
    let mut problems = Vec::new();
    let expected = manifest
        .artifacts
        .iter()
        .map(|a| a.name.clone())
        .chain([manifest_name.clone()]);
    for name in expected {
        let Some(sha) = named.get(&name) else {
            problems.push(format!("it does not name {name}"));
            continue;
        };
        let file = dir.join(&name);
        if !file.exists() {
            continue;
        }
        let actual = kiln_tree::hash_reader(std::io::BufReader::new(File::open(&file)?))?
            .0
            .hex();
        if &actual != sha {
            problems.push(format!(
                "{name} has sha256 {actual}, the provenance says {sha}"
            ));
        }
    }
    if problems.is_empty() {
        report.check(
            true,
            subject,
            format!("by key {}, {} subjects match", verified.key_id, named.len()),
        );
    } else {
        report.check(false, subject, problems.join("; "));
    }
    Ok(())
}

/// Finds the manifest for `path`: itself when it is one (named
/// `*.manifest.json`, or JSON), else the `*.manifest.json` beside it that
/// lists it.
fn locate_manifest(path: &Path) -> Result<(PathBuf, Option<String>)> {
    let mut head = Vec::new();
    File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .take(512)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let starts_json = head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if starts_json || path.to_string_lossy().ends_with(".manifest.json") {
        return Ok((path.to_owned(), None));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("an artifact path needs a file name")?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut candidates = Vec::new();
    // Manifests that could not be read: what is wrong with each.
    let mut unreadable = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let candidate = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if !candidate.to_string_lossy().ends_with(".manifest.json") {
            continue;
        }
        // Unverified, used only to find the file; it is verified next.
        match read_manifest(&candidate).and_then(|bytes| parse_manifest(&candidate, &bytes)) {
            Ok(m) if m.artifacts.iter().any(|a| a.name == name) => candidates.push(candidate),
            Ok(_) => {}
            Err(e) => unreadable.push(format!("{e:#}")),
        }
    }
    candidates.sort();
    unreadable.sort();
    match candidates.len() {
        0 if !unreadable.is_empty() => bail!(
            "no *.manifest.json in {} lists {name}, and {}; pass the manifest itself",
            dir.display(),
            unreadable.join("; ")
        ),
        0 => bail!(
            "no *.manifest.json in {} lists {name}; pass the manifest itself",
            dir.display()
        ),
        1 => Ok((candidates.remove(0), Some(name))),
        _ => bail!(
            "several manifests in {} list {name}; pass the manifest itself",
            dir.display()
        ),
    }
}

fn check_version(report: &mut VerifyReport, manifest: &Manifest, minimum: &str) -> Result<()> {
    let minimum_version: Version = minimum
        .parse()
        .with_context(|| format!("--min-version {minimum}"))?;
    match manifest.image.version.parse::<Version>() {
        Ok(version) if version >= minimum_version => report.check(
            true,
            "version",
            format!("{version} is not older than {minimum}"),
        ),
        Ok(version) => report.check(
            false,
            "version",
            format!("{version} is older than the minimum {minimum}: refusing a rollback"),
        ),
        Err(e) => report.check(
            false,
            "version",
            format!("cannot compare the image version: {e}"),
        ),
    }
    Ok(())
}

/// `Ok(Some(detail))` when intact, `Ok(None)` when absent, `Err(problem)`.
fn check_artifact(path: &Path, record: &ArtifactRecord) -> Result<Option<String>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    if meta.len() != record.size {
        return Err(format!(
            "size is {} bytes, the manifest says {}",
            meta.len(),
            record.size
        ));
    }
    let file = File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let (digest, _) = hash_reader(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| format!("cannot read: {e}"))?;
    if digest.hex() != record.sha256 {
        return Err(format!(
            "sha256 is {digest}, the manifest says {}",
            record.sha256
        ));
    }
    Ok(Some(format!(
        "{}, sha256 {}",
        human_bytes(record.size),
        short(&digest)
    )))
}

fn short(digest: &Digest) -> String {
    digest.hex()[..16].to_owned()
}

/// Opens a rootfs archive and compares every path with the manifest.
fn check_contents(path: &Path, expected: &[FileRecord]) -> Result<Vec<String>> {
    let shown = path.display().to_string();
    let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
    let reader = decompress(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("cannot read {shown}"))?;
    let tree = match load_tar(reader, &shown, &Store::discard()) {
        Ok(tree) => tree,
        Err(e) => return Ok(vec![format!("cannot read the archive: {e:#}")]),
    };
    let found = file_records(&tree);
    let mut problems = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < expected.len() || j < found.len() {
        match (expected.get(i), found.get(j)) {
            (Some(e), Some(f)) if e.path == f.path => {
                if e != f {
                    problems.push(format!(
                        "{} differs: manifest {}, archive {}",
                        e.path,
                        describe(e),
                        describe(f)
                    ));
                }
                i += 1;
                j += 1;
            }
            (Some(e), Some(f)) if e.path < f.path => {
                problems.push(format!(
                    "{} is in the manifest but not in the archive",
                    e.path
                ));
                i += 1;
            }
            (Some(e), None) => {
                problems.push(format!(
                    "{} is in the manifest but not in the archive",
                    e.path
                ));
                i += 1;
            }
            (_, Some(f)) => {
                problems.push(format!(
                    "{} is in the archive but not in the manifest",
                    f.path
                ));
                j += 1;
            }
            (None, None) => break,
        }
    }
    const SHOWN: usize = 20;
    if problems.len() > SHOWN {
        let more = problems.len() - SHOWN;
        problems.truncate(SHOWN);
        problems.push(format!("and {more} more"));
    }
    Ok(problems)
}

fn describe(r: &FileRecord) -> String {
    let mut s = format!("{} {} {}:{}", r.kind, r.mode, r.uid, r.gid);
    if let Some(sha) = &r.sha256 {
        let short: String = sha.chars().take(16).collect();
        s.push_str(&format!(" sha256 {short}"));
    }
    if let Some(t) = &r.target {
        s.push_str(&format!(" -> {t}"));
    }
    s
}
