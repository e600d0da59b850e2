//! `[debian]` (the package set) and `[[artifact]]` (pinned files that are
//! not Debian packages, such as the K3s binary), validated into a
//! [`DebianPlan`].

use super::fields::{ForArch, arch_qualified, check_arch};
use super::value::RawValue;
use super::{Loc, RecipeError, SourceFile, did_you_mean, image_path, mode};
use kiln_diag::quote;
use kiln_tree::{Digest, ImagePath};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDebian {
    pub suite: Option<Spanned<String>>,
    pub updates: Option<bool>,
    pub security: Option<bool>,
    pub components: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub packages: Vec<Spanned<String>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    pub recommends: Option<bool>,
    pub variant: Option<Spanned<String>>,
    pub mirror: Option<Spanned<String>>,
    pub security_mirror: Option<Spanned<String>>,
    pub keyring: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArtifact {
    pub name: Spanned<String>,
    pub url: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub sha256: Spanned<String>,
    pub dest: Spanned<String>,
    pub mode: Option<RawValue>,
    pub arch: Option<Spanned<String>>,
}

pub use kiln_debian::resolve::Variant;

const VARIANTS: &[&str] = &["essential", "minbase", "required", "important"];

#[derive(Debug, Default)]
pub struct DebianPlan {
    /// `None` when no recipe file has a `[debian]` table.
    pub section: Option<DebianSection>,
    pub artifacts: Vec<ArtifactPlan>,
}

#[derive(Debug)]
pub struct DebianSection {
    pub suite: String,
    pub updates: bool,
    pub security: bool,
    pub components: Vec<String>,
    /// The packages and exclusions for the image's architecture, chosen
    /// from `requested` and `excluded` by [`DebianPlan::select_arch`].
    pub packages: Vec<String>,
    pub exclude: Vec<String>,
    /// As written, each with its `[arch ...]` qualifier.
    pub requested: Vec<ForArch<String>>,
    pub excluded: Vec<ForArch<String>>,
    pub recommends: bool,
    pub variant: Variant,
    pub mirror: Option<String>,
    pub security_mirror: Option<String>,
    pub keyring: Option<PathBuf>,
    pub loc: Loc,
    /// Where each of `packages` and `exclude` was first written: errors
    /// found when resolving the request point there.
    pub package_locs: BTreeMap<String, Loc>,
    pub exclude_locs: BTreeMap<String, Loc>,
}

#[derive(Debug, Clone)]
pub struct ArtifactPlan {
    pub name: String,
    pub source: ArtifactSource,
    pub sha256: Digest,
    pub dest: ImagePath,
    pub mode: u32,
    /// `arch = "arm64"`: the pin for that architecture only.
    pub arch: Option<String>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub enum ArtifactSource {
    Url(String),
    Path(PathBuf),
}

impl DebianPlan {
    /// Merges one recipe file's `[debian]` and `[[artifact]]` tables: a
    /// later file overrides settings, appends packages and exclusions, and
    /// replaces an artifact of the same name.
    pub fn add_layer(
        &mut self,
        file: &Arc<SourceFile>,
        dir: &Path,
        raw: Option<Spanned<RawDebian>>,
        artifacts: Vec<Spanned<RawArtifact>>,
    ) -> Result<(), RecipeError> {
        let loc = |span: std::ops::Range<usize>| Loc::new(file, span);
        if let Some(raw) = raw {
            let table_loc = loc(raw.span());
            let raw = raw.into_inner();
            let section = self.section.get_or_insert_with(|| DebianSection {
                suite: String::new(),
                updates: true,
                security: true,
                components: vec!["main".into()],
                packages: Vec::new(),
                exclude: Vec::new(),
                requested: Vec::new(),
                excluded: Vec::new(),
                recommends: false,
                variant: Variant::Minbase,
                mirror: None,
                security_mirror: None,
                keyring: None,
                loc: table_loc.clone(),
                package_locs: BTreeMap::new(),
                exclude_locs: BTreeMap::new(),
            });
            section.loc = table_loc;
            if let Some(suite) = raw.suite {
                let ok = !suite.get_ref().is_empty()
                    && suite
                        .get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(loc(suite.span())
                        .error("suite must be a Debian suite or codename, like \"bookworm\""));
                }
                section.suite = suite.into_inner();
            }
            if let Some(v) = raw.updates {
                section.updates = v;
            }
            if let Some(v) = raw.security {
                section.security = v;
            }
            if let Some(v) = raw.recommends {
                section.recommends = v;
            }
            if let Some(components) = raw.components {
                section.components = components
                    .into_iter()
                    .map(|c| package_like(&loc(c.span()), "component", c.get_ref()))
                    .collect::<Result<_, _>>()?;
            }
            for p in raw.packages {
                let at = loc(p.span());
                let (name, only) = arch_qualified(&at, p.get_ref())?;
                let name = package_like(&at, "package", name)?;
                section.package_locs.entry(name.clone()).or_insert(at);
                section.requested.push(ForArch { value: name, only });
            }
            for p in raw.exclude {
                let at = loc(p.span());
                let (name, only) = arch_qualified(&at, p.get_ref())?;
                let name = package_like(&at, "package", name)?;
                section.exclude_locs.entry(name.clone()).or_insert(at);
                section.excluded.push(ForArch { value: name, only });
            }
            if let Some(variant) = raw.variant {
                section.variant = match variant.get_ref().as_str() {
                    "essential" => Variant::Essential,
                    "minbase" | "required" => Variant::Minbase,
                    "important" => Variant::Important,
                    other => {
                        let hint = match did_you_mean(other, VARIANTS.iter().copied()) {
                            Some(best) => format!("did you mean {best}?", best = quote(best)),
                            None => format!("known: {}", VARIANTS.join(", ")),
                        };
                        return Err(loc(variant.span()).error(format!(
                            "unknown variant {other}; {hint}",
                            other = quote(other)
                        )));
                    }
                };
            }
            if let Some(mirror) = raw.mirror {
                section.mirror = Some(mirror_url(&loc(mirror.span()), mirror.get_ref())?);
            }
            if let Some(mirror) = raw.security_mirror {
                section.security_mirror = Some(mirror_url(&loc(mirror.span()), mirror.get_ref())?);
            }
            if let Some(keyring) = raw.keyring {
                let path = dir.join(keyring.get_ref());
                if !path.is_file() {
                    return Err(loc(keyring.span()).error(format!(
                        "keyring {} is not a file (paths are relative to the recipe's folder)",
                        quote(keyring.get_ref())
                    )));
                }
                section.keyring = Some(path);
            }
        }
        // A file's artifacts replace every pin of the same name before it
        // (all architectures): a recipe that extends another and supplies
        // its own K3s means its own, whatever the image's architecture.
        let names: Vec<String> = artifacts
            .iter()
            .map(|a| a.get_ref().name.get_ref().clone())
            .collect();
        self.artifacts.retain(|a| !names.contains(&a.name));
        let earlier = self.artifacts.len();
        for artifact in artifacts {
            let span = artifact.span();
            let raw = artifact.into_inner();
            let name = raw.name.get_ref();
            let name_ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !name_ok {
                return Err(loc(raw.name.span()).error(format!(
                    "artifact name {name} is not valid: use letters, digits, '.', '_' and '-' (it is what --artifact NAME=PATH names)", name = quote(name)
                )));
            }
            let source = match (raw.url, raw.path) {
                (Some(url), None) => {
                    ArtifactSource::Url(mirror_url(&loc(url.span()), url.get_ref())?)
                }
                (None, Some(path)) => ArtifactSource::Path(dir.join(path.get_ref())),
                (Some(url), Some(_)) => {
                    return Err(loc(url.span())
                        .error("give either url = \"...\" or path = \"...\", not both"));
                }
                (None, None) => {
                    return Err(loc(span).error(
                        "an [[artifact]] needs a source: add url = \"https://...\" or path = \"file\" (or supply it with --artifact NAME=PATH)",
                    ));
                }
            };
            let sha256 = raw.sha256.get_ref().parse::<Digest>().map_err(|e| {
                loc(raw.sha256.span()).error(format!(
                    "{}; compute it with: sha256sum FILE",
                    kiln_diag::clip_quoted(&e)
                ))
            })?;
            let plan = ArtifactPlan {
                name: name.clone(),
                source,
                sha256,
                dest: image_path(&loc(raw.dest.span()), "dest", raw.dest.get_ref())?,
                mode: raw
                    .mode
                    .as_ref()
                    .map(|m| mode(file, m))
                    .transpose()?
                    .unwrap_or(0o644),
                arch: raw
                    .arch
                    .as_ref()
                    .map(|a| check_arch(&loc(a.span()), a.get_ref()))
                    .transpose()?,
                loc: loc(span),
            };
            if self.artifacts[earlier..]
                .iter()
                .any(|a| a.name == plan.name && a.arch == plan.arch)
            {
                return Err(plan.loc.error(format!(
                    "artifact {} is pinned twice{}; give each [[artifact]] of one name its own arch = \"...\"",
                    quote(&plan.name),
                    plan.arch.as_ref().map(|a| format!(" for {a}")).unwrap_or_default()
                )));
            }
            self.artifacts.push(plan);
        }
        Ok(())
    }

    /// Keeps what applies to `arch`: the packages and exclusions whose
    /// `[arch ...]` admits it, and of each artifact the pin for `arch`,
    /// else the one without `arch` (none: the image goes without it).
    pub fn select_arch(&mut self, arch: &str) {
        if let Some(section) = &mut self.section {
            let admitted = |list: &[ForArch<String>]| -> Vec<String> {
                list.iter()
                    .filter(|p| p.admits(arch))
                    .map(|p| p.value.clone())
                    .collect()
            };
            section.packages = admitted(&section.requested);
            section.exclude = admitted(&section.excluded);
        }
        let all = std::mem::take(&mut self.artifacts);
        for artifact in &all {
            let own = artifact.arch.as_deref() == Some(arch);
            let generic = artifact.arch.is_none()
                && !all
                    .iter()
                    .any(|a| a.name == artifact.name && a.arch.as_deref() == Some(arch));
            if own || generic {
                self.artifacts.push(artifact.clone());
            }
        }
    }
}

/// Package and component names as Debian Policy 5.6.1 allows them.
fn package_like(loc: &Loc, what: &str, name: &str) -> Result<String, RecipeError> {
    let ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !ok {
        return Err(loc.error(format!(
            "{name} is not a valid {what} name: lowercase letters, digits, '+', '-' and '.', at least two characters", name = quote(name)
        )));
    }
    Ok(name.to_owned())
}

fn mirror_url(loc: &Loc, url: &str) -> Result<String, RecipeError> {
    let ok = ["http://", "https://", "file://"]
        .iter()
        .any(|p| url.starts_with(p))
        && !url.contains(char::is_whitespace);
    if !ok {
        return Err(loc.error(format!(
            "{url} is not a URL kiln can fetch: use http://, https:// or file://",
            url = quote(url)
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}
