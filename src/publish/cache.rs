//! `--cache-from` / `--cache-to`: a registry repository as a shared cache
//! of builders, holding what the local cache holds and keyed the same way.
//!
//! * Debian packages are blobs by their sha256, which the lock pins: a
//!   builder asks for the blob of each pin it lacks, and the content is
//!   checked against the pin as every download is. A manifest tagged
//!   `packages-KEY` (KEY: sha256 of the pins) keeps them from a
//!   registry's garbage collection.
//! * An installed tree is the blob a manifest tagged `install-KEY` names,
//!   KEY being the local install cache's key (every input of the install
//!   stage, kiln's own binary included). Its content can only be checked
//!   against that manifest: whoever may push to the cache repository is
//!   trusted as whoever may write the local cache is (`--no-install-cache`
//!   uses neither).
//!
//! Builders pushing the same key at once push the same bytes: blobs and
//! manifests are content-addressed, and a tag set twice to one manifest
//! is unchanged.

use crate::install::cache::InstallCache;
use crate::ui::Ui;
use anyhow::{Context, Result};
use kiln_debian::fetch::Cache;
use kiln_debian::lock::LockedPackage;
use kiln_oci::spec::{IMAGE_MANIFEST, TITLE};
use kiln_oci::{Client, ClientOptions, Descriptor, ImageManifest, Reference};
use kiln_tree::Digest;
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

pub const PACKAGES_ARTIFACT: &str = "application/vnd.kiln.cache.packages.v1";
pub const INSTALL_ARTIFACT: &str = "application/vnd.kiln.cache.installed-tree.v1";
const DEB_LAYER: &str = "application/vnd.debian.binary-package";
/// zstd: a third of the bytes to move, decompressed faster than a
/// network delivers them.
const TREE_LAYER: &str = "application/vnd.kiln.installed-tree.v1.tar+zstd";
/// An installed tree is a plain tar of a whole system.
const TREE_LIMIT: u64 = 64 << 30;

/// One registry repository used as a cache.
pub struct RegistryCache {
    client: Client,
    reference: Reference,
}

/// What a build does with registry caches.
#[derive(Default)]
pub struct CacheOptions {
    pub from: Option<RegistryCache>,
    pub to: Option<RegistryCache>,
}

impl RegistryCache {
    /// `REGISTRY/REPOSITORY` (a tag or digest is refused: keys are tags).
    pub fn open(reference: &str, options: &ClientOptions) -> Result<RegistryCache> {
        let reference = Reference::parse(reference)?;
        if reference.tag.is_some() || reference.digest.is_some() {
            anyhow::bail!(
                "{reference}: a registry cache is a repository (REGISTRY/REPOSITORY), without a tag or digest"
            );
        }
        Ok(RegistryCache {
            client: Client::new(&reference.registry, options.clone())?,
            reference,
        })
    }

    fn repository(&self) -> &str {
        &self.reference.repository
    }

    /// Puts into the local cache every locked package it lacks and the
    /// registry has; returns how many came from the registry. Failures
    /// only cost time: the mirror is still there.
    pub fn fill_packages(&self, packages: &[LockedPackage], local: &Cache, ui: &Ui) -> usize {
        let missing: Vec<(&LockedPackage, Digest)> = packages
            .iter()
            .filter_map(|p| {
                let digest: Digest = p.sha256.parse().ok()?;
                matches!(local.get(&digest), Ok(None)).then_some((p, digest))
            })
            .collect();
        if missing.is_empty() {
            return 0;
        }
        let total = missing.iter().map(|(p, _)| p.size).sum();
        let progress = ui.bytes(total, &format!("packages from {}", self.reference));
        // Many small requests: more at once than there are cores.
        let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(8).build() else {
            return 0;
        };
        let got = pool.install(|| {
            missing
                .par_iter()
                .filter(|(p, digest)| {
                    let outcome = self.pull_into(local, digest, p.size);
                    progress.inc(p.size);
                    match outcome {
                        Ok(found) => found,
                        Err(e) => {
                            ui.detail(format!(
                                "{} {} not from the registry cache: {e:#}",
                                p.name, p.version
                            ));
                            false
                        }
                    }
                })
                .count()
        });
        progress.finish();
        got
    }

    /// Streams the blob `digest` of `size` bytes into the local cache,
    /// which hashes it as it stores it and keeps it only when it matches;
    /// false when the registry lacks it.
    fn pull_into(&self, local: &Cache, digest: &Digest, size: u64) -> Result<bool> {
        let oci_digest = format!("sha256:{}", digest.hex());
        let Some(mut reader) = self.client.open_blob(self.repository(), &oci_digest)? else {
            return Ok(false);
        };
        local.insert(&mut reader, digest, Some(size), &|_| {})?;
        Ok(true)
    }

    /// Puts the installed tree of `key` into the local install cache from
    /// the registry; false when the registry has none.
    pub fn fill_install(&self, install: &InstallCache, key: &str, ui: &Ui) -> Result<bool> {
        if install.entry(key)?.is_some() {
            return Ok(false);
        }
        let Some(fetched) = self
            .client
            .get_manifest(self.repository(), &format!("install-{key}"))?
        else {
            return Ok(false);
        };
        let manifest: ImageManifest =
            serde_json::from_slice(&fetched.bytes).with_context(|| {
                format!("{}: install-{key} is not an image manifest", self.reference)
            })?;
        let layer = match manifest.layers.as_slice() {
            [layer] if manifest.kind() == INSTALL_ARTIFACT => layer,
            _ => anyhow::bail!(
                "{}: install-{key} is not a kiln installed tree",
                self.reference
            ),
        };
        ui.step(format!(
            "installed tree {} from {} ({})",
            &key[..16],
            self.reference,
            crate::ui::human_bytes(layer.size)
        ));
        if layer.size > TREE_LIMIT {
            anyhow::bail!(
                "{}: install-{key} is larger than an installed tree can be",
                self.reference
            );
        }
        let Some(reader) = self.client.open_blob(self.repository(), &layer.digest)? else {
            return Ok(false);
        };
        // The compressed bytes are checked against the layer's digest as
        // they arrive; the tree is stored under its own digest, and
        // adopted only when both are right.
        let mut compressed = DigestReader::new(reader.take(layer.size + 1));
        let digest = install.blobs().insert_new(|out| {
            let mut decoder = zstd::stream::read::Decoder::new(&mut compressed)?;
            std::io::copy(&mut (&mut decoder).take(TREE_LIMIT), out)?;
            Ok(())
        })?;
        // Drain what zstd did not need, then compare.
        std::io::copy(&mut compressed, &mut std::io::sink())?;
        let (got, size) = compressed.finish();
        if got != layer.digest || size != layer.size {
            anyhow::bail!(
                "{}: install-{key}'s blob is not what its manifest says (tampered or corrupted storage)",
                self.reference
            );
        }
        install.adopt(key, &digest)?;
        Ok(true)
    }

    /// Pushes the packages of a build and its installed tree (when the
    /// install cache holds one for `install_key`).
    pub fn push(
        &self,
        packages: &[(LockedPackage, PathBuf)],
        install: Option<(&InstallCache, &str)>,
        ui: &Ui,
    ) -> Result<()> {
        let repository = self.repository();
        let total = packages.iter().map(|(p, _)| p.size).sum();
        let progress = ui.bytes(total, &format!("packages to {}", self.reference));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(8)
            .build()
            .context("cannot start upload threads")?;
        let layers = pool.install(|| {
            packages
                .par_iter()
                .map(|(p, path)| {
                    let digest = format!("sha256:{}", p.sha256);
                    self.client
                        .push_file(repository, path, &digest, p.size)
                        .with_context(|| {
                            format!("cannot push {} {} to {}", p.name, p.version, self.reference)
                        })?;
                    progress.inc(p.size);
                    Ok(layer(
                        DEB_LAYER,
                        &digest,
                        p.size,
                        &format!("{}_{}_{}.deb", p.name, p.version, p.arch),
                    ))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        progress.finish();
        if !layers.is_empty() {
            let mut pins = Sha256::new();
            for (p, _) in packages {
                pins.update(format!("{}\n", p.sha256));
            }
            let key = hex::encode(pins.finalize());
            self.put(PACKAGES_ARTIFACT, layers, &format!("packages-{key}"))?;
        }
        if let Some((install, key)) = install
            && let Some((_, path)) = install.entry(key)?
            && !self.has_install(key)?
        {
            let plain = std::fs::metadata(&path)?.len();
            ui.step(format!(
                "installed tree {} to {} ({} before compression)",
                &key[..16],
                self.reference,
                crate::ui::human_bytes(plain)
            ));
            let compressed =
                tempfile::NamedTempFile::new().context("cannot make a temporary file")?;
            let mut encoder = zstd::stream::write::Encoder::new(
                std::io::BufWriter::new(kiln_tree::HashingWriter::new(compressed.as_file())),
                3,
            )?;
            encoder
                .multithread(std::thread::available_parallelism().map_or(1, |n| n.get() as u32))?;
            std::io::copy(&mut std::fs::File::open(&path)?, &mut encoder)?;
            let (_, digest, size) = encoder
                .finish()?
                .into_inner()
                .map_err(|e| e.into_error())?
                .finish();
            let digest = format!("sha256:{}", digest.hex());
            self.client
                .push_file(repository, compressed.path(), &digest, size)?;
            self.put(
                INSTALL_ARTIFACT,
                vec![layer(TREE_LAYER, &digest, size, "installed-tree.tar.zst")],
                &format!("install-{key}"),
            )?;
        }
        Ok(())
    }

    /// Whether the registry has the installed tree of `key` already:
    /// compressing it again is the expensive part of pushing it.
    fn has_install(&self, key: &str) -> Result<bool> {
        Ok(self
            .client
            .get_manifest(self.repository(), &format!("install-{key}"))?
            .is_some())
    }

    fn put(&self, kind: &str, layers: Vec<Descriptor>, tag: &str) -> Result<()> {
        let manifest = ImageManifest::artifact(kind, layers);
        self.client
            .push_bytes(self.repository(), kiln_oci::spec::EMPTY_CONFIG_BYTES)?;
        self.client
            .put_manifest(self.repository(), tag, IMAGE_MANIFEST, &manifest.to_bytes())
            .with_context(|| format!("cannot tag {tag} in {}", self.reference))?;
        Ok(())
    }
}

fn layer(media_type: &str, digest: &str, size: u64, title: &str) -> Descriptor {
    let mut annotations = BTreeMap::new();
    annotations.insert(TITLE.to_owned(), title.to_owned());
    Descriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_owned(),
        size,
        artifact_type: None,
        annotations,
        platform: None,
    }
}

/// sha256 of what passes through, as `sha256:HEX`, and its length.
struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> DigestReader<R> {
    fn new(inner: R) -> Self {
        DigestReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.len,
        )
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}
