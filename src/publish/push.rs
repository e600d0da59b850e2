//! `kiln push DIR REGISTRY/REPOSITORY[:TAG]`: one OCI artifact per image.
//!
//! The artifact (artifactType `application/vnd.kiln.image.v1`, the empty
//! config) has one layer per file of the output directory that the signed
//! manifest lists, then the manifest itself, each titled with its file
//! name. The manifest's signature, the SBOMs and the provenance are
//! referrers of it. Its annotations come from the manifest only, so the
//! same image pushed twice has the same digest.
//!
//! The output of `kiln build --arch amd64,arm64` (one image per `ARCH/`
//! folder) is pushed as one OCI image index under the tag: each image by
//! its digest, listed with its platform (`linux`, the image's
//! architecture).

use super::*;
use crate::sbom::iso8601;
use crate::signing::{parse_manifest, read_manifest, signature_path};
use crate::ui::Ui;
use anyhow::{Context, Result, bail};
use kiln_oci::spec::{CREATED, DESCRIPTION, TITLE, VERSION};
use kiln_oci::{Client, ClientOptions, Descriptor, ImageManifest, Reference, referrers};
use kiln_tree::hash_reader;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Serialize)]
pub struct PushReport {
    /// `REGISTRY/REPOSITORY:TAG@sha256:…`: what to pull or deploy.
    pub reference: String,
    pub digest: String,
    /// Of the OCI manifest (or index) itself.
    pub size: u64,
    /// The image's architecture.
    pub arch: String,
    pub files: Vec<PushedFile>,
    pub referrers: Vec<PushedFile>,
    /// An index: the image of each architecture.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<PushReport>,
}

#[derive(Serialize)]
pub struct PushedFile {
    pub name: String,
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// False when the registry had the blob already.
    pub uploaded: bool,
}

/// One file to publish.
struct Blob {
    path: PathBuf,
    name: String,
    media_type: String,
    digest: String,
    size: u64,
}

pub fn push(
    path: &Path,
    reference: &Reference,
    options: &ClientOptions,
    ui: &Ui,
) -> Result<PushReport> {
    match arch_folders(path)? {
        Some(folders) => push_index(&folders, reference, options, ui),
        None => push_image(path, reference, true, options, ui),
    }
}

/// The folders of a multi-architecture build (`OUTPUT/ARCH`, each holding
/// one manifest), when `path` is such an output directory.
fn arch_folders(path: &Path) -> Result<Option<Vec<PathBuf>>> {
    if !path.is_dir() || find_manifest(path).is_ok() {
        return Ok(None);
    }
    let mut folders = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && crate::recipe::ARCHES.contains(&name.as_str()) {
            folders.push(entry.path());
        }
    }
    folders.sort();
    Ok((!folders.is_empty()).then_some(folders))
}

/// Pushes each architecture's image by digest, then the index that lists
/// them under the tag.
fn push_index(
    folders: &[PathBuf],
    reference: &Reference,
    options: &ClientOptions,
    ui: &Ui,
) -> Result<PushReport> {
    let mut images = Vec::new();
    let mut versions = Vec::new();
    for folder in folders {
        let manifest_path = find_manifest(folder)?;
        let manifest = parse_manifest(&manifest_path, &read_manifest(&manifest_path)?)?;
        let arch = folder.file_name().unwrap_or_default().to_string_lossy();
        if manifest.image.arch != arch {
            bail!(
                "{} is an {} image in the folder {arch}: the folder of a multi-architecture build names the image's architecture",
                manifest_path.display(),
                manifest.image.arch
            );
        }
        versions.push((manifest.image.name.clone(), manifest.image.version.clone()));
        images.push(push_image(folder, reference, false, options, ui)?);
    }
    versions.dedup();
    let [(name, version)] = versions.as_slice() else {
        bail!(
            "the folders hold different images ({}): one index lists one image's architectures",
            versions
                .iter()
                .map(|(n, v)| format!("{n} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let tag = match &reference.tag {
        Some(tag) => tag.clone(),
        None if reference.digest.is_some() => {
            bail!("{reference}: push to a tag (a digest is what the registry computes)")
        }
        None => kiln_oci::reference::tag_from(version),
    };
    let target = reference.with_tag(&tag);
    let mut index = kiln_oci::spec::Index::empty();
    index.annotations.insert(TITLE.to_owned(), name.clone());
    index
        .annotations
        .insert(VERSION.to_owned(), version.clone());
    for image in &images {
        let mut d = Descriptor::of(kiln_oci::spec::IMAGE_MANIFEST, &[]);
        d.digest = image.digest.clone();
        d.size = image.size;
        d.artifact_type = Some(IMAGE_ARTIFACT.to_owned());
        d.platform = Some(kiln_oci::spec::Platform {
            architecture: image.arch.clone(),
            os: "linux".to_owned(),
        });
        index.manifests.push(d);
    }
    let client = Client::new(&reference.registry, options.clone())?;
    let (digest, _) = client
        .put_manifest(
            &reference.repository,
            &tag,
            kiln_oci::spec::IMAGE_INDEX,
            &index.to_bytes(),
        )
        .with_context(|| format!("cannot push {target}"))?;
    let size = index.to_bytes().len() as u64;
    Ok(PushReport {
        reference: format!("{target}@{digest}"),
        digest,
        size,
        arch: images
            .iter()
            .map(|i| i.arch.as_str())
            .collect::<Vec<_>>()
            .join(","),
        files: Vec::new(),
        referrers: Vec::new(),
        images,
    })
}

/// Pushes one image; `tagged`: under the reference's tag (else the
/// image's version), or else by digest only, as an index's member.
fn push_image(
    path: &Path,
    reference: &Reference,
    tagged: bool,
    options: &ClientOptions,
    ui: &Ui,
) -> Result<PushReport> {
    let manifest_path = find_manifest(path)?;
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let manifest_name = file_name(&manifest_path)?;
    let Some(stem) = stem(&manifest_name) else {
        bail!(
            "{} is not named NAME-VERSION.manifest.json",
            manifest_path.display()
        );
    };
    let manifest_bytes = read_manifest(&manifest_path)?;
    let manifest = parse_manifest(&manifest_path, &manifest_bytes)?;
    let signature = signature_path(&manifest_path);
    if !signature.exists() {
        bail!(
            "{} is not signed ({} does not exist): kiln push publishes signed images only; build with --key, or sign it with `kiln sign`",
            manifest_path.display(),
            signature.display()
        );
    }
    let tag = match &reference.tag {
        Some(tag) => tag.clone(),
        None if reference.digest.is_some() => {
            bail!("{reference}: push to a tag (a digest is what the registry computes)")
        }
        None => kiln_oci::reference::tag_from(&manifest.image.version),
    };
    let target = reference.with_tag(&tag);

    // Every file must be what the manifest says before anything is sent.
    let mut layers = Vec::new();
    let mut attached = Vec::new();
    for artifact in &manifest.artifacts {
        if !safe_name(&artifact.name) {
            bail!(
                "the manifest lists an artifact named {:?}: not a file name",
                artifact.name
            );
        }
        let blob = Blob {
            path: dir.join(&artifact.name),
            name: artifact.name.clone(),
            media_type: layer_media_type(&artifact.format),
            digest: format!("sha256:{}", artifact.sha256),
            size: artifact.size,
        };
        match referrer_type(&artifact.format) {
            Some(kind) => attached.push((kind, blob)),
            None => layers.push(blob),
        }
    }
    check_files(layers.iter().chain(attached.iter().map(|(_, b)| b)), ui)?;
    layers.push(small_blob(
        &manifest_path,
        &manifest_name,
        MANIFEST_LAYER,
        &manifest_bytes,
    ));
    let signature_bytes = std::fs::read(&signature)
        .with_context(|| format!("cannot read {}", signature.display()))?;
    attached.push((
        SIGNATURE_ARTIFACT,
        small_blob(
            &signature,
            &file_name(&signature)?,
            SIGNATURE_LAYER,
            &signature_bytes,
        ),
    ));
    let provenance = dir.join(format!("{stem}.provenance.json"));
    if provenance.exists() {
        let bytes = std::fs::read(&provenance)
            .with_context(|| format!("cannot read {}", provenance.display()))?;
        attached.push((
            PROVENANCE_ARTIFACT,
            small_blob(
                &provenance,
                &file_name(&provenance)?,
                PROVENANCE_LAYER,
                &bytes,
            ),
        ));
    }

    let client = Client::new(&reference.registry, options.clone())?;
    client
        .ping(&reference.repository)
        .with_context(|| format!("cannot push to {target}"))?;
    let repository = reference.repository.as_str();
    let total = layers
        .iter()
        .chain(attached.iter().map(|(_, b)| b))
        .map(|b| b.size)
        .sum();
    let progress = ui.bytes(total, &format!("pushing to {target}"));
    let upload = |blob: &Blob| -> Result<PushedFile> {
        let uploaded = client
            .push_file(repository, &blob.path, &blob.digest, blob.size)
            .with_context(|| format!("cannot push {} to {target}", blob.name))?;
        progress.inc(blob.size);
        Ok(PushedFile {
            name: blob.name.clone(),
            media_type: blob.media_type.clone(),
            digest: blob.digest.clone(),
            size: blob.size,
            uploaded,
        })
    };
    // A few uploads at once: registries take several streams well, and
    // one slow large file does not hold the small ones back.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .context("cannot start upload threads")?;
    let files: Vec<PushedFile> =
        pool.install(|| layers.par_iter().map(upload).collect::<Result<_>>())?;

    let mut annotations = BTreeMap::new();
    annotations.insert(CREATED.to_owned(), iso8601(manifest.source_date_epoch));
    annotations.insert(TITLE.to_owned(), manifest.image.name.clone());
    annotations.insert(VERSION.to_owned(), manifest.image.version.clone());
    if let Some(description) = &manifest.image.description {
        annotations.insert(DESCRIPTION.to_owned(), description.clone());
    }
    let mut image =
        ImageManifest::artifact(IMAGE_ARTIFACT, layers.iter().map(descriptor).collect());
    image.annotations = annotations;
    client.push_bytes(repository, kiln_oci::spec::EMPTY_CONFIG_BYTES)?;
    let image_bytes = image.to_bytes();
    // An index's member goes by its digest; the tag is the index's.
    let put_as = match tagged {
        true => tag,
        false => kiln_oci::digest_of(&image_bytes),
    };
    let (digest, _) = client
        .put_manifest(
            repository,
            &put_as,
            kiln_oci::spec::IMAGE_MANIFEST,
            &image_bytes,
        )
        .with_context(|| format!("cannot push {target}"))?;
    let subject = Descriptor::of(kiln_oci::spec::IMAGE_MANIFEST, &image_bytes);

    let mut pushed_referrers = Vec::new();
    for (kind, blob) in &attached {
        let mut file = upload(blob)?;
        let mut referrer = ImageManifest::artifact(kind, vec![descriptor(blob)]);
        referrer.subject = Some(subject.clone());
        referrer
            .annotations
            .insert(CREATED.to_owned(), iso8601(manifest.source_date_epoch));
        let attached = referrers::attach(&client, repository, &referrer)
            .with_context(|| format!("cannot attach {} to {target}", blob.name))?;
        file.digest = attached.digest;
        file.media_type = (*kind).to_owned();
        pushed_referrers.push(file);
    }
    progress.finish();
    Ok(PushReport {
        reference: match tagged {
            true => format!("{target}@{digest}"),
            false => {
                let mut member = reference.at_digest(&digest);
                member.tag = None;
                member.to_string()
            }
        },
        digest,
        size: image_bytes.len() as u64,
        arch: manifest.image.arch.clone(),
        files,
        referrers: pushed_referrers,
        images: Vec::new(),
    })
}

fn descriptor(blob: &Blob) -> Descriptor {
    let mut d = Descriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest.clone(),
        size: blob.size,
        artifact_type: None,
        annotations: BTreeMap::new(),
        platform: None,
    };
    d.annotations.insert(TITLE.to_owned(), blob.name.clone());
    d
}

fn small_blob(path: &Path, name: &str, media_type: &str, bytes: &[u8]) -> Blob {
    Blob {
        path: path.to_owned(),
        name: name.to_owned(),
        media_type: media_type.to_owned(),
        digest: kiln_oci::digest_of(bytes),
        size: bytes.len() as u64,
    }
}

fn file_name(path: &Path) -> Result<String> {
    Ok(path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy()
        .into_owned())
}

/// Hashes the files in parallel: each must exist with the size and sha256
/// the manifest gives, or nothing is pushed.
fn check_files<'a>(blobs: impl Iterator<Item = &'a Blob>, ui: &Ui) -> Result<()> {
    let blobs: Vec<&Blob> = blobs.collect();
    let progress = ui.bytes(
        blobs.iter().map(|b| b.size).sum(),
        "checking files against the manifest",
    );
    let problems: Vec<String> = blobs
        .par_iter()
        .filter_map(|blob| {
            let outcome = (|| -> Result<Option<String>> {
                let file = std::fs::File::open(&blob.path)
                    .with_context(|| format!("cannot open {}", blob.path.display()))?;
                let size = file.metadata()?.len();
                if size != blob.size {
                    return Ok(Some(format!(
                        "{}: {size} bytes, the manifest says {}",
                        blob.name, blob.size
                    )));
                }
                let (digest, _) = hash_reader(progress.wrap_read(file))?;
                let digest = format!("sha256:{digest}");
                Ok((digest != blob.digest)
                    .then(|| format!("{}: sha256 differs from the manifest's", blob.name)))
            })();
            match outcome {
                Ok(problem) => problem,
                Err(e) => Some(format!("{e:#}")),
            }
        })
        .collect();
    progress.finish();
    if !problems.is_empty() {
        bail!(
            "not pushed: the files are not what the manifest lists ({}); `kiln verify` says more",
            problems.join("; ")
        );
    }
    Ok(())
}
