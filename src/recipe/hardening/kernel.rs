//! `[kernel]`: modules loaded at boot and modules kept in the image.

use super::{Cx, Strings};
use crate::recipe::{Loc, RecipeError, did_you_mean};
use kiln_diag::quote;
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKernel {
    /// Modules loaded at boot (modules-load.d), besides K3s's.
    pub load: Option<Strings>,
    /// Modules kept in /usr/lib/modules (with their dependencies).
    pub modules: Option<Strings>,
    /// A named list of modules to keep, added to `modules`.
    pub profile: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct KernelPlan {
    pub load: Vec<String>,
    pub modules: Option<Vec<String>>,
    pub profile: Option<String>,
    pub loc: Loc,
}

impl Cx<'_> {
    pub(super) fn kernel(&self, plan: &mut KernelPlan, raw: RawKernel) -> Result<(), RecipeError> {
        let module = |m: &str| {
            !m.is_empty()
                && m.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-*?".contains(c))
        };
        if let Some(list) = &raw.load {
            plan.load = self.names(list, "load (a module name)", |m| {
                module(m) && !m.contains(['*', '?'])
            })?;
        }
        if let Some(list) = &raw.modules {
            plan.modules = Some(self.names(
                list,
                "modules (a module name or glob like \"nft_*\")",
                module,
            )?);
        }
        if let Some(p) = &raw.profile {
            let names = kiln_policy::modules::PROFILES.iter().map(|(n, _)| *n);
            if !kiln_policy::modules::PROFILES
                .iter()
                .any(|(n, _)| n == p.get_ref())
            {
                let hint = did_you_mean(p.get_ref(), names.clone())
                    .map(|b| format!(", did you mean {b}?", b = quote(b)))
                    .unwrap_or_else(|| {
                        format!("; profiles: {}", names.collect::<Vec<_>>().join(", "))
                    });
                return Err(self.loc(p.span()).error(format!(
                    "unknown kernel profile {}{hint}",
                    quote(p.get_ref())
                )));
            }
            plan.profile = Some(p.get_ref().clone());
        }
        Ok(())
    }
}
