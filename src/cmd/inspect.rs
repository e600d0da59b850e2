//! `kiln inspect`: a summary of a manifest or a rootfs archive.

use super::{Input, classify, open_archive};
use crate::manifest::{ArtifactRecord, FileRecord, ImageInfo, Manifest};
use crate::signing::{parse_manifest, read_manifest};
use crate::ui::human_bytes;
use anyhow::{Context, Result};
use kiln_tree::{Store, hash_reader, load_tar};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

#[derive(Serialize)]
pub struct Summary {
    /// "manifest" or "archive".
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe_sha256: Option<String>,
    /// Debian packages the build installed (manifests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<usize>,
    pub artifacts: Vec<ArtifactRecord>,
    pub paths: usize,
    /// Path count by type ("file", "dir", "symlink", …).
    pub types: BTreeMap<String, usize>,
    pub content_bytes: u64,
    /// Paths with setuid or setgid bits, with their mode.
    pub setuid_setgid: Vec<(String, String)>,
    /// Paths carrying file capabilities (`security.capability`).
    pub capabilities: Vec<String>,
}

/// Summarises `path`: a kiln manifest (JSON) or a rootfs tar archive.
pub fn inspect(path: &Path) -> Result<Summary> {
    if path.is_dir() {
        anyhow::bail!(
            "{} is a directory: inspect takes a manifest or a rootfs archive (kiln audit reads directories)",
            path.display()
        );
    }
    if classify(path)? == Input::Manifest {
        let bytes = read_manifest(path)?;
        return Ok(from_manifest(parse_manifest(path, &bytes)?));
    }
    let shown = path.display().to_string();
    let tree = load_tar(open_archive(path)?, &shown, &Store::discard())?;
    let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
    let (digest, size) = hash_reader(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("cannot read {shown}"))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let artifact = ArtifactRecord {
        format: if name.ends_with(".zst") {
            "tar-zstd"
        } else if name.ends_with(".gz") {
            "tar-gzip"
        } else {
            "tar"
        }
        .to_owned(),
        name,
        size,
        sha256: digest.hex(),
        uncompressed_sha256: None,
        uncompressed_size: None,
        disk: None,
    };
    let mut summary = summarise(&crate::manifest::file_records(&tree));
    summary.source = "archive";
    summary.artifacts = vec![artifact];
    Ok(summary)
}

fn from_manifest(m: Manifest) -> Summary {
    let mut summary = summarise(&m.files);
    summary.image = Some(m.image);
    summary.source_date_epoch = Some(m.source_date_epoch);
    summary.builder = Some(format!("{} {}", m.builder.name, m.builder.version));
    summary.recipe_sha256 = Some(m.recipe.sha256);
    summary.packages = Some(m.packages.len());
    summary.artifacts = m.artifacts;
    summary
}

fn summarise(files: &[FileRecord]) -> Summary {
    let mut types = BTreeMap::new();
    let mut content_bytes = 0;
    let mut setuid_setgid = Vec::new();
    let mut capabilities = Vec::new();
    for f in files {
        *types.entry(f.kind.clone()).or_insert(0) += 1;
        if f.kind == "file" {
            content_bytes += f.size.unwrap_or(0);
        }
        let mode = u32::from_str_radix(&f.mode, 8).unwrap_or(0);
        if f.kind != "dir" && mode & 0o6000 != 0 {
            setuid_setgid.push((f.path.clone(), f.mode.clone()));
        }
        if f.xattrs.contains_key("security.capability") {
            capabilities.push(f.path.clone());
        }
    }
    Summary {
        source: "manifest",
        image: None,
        source_date_epoch: None,
        builder: None,
        recipe_sha256: None,
        packages: None,
        artifacts: Vec::new(),
        paths: files.len(),
        types,
        content_bytes,
        setuid_setgid,
        capabilities,
    }
}

impl Summary {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: String| out.push_str(&format!("{label:<13}{value}\n"));
        if let Some(image) = &self.image {
            line(
                "image",
                format!("{} {} ({})", image.name, image.version, image.arch),
            );
            if let Some(d) = &image.description {
                line("description", d.clone());
            }
        }
        if let (Some(builder), Some(epoch)) = (&self.builder, self.source_date_epoch) {
            line("built by", format!("{builder}, SOURCE_DATE_EPOCH {epoch}"));
        }
        if let Some(recipe) = &self.recipe_sha256 {
            line("recipe", format!("sha256 {recipe}"));
        }
        if let Some(n) = self.packages.filter(|n| *n > 0) {
            line(
                "packages",
                format!("{n} Debian packages, each .deb's sha256 in the manifest"),
            );
        }
        for a in &self.artifacts {
            line(
                "artifact",
                format!(
                    "{} ({}, {}) sha256 {}",
                    a.name,
                    a.format,
                    human_bytes(a.size),
                    a.sha256
                ),
            );
        }
        let types: Vec<String> = self.types.iter().map(|(k, v)| format!("{v} {k}")).collect();
        line("paths", format!("{} ({})", self.paths, types.join(", ")));
        line("content", human_bytes(self.content_bytes));
        let special: Vec<String> = self
            .setuid_setgid
            .iter()
            .map(|(p, m)| format!("{p} ({m})"))
            .collect();
        line(
            "setuid/gid",
            if special.is_empty() {
                "none".into()
            } else {
                special.join(", ")
            },
        );
        line(
            "capabilities",
            if self.capabilities.is_empty() {
                "none".into()
            } else {
                self.capabilities.join(", ")
            },
        );
        out
    }
}
