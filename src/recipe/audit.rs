//! `[audit]` and `[[audit.waive]]`: the release gate's threshold and its
//! waivers, validated into an [`AuditPlan`].
//!
//! ```toml
//! [audit]
//! fail_on = "high"            # critical | high | medium | low | none
//!
//! [[audit.waive]]
//! rule = "pkg.mutators"       # a rule id (`kiln audit --list-rules`)
//! reason = "perl-base is Essential: dpkg maintainer scripts need it"
//! expires = "2027-01-31"      # optional, last day it applies (UTC)
//! paths = ["/usr/bin/perl*"]  # optional: waive only findings there
//! ```
//!
//! A file that `extends` another overrides its `fail_on` and adds to its
//! waivers.

use super::{Loc, RecipeError, SourceFile, did_you_mean};
use kiln_diag::quote;
use kiln_policy::audit::{Date, FailOn, Waiver, rule_ids};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub fail_on: Option<Spanned<String>>,
    #[serde(default)]
    pub waive: Vec<Spanned<RawWaiver>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWaiver {
    pub rule: Option<Spanned<String>>,
    pub reason: Option<Spanned<String>>,
    /// `"2027-01-31"` or a bare TOML date `2027-01-31`.
    pub expires: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
}

/// One validated waiver.
#[derive(Debug, Clone)]
pub struct WaiverPlan {
    pub rule: String,
    pub reason: String,
    pub expires: Option<Date>,
    pub paths: Vec<String>,
    pub loc: Loc,
}

#[derive(Debug, Default)]
pub struct AuditPlan {
    /// Findings at or above this severity fail the build (default high).
    pub fail_on: FailOn,
    pub waivers: Vec<WaiverPlan>,
}

impl AuditPlan {
    /// Merges one recipe file's `[audit]` into the plan (a file that
    /// `extends` another comes later and overrides it).
    pub fn add_layer(
        &mut self,
        file: &Arc<SourceFile>,
        _dir: &Path,
        raw: Spanned<RawAudit>,
    ) -> Result<(), RecipeError> {
        let raw = raw.into_inner();
        if let Some(fail_on) = raw.fail_on {
            let loc = Loc::new(file, fail_on.span());
            self.fail_on = fail_on.get_ref().parse().map_err(|_| {
                let word = fail_on.get_ref();
                loc.error(match did_you_mean(word, FailOn::CHOICES) {
                    Some(best) => format!(
                        "unknown fail_on {word}, did you mean {best}?",
                        word = quote(word),
                        best = quote(best)
                    ),
                    None => format!(
                        "unknown fail_on {word}; use one of {}",
                        FailOn::CHOICES.join(", "),
                        word = quote(word)
                    ),
                })
            })?;
        }
        let ids = rule_ids();
        for waive in raw.waive {
            let table = Loc::new(file, waive.span());
            let waive = waive.into_inner();
            let Some(rule) = waive.rule else {
                return Err(table.error(
                    "a waiver needs the rule it waives: add rule = \"ssh.x11\" (see kiln audit --list-rules)",
                ));
            };
            let rule_loc = Loc::new(file, rule.span());
            let id = rule.into_inner();
            if !ids.contains(&id.as_str()) {
                return Err(
                    rule_loc.error(match did_you_mean(&id, ids.iter().copied()) {
                        Some(best) => format!(
                            "unknown rule {id}, did you mean {best}?",
                            id = quote(&id),
                            best = quote(best)
                        ),
                        None => format!(
                            "unknown rule {id}; list the rules with kiln audit --list-rules",
                            id = quote(&id)
                        ),
                    }),
                );
            }
            let reason = match waive.reason {
                Some(reason) if !reason.get_ref().trim().is_empty() => reason.into_inner(),
                Some(reason) => {
                    return Err(Loc::new(file, reason.span())
                        .error("reason is empty; say why this rule may fail for this image"));
                }
                None => {
                    return Err(table.error(format!(
                        "the waiver of {id} needs a reason: add reason = \"...\" saying why it may fail"
                    )));
                }
            };
            let expires = match waive.expires {
                None => None,
                Some(value) => {
                    let loc = Loc::new(file, value.span());
                    let text = match value.get_ref() {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => {
                            d.to_string()
                        }
                        _ => {
                            return Err(loc.error(
                                "expires must be a date like \"2027-01-31\" (the last day the waiver applies)",
                            ));
                        }
                    };
                    Some(Date::parse(&text).ok_or_else(|| {
                        loc.error(format!(
                            "expires {text} is not a date like \"2027-01-31\" (YYYY-MM-DD, the last day the waiver applies)", text = quote(&text)
                        ))
                    })?)
                }
            };
            let mut paths = Vec::new();
            for pattern in waive.paths {
                let loc = Loc::new(file, pattern.span());
                let p = pattern.into_inner();
                if !p.starts_with('/') {
                    return Err(loc.error(format!(
                        "{p} must be an absolute image path or glob, like {}",
                        quote(&format!("/{}", p.trim_start_matches("./"))),
                        p = quote(&p)
                    )));
                }
                globset::GlobBuilder::new(&p)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| {
                        loc.error(format!("invalid glob {p}: {}", e.kind(), p = quote(&p)))
                    })?;
                paths.push(p);
            }
            self.waivers.push(WaiverPlan {
                rule: id,
                reason,
                expires,
                paths,
                loc: rule_loc,
            });
        }
        Ok(())
    }

    /// The waivers as the audit takes them.
    pub fn waivers(&self) -> Vec<Waiver> {
        self.waivers
            .iter()
            .map(|w| Waiver {
                rule: w.rule.clone(),
                reason: w.reason.clone(),
                expires: w.expires,
                paths: w.paths.clone(),
                origin: Some(w.loc.position()),
            })
            .collect()
    }
}
