//! `kiln build`: the whole pipeline from a recipe to artifacts.
//!
//! Outputs appear atomically: everything is written into a hidden work
//! directory inside the output directory, and renamed into place only when
//! complete — artifacts first, the manifest last, so a manifest never names
//! an artifact that is not there. A failed or interrupted build leaves no
//! artifact behind and writes nothing outside the output directory.

use crate::cleanup;
use crate::manifest::{
    ArtifactRecord, BaseInfo, BuilderInfo, ImageInfo, Manifest, PackageRecord, RecipeFileRecord,
    RecipeInfo,
};
use crate::recipe::boot::Format;
use crate::recipe::{self, Plan};
use crate::ui::{Ui, human_bytes};
use anyhow::{Context, Result, bail};
use kiln_tree::pack::{ArchiveCompression, content_bytes, pack_rootfs};
use kiln_tree::{Store, Tree, decompress, hash_reader, load_tar};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

pub struct BuildOptions {
    pub recipe: PathBuf,
    /// Build for this architecture instead of the recipe's (`--arch`).
    pub arch: Option<String>,
    pub out_dir: PathBuf,
    pub compression: ArchiveCompression,
    /// Outputs (empty: the recipe's `[boot] formats`, else the rootfs).
    pub formats: Vec<Format>,
    /// Signs the manifest when given (`NAME-VERSION.manifest.json.minisig`).
    pub key: Option<kiln_minisign::SecretKey>,
    /// Mirrors, cache and offline artifacts for `[debian]` and `[[artifact]]`.
    pub archive: crate::packages::ArchiveOptions,
    /// Refuse a lockfile that does not match the recipe instead of updating it.
    pub locked: bool,
    /// Reuse an installed tree from the cache when the inputs are the same.
    pub install_cache: bool,
    /// Sign the disk's UKI for UEFI Secure Boot: PEM key and certificate.
    pub secure_boot: Option<(PathBuf, PathBuf)>,
    /// Registry repositories shared with other builders as caches.
    pub registry_cache: crate::publish::cache::CacheOptions,
}

/// What a build produced.
pub struct BuildOutput {
    pub manifest_path: PathBuf,
    pub signature_path: Option<PathBuf>,
    pub provenance_path: Option<PathBuf>,
    pub artifact_paths: Vec<PathBuf>,
    pub manifest: Manifest,
}

impl BuildOutput {
    /// What `kiln build --json` prints: every file written, the
    /// artifacts with their format, size and sha256.
    pub fn report(&self) -> serde_json::Value {
        let dir = self.manifest_path.parent().unwrap_or(Path::new(""));
        serde_json::json!({
            "image": self.manifest.image,
            "manifest": self.manifest_path,
            "signature": self.signature_path,
            "provenance": self.provenance_path,
            "artifacts": self.manifest.artifacts.iter().map(|a| serde_json::json!({
                "path": dir.join(&a.name),
                "name": a.name,
                "format": a.format,
                "size": a.size,
                "sha256": a.sha256,
            })).collect::<Vec<_>>(),
        })
    }
}

pub fn build(options: &BuildOptions, ui: &Ui) -> Result<BuildOutput> {
    let mut plan = recipe::load_for_arch(&options.recipe, options.arch.as_deref())?;
    // The units a booting node needs are enabled by the boot layout, after
    // [minimize] prunes the others: they count as kept.
    if plan.boot.is_some()
        && let Some(keep) = plan
            .hardening
            .minimize
            .as_mut()
            .and_then(|m| m.keep_services.as_mut())
    {
        keep.extend(crate::boot::layout::UNITS.iter().map(|u| u.to_string()));
    }
    let epoch = source_date_epoch(&plan)?;
    let formats = formats(options, &plan)?;
    ui.step(format!(
        "building {}-{} ({}) from {}, SOURCE_DATE_EPOCH={epoch}",
        plan.image.name,
        plan.image.version,
        plan.image.arch,
        options.recipe.display()
    ));
    check_output_dir("-o", &options.out_dir)?;
    std::fs::create_dir_all(&options.out_dir).with_context(|| {
        format!(
            "cannot create output directory {}",
            options.out_dir.display()
        )
    })?;
    cleanup::remove_stale_work_dirs(&options.out_dir);
    let work = tempfile::Builder::new()
        .prefix(&format!(
            "{}{}-",
            cleanup::WORK_DIR_PREFIX,
            std::process::id()
        ))
        .tempdir_in(&options.out_dir)
        .with_context(|| {
            format!(
                "cannot write to output directory {}",
                options.out_dir.display()
            )
        })?;
    let _registration = cleanup::Registration::new(work.path());
    // Shared with the thread that writes the install cache.
    let store = std::sync::Arc::new(Store::open(&work.path().join("store"))?);

    let artifacts: Vec<(crate::recipe::debian::ArtifactPlan, std::path::PathBuf)> =
        crate::packages::fetch_artifacts(&plan, &options.archive, ui)?
            .into_iter()
            .map(|(artifact, path)| (artifact.clone(), path))
            .collect();
    // A K3s binary left out (--optional-artifact) is not an error of the
    // recipe: the image is built without it, and its unit says so.
    if let Some(k3s) = plan.hardening.k3s.as_mut() {
        k3s.binary_left_out = plan.debian.artifacts.iter().any(|a| {
            a.dest.as_str() == k3s.binary.value && !artifacts.iter().any(|(f, _)| f.name == a.name)
        });
        // The release the image runs decides which kubelet settings take
        // effect: the artifact's URL names it (a stand-in binary's does not).
        k3s.version = plan.debian.artifacts.iter().find_map(|a| match &a.source {
            crate::recipe::debian::ArtifactSource::Url(url)
                if a.dest.as_str() == k3s.binary.value =>
            {
                kiln_policy::kubelet::K3sVersion::find(url)
            }
            _ => None,
        });
    }
    let install = plan
        .debian
        .section
        .as_ref()
        .map(|section| crate::install::InstallOptions {
            suite: &section.suite,
            arch: &plan.image.arch,
            epoch,
            work_dir: work.path(),
            cache_dir: options
                .install_cache
                .then_some(options.archive.cache_dir.as_path()),
            base: plan.base.as_ref().map(|b| b.sha256),
        });
    let packages = match &install {
        Some(install) => {
            let lock = crate::packages::lock_for_build(
                &plan,
                &options.recipe,
                &options.archive,
                options.locked,
                ui,
            )?;
            match &options.registry_cache.from {
                Some(from) => fetch_with_registry_cache(from, &plan, &lock, install, options, ui)?,
                None => crate::packages::fetch_packages(&plan, &lock, &options.archive, ui)?,
            }
        }
        None => Vec::new(),
    };
    if let Some(boot) = &plan.boot {
        crate::boot::layout::check_packages(
            &boot.loc,
            packages.iter().map(|(p, _)| p.name.as_str()),
        )?;
    }

    let mut tree = match &plan.base {
        Some(base) => load_base(base, &store, ui)?,
        None => Tree::new(),
    };
    let mut cache_write = None;
    if let Some(install) = &install {
        let write = crate::install::install(&mut tree, &store, &packages, install, ui)?;
        if let Some(to) = &options.registry_cache.to {
            // The registry gets the cache's entry: it must be complete.
            write.finish(ui);
            let locked: Vec<_> = packages.iter().map(|(p, _)| p.clone()).collect();
            let entry = crate::install::cache_entry(&locked, install)?;
            to.push(
                &packages,
                entry.as_ref().map(|(cache, key)| (cache, key.as_str())),
                ui,
            )?;
        } else {
            cache_write = Some(write);
        }
    }
    // Before [minimize] may drop /usr/share/doc: the SBOMs' licenses.
    let licenses = crate::sbom::Licenses::of_tree(
        &tree,
        &store,
        packages.iter().map(|(p, _)| p.name.as_str()),
    );
    for warning in crate::assemble::apply(&plan, &mut tree, &store)? {
        ui.warn(warning);
    }
    for (artifact, cached) in &artifacts {
        let file =
            File::open(cached).with_context(|| format!("cannot read {}", cached.display()))?;
        let (digest, size) = store.put(std::io::BufReader::new(file))?;
        let entry = kiln_tree::Entry {
            kind: kiln_tree::Kind::File { digest, size },
            meta: kiln_tree::Meta::root(artifact.mode),
        };
        crate::assemble::place(&mut tree, &artifact.dest, entry, &artifact.loc)?;
    }
    for warning in crate::harden::apply(&plan.hardening, &mut tree, &store)? {
        ui.warn(warning);
    }
    let build_key = options.key.as_ref().map(|k| k.public_key());
    let mut self_check = false;
    if let Some(timer) = &plan.check_timer {
        match crate::node_check::install(
            timer,
            &plan.image.arch,
            build_key.as_ref(),
            &mut tree,
            &store,
        )? {
            Some(warning) => ui.warn(warning),
            None => self_check = true,
        }
    }
    for warning in crate::boot::layout::apply(&plan, &mut tree, &store)? {
        ui.warn(warning);
    }
    ui.step(format!(
        "image tree: {} paths, {} of file content",
        tree.len(),
        human_bytes(content_bytes(&tree))
    ));

    let audit = audit_gate(&plan, &tree, &store, epoch, ui)?;
    // A node of a signed build checks itself against its image's own
    // manifest: every path so far, signed, put in before anything is packed.
    if let (true, Some(key)) = (self_check, &options.key) {
        let own = describe(&plan, &packages, &tree, &audit, Vec::new(), epoch);
        crate::node_check::embed_manifest(&own, key, &mut tree, &store)?;
        ui.step(format!(
            "the image's own manifest ({} paths) signed with key {} for the node's check",
            own.files.len(),
            key.key_id()
        ));
    }

    let stem = format!("{}-{}", plan.image.name, plan.image.version);
    let mut artifacts = Vec::new();
    let mut artifact_tmps = Vec::new();
    if formats.contains(&Format::Rootfs) {
        let (record, tmp) = write_rootfs(&tree, &store, &stem, epoch, options, work.path(), ui)?;
        artifacts.push(record);
        artifact_tmps.push(tmp);
    }
    let mut pxe_dir = None;
    if formats.iter().any(|f| f.needs_boot()) {
        let boot = plan.boot.as_ref().context("a disk format needs [boot]")?;
        let name = format!("{stem}.raw");
        let tmp = work.path().join(&name);
        ui.step(format!(
            "making the disk {name} (squashfs root, dm-verity, UKI)"
        ));
        let started = std::time::Instant::now();
        let report = crate::boot::disk::write(
            &tree,
            &store,
            &crate::boot::disk::DiskInputs {
                name: &plan.image.name,
                version: &plan.image.version,
                arch: &plan.image.arch,
                cmdline: &boot.cmdline,
                epoch,
                secure_boot: &options.secure_boot,
            },
            &work.path().join("boot-files"),
            &tmp,
        )
        .context("cannot make the disk image")?;
        ui.step(format!(
            "made {name} ({}, root hash {}) in {:.1}s",
            human_bytes(report.size),
            hex::encode(report.root_hash),
            started.elapsed().as_secs_f64()
        ));
        let raw = crate::manifest::disk_record(name, &report);
        for format in formats.iter().filter(|f| f.is_disk() && **f != Format::Raw) {
            let (name, out) = cloud_format(*format, &stem, &tmp, &report, epoch, work.path(), ui)?;
            let mut record = raw.clone();
            record.name = name;
            record.format = format.name().into();
            (record.size, record.sha256) = size_and_sha256(&out)?;
            artifacts.push(record);
            artifact_tmps.push(out);
        }
        if formats.contains(&Format::Pxe) {
            let name = crate::boot::pxe::dir_name(&stem);
            let dir = work.path().join(&name);
            let started = std::time::Instant::now();
            let keys: Vec<_> = options
                .key
                .iter()
                .map(|k| k.public_key())
                .chain(boot.pxe_keys.iter().cloned())
                .collect();
            let files = crate::boot::pxe::write(
                &tree,
                &store,
                &tmp,
                &report,
                &crate::boot::pxe::PxeInputs {
                    name: &plan.image.name,
                    version: &plan.image.version,
                    cmdline: &boot.cmdline,
                    keys: &keys,
                    epoch,
                },
                &dir,
            )
            .with_context(|| format!("cannot make the PXE bundle {name}"))?;
            for file in files {
                let mut record = raw.clone();
                record.name = format!("{name}/{}", file.name);
                record.format = file.format.into();
                (record.size, record.sha256) = size_and_sha256(&file.path)?;
                if !file.format.starts_with("pxe-root") {
                    record.disk = None;
                }
                artifacts.push(record);
            }
            ui.step(format!(
                "made the PXE bundle {name}/ in {:.1}s (trusting key{} {})",
                started.elapsed().as_secs_f64(),
                if keys.len() == 1 { "" } else { "s" },
                keys.iter()
                    .map(|k| k.key_id().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            pxe_dir = Some(dir);
        }
        // The raw disk is published when asked for; the others are made from it.
        if formats.contains(&Format::Raw) {
            artifacts.push(raw);
            artifact_tmps.push(tmp);
        }
    }

    // The SBOMs: of the tree every artifact was made from, when it has
    // Debian packages (without, the manifest already says everything).
    let debs = packages
        .iter()
        .map(|(p, _)| (p.name.clone(), p.sha256.clone()))
        .collect();
    let inventory = crate::sbom::Inventory::of(&plan, &tree, &store, &debs, licenses, epoch);
    if !inventory.packages.is_empty() {
        for (suffix, format, document) in [
            (
                "spdx.json",
                "spdx-json",
                crate::sbom::spdx::document(&inventory),
            ),
            (
                "cdx.json",
                "cyclonedx-json",
                crate::sbom::cyclonedx::document(&inventory),
            ),
        ] {
            let name = format!("{stem}.{suffix}");
            let tmp = work.path().join(&name);
            let text = crate::manifest::canonical_json(&document);
            write_synced(&tmp, text.as_bytes())?;
            let (size, sha256) = size_and_sha256(&tmp)?;
            artifacts.push(ArtifactRecord {
                name,
                format: format.into(),
                size,
                sha256,
                uncompressed_sha256: None,
                uncompressed_size: None,
                disk: None,
            });
            artifact_tmps.push(tmp);
        }
        ui.step(format!(
            "SBOMs (SPDX 2.3, CycloneDX 1.6): {} packages, {} with a declared license, {} artifact(s)",
            inventory.packages.len(),
            inventory
                .packages
                .iter()
                .filter(|p| inventory.licenses.by_package.contains_key(&p.name))
                .count(),
            inventory.artifacts.len()
        ));
    }
    let manifest = describe(&plan, &packages, &tree, &audit, artifacts, epoch);
    let manifest_name = format!("{stem}.manifest.json");
    let manifest_tmp = work.path().join(&manifest_name);
    let manifest_text = manifest.to_canonical_json();
    write_synced(&manifest_tmp, manifest_text.as_bytes())?;
    let signature_tmp = match &options.key {
        Some(key) => {
            let signature =
                crate::signing::sign_manifest(key, &manifest, manifest_text.as_bytes())?;
            let path = crate::signing::signature_path(&manifest_tmp);
            write_synced(&path, signature.to_file_string().as_bytes())?;
            ui.step(format!("signed the manifest with key {}", key.key_id()));
            Some(path)
        }
        None => None,
    };

    // The PXE bundle carries its signed manifest: the initramfs fetches
    // it from the same directory as the root.
    if let Some(dir) = pxe_dir {
        let signature = signature_tmp
            .as_ref()
            .context("--format pxe needs a signing key (--key)")?;
        crate::boot::pxe::add_manifest(&dir, &manifest_tmp, signature)?;
        artifact_tmps.push(dir);
    }
    // Provenance of a signed build: every output, the manifest included,
    // and everything it was made from, signed in a DSSE envelope.
    let provenance_tmp = match &options.key {
        Some(key) => {
            let text = provenance(
                &plan,
                options,
                &packages,
                &manifest,
                manifest_text.as_bytes(),
                formats.as_slice(),
                epoch,
            )?;
            let name = format!("{stem}.provenance.json");
            let tmp = work.path().join(&name);
            write_synced(&tmp, crate::provenance::envelope(&text, key).as_bytes())?;
            Some(tmp)
        }
        None => None,
    };
    if let Some(write) = cache_write {
        write.finish(ui);
    }
    // Artifacts first, the manifest last: a manifest never names an
    // artifact that is not there yet.
    let artifact_paths = artifact_tmps
        .iter()
        .map(|tmp| publish(tmp, &options.out_dir, work.path()))
        .collect::<Result<Vec<_>>>()?;
    let signature_path = signature_tmp
        .map(|tmp| publish(&tmp, &options.out_dir, work.path()))
        .transpose()?;
    let manifest_path = publish(&manifest_tmp, &options.out_dir, work.path())?;
    let provenance_path = provenance_tmp
        .map(|tmp| publish(&tmp, &options.out_dir, work.path()))
        .transpose()?;
    if let Some(path) = &provenance_path {
        ui.step(format!("wrote {}", path.display()));
    }
    for path in artifact_paths.iter().chain([&manifest_path]) {
        ui.step(format!("wrote {}", path.display()));
    }
    Ok(BuildOutput {
        manifest_path,
        signature_path,
        provenance_path,
        artifact_paths,
        manifest,
    })
}

/// The manifest of `tree` as built from `plan`: what it was made from,
/// every path, and `artifacts`.
fn describe(
    plan: &Plan,
    packages: &[(kiln_debian::lock::LockedPackage, PathBuf)],
    tree: &Tree,
    audit: &kiln_policy::audit::AuditSummary,
    artifacts: Vec<ArtifactRecord>,
    epoch: u64,
) -> Manifest {
    Manifest {
        manifest_version: crate::manifest::MANIFEST_VERSION,
        image: ImageInfo {
            name: plan.image.name.clone(),
            version: plan.image.version.clone(),
            arch: plan.image.arch.clone(),
            description: plan.image.description.clone(),
        },
        source_date_epoch: epoch,
        builder: BuilderInfo::this(),
        recipe: RecipeInfo {
            sha256: plan.sources[0].sha256.hex(),
            files: plan
                .sources
                .iter()
                .map(|s| RecipeFileRecord {
                    path: s.path.clone(),
                    sha256: s.sha256.hex(),
                })
                .collect(),
        },
        base: plan.base.as_ref().map(|b| BaseInfo {
            sha256: b.sha256.hex(),
        }),
        packages: packages
            .iter()
            .map(|(p, _)| PackageRecord {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                sha256: p.sha256.clone(),
            })
            .collect(),
        artifacts,
        files: crate::manifest::file_records(tree),
        mutable_paths: plan.mutable_paths.clone(),
        audit: Some(audit.clone()),
    }
}

/// The in-toto statement of a build (provenance.rs): its outputs and
/// everything it was made from.
fn provenance(
    plan: &Plan,
    options: &BuildOptions,
    packages: &[(kiln_debian::lock::LockedPackage, PathBuf)],
    manifest: &Manifest,
    manifest_bytes: &[u8],
    formats: &[Format],
    epoch: u64,
) -> Result<String> {
    use crate::provenance::Resource;
    let mut subjects: Vec<Resource> = manifest
        .artifacts
        .iter()
        .map(|a| Resource {
            name: a.name.clone(),
            uri: None,
            sha256: a.sha256.clone(),
        })
        .collect();
    let manifest_name = format!("{}-{}.manifest.json", plan.image.name, plan.image.version);
    subjects.push(Resource {
        name: manifest_name,
        uri: None,
        sha256: kiln_tree::Digest::of(manifest_bytes).hex(),
    });
    let mut dependencies: Vec<Resource> = plan
        .sources
        .iter()
        .map(|s| Resource {
            name: format!("recipe:{}", s.path),
            uri: None,
            sha256: s.sha256.hex(),
        })
        .collect();
    let lock = crate::packages::lock_file(&options.recipe, plan);
    if plan.debian.section.is_some() && lock.is_file() {
        let (_, sha256) = size_and_sha256(&lock)?;
        dependencies.push(Resource {
            name: format!(
                "lock:{}",
                lock.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
            uri: None,
            sha256,
        });
    }
    if let Some(base) = &plan.base {
        dependencies.push(Resource {
            name: "base".into(),
            uri: None,
            sha256: base.sha256.hex(),
        });
    }
    for (p, _) in packages {
        dependencies.push(Resource {
            name: format!("{}_{}_{}.deb", p.name, p.version, p.arch),
            uri: Some(crate::sbom::purl(&p.name, &p.version, &p.arch, None)),
            sha256: p.sha256.clone(),
        });
    }
    for a in &plan.debian.artifacts {
        dependencies.push(Resource {
            name: format!("artifact:{}", a.name),
            uri: match &a.source {
                crate::recipe::debian::ArtifactSource::Url(url) => Some(url.clone()),
                crate::recipe::debian::ArtifactSource::Path(_) => None,
            },
            sha256: a.sha256.hex(),
        });
    }
    let build = crate::provenance::Build {
        subjects,
        external: serde_json::json!({
            "recipe": plan.sources[0].path,
            "formats": formats.iter().map(|f| format!("{f:?}").to_lowercase()).collect::<Vec<_>>(),
            "compression": format!("{:?}", options.compression).to_lowercase(),
        }),
        internal: serde_json::json!({
            "source_date_epoch": epoch,
            "arch": plan.image.arch,
        }),
        dependencies,
        kiln_sha256: crate::install::cache::this_binary()?.hex(),
    };
    Ok(crate::provenance::statement(&build))
}

/// The outputs: the command line's, else the recipe's `[boot] formats`,
/// else the rootfs archive.
fn formats(options: &BuildOptions, plan: &Plan) -> Result<Vec<Format>> {
    let mut formats = if !options.formats.is_empty() {
        options.formats.clone()
    } else if let Some(boot) = &plan.boot {
        boot.formats.clone()
    } else {
        vec![Format::Rootfs]
    };
    formats.sort();
    formats.dedup();
    if options.secure_boot.is_some() && !formats.iter().any(|f| f.is_disk()) {
        bail!("--secure-boot-key signs a disk's UKI: add --format raw (or another disk format)");
    }
    if formats.contains(&Format::Pxe) && options.key.is_none() {
        bail!(
            "--format pxe needs a signing key (--key): the PXE initramfs boots only a root whose manifest is signed by a key it trusts"
        );
    }
    if let Some(disk) = formats.iter().find(|f| f.needs_boot())
        && plan.boot.is_none()
    {
        bail!(
            "--format {} needs a [boot] section in the recipe (the read-only root's layout, a kernel and an initrd); see docs/boot.md",
            disk.name()
        );
    }
    Ok(formats)
}

/// The rootfs archive, packed into the work directory.
fn write_rootfs(
    tree: &Tree,
    store: &Store,
    stem: &str,
    epoch: u64,
    options: &BuildOptions,
    work: &Path,
    ui: &Ui,
) -> Result<(ArtifactRecord, PathBuf)> {
    let archive_name = format!("{stem}.rootfs.{}", options.compression.extension());
    let archive_tmp = work.join(&archive_name);
    let progress = ui.bytes(content_bytes(tree), "packing");
    let file = File::create(&archive_tmp)
        .with_context(|| format!("cannot create {}", archive_tmp.display()))?;
    let (writer, packed) = pack_rootfs(
        tree,
        store,
        epoch,
        options.compression,
        BufWriter::with_capacity(1 << 20, file),
        &|n| progress.inc(n),
    )
    .context("cannot pack the rootfs archive")?;
    finish_file(writer)?;
    let seconds = progress.finish();
    ui.step(format!(
        "packed {archive_name} ({}) in {seconds:.1}s",
        human_bytes(packed.size)
    ));
    let record = ArtifactRecord {
        name: archive_name,
        format: options.compression.format().into(),
        size: packed.size,
        sha256: packed.sha256.hex(),
        uncompressed_sha256: Some(packed.tar_sha256.hex()),
        uncompressed_size: Some(packed.tar_size),
        disk: None,
    };
    Ok((record, archive_tmp))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file =
        File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    Ok(())
}

/// The release gate: audits the assembled tree with the recipe's [audit]
/// (waivers dated by SOURCE_DATE_EPOCH, so a rebuild decides the same way).
fn audit_gate(
    plan: &Plan,
    tree: &Tree,
    store: &Store,
    epoch: u64,
    ui: &Ui,
) -> Result<kiln_policy::audit::AuditSummary> {
    let config =
        kiln_policy::audit::AuditConfig::for_build(plan.audit.fail_on, plan.audit.waivers(), epoch);
    let report = kiln_policy::audit::audit_tree(tree, store, &config);
    for w in &report.expired_waivers {
        let origin = w
            .origin
            .as_ref()
            .map(|o| format!(" ({o})"))
            .unwrap_or_default();
        ui.warn(format!(
            "the waiver of {} expired on {}{origin}",
            w.rule, w.expires
        ));
    }
    for rule in report.blocking() {
        for f in rule.open_findings() {
            ui.warn(format!(
                "{} ({}): {}: {} [{}]",
                rule.rule.id, rule.rule.severity, f.path, f.message, f.value
            ));
        }
    }
    for e in &report.errors {
        ui.warn(format!("audit: {e}"));
    }
    ui.step(format!("audit: {}", report.summary_line()));
    if !report.passed() {
        let blocking: Vec<&str> = report.blocking().map(|r| r.rule.id).collect();
        let what = if blocking.is_empty() {
            "files could not be read".to_owned()
        } else {
            blocking.join(", ")
        };
        return Err(kiln_policy::audit::GateFailed(format!(
            "the audit gate failed (fail_on = {}): {what}; fix the image, or waive a rule with [[audit.waive]] rule = \"...\" and a reason (kiln audit ARCHIVE prints the full report)",
            report.fail_on
        ))
        .into());
    }
    Ok(report.summary())
}

/// SOURCE_DATE_EPOCH: the recipe's, else the environment's, else 0.
fn source_date_epoch(plan: &Plan) -> Result<u64> {
    if let Some(epoch) = plan.image.source_date_epoch {
        return Ok(epoch);
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().with_context(|| {
            format!(
                "SOURCE_DATE_EPOCH={} is not a number of seconds since 1970",
                kiln_diag::quote(&value)
            )
        }),
        _ => Ok(0),
    }
}

/// Verifies the base tarball against its pinned digest before reading a
/// single member of it, then loads it.
fn load_base(base: &recipe::BasePlan, store: &Store, ui: &Ui) -> Result<Tree> {
    let shown = base.path.display();
    let size = std::fs::metadata(&base.path)
        .with_context(|| format!("cannot read base tarball {shown}"))?
        .len();
    ui.step(format!(
        "verifying base tarball {shown} ({})",
        human_bytes(size)
    ));
    let file =
        File::open(&base.path).with_context(|| format!("cannot open base tarball {shown}"))?;
    let (digest, _) = hash_reader(std::io::BufReader::with_capacity(1 << 20, file))?;
    if digest != base.sha256 {
        bail!(
            "base tarball {shown} has sha256 {digest}, but the recipe pins {} at {}; \
             if this tarball is the one you want, update sha256 there",
            base.sha256,
            base.loc.position()
        );
    }
    let progress = ui.bytes(size, "loading");
    let file =
        File::open(&base.path).with_context(|| format!("cannot open base tarball {shown}"))?;
    let reader = decompress(std::io::BufReader::with_capacity(
        1 << 20,
        progress.wrap_read(file),
    ))
    .with_context(|| format!("cannot read base tarball {shown}"))?;
    let tree = load_tar(reader, &format!("base tarball {shown}"), store)?;
    let seconds = progress.finish();
    ui.step(format!(
        "loaded base tarball {shown} ({} paths) in {seconds:.1}s",
        tree.iter().count()
    ));
    Ok(tree)
}

/// Flushes and syncs a finished artifact.
fn finish_file(writer: BufWriter<File>) -> Result<()> {
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

/// Refuses an output directory (given with `flag`) that is a file, or
/// below one, before anything is written: `-o dist: is a file, not a
/// directory`.
/// The packages of the lock, taking what the local caches lack from a
/// registry cache first: the .debs, and at the same time (it is the
/// larger transfer) the installed tree of the same inputs. The registry
/// failing costs time only: the mirror is still there, and so is the
/// install stage.
fn fetch_with_registry_cache(
    from: &crate::publish::cache::RegistryCache,
    plan: &crate::recipe::Plan,
    lock: &kiln_debian::lock::Lock,
    install: &crate::install::InstallOptions,
    options: &BuildOptions,
    ui: &Ui,
) -> Result<Vec<(kiln_debian::lock::LockedPackage, PathBuf)>> {
    std::thread::scope(|scope| {
        let tree = scope.spawn(|| -> Result<()> {
            if let Some((cache, key)) = crate::install::cache_entry(&lock.packages, install)? {
                from.fill_install(&cache, &key, ui)?;
            }
            Ok(())
        });
        let cache = kiln_debian::fetch::Cache::open(&options.archive.cache_dir)?;
        let got = from.fill_packages(&lock.packages, &cache, ui);
        if got > 0 {
            ui.step(format!("{got} packages from the registry cache"));
        }
        let fetched = crate::packages::fetch_packages(plan, lock, &options.archive, ui);
        match tree.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => ui.warn(format!(
                "the registry cache's installed tree is not used: {e:#}"
            )),
            Err(_) => {
                ui.warn("the registry cache's installed tree is not used: its download failed")
            }
        }
        fetched
    })
}

pub fn check_output_dir(flag: &str, dir: &Path) -> Result<()> {
    let mut path = Some(dir);
    while let Some(p) = path.filter(|p| !p.as_os_str().is_empty()) {
        match std::fs::metadata(p) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(meta) => {
                let what = if meta.is_file() {
                    "a file"
                } else {
                    "something else"
                };
                if p == dir {
                    bail!("{flag} {}: is {what}, not a directory", dir.display());
                }
                bail!(
                    "{flag} {}: {} is {what}, not a directory",
                    dir.display(),
                    p.display()
                );
            }
            // Not there yet: create_dir_all makes it and its parents.
            Err(_) => path = p.parent(),
        }
    }
    Ok(())
}

/// Moves a finished file (or the PXE bundle's directory) from the work
/// directory to the output directory. A directory replaces an earlier
/// build's: that one moves into the work directory first, which goes.
fn publish(tmp: &Path, out_dir: &Path, work: &Path) -> Result<PathBuf> {
    let name = tmp
        .file_name()
        .with_context(|| format!("{} has no file name", tmp.display()))?;
    let dest = out_dir.join(name);
    if tmp.is_dir() && dest.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        let old = work.join("replaced").join(name);
        std::fs::create_dir_all(work.join("replaced"))?;
        std::fs::rename(&dest, &old)
            .with_context(|| format!("cannot replace {}", dest.display()))?;
    }
    std::fs::rename(tmp, &dest)
        .with_context(|| format!("cannot move {} into {}", dest.display(), out_dir.display()))?;
    Ok(dest)
}

/// One cloud format made from the raw disk `raw`, into the work directory.
fn cloud_format(
    format: Format,
    stem: &str,
    raw: &Path,
    report: &kiln_disk::DiskReport,
    epoch: u64,
    work: &Path,
    ui: &Ui,
) -> Result<(String, PathBuf)> {
    let started = std::time::Instant::now();
    let name = match format {
        Format::Qcow2 => format!("{stem}.qcow2"),
        Format::Vhd => format!("{stem}.vhd"),
        Format::Gce => format!("{stem}.gce.tar.gz"),
        Format::Rootfs | Format::Raw | Format::Pxe => {
            bail!("{} is not a cloud format", format.name())
        }
    };
    let out = work.join(&name);
    match format {
        Format::Qcow2 => kiln_disk::cloud::qcow2(raw, &out),
        Format::Vhd => kiln_disk::cloud::vhd(raw, &report.sha256.0, epoch, &out),
        _ => kiln_disk::cloud::gce(raw, epoch, &out),
    }
    .with_context(|| format!("cannot make {name}"))?;
    ui.step(format!(
        "made {name} in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok((name, out))
}

fn size_and_sha256(path: &Path) -> Result<(u64, String)> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (digest, size) = kiln_tree::hash_reader(std::io::BufReader::with_capacity(1 << 20, file))?;
    Ok((size, digest.hex()))
}
