//! The hardening sections of a recipe — `[[user]]`, `[[group]]`, `[ssh]`,
//! `[firewall]`, `[k3s]`, `[sysctl]`, `[minimize]`, `[kernel]` — validated
//! into a [`HardeningPlan`].

use super::{RecipeError, SourceFile};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirewall {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawK3s {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSysctl {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMinimize {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKernel {}

/// One recipe file's hardening sections, as written.
pub struct RawHardening {
    pub users: Vec<Spanned<RawUser>>,
    pub groups: Vec<Spanned<RawGroup>>,
    pub ssh: Option<Spanned<RawSsh>>,
    pub firewall: Option<Spanned<RawFirewall>>,
    pub k3s: Option<Spanned<RawK3s>>,
    pub sysctl: Option<Spanned<RawSysctl>>,
    pub minimize: Option<Spanned<RawMinimize>>,
    pub kernel: Option<Spanned<RawKernel>>,
}

#[derive(Debug, Default)]
pub struct HardeningPlan {}

impl HardeningPlan {
    /// Merges one recipe file's sections into the plan (a file that
    /// `extends` another comes later and overrides or appends).
    pub fn add_layer(
        &mut self,
        _file: &Arc<SourceFile>,
        _dir: &Path,
        _raw: RawHardening,
    ) -> Result<(), RecipeError> {
        Ok(())
    }
}
