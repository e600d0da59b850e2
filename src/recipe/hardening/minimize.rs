//! `[minimize]`: what to strip from the image, and which services to
//! keep or mask.

use super::{Cx, Strings};
use crate::recipe::{Loc, RecipeError, image_path};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMinimize {
    pub remove_docs: Option<bool>,
    pub keep_locales: Option<Strings>,
    pub remove_package_manager: Option<bool>,
    pub setuid_allow: Option<Strings>,
    pub keep_services: Option<Strings>,
    pub mask: Option<Strings>,
}

#[derive(Debug, Clone)]
pub struct MinimizePlan {
    pub remove_docs: bool,
    pub keep_locales: Option<Vec<String>>,
    pub remove_package_manager: bool,
    pub setuid_allow: Option<Vec<String>>,
    pub keep_services: Option<Vec<String>>,
    pub mask: Vec<String>,
    pub loc: Loc,
}

impl Cx<'_> {
    pub(super) fn minimize(
        &self,
        plan: &mut MinimizePlan,
        raw: RawMinimize,
    ) -> Result<(), RecipeError> {
        if let Some(v) = raw.remove_docs {
            plan.remove_docs = v;
        }
        if let Some(v) = raw.remove_package_manager {
            plan.remove_package_manager = v;
        }
        if let Some(list) = &raw.keep_locales {
            plan.keep_locales = Some(self.names(list, "keep_locales", |l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_@.-".contains(c))
            })?);
        }
        if let Some(list) = &raw.setuid_allow {
            let mut paths = Vec::new();
            for item in list {
                paths.push(
                    image_path(&self.loc(item.span()), "setuid_allow", item.get_ref())?
                        .as_str()
                        .to_owned(),
                );
            }
            plan.setuid_allow = Some(paths);
        }
        let unit = |u: &str| kiln_policy::units::is_unit_name(u);
        if let Some(list) = &raw.keep_services {
            plan.keep_services = Some(self.names(
                list,
                "keep_services (a unit name like \"fstrim.timer\")",
                unit,
            )?);
        }
        if let Some(list) = &raw.mask {
            plan.mask = self.names(list, "mask (a unit name like \"apt-daily.service\")", unit)?;
        }
        Ok(())
    }
}
