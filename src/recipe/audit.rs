//! `[audit]` and `[[audit.waive]]`: the release gate's threshold and its
//! waivers, validated into an [`AuditPlan`].

use super::{RecipeError, SourceFile};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {}

#[derive(Debug, Default)]
pub struct AuditPlan {}

impl AuditPlan {
    /// Merges one recipe file's `[audit]` into the plan (a file that
    /// `extends` another comes later and overrides it).
    pub fn add_layer(
        &mut self,
        _file: &Arc<SourceFile>,
        _dir: &Path,
        _raw: Spanned<RawAudit>,
    ) -> Result<(), RecipeError> {
        Ok(())
    }
}
