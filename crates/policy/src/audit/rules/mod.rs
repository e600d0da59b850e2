//! The rule catalogue, one module per group. Ids, severities and sources
//! follow the project's shared reference, hardening-rules.md (ssh.match is kiln's
//! own: Match blocks flagged for review). Applicability, per group:
//!
//! - k3s.*: not applicable without K3s (no k3s binary, /etc/rancher,
//!   /var/lib/rancher/k3s or k3s unit).
//! - fw.*: always applicable; every fw rule fails when /etc/nftables.conf
//!   is absent, since this product requires default-deny.
//! - ssh.*: not applicable without /usr/sbin/sshd.
//! - sys.*, fs.setuid, fs.world-writable, pkg.*, acct.trust-files:
//!   always applicable.
//! - fs.unowned and acct.* (but trust-files): not applicable without
//!   /etc/passwd.
//! - img.*, ssh.no-host-keys, k3s.no-node-identity, k3s.no-baked-token:
//!   about what an image must not carry; not applicable on a live node,
//!   which has its own identity.

mod acct;
mod fim;
mod fs;
mod fw;
mod img;
mod k3s;
mod pkg;
mod ssh;
mod sys;

use super::{Check, Ctx, Finding, RuleInfo};

pub struct Rule {
    pub info: RuleInfo,
    pub check: fn(&Ctx) -> Check,
}

/// Every rule, grouped as the reference lists them.
pub fn all() -> impl Iterator<Item = &'static Rule> {
    k3s::RULES
        .iter()
        .chain(fw::RULES)
        .chain(ssh::RULES)
        .chain(sys::RULES)
        .chain(fs::RULES)
        .chain(acct::RULES)
        .chain(pkg::RULES)
        .chain(img::RULES)
        .chain(fim::RULES)
}

macro_rules! rule {
    (
        $id:literal, $severity:ident, $check:path,
        title: $title:literal,
        source: $source:literal,
        rationale: $rationale:literal,
        remediation: $remediation:literal $(,)?
    ) => {
        $crate::audit::rules::Rule {
            info: $crate::audit::RuleInfo {
                id: $id,
                title: $title,
                severity: $crate::audit::Severity::$severity,
                rationale: $rationale,
                remediation: $remediation,
                source: $source,
            },
            check: $check,
        }
    };
}
pub(crate) use rule;

fn findings(found: Vec<Finding>) -> Check {
    Check::Findings(found)
}

fn not_applicable(reason: impl Into<String>) -> Check {
    Check::NotApplicable(reason.into())
}

/// Checks owner and mode of what `path` leads to: no permission bit
/// outside `max_mode`, owner uid 0, group among `gids`.
fn owner_mode(ctx: &Ctx, path: &str, max_mode: u32, gids: &[u32], out: &mut Vec<Finding>) {
    let Some((_, entry)) = ctx.img.stat(path) else {
        return;
    };
    let m = &entry.meta;
    let value = format!("{:04o} {}:{}", m.mode & 0o7777, m.uid, m.gid);
    if m.mode & 0o7777 & !max_mode != 0 {
        out.push(Finding::new(
            path,
            value.clone(),
            format!(
                "mode {:04o} allows more than {max_mode:04o}",
                m.mode & 0o7777
            ),
        ));
    }
    if m.uid != 0 {
        out.push(Finding::new(
            path,
            value.clone(),
            format!("owned by uid {}, not root", m.uid),
        ));
    }
    if !gids.contains(&m.gid) {
        out.push(Finding::new(
            path,
            value,
            format!("group is gid {}, expected {gids:?}", m.gid),
        ));
    }
}

/// The image's systemd unit directories, most specific first.
use crate::units::SEARCH as UNIT_DIRS;

/// Unit files (and drop-ins) whose name matches `wanted`.
fn unit_files(ctx: &Ctx, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for dir in UNIT_DIRS {
        for (name, path) in ctx.img.list_dir(dir) {
            if wanted(&name) {
                if ctx.img.is_dir(path.as_str()) {
                    for (_, inner) in ctx.img.list_dir(path.as_str()) {
                        if ctx.img.is_file(inner.as_str()) {
                            out.push(inner.as_str().to_owned());
                        }
                    }
                } else if ctx.img.is_file(path.as_str()) {
                    out.push(path.as_str().to_owned());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The integer a sysctl-like value holds.
fn int(value: &str) -> Option<i64> {
    value.trim().parse().ok()
}
