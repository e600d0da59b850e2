//! `[sysctl]`: kernel parameters, merged by key across `extends`.

use super::Cx;
use crate::recipe::{Loc, RecipeError};
use kiln_diag::quote;
use kiln_policy::sysctl as hsysctl;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// `[sysctl]`: `key = value` pairs; dotted keys (`kernel.sysrq = 0`)
/// and quoted ones (`"kernel.sysrq" = 0`) mean the same. `allow_weaker`
/// is the one key that is not a kernel parameter.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct RawSysctl(pub BTreeMap<String, Spanned<toml::Value>>);

#[derive(Debug, Clone)]
pub struct SysctlPlan {
    /// key → (value, where set).
    pub values: BTreeMap<String, (String, Loc)>,
    pub weakened: Vec<(String, String)>,
    pub loc: Loc,
}

impl Cx<'_> {
    pub(super) fn sysctl(&self, plan: &mut SysctlPlan, raw: RawSysctl) -> Result<(), RecipeError> {
        let mut allow: Option<String> = None;
        let mut flat: Vec<(String, String, Loc)> = Vec::new();
        for (key, value) in raw.0 {
            let loc = self.loc(value.span());
            if key == "allow_weaker" {
                match value.get_ref() {
                    toml::Value::String(s) if !s.trim().is_empty() => {
                        allow = Some(s.trim().to_owned())
                    }
                    _ => return Err(loc.error("allow_weaker needs the reason, as a string")),
                }
                continue;
            }
            flatten(&key, value.get_ref(), &loc, &mut flat)?;
        }
        for (key, value, loc) in flat {
            let valid_key = !key.is_empty()
                && key.split('.').all(|p| !p.is_empty())
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
            if !valid_key {
                return Err(loc.error(format!(
                    "{key} is not a kernel parameter name like \"kernel.sysrq\"",
                    key = quote(&key)
                )));
            }
            if let Some(required) = hsysctl::kubelet_value(&key)
                && value != required
            {
                return Err(loc.error(format!(
                        "sysctl {key} = {value}: the kubelet (protect-kernel-defaults, rule k3s.sysctl-file) refuses to start unless it is {required}"
                    )));
            }
            if hsysctl::is_forwarding(&key) && value == "0" {
                return Err(loc.error(format!(
                    "sysctl {key} = 0 turns off forwarding, which K3s networking needs (rule k3s.forwarding)"
                )));
            }
            if let Some(why) = hsysctl::weakens(&key, &value) {
                match &allow {
                    Some(reason) => plan
                        .weakened
                        .push((format!("{key} = {value}"), reason.clone())),
                    None => {
                        return Err(loc.error(format!(
                            "sysctl {key} = {value} weakens kiln's hardened value ({why}); make it stricter, or add allow_weaker = \"why\" to this [sysctl] table"
                        )));
                    }
                }
            }
            plan.values.insert(key, (value, loc));
        }
        Ok(())
    }
}

/// A sysctl value: an integer, or a string of them.
fn flatten(
    prefix: &str,
    value: &toml::Value,
    loc: &Loc,
    out: &mut Vec<(String, String, Loc)>,
) -> Result<(), RecipeError> {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                flatten(&format!("{prefix}.{k}"), v, loc, out)?;
            }
            Ok(())
        }
        toml::Value::Integer(n) => {
            out.push((prefix.to_owned(), n.to_string(), loc.clone()));
            Ok(())
        }
        toml::Value::String(s) if !s.is_empty() && !s.contains(['\n', '#', ';']) => {
            out.push((
                prefix.to_owned(),
                s.split_whitespace().collect::<Vec<_>>().join(" "),
                loc.clone(),
            ));
            Ok(())
        }
        toml::Value::Boolean(b) => Err(loc.error(format!(
            "sysctl {prefix} = {b}: write {} (kernel parameters are numbers)",
            u8::from(*b)
        ))),
        other => Err(loc.error(format!(
            "sysctl {prefix} = {other} is not a number or a string"
        ))),
    }
}
