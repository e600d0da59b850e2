//! `[fleet]`: what a node reports for the fleet view, validated into a
//! [`FleetPlan`]; node_check.rs writes the units (docs/fleet.md).
//!
//! ```toml
//! [fleet]
//! audit = "daily"                               # kiln-audit.timer's OnCalendar=
//! after_boot = "15min"                          # both timers also run this long after boot
//! textfile_dir = "/var/lib/prometheus/node-exporter"   # "" writes no metrics
//! journal = true                                # structured journal entries
//! node_labels = true                            # the image on the Node (labels, annotations)
//! k3s = "/usr/local/bin/k3s"                    # whose kubectl applies them
//! cpu_quota = "20%"                             # of one CPU, for each run
//! ```
//!
//! The section takes effect with `[check] timer`, whose keys and binary
//! it uses. A file that `extends` another replaces the keys it sets.

use super::{Loc, RecipeError, SourceFile};
use kiln_diag::quote;
use kiln_tree::ImagePath;
use serde::Deserialize;
use std::sync::Arc;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub audit: Option<Spanned<String>>,
    pub after_boot: Option<Spanned<String>>,
    pub textfile_dir: Option<Spanned<String>>,
    pub journal: Option<bool>,
    pub node_labels: Option<bool>,
    pub k3s: Option<Spanned<String>>,
    pub cpu_quota: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct FleetPlan {
    /// OnCalendar= of kiln-audit.timer.
    pub audit: String,
    /// OnBootSec= of both timers.
    pub after_boot: String,
    /// node-exporter's textfile directory; `None`: no metrics.
    pub textfile_dir: Option<ImagePath>,
    pub journal: bool,
    pub node_labels: bool,
    pub k3s: ImagePath,
    /// CPUQuota= of the services, "N%".
    pub cpu_quota: String,
    pub loc: Loc,
}

/// Debian's prometheus-node-exporter reads this directory.
pub const DEFAULT_TEXTFILE_DIR: &str = "/var/lib/prometheus/node-exporter";

impl FleetPlan {
    pub fn add_layer(
        previous: Option<FleetPlan>,
        file: &Arc<SourceFile>,
        raw: Spanned<RawFleet>,
    ) -> Result<FleetPlan, RecipeError> {
        let loc = Loc::new(file, raw.span());
        let at = |s: &Spanned<String>| Loc::new(file, s.span());
        let mut plan = previous.unwrap_or_else(|| FleetPlan {
            audit: "daily".into(),
            after_boot: "15min".into(),
            textfile_dir: Some(ImagePath::new(DEFAULT_TEXTFILE_DIR).expect("a valid path")),
            journal: true,
            node_labels: true,
            k3s: ImagePath::new("/usr/local/bin/k3s").expect("a valid path"),
            cpu_quota: "20%".into(),
            loc: loc.clone(),
        });
        plan.loc = loc;
        let raw = raw.into_inner();
        if let Some(audit) = raw.audit {
            plan.audit = systemd_value(
                &at(&audit),
                "audit",
                audit.get_ref(),
                "\"daily\" or \"*-*-* 04:00\"",
            )?;
        }
        if let Some(after) = raw.after_boot {
            let value = systemd_value(&at(&after), "after_boot", after.get_ref(), "\"15min\"")?;
            if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '.')
            {
                return Err(at(&after).error(format!(
                    "after_boot {} is not a systemd time span: write one like \"15min\" or \"1h 30min\"",
                    quote(&value)
                )));
            }
            plan.after_boot = value;
        }
        if let Some(dir) = raw.textfile_dir {
            plan.textfile_dir = textfile_dir(&at(&dir), dir.get_ref())?;
        }
        if let Some(journal) = raw.journal {
            plan.journal = journal;
        }
        if let Some(labels) = raw.node_labels {
            plan.node_labels = labels;
        }
        if let Some(k3s) = raw.k3s {
            plan.k3s = super::fields::image_path(&at(&k3s), "k3s", k3s.get_ref())?;
        }
        if let Some(quota) = raw.cpu_quota {
            plan.cpu_quota = cpu_quota(&at(&quota), quota.get_ref())?;
        }
        Ok(plan)
    }
}

/// A value placed on a unit file line: not empty, no control characters.
fn systemd_value(loc: &Loc, key: &str, value: &str, like: &str) -> Result<String, RecipeError> {
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err(loc.error(format!(
            "{key} must be a systemd value on one line, like {like}"
        )));
    }
    Ok(value.trim().to_owned())
}

/// The metrics directory: written at run time, so below /var or /run
/// (the root of a booted image is read-only); "" turns metrics off.
fn textfile_dir(loc: &Loc, raw: &str) -> Result<Option<ImagePath>, RecipeError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let path = super::fields::image_path(loc, "textfile_dir", raw)?;
    let writable = ["/var/", "/run/"]
        .iter()
        .any(|p| path.as_str().starts_with(p));
    if !writable || path.as_str().contains(['\\', ' ', '%']) {
        return Err(loc.error(format!(
            "textfile_dir {} must be a directory below /var or /run (the node's root is read-only), like {}; \"\" writes no metrics",
            quote(raw),
            quote(DEFAULT_TEXTFILE_DIR)
        )));
    }
    Ok(Some(path))
}

/// "N%" with N from 1 to 100: a share of one CPU.
fn cpu_quota(loc: &Loc, raw: &str) -> Result<String, RecipeError> {
    let ok = raw
        .strip_suffix('%')
        .and_then(|n| n.parse::<u8>().ok())
        .is_some_and(|n| (1..=100).contains(&n));
    if !ok {
        return Err(loc.error(format!(
            "cpu_quota {} must be a percentage of one CPU from 1% to 100%, like \"20%\"",
            quote(raw)
        )));
    }
    Ok(raw.to_owned())
}
