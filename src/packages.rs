//! The Debian stage of the pipeline: from a recipe's `[debian]` request,
//! through the lockfile, to verified `.deb` files in the cache; and the
//! recipe's pinned `[[artifact]]` files.
//!
//! Mirror precedence: `--mirror`, then `KILN_DEBIAN_MIRROR`, then the
//! recipe's `mirror`, then the build host's apt sources (the same for the
//! security mirror with `--security-mirror`, `KILN_DEBIAN_SECURITY_MIRROR`
//! and `security_mirror`).

use crate::recipe::debian::{ArtifactPlan, ArtifactSource, DebianSection};
use crate::recipe::{Plan, RecipeError};
use crate::ui::{Ui, human_bytes};
use anyhow::{Context, Result, anyhow, bail};
use kiln_debian::archive::{self, SuiteSource};
use kiln_debian::fetch::{Cache, ContentMismatch, FetchItem, FetchPolicy, Fetcher, fetch_all};
use kiln_debian::index::PackageIndex;
use kiln_debian::lock::{IndexRecord, LOCK_VERSION, Lock, LockDiff, LockedArtifact, LockedPackage};
use kiln_debian::resolve::{Request, ResolveError, resolve};
use kiln_debian::sources::{mirror_for, read_apt_sources};
use kiln_tree::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where packages come from and where they are kept.
pub struct ArchiveOptions {
    pub mirror: Option<String>,
    pub security_mirror: Option<String>,
    /// The build host's apt configuration directory (`/etc/apt`).
    pub etc_apt: PathBuf,
    pub cache_dir: PathBuf,
    /// Parallel downloads.
    pub workers: usize,
    /// Artifacts supplied on the command line (`--artifact NAME=PATH`).
    pub artifact_overrides: BTreeMap<String, PathBuf>,
    /// Artifacts the build may leave out when they cannot be downloaded
    /// (`--optional-artifact NAME`).
    pub optional_artifacts: BTreeSet<String>,
}

impl ArchiveOptions {
    fn fetcher(&self) -> Fetcher {
        Fetcher::new(FetchPolicy::default())
    }
}

/// The suites to read, each with its mirror.
pub fn suite_sources(
    section: &DebianSection,
    options: &ArchiveOptions,
) -> Result<Vec<SuiteSource>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let host = || read_apt_sources(&options.etc_apt).unwrap_or_default();
    let suite = &section.suite;
    let mirror = options
        .mirror
        .clone()
        .or_else(|| env("KILN_DEBIAN_MIRROR"))
        .or_else(|| section.mirror.clone())
        .or_else(|| mirror_for(&host(), suite).map(|s| s.uri.clone()))
        .ok_or_else(|| {
            anyhow!(
                "no mirror for suite {suite}: the build host's apt sources ({}) name none; give --mirror URL, set KILN_DEBIAN_MIRROR, or set mirror in [debian]",
                options.etc_apt.display()
            )
        })?;
    let mirror = mirror.trim_end_matches('/').to_owned();
    let source = |suite: String, mirror: &str| SuiteSource {
        suite,
        mirror: mirror.to_owned(),
        components: section.components.clone(),
    };
    let mut out = vec![source(suite.clone(), &mirror)];
    if section.updates {
        out.push(source(format!("{suite}-updates"), &mirror));
    }
    if section.security {
        let security_suite = format!("{suite}-security");
        let security_mirror = options
            .security_mirror
            .clone()
            .or_else(|| env("KILN_DEBIAN_SECURITY_MIRROR"))
            .or_else(|| section.security_mirror.clone())
            .or_else(|| mirror_for(&host(), &security_suite).map(|s| s.uri.clone()))
            .ok_or_else(|| {
                anyhow!(
                    "no mirror for {security_suite}: give --security-mirror URL, set security_mirror in [debian], or set security = false (not for production images)"
                )
            })?;
        out.push(source(
            security_suite,
            security_mirror.trim_end_matches('/'),
        ));
    }
    Ok(out)
}

/// A digest of everything in the recipe that decides the package set: a
/// lock made for other inputs is stale.
pub fn request_inputs(section: &DebianSection, arch: &str) -> String {
    let mut packages = section.packages.clone();
    packages.sort();
    let mut exclude = section.exclude.clone();
    exclude.sort();
    let text = format!(
        "suite={}\nupdates={}\nsecurity={}\ncomponents={}\nvariant={:?}\nrecommends={}\narch={arch}\npackages={}\nexclude={}\n",
        section.suite,
        section.updates,
        section.security,
        section.components.join(","),
        section.variant,
        section.recommends,
        packages.join(","),
        exclude.join(",")
    );
    Digest::of(text.as_bytes()).hex()
}

fn artifact_records(plan: &Plan) -> Vec<LockedArtifact> {
    let mut out: Vec<LockedArtifact> = plan
        .debian
        .artifacts
        .iter()
        .map(|a| LockedArtifact {
            name: a.name.clone(),
            sha256: a.sha256.hex(),
        })
        .collect();
    out.sort();
    out
}

/// Resolves the recipe's package request against the signed indexes.
/// `pins` keeps these packages at these versions when the index still has
/// them (so that adding one package does not upgrade all the others).
fn resolve_fresh(
    plan: &Plan,
    section: &DebianSection,
    options: &ArchiveOptions,
    pins: &BTreeMap<String, String>,
    ui: &Ui,
) -> Result<Lock> {
    let arch = &plan.image.arch;
    let sources = suite_sources(section, options)?;
    let keyring = section
        .keyring
        .clone()
        .unwrap_or_else(|| PathBuf::from(archive::HOST_KEYRING));
    let fetcher = options.fetcher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut index = PackageIndex::new(arch);
    let mut records = Vec::new();
    for source in &sources {
        ui.step(format!(
            "reading the signed index of {} ({})",
            source.suite,
            source.components.join(", ")
        ));
        let release = archive::fetch_release(&fetcher, source, &keyring, now)?;
        let mut files = Vec::new();
        for component in &source.components {
            let packages = archive::fetch_packages(&fetcher, source, &release, component, arch)?;
            index
                .add_packages_file(&packages.text, &source.suite)
                .with_context(|| format!("suite {}: {}", source.suite, packages.path))?;
            files.push(format!(
                "{} sha256:{}",
                packages.path,
                packages.sha256.hex()
            ));
        }
        records.push(IndexRecord {
            suite: source.suite.clone(),
            date: release.date.clone(),
            inrelease_sha256: release.inrelease_sha256.hex(),
            packages: files,
        });
    }
    for (name, version) in pins {
        // A pinned version that left the archive is resolved afresh: the
        // patch report will show the change.
        index.pin(name, version);
    }
    let request = Request {
        variant: section.variant,
        packages: &section.packages,
        exclude: &section.exclude,
        recommends: section.recommends,
    };
    let selected = resolve(&index, &request).map_err(|e| resolve_error(section, &e))?;
    let packages = selected
        .into_iter()
        .map(|p| LockedPackage {
            name: p.name.clone(),
            version: p.version.to_string(),
            arch: p.architecture.clone(),
            suite: p.suite.clone(),
            filename: p.filename.clone(),
            size: p.size,
            sha256: p.sha256.hex(),
        })
        .collect();
    Ok(Lock {
        version: LOCK_VERSION,
        inputs: request_inputs(section, arch),
        arch: arch.clone(),
        indexes: records,
        packages,
        artifacts: artifact_records(plan),
    })
}

/// A request the archive cannot satisfy is a recipe error, at the package
/// (or exclusion) it is about, else at the `[debian]` table.
fn resolve_error(section: &DebianSection, error: &ResolveError) -> RecipeError {
    let loc = error
        .requested_name()
        .and_then(|name| section.package_locs.get(name))
        .or_else(|| {
            error
                .excluded_name()
                .and_then(|name| section.exclude_locs.get(name))
        })
        .unwrap_or(&section.loc);
    loc.error(error.to_string())
}

/// The lockfile of `plan`: `recipes/x.lock` for the architecture the
/// recipe names, `recipes/x.arm64.lock` for another one chosen by `--arch`
/// (each architecture resolves to its own package set).
pub fn lock_file(recipe: &Path, plan: &Plan) -> PathBuf {
    let image = &plan.image;
    if image.arch == image.recipe_arch {
        kiln_debian::lock::lock_path(recipe)
    } else {
        recipe.with_extension(format!("{}.lock", image.arch))
    }
}

/// What `kiln lock` should do with an existing lock.
pub enum LockUpdate {
    /// Keep locked versions; resolve only what the recipe changed.
    Keep,
    /// Refresh every package.
    All,
    /// Refresh these packages (and what they newly need); keep the rest.
    Only(Vec<String>),
}

/// `kiln lock`: writes the recipe's lockfile; returns it with the changes.
pub fn lock(
    plan: &Plan,
    recipe: &Path,
    options: &ArchiveOptions,
    update: LockUpdate,
    ui: &Ui,
) -> Result<(Lock, LockDiff)> {
    let section = debian_section(plan)?;
    let path = lock_file(recipe, plan);
    let previous = Lock::read(&path)?;
    let inputs = request_inputs(section, &plan.image.arch);
    if let (Some(previous), LockUpdate::Keep) = (&previous, &update)
        && previous.inputs == inputs
        && previous.artifacts == artifact_records(plan)
    {
        return Ok((previous.clone(), LockDiff::default()));
    }
    let locked: BTreeMap<String, String> = previous
        .iter()
        .flat_map(|l| &l.packages)
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    let pins = match &update {
        LockUpdate::All => BTreeMap::new(),
        LockUpdate::Keep => locked,
        LockUpdate::Only(names) => {
            for name in names {
                if !locked.contains_key(name) {
                    bail!(
                        "{name} is not in {}; kiln lock --update takes locked package names",
                        path.display()
                    );
                }
            }
            locked
                .into_iter()
                .filter(|(n, _)| !names.contains(n))
                .collect()
        }
    };
    let lock = resolve_fresh(plan, section, options, &pins, ui)?;
    let diff = LockDiff::between(
        previous.as_ref().map_or(&[][..], |l| &l.packages),
        &lock.packages,
    );
    lock.write(&path)?;
    Ok((lock, diff))
}

/// The lock a build installs: the existing one when it matches the
/// recipe, else (unless `locked`) a new one, written and reported.
pub fn lock_for_build(
    plan: &Plan,
    recipe: &Path,
    options: &ArchiveOptions,
    locked: bool,
    ui: &Ui,
) -> Result<Lock> {
    let section = debian_section(plan)?;
    let path = lock_file(recipe, plan);
    let previous = Lock::read(&path)?;
    let inputs = request_inputs(section, &plan.image.arch);
    match previous {
        Some(lock) if lock.inputs == inputs && lock.artifacts == artifact_records(plan) => {
            ui.step(format!(
                "using {} ({} packages)",
                path.display(),
                lock.packages.len()
            ));
            return Ok(lock);
        }
        Some(_) if locked => bail!(
            "{} does not match the recipe (its [debian] request or [[artifact]] pins changed) and --locked was given: run kiln lock {} and review the change",
            path.display(),
            recipe.display()
        ),
        None if locked => bail!(
            "--locked was given but {} does not exist: run kiln lock {}",
            path.display(),
            recipe.display()
        ),
        _ => {}
    }
    let (lock, diff) = lock(plan, recipe, options, LockUpdate::Keep, ui)?;
    ui.step(format!(
        "wrote {} ({} packages)",
        path.display(),
        lock.packages.len()
    ));
    if !diff.is_empty() {
        crate::ui::eprint(&diff.to_text());
    }
    Ok(lock)
}

fn debian_section(plan: &Plan) -> Result<&DebianSection> {
    let section = plan
        .debian
        .section
        .as_ref()
        .context("the recipe has no [debian] table: nothing to lock")?;
    if section.suite.is_empty() {
        return Err(section
            .loc
            .error("[debian] needs a suite, like suite = \"bookworm\"")
            .into());
    }
    Ok(section)
}

/// Downloads every locked package into the cache (parallel, verified,
/// resumable: what is cached intact is not fetched again).
pub fn fetch_packages(
    plan: &Plan,
    lock: &Lock,
    options: &ArchiveOptions,
    ui: &Ui,
) -> Result<Vec<(LockedPackage, PathBuf)>> {
    let section = debian_section(plan)?;
    let mirrors: BTreeMap<String, String> = suite_sources(section, options)?
        .into_iter()
        .map(|s| (s.suite, s.mirror))
        .collect();
    let mut items = Vec::new();
    for p in &lock.packages {
        let mirror = mirrors.get(&p.suite).ok_or_else(|| {
            anyhow!(
                "{} comes from suite {}, which the recipe no longer reads: run kiln lock",
                kiln_diag::quote(&p.name),
                kiln_diag::quote(&p.suite)
            )
        })?;
        items.push(FetchItem {
            label: format!("{} {}", p.name, p.version),
            url: format!("{mirror}/{}", p.filename),
            sha256: p
                .sha256
                .parse()
                .map_err(|e: String| anyhow!(kiln_diag::clip_quoted(&e)))?,
            size: Some(p.size),
        });
    }
    let total: u64 = items.iter().filter_map(|i| i.size).sum();
    ui.step(format!(
        "fetching {} packages ({})",
        items.len(),
        human_bytes(total)
    ));
    let cache = Cache::open(&options.cache_dir)?;
    let progress = ui.bytes(total, "packages");
    let paths = fetch_all(
        &options.fetcher(),
        &cache,
        &items,
        options.workers,
        &|n| progress.inc(n),
        &|_| {},
    )?;
    let seconds = progress.finish();
    ui.step(format!("packages verified in {seconds:.1}s"));
    Ok(lock.packages.iter().cloned().zip(paths).collect())
}

/// What `--artifact` calls `artifact`: `NAME`, or `NAME:ARCH` for a pin
/// of one architecture (another architecture's build may take another
/// file).
fn supply_name(artifact: &ArtifactPlan) -> String {
    match &artifact.arch {
        Some(arch) => format!("{}:{arch}", artifact.name),
        None => artifact.name.clone(),
    }
}

/// Fetches every `[[artifact]]` into the cache, from `--artifact
/// NAME=PATH` (or `NAME:ARCH=PATH`, for the build of that architecture)
/// when given, else from its url or path; each must match its pinned
/// sha256.
pub fn fetch_artifacts<'p>(
    plan: &'p Plan,
    options: &ArchiveOptions,
    ui: &Ui,
) -> Result<Vec<(&'p ArtifactPlan, PathBuf)>> {
    for name in options
        .artifact_overrides
        .keys()
        .chain(&options.optional_artifacts)
    {
        let name = name.split_once(':').map_or(name.as_str(), |(n, _)| n);
        if !plan.debian.artifacts.iter().any(|a| a.name == name) {
            let known: Vec<&str> = plan
                .debian
                .artifacts
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            bail!(
                "--artifact/--optional-artifact {name}: the recipe has no [[artifact]] named {name} (it has: {})",
                known.join(", ")
            );
        }
    }
    if plan.debian.artifacts.is_empty() {
        return Ok(Vec::new());
    }
    let cache = Cache::open(&options.cache_dir)?;
    let fetcher = options.fetcher();
    let mut out = Vec::new();
    for artifact in &plan.debian.artifacts {
        let context = || {
            format!(
                "[[artifact]] {} ({})",
                artifact.name,
                artifact.loc.position()
            )
        };
        let supplied = options
            .artifact_overrides
            .get(&format!("{}:{}", artifact.name, plan.image.arch))
            .or_else(|| options.artifact_overrides.get(&artifact.name));
        let path = match (supplied, &artifact.source) {
            // A file handed over on the command line is always checked, even
            // when the pinned content is already cached: a mismatch means
            // the pipeline supplied the wrong file.
            (Some(path), _) => {
                let mut file = std::fs::File::open(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                cache
                    .insert(&mut file, &artifact.sha256, None, &|_| {})
                    .with_context(|| format!("--artifact {}={}", artifact.name, path.display()))
                    .with_context(context)?
            }
            (None, source) => {
                let url = match source {
                    ArtifactSource::Url(url) => url.clone(),
                    ArtifactSource::Path(path) => file_url(path)?,
                };
                let item = FetchItem {
                    label: format!("artifact {}", artifact.name),
                    url,
                    sha256: artifact.sha256,
                    size: None,
                };
                match fetch_all(
                    &fetcher,
                    &cache,
                    std::slice::from_ref(&item),
                    1,
                    &|_| {},
                    &|_| {},
                ) {
                    Ok(mut paths) => paths.remove(0),
                    // Unreachable, not wrong: the image is built without it,
                    // and the one line says so and how to add it.
                    Err(e)
                        if options.optional_artifacts.contains(&artifact.name)
                            && !ContentMismatch::in_chain(&e) =>
                    {
                        ui.warn(format!(
                            "left out artifact {name} ({dest}): it could not be downloaded ({cause}); add it with --artifact {supply}=FILE",
                            name = artifact.name,
                            dest = artifact.dest,
                            cause = e.root_cause(),
                            supply = supply_name(artifact),
                        ));
                        continue;
                    }
                    Err(e) if ContentMismatch::in_chain(&e) => {
                        return Err(e).with_context(context);
                    }
                    Err(e) => {
                        return Err(e).with_context(context).with_context(|| {
                            format!(
                                "artifact {name} could not be downloaded: supply the file with --artifact {supply}=FILE, build without it with --optional-artifact {name}, or re-pin it (url or path, sha256) in a recipe that extends this one",
                                name = artifact.name,
                                supply = supply_name(artifact),
                            )
                        });
                    }
                }
            }
        };
        ui.step(format!(
            "artifact {} verified (sha256 {})",
            artifact.name,
            &artifact.sha256.hex()[..16]
        ));
        out.push((artifact, path));
    }
    Ok(out)
}

fn file_url(path: &Path) -> Result<String> {
    let absolute =
        std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("file://{}", absolute.display()))
}
