//! Recipes: TOML files describing an image, validated into a [`Plan`].
//!
//! Every error names the file, line and column and says what would be
//! valid. Relative paths are resolved against the folder of the recipe file
//! that wrote them. The format is documented in docs/recipe.md.

pub mod audit;
pub mod boot;
pub mod debian;
mod fields;
pub mod fleet;
pub mod hardening;
pub mod network;
pub(crate) mod schema;
mod value;

use kiln_diag::quote;
pub use kiln_diag::{Loc, RecipeError, SourceFile, did_you_mean};

pub use fields::{ArchFilter, ForArch};
use fields::{check_arch, check_name, check_timer, check_version, image_dir, image_glob, owner};
pub(crate) use fields::{image_path, mode};
use globset::{Glob, GlobBuilder, GlobMatcher};
use kiln_tree::{Digest, ImagePath};
use schema::RawRecipe;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// Debian architectures an image can be built for.
pub const ARCHES: &[&str] = &[
    "amd64", "arm64", "armel", "armhf", "i386", "mips64el", "ppc64el", "riscv64", "s390x",
];

/// How deep `extends` chains may go: deep enough for layering, shallow
/// enough to catch a runaway chain early.
const MAX_EXTENDS_DEPTH: usize = 16;

/// Largest recipe file read (each file of an `extends` chain); the
/// hardened K3s agent's is ~5 KB.
pub const RECIPE_LIMIT: kiln_diag::Limit = kiln_diag::Limit::mib(1, "recipe");

/// A validated recipe, with `extends` resolved: what the build does.
#[derive(Debug)]
pub struct Plan {
    pub image: ImagePlan,
    pub base: Option<BasePlan>,
    /// Applied to the base, before anything the recipe adds.
    pub removes: Vec<RemovePlan>,
    pub overlays: Vec<OverlayPlan>,
    pub files: Vec<FilePlan>,
    pub symlinks: Vec<SymlinkPlan>,
    /// Globs of paths `kiln check` skips on a running node: kiln's
    /// defaults plus `[check] mutable_paths`, sorted.
    pub mutable_paths: Vec<String>,
    /// A `kiln check` service and timer to install in the image.
    pub check_timer: Option<CheckTimerPlan>,
    /// `[debian]` and `[[artifact]]`: packages and pinned files.
    pub debian: debian::DebianPlan,
    pub hardening: hardening::HardeningPlan,
    pub audit: audit::AuditPlan,
    /// `[boot]`: the image boots from a disk (read-only root, state on /var).
    pub boot: Option<boot::BootPlan>,
    /// `[network]`: the links of a booting node (DHCP when absent).
    pub network: Option<network::NetworkPlan>,
    /// The top recipe file first, then each file it extends.
    pub sources: Vec<RecipeSource>,
}

#[derive(Debug, Clone)]
pub struct ImagePlan {
    pub name: String,
    pub version: String,
    /// The Debian architecture built: `--arch`, else the recipe's.
    pub arch: String,
    /// The architecture the recipe itself names (amd64 when it names
    /// none): its lockfile is `NAME.lock`, another's `NAME.ARCH.lock`.
    pub recipe_arch: String,
    pub description: Option<String>,
    /// Who supplies the image (`Name` or `Name <email>`), for the SBOMs.
    pub supplier: Option<String>,
    pub source_date_epoch: Option<u64>,
}

#[derive(Debug)]
pub struct BasePlan {
    pub path: PathBuf,
    pub sha256: Digest,
    pub loc: Loc,
}

#[derive(Debug)]
pub struct RemovePlan {
    pub pattern: String,
    pub matcher: GlobMatcher,
    pub loc: Loc,
}

/// A user or group: a number, or a name looked up in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Id(u32),
    Name(String),
}

#[derive(Debug, Clone)]
pub struct OwnerSpec {
    pub owner: Owner,
    pub loc: Loc,
}

#[derive(Debug)]
pub struct OverlayPlan {
    pub source: PathBuf,
    pub dest: ImagePath,
    pub owner: Option<OwnerSpec>,
    pub group: Option<OwnerSpec>,
    pub file_mode: u32,
    pub exec_mode: u32,
    pub dir_mode: u32,
    pub rules: Vec<OverlayRule>,
    pub loc: Loc,
}

#[derive(Debug)]
pub struct OverlayRule {
    pub pattern: String,
    pub matcher: GlobMatcher,
    pub mode: Option<u32>,
    pub owner: Option<OwnerSpec>,
    pub group: Option<OwnerSpec>,
}

#[derive(Debug)]
pub enum FileContent {
    Inline(String),
    Host(PathBuf),
}

#[derive(Debug)]
pub struct FilePlan {
    pub dest: ImagePath,
    pub content: FileContent,
    pub mode: u32,
    pub owner: Option<OwnerSpec>,
    pub group: Option<OwnerSpec>,
    pub loc: Loc,
}

#[derive(Debug)]
pub struct SymlinkPlan {
    pub path: ImagePath,
    pub target: String,
    pub loc: Loc,
}

/// `[check] timer`: the image checks itself against its signed manifest.
#[derive(Debug)]
pub struct CheckTimerPlan {
    /// A systemd calendar expression: "daily", "hourly", "*-*-* 03:00".
    pub on_calendar: String,
    /// Trusted public keys: (file name in the image, host path).
    pub keys: Vec<(String, PathBuf)>,
    pub binary: ImagePath,
    /// `[fleet]`: what the node reports besides the drift check's lines.
    pub fleet: Option<fleet::FleetPlan>,
    pub loc: Loc,
}

/// A recipe file that went into the plan, for the manifest.
#[derive(Debug, Clone)]
pub struct RecipeSource {
    /// Relative to the top recipe's folder.
    pub path: String,
    pub sha256: Digest,
}

/// Reads and validates the recipe at `path`, following `extends`.
pub fn load(path: &Path) -> Result<Plan, RecipeError> {
    load_for_arch(path, None)
}

/// [`load`] for `arch` (checked against [`ARCHES`]) instead of the
/// recipe's own architecture: `--arch`.
pub fn load_for_arch(path: &Path, arch: Option<&str>) -> Result<Plan, RecipeError> {
    let mut layers = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut next = Some((
        path.to_owned(),
        path.display().to_string(),
        ".".to_owned(),
        None::<Loc>,
    ));
    while let Some((file_path, display, relative, extended_from)) = next.take() {
        let canonical = std::fs::canonicalize(&file_path).map_err(|e| match &extended_from {
            Some(loc) => loc.error(format!("cannot read extended recipe {display}: {e}")),
            None => RecipeError::whole_file(&display, format!("cannot read recipe: {e}")),
        })?;
        // Only a file reached through extends can repeat or be too deep.
        if let (Some(first), Some(loc)) = (
            seen.iter().position(|p| *p == canonical),
            extended_from.as_ref(),
        ) {
            let chain: Vec<String> = layers[first..]
                .iter()
                .map(|l: &Layer| l.file.name.clone())
                .collect();
            return Err(loc.error(format!(
                "extends cycle: {} -> {display}; remove one of these extends",
                chain.join(" -> ")
            )));
        }
        if let (true, Some(loc)) = (layers.len() == MAX_EXTENDS_DEPTH, extended_from.as_ref()) {
            return Err(loc.error(format!(
                "extends chain is deeper than {MAX_EXTENDS_DEPTH} files"
            )));
        }
        seen.push(canonical);
        if !file_path.is_file() {
            return Err(match &extended_from {
                Some(loc) => loc.error(format!("extended recipe {display} is not a file")),
                None => RecipeError::whole_file(
                    &display,
                    "is not a regular file; give the recipe's .toml file",
                ),
            });
        }
        let layer = read_layer(&file_path, display, relative, extended_from.as_ref())?;
        if let Some(extends) = &layer.raw.extends {
            let target = layer.dir.join(extends.get_ref());
            let target_display = join_display(&layer.file.name, extends.get_ref());
            let target_relative = join_relative(&layer.relative, extends.get_ref());
            next = Some((
                target,
                target_display,
                target_relative,
                Some(Loc::new(&layer.file, extends.span())),
            ));
        }
        layers.push(layer);
    }
    // The most basic recipe first, so later files override and append.
    let sources = layers
        .iter()
        .map(|l| RecipeSource {
            path: l.relative.clone(),
            sha256: Digest::of(l.file.text.as_bytes()),
        })
        .collect();
    layers.reverse();
    let Some(top) = layers.last().map(|l| l.file.clone()) else {
        return Err(RecipeError::whole_file(
            path.display().to_string(),
            "no recipe was read",
        ));
    };
    let mut builder = PlanBuilder::default();
    for layer in layers {
        builder.add(layer)?;
    }
    if let Some(arch) = arch {
        builder.arch_override = Some(check_arch(&Loc::new(&top, 0..0), arch).map_err(|_| {
            RecipeError::whole_file(
                "--arch",
                format!(
                    "unknown architecture {}; known: {}",
                    quote(arch),
                    ARCHES.join(", ")
                ),
            )
        })?);
    }
    builder.finish(&top, sources)
}

/// One parsed recipe file.
struct Layer {
    file: Arc<SourceFile>,
    /// The folder relative paths in this file are resolved against.
    dir: PathBuf,
    /// The file's path relative to the top recipe's folder.
    relative: String,
    raw: RawRecipe,
}

/// Reads and parses one recipe file; `extended_from` is the `extends`
/// that named it, where errors about the file as a whole point.
fn read_layer(
    path: &Path,
    display: String,
    relative: String,
    extended_from: Option<&Loc>,
) -> Result<Layer, RecipeError> {
    let text = kiln_diag::read_file_to_string(path, RECIPE_LIMIT).map_err(|e| match e {
        kiln_diag::ReadError::Io { source, .. } => {
            RecipeError::whole_file(&display, format!("cannot read recipe: {source}"))
        }
        kiln_diag::ReadError::TooLarge { limit, .. } => {
            let message = format!("is larger than the {} a recipe may be", limit.size());
            match extended_from {
                Some(loc) => loc.error(format!("extended recipe {display} {message}")),
                None => RecipeError::whole_file(&display, message),
            }
        }
    })?;
    let file = Arc::new(SourceFile {
        name: display,
        text,
    });
    let raw: RawRecipe =
        toml::from_str(&file.text).map_err(|e| RecipeError::from_toml(&file, &e))?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let relative = if relative == "." {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        relative
    };
    Ok(Layer {
        file,
        dir,
        relative,
        raw,
    })
}

/// `extends` as the user would see it: beside the file that names it.
fn join_display(from: &str, target: &str) -> String {
    match Path::new(from).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(target).display().to_string(),
        _ => target.to_owned(),
    }
}

/// `target`, named in the file at `from` (both relative to the top
/// recipe's folder), relative to the top recipe's folder, `..` folded.
fn join_relative(from: &str, target: &str) -> String {
    let joined = Path::new(from)
        .parent()
        .unwrap_or(Path::new(""))
        .join(target);
    let mut parts: Vec<String> = Vec::new();
    for c in joined.components() {
        match c {
            Component::ParentDir if parts.last().is_some_and(|p| p != "..") => {
                parts.pop();
            }
            Component::ParentDir => parts.push("..".into()),
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    parts.join("/")
}

#[derive(Default)]
struct PlanBuilder {
    /// Where the last [image] table is, for "missing field" errors.
    image_loc: Option<Loc>,
    name: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    /// `--arch`: build for this architecture instead.
    arch_override: Option<String>,
    description: Option<String>,
    supplier: Option<String>,
    source_date_epoch: Option<u64>,
    base: Option<BasePlan>,
    removes: Vec<RemovePlan>,
    overlays: Vec<OverlayPlan>,
    files: Vec<FilePlan>,
    symlinks: Vec<SymlinkPlan>,
    mutable_paths: Vec<String>,
    check_timer: Option<CheckTimerPlan>,
    debian: debian::DebianPlan,
    hardening: hardening::HardeningPlan,
    audit: audit::AuditPlan,
    boot: Option<boot::BootPlan>,
    network: Option<network::NetworkPlan>,
    fleet: Option<fleet::FleetPlan>,
}

impl PlanBuilder {
    fn add(&mut self, layer: Layer) -> Result<(), RecipeError> {
        let Layer {
            file, dir, mut raw, ..
        } = layer;
        let loc = |span: std::ops::Range<usize>| Loc::new(&file, span);
        self.debian.add_layer(
            &file,
            &dir,
            raw.debian.take(),
            std::mem::take(&mut raw.artifact),
        )?;
        if let Some(audit) = raw.audit.take() {
            self.audit.add_layer(&file, &dir, audit)?;
        }
        if let Some(boot) = raw.boot.take() {
            self.boot = Some(boot::BootPlan::add_layer(
                self.boot.take(),
                &file,
                &dir,
                boot,
            )?);
        }
        if let Some(section) = raw.fleet.take() {
            self.fleet = Some(fleet::FleetPlan::add_layer(
                self.fleet.take(),
                &file,
                section,
            )?);
        }
        if let Some(network) = raw.network.take() {
            self.network = Some(network::NetworkPlan::add_layer(
                self.network.take(),
                &file,
                network,
            )?);
        }
        let hardening = hardening::RawHardening {
            users: std::mem::take(&mut raw.user),
            groups: std::mem::take(&mut raw.group),
            ssh: raw.ssh.take(),
            firewall: raw.firewall.take(),
            k3s: raw.k3s.take(),
            sysctl: raw.sysctl.take(),
            minimize: raw.minimize.take(),
            kernel: raw.kernel.take(),
        };
        self.hardening.add_layer(&file, &dir, hardening)?;
        if let Some(image) = raw.image {
            self.image_loc = Some(loc(image.span()));
            let image = image.into_inner();
            if let Some(name) = image.name {
                self.name = Some(check_name(&loc(name.span()), "image name", name.get_ref())?);
            }
            if let Some(version) = image.version {
                self.version = Some(check_version(&loc(version.span()), version.get_ref())?);
            }
            if let Some(arch) = image.arch {
                self.arch = Some(check_arch(&loc(arch.span()), arch.get_ref())?);
            }
            if let Some(description) = image.description {
                self.description = Some(description.into_inner());
            }
            if let Some(supplier) = image.supplier {
                let text = supplier.get_ref().trim();
                if text.is_empty() || text.chars().any(char::is_control) {
                    return Err(loc(supplier.span()).error(
                        "supplier must be a name on one line, like \"Example Corp <release@example.com>\"",
                    ));
                }
                self.supplier = Some(text.to_owned());
            }
            if let Some(epoch) = image.source_date_epoch {
                let value = u64::try_from(*epoch.get_ref()).map_err(|_| {
                    loc(epoch.span()).error(
                        "source_date_epoch must be a non-negative number of seconds since 1970",
                    )
                })?;
                self.source_date_epoch = Some(value);
            }
        }
        if let Some(base) = raw.base {
            let base = base.into_inner();
            let sha256 = base.sha256.get_ref().parse::<Digest>().map_err(|e| {
                loc(base.sha256.span()).error(format!(
                    "{}; compute it with: sha256sum FILE",
                    kiln_diag::clip_quoted(&e)
                ))
            })?;
            let path = dir.join(base.path.get_ref());
            let base_loc = loc(base.path.span());
            if !path.is_file() {
                return Err(base_loc.error(format!(
                    "base tarball {} is not a file (paths are relative to the recipe's folder)",
                    quote(base.path.get_ref())
                )));
            }
            self.base = Some(BasePlan {
                path,
                sha256,
                loc: base_loc,
            });
        }
        for remove in raw.remove {
            let remove = remove.into_inner();
            if remove.paths.get_ref().is_empty() {
                return Err(loc(remove.paths.span())
                    .error("paths is empty; list the paths or globs to remove"));
            }
            for pattern in remove.paths.into_inner() {
                let l = loc(pattern.span());
                let matcher = image_glob(&l, pattern.get_ref())?;
                if pattern.get_ref().trim_end_matches('/').is_empty() {
                    return Err(l.error("refusing to remove the image root \"/\""));
                }
                self.removes.push(RemovePlan {
                    pattern: pattern.into_inner(),
                    matcher,
                    loc: l,
                });
            }
        }
        for overlay in raw.overlay {
            let span = overlay.span();
            let overlay = overlay.into_inner();
            let source = dir.join(overlay.source.get_ref());
            if !source.is_dir() {
                return Err(loc(overlay.source.span()).error(format!(
                    "overlay source {} is not a directory (paths are relative to the recipe's folder)",
                    quote(overlay.source.get_ref())
                )));
            }
            let dest = match &overlay.dest {
                Some(d) => image_dir(&loc(d.span()), d.get_ref())?,
                None => ImagePath::root(),
            };
            let mut rules = Vec::new();
            for rule in overlay.rule {
                let rule = rule.into_inner();
                rules.push(OverlayRule {
                    matcher: image_glob(&loc(rule.path.span()), rule.path.get_ref())?,
                    pattern: rule.path.into_inner(),
                    mode: rule.mode.as_ref().map(|m| mode(&file, m)).transpose()?,
                    owner: rule
                        .owner
                        .as_ref()
                        .map(|o| owner(&file, o, "owner"))
                        .transpose()?,
                    group: rule
                        .group
                        .as_ref()
                        .map(|o| owner(&file, o, "group"))
                        .transpose()?,
                });
            }
            self.overlays.push(OverlayPlan {
                source,
                dest,
                owner: overlay
                    .owner
                    .as_ref()
                    .map(|o| owner(&file, o, "owner"))
                    .transpose()?,
                group: overlay
                    .group
                    .as_ref()
                    .map(|o| owner(&file, o, "group"))
                    .transpose()?,
                file_mode: overlay
                    .file_mode
                    .as_ref()
                    .map(|m| mode(&file, m))
                    .transpose()?
                    .unwrap_or(0o644),
                exec_mode: overlay
                    .exec_mode
                    .as_ref()
                    .map(|m| mode(&file, m))
                    .transpose()?
                    .unwrap_or(0o755),
                dir_mode: overlay
                    .dir_mode
                    .as_ref()
                    .map(|m| mode(&file, m))
                    .transpose()?
                    .unwrap_or(0o755),
                rules,
                loc: loc(span),
            });
        }
        for entry in raw.file {
            let span = entry.span();
            let entry = entry.into_inner();
            let dest = image_path(&loc(entry.dest.span()), "dest", entry.dest.get_ref())?;
            let content = match (entry.content, entry.source) {
                (Some(text), None) => FileContent::Inline(text.into_inner()),
                (None, Some(source)) => {
                    let host = dir.join(source.get_ref());
                    if !host.is_file() {
                        return Err(loc(source.span()).error(format!(
                            "source {} is not a file (paths are relative to the recipe's folder)",
                            quote(source.get_ref())
                        )));
                    }
                    FileContent::Host(host)
                }
                (Some(text), Some(_)) => {
                    return Err(loc(text.span())
                        .error("give either content = \"...\" or source = \"path\", not both"));
                }
                (None, None) => {
                    return Err(loc(span).error(
                        "a [[file]] needs its content: add content = \"...\" or source = \"path\"",
                    ));
                }
            };
            self.files.push(FilePlan {
                dest,
                content,
                mode: entry
                    .mode
                    .as_ref()
                    .map(|m| mode(&file, m))
                    .transpose()?
                    .unwrap_or(0o644),
                owner: entry
                    .owner
                    .as_ref()
                    .map(|o| owner(&file, o, "owner"))
                    .transpose()?,
                group: entry
                    .group
                    .as_ref()
                    .map(|o| owner(&file, o, "group"))
                    .transpose()?,
                loc: loc(span),
            });
        }
        if let Some(check) = raw.check {
            for pattern in check.mutable_paths {
                image_glob(&loc(pattern.span()), pattern.get_ref())?;
                self.mutable_paths.push(pattern.into_inner());
            }
            if let Some(timer) = check.timer {
                self.check_timer = Some(check_timer(&file, &dir, timer, check.keys, check.binary)?);
            } else if let Some(first) = check.keys.first().or(check.binary.as_ref()) {
                return Err(loc(first.span()).error(
                    "keys and binary only matter with a timer; add timer = \"daily\" to [check]",
                ));
            }
        }
        for link in raw.symlink {
            let span = link.span();
            let link = link.into_inner();
            let path = image_path(&loc(link.path.span()), "path", link.path.get_ref())?;
            let target = link.target.get_ref();
            if target.is_empty() || target.contains('\0') {
                return Err(loc(link.target.span()).error("target must be a non-empty path"));
            }
            self.symlinks.push(SymlinkPlan {
                path,
                target: target.clone(),
                loc: loc(span),
            });
        }
        Ok(())
    }

    fn finish(
        mut self,
        top: &Arc<SourceFile>,
        sources: Vec<RecipeSource>,
    ) -> Result<Plan, RecipeError> {
        let recipe_arch = self.arch.clone().unwrap_or_else(|| "amd64".to_owned());
        let arch = self
            .arch_override
            .clone()
            .unwrap_or_else(|| recipe_arch.clone());
        self.debian.select_arch(&arch);
        if let Some(boot) = &mut self.boot {
            boot.select_arch(&arch);
        }
        let image_loc = self
            .image_loc
            .clone()
            .unwrap_or_else(|| Loc::new(top, 0..0));
        if let (Some(network), None) = (&self.network, &self.boot)
            && let Some(loc) = &network.loc
        {
            return Err(loc.error(
                "[network] configures a node that boots from kiln's disk; add a [boot] section",
            ));
        }
        let missing = |field: &str, example: &str| {
            image_loc.error(format!(
                "[image] {field} is missing; add {field} = {example} under [image]",
                example = quote(example)
            ))
        };
        Ok(Plan {
            image: ImagePlan {
                name: self.name.ok_or_else(|| missing("name", "k3s-agent"))?,
                version: self.version.ok_or_else(|| missing("version", "1.0.0"))?,
                arch,
                recipe_arch,
                description: self.description,
                supplier: self.supplier,
                source_date_epoch: self.source_date_epoch,
            },
            base: self.base,
            removes: self.removes,
            overlays: self.overlays,
            files: self.files,
            symlinks: self.symlinks,
            mutable_paths: {
                let mut all: Vec<String> = crate::manifest::DEFAULT_MUTABLE_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect();
                all.extend(self.mutable_paths);
                // What the node writes its metrics into changes at every run.
                if let (Some(_), Some(fleet)) = (&self.check_timer, &self.fleet)
                    && let Some(dir) = &fleet.textfile_dir
                {
                    all.push(dir.to_string());
                }
                all.sort();
                all.dedup();
                all
            },
            // [fleet] shapes the check timer's units; without the timer
            // (no keys, no kiln in the image) it has nothing to run, and
            // the audit's fim.baseline rule says the node has no check.
            check_timer: self.check_timer.map(|timer| CheckTimerPlan {
                fleet: self.fleet,
                ..timer
            }),
            debian: self.debian,
            hardening: self.hardening,
            audit: self.audit,
            boot: self.boot,
            network: self.network,
            sources,
        })
    }
}

#[cfg(test)]
mod tests;
