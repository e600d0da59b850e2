//! `kiln pull REF -o DIR --key PUB`: an image from a registry, verified
//! before it is written.
//!
//! Everything lands first in a hidden staging directory beside DIR: the
//! kiln manifest and its signature, checked with the trusted keys; then
//! each layer and referrer the signed manifest lists, refused unless its
//! digest and size are the signed ones (layers the manifest does not
//! list are refused too); then `kiln verify` over the whole. Only then
//! are the files moved into DIR, the manifest and its signature last.

use super::*;
use crate::cmd::verify::{VerifyOptions, VerifyReport, verify};
use crate::signing::{Untrusted, verify_manifest};
use crate::ui::Ui;
use anyhow::{Context, Result, bail};
use kiln_minisign::PublicKey;
use kiln_oci::spec::IMAGE_MANIFEST;
use kiln_oci::{Client, ClientOptions, Descriptor, ImageManifest, Reference, referrers};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A signature file is a few hundred bytes; a provenance envelope a few
/// hundred kilobytes.
const SIGNATURE_LIMIT: u64 = 64 << 10;
const MANIFEST_LIMIT: u64 = 1 << 30;

pub struct PullOptions<'a> {
    pub keys: &'a [PublicKey],
    pub min_version: Option<&'a str>,
    pub registry: &'a ClientOptions,
    /// The architecture to take from an index (default: the host's).
    pub arch: Option<&'a str>,
}

/// The Debian architecture of this host, which an index is read for
/// unless `--arch` says otherwise.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

#[derive(Serialize)]
pub struct PullReport {
    pub reference: String,
    pub digest: String,
    /// The pulled files, the manifest last.
    pub files: Vec<String>,
    pub verify: VerifyReport,
}

/// A pulled image in its staging directory, verified.
pub struct Staged {
    pub staging: tempfile::TempDir,
    pub manifest: PathBuf,
    /// Relative names, in the order they are to be published.
    pub files: Vec<String>,
    pub digest: String,
    pub report: VerifyReport,
}

pub fn pull(
    reference: &Reference,
    out: &Path,
    options: &PullOptions<'_>,
    ui: &Ui,
) -> Result<PullReport> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let staged = fetch(reference, &parent, options, ui)?;
    if !staged.report.ok {
        return Err(Untrusted(format!(
            "{reference} is not what its signature says:\n{}",
            staged.report.to_text()
        ))
        .into());
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for name in &staged.files {
        let to = out.join(name);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::rename(staged.staging.path().join(name), &to)
            .with_context(|| format!("cannot move {name} into {}", out.display()))?;
    }
    let mut report = staged.report;
    report.manifest = out
        .join(staged.manifest.file_name().unwrap_or_default())
        .display()
        .to_string();
    Ok(PullReport {
        reference: reference.at_digest(&staged.digest).to_string(),
        digest: staged.digest,
        files: staged.files,
        verify: report,
    })
}

/// Fetches and verifies `reference` into a new staging directory inside
/// `parent`; `kiln verify REF` uses it alone.
pub fn fetch(
    reference: &Reference,
    parent: &Path,
    options: &PullOptions<'_>,
    ui: &Ui,
) -> Result<Staged> {
    let Some(target) = reference.target() else {
        bail!("{reference}: name a tag or a digest (REGISTRY/REPOSITORY:TAG or @sha256:…)");
    };
    let client = Client::new(&reference.registry, options.registry.clone())?;
    let repository = reference.repository.as_str();
    let mut fetched = client
        .get_manifest(repository, target)
        .map_err(untrusted_content)
        .with_context(|| format!("cannot pull {reference}"))?
        .with_context(|| format!("{reference} does not exist in the registry"))?;
    // An index (`kiln build --arch amd64,arm64`, pushed): its image for
    // the architecture asked for. The index is not signed; the image's
    // signed manifest must name that architecture (checked below).
    let wanted_arch: &str = match options.arch {
        Some(arch) => arch,
        None => host_arch(),
    };
    let from_index = fetched.media_type == kiln_oci::spec::IMAGE_INDEX;
    if from_index {
        let index: kiln_oci::spec::Index = serde_json::from_slice(&fetched.bytes)
            .with_context(|| format!("{reference}: the registry's index is not an OCI index"))?;
        let arches: Vec<&str> = index
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref())
            .map(|p| p.architecture.as_str())
            .collect();
        let Some(member) = index.manifests.iter().find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.architecture == wanted_arch && p.os == "linux")
        }) else {
            bail!(
                "{reference} has no {wanted_arch} image (it has: {}); choose one with --arch",
                if arches.is_empty() {
                    "none".to_owned()
                } else {
                    arches.join(", ")
                }
            );
        };
        fetched = client
            .get_manifest(repository, &member.digest)
            .map_err(untrusted_content)
            .with_context(|| format!("cannot pull the {wanted_arch} image of {reference}"))?
            .with_context(|| {
                format!(
                    "{reference}: its {wanted_arch} image {} does not exist",
                    member.digest
                )
            })?;
        if kiln_oci::digest_of(&fetched.bytes) != member.digest {
            return Err(Untrusted(format!(
                "{reference}: the registry's {wanted_arch} image is not the one its index names ({})",
                member.digest
            ))
            .into());
        }
    }
    if fetched.media_type != IMAGE_MANIFEST {
        bail!(
            "{reference} is not a kiln image: it is a {}",
            fetched.media_type
        );
    }
    let image: ImageManifest = serde_json::from_slice(&fetched.bytes).with_context(|| {
        format!("{reference}: the registry's manifest is not an OCI image manifest")
    })?;
    if image.kind() != IMAGE_ARTIFACT {
        bail!(
            "{reference} is not a kiln image: its artifact type is {}",
            image.kind()
        );
    }
    let staging = tempfile::Builder::new()
        .prefix(".kiln-pull-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot make a staging directory in {}", parent.display()))?;
    let at = |name: &str| staging.path().join(name);

    // The manifest and a signature by a trusted key, before anything else.
    let manifest_layers: Vec<&Descriptor> = image
        .layers
        .iter()
        .filter(|l| l.media_type == MANIFEST_LAYER)
        .collect();
    let [manifest_layer] = manifest_layers.as_slice() else {
        bail!(
            "{reference}: a kiln image has one manifest layer, this one has {}",
            manifest_layers.len()
        );
    };
    let manifest_name = manifest_layer.title().unwrap_or_default().to_owned();
    if stem(&manifest_name).is_none() || manifest_name.contains('/') {
        bail!(
            "{reference}: the manifest layer is titled {manifest_name:?}, not NAME-VERSION.manifest.json"
        );
    }
    let manifest_path = at(&manifest_name);
    download(
        &client,
        repository,
        manifest_layer,
        &manifest_path,
        MANIFEST_LIMIT,
    )?;
    let referrers = referrers::list(&client, repository, &fetched.digest)
        .with_context(|| format!("cannot list what refers to {reference}"))?;
    let signatures: Vec<&Descriptor> = referrers
        .iter()
        .filter(|d| d.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT))
        .collect();
    if signatures.is_empty() {
        return Err(Untrusted(format!("{reference} has no signature attached")).into());
    }
    let signature_path = crate::signing::signature_path(&manifest_path);
    let mut refusals = Vec::new();
    let mut verified = None;
    for signature in signatures {
        let layer = only_layer(&client, repository, signature, reference)?;
        let bytes = client
            .pull_small_blob(repository, &layer.digest, SIGNATURE_LIMIT)
            .map_err(untrusted_content)?;
        std::fs::write(&signature_path, &bytes)?;
        match verify_manifest(&manifest_path, options.keys) {
            Ok(v) => {
                verified = Some(v);
                break;
            }
            Err(e) => match e.downcast::<Untrusted>() {
                Ok(untrusted) => refusals.push(untrusted.0),
                Err(other) => return Err(other),
            },
        }
    }
    let Some(verified) = verified else {
        return Err(Untrusted(format!(
            "{reference}: no attached signature verifies: {}",
            refusals.join("; ")
        ))
        .into());
    };
    let manifest = verified.manifest;
    if from_index && manifest.image.arch != wanted_arch {
        return Err(Untrusted(format!(
            "{reference}: the index lists an {} image as its {wanted_arch} one",
            manifest.image.arch
        ))
        .into());
    }

    // What to download: every artifact the signed manifest lists, from the
    // layer or referrer of that name, with the signed digest and size.
    let mut plan: Vec<(String, Descriptor)> = Vec::new();
    for layer in &image.layers {
        if layer.media_type == MANIFEST_LAYER {
            continue;
        }
        let name = layer.title().unwrap_or_default();
        if !manifest.artifacts.iter().any(|a| a.name == name) {
            return Err(Untrusted(format!(
                "{reference} has a layer {name:?} ({}) that the signed manifest does not list",
                layer.digest
            ))
            .into());
        }
    }
    for artifact in &manifest.artifacts {
        if !safe_name(&artifact.name) {
            bail!(
                "the signed manifest lists an artifact named {:?}: not a file name",
                artifact.name
            );
        }
        let source = match referrer_type(&artifact.format) {
            None => image
                .layers
                .iter()
                .find(|l| l.title() == Some(&artifact.name))
                .cloned(),
            Some(kind) => find_referrer_layer(
                &client,
                repository,
                &referrers,
                kind,
                &artifact.name,
                reference,
            )?,
        };
        let Some(descriptor) = source else {
            bail!(
                "{reference} lacks {}, which its manifest lists",
                artifact.name
            );
        };
        if descriptor.digest != format!("sha256:{}", artifact.sha256)
            || descriptor.size != artifact.size
        {
            return Err(Untrusted(format!(
                "{reference}: {} in the registry ({}, {} bytes) is not the signed one (sha256:{}, {} bytes)",
                artifact.name, descriptor.digest, descriptor.size, artifact.sha256, artifact.size
            ))
            .into());
        }
        plan.push((artifact.name.clone(), descriptor));
    }
    let stem = stem(&manifest_name).unwrap_or_default();
    let provenance_name = format!("{stem}.provenance.json");
    let provenance = find_referrer_layer(
        &client,
        repository,
        &referrers,
        PROVENANCE_ARTIFACT,
        &provenance_name,
        reference,
    )?;

    let total = plan.iter().map(|(_, d)| d.size).sum();
    let progress = ui.bytes(total, &format!("pulling {reference}"));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .context("cannot start download threads")?;
    pool.install(|| {
        plan.par_iter().try_for_each(|(name, descriptor)| {
            let path = at(name);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            download(&client, repository, descriptor, &path, descriptor.size)?;
            progress.inc(descriptor.size);
            Ok::<_, anyhow::Error>(())
        })
    })?;
    progress.finish();
    let mut files: Vec<String> = plan.into_iter().map(|(name, _)| name).collect();
    if let Some(descriptor) = &provenance {
        download(
            &client,
            repository,
            descriptor,
            &at(&provenance_name),
            16 << 20,
        )?;
        files.push(provenance_name);
    }
    // A PXE bundle carries the manifest and its signature too, for the
    // booting node to fetch beside the root (docs/pxe.md): the same bytes.
    let bundle = format!("{stem}.pxe");
    if files.iter().any(|f| f.starts_with(&format!("{bundle}/"))) {
        for (from, to) in [
            (manifest_name.clone(), "manifest.json"),
            (format!("{manifest_name}.minisig"), "manifest.json.minisig"),
        ] {
            let to = format!("{bundle}/{to}");
            std::fs::copy(at(&from), at(&to)).with_context(|| format!("cannot write {to}"))?;
            files.push(to);
        }
    }
    files.push(manifest_name.clone());
    files.push(format!("{manifest_name}.minisig"));

    let report = verify(
        &manifest_path,
        &VerifyOptions {
            keys: options.keys,
            contents: false,
            min_version: options.min_version,
            provenance: provenance.is_some(),
        },
    )?;
    Ok(Staged {
        staging,
        manifest: manifest_path,
        files,
        digest: fetched.digest,
        report,
    })
}

fn download(
    client: &Client,
    repository: &str,
    descriptor: &Descriptor,
    path: &Path,
    limit: u64,
) -> Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    client
        .pull_blob(
            repository,
            &descriptor.digest,
            limit.min(descriptor.size),
            &mut file,
        )
        .map_err(untrusted_content)?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The one layer of a referrer's manifest.
fn only_layer(
    client: &Client,
    repository: &str,
    referrer: &Descriptor,
    reference: &Reference,
) -> Result<Descriptor> {
    let fetched = client
        .get_manifest(repository, &referrer.digest)?
        .with_context(|| {
            format!(
                "{reference}: its referrer {} does not exist",
                referrer.digest
            )
        })?;
    let manifest: ImageManifest = serde_json::from_slice(&fetched.bytes).with_context(|| {
        format!(
            "{reference}: referrer {} is not an image manifest",
            referrer.digest
        )
    })?;
    match <[Descriptor; 1]>::try_from(manifest.layers) {
        Ok([layer]) => Ok(layer),
        Err(layers) => bail!(
            "{reference}: referrer {} has {} layers, not one",
            referrer.digest,
            layers.len()
        ),
    }
}

/// The layer titled `name` among the referrers of type `kind`.
fn find_referrer_layer(
    client: &Client,
    repository: &str,
    referrers: &[Descriptor],
    kind: &str,
    name: &str,
    reference: &Reference,
) -> Result<Option<Descriptor>> {
    for referrer in referrers
        .iter()
        .filter(|d| d.artifact_type.as_deref() == Some(kind))
    {
        let layer = only_layer(client, repository, referrer, reference)?;
        if layer.title() == Some(name) {
            return Ok(Some(layer));
        }
    }
    Ok(None)
}

/// `kiln verify REF`: the image fetched into a temporary directory and
/// verified there (with `--contents`, every file of its rootfs too).
pub fn verify_reference(
    reference: &Reference,
    options: &VerifyOptions<'_>,
    registry: &ClientOptions,
    arch: Option<&str>,
    ui: &Ui,
) -> Result<VerifyReport> {
    let pull = PullOptions {
        keys: options.keys,
        min_version: options.min_version,
        registry,
        arch,
    };
    let staged = fetch(reference, &std::env::temp_dir(), &pull, ui)?;
    let mut report = if options.contents || options.provenance {
        verify(&staged.manifest, options)?
    } else {
        staged.report
    };
    report.manifest = reference.at_digest(&staged.digest).to_string();
    Ok(report)
}

/// Content that does not match its digest fails verification (exit 4),
/// like a tampered file beside a manifest.
fn untrusted_content(error: anyhow::Error) -> anyhow::Error {
    match error.downcast::<kiln_oci::WrongContent>() {
        Ok(wrong) => Untrusted(wrong.0).into(),
        Err(other) => other,
    }
}
