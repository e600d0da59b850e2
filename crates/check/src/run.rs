//! One run of the check or the audit as a timer starts it: do the work,
//! time it, report it for the fleet. `kiln check`/`kiln audit` and
//! `kiln-node check`/`kiln-node audit` are this, with their own output.

use crate::drift::{self, CheckOptions, Drift};
use crate::fleet::{self, Outputs, Run};
use crate::trust::{self, VerifiedManifest};
use anyhow::Result;
use kiln_policy::audit::{AuditConfig, Report};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// What a run found, and whether its report reached the fleet.
pub struct Ran<T> {
    pub outcome: Result<T>,
    /// A report that could not be written: the run must not look healthy.
    pub report: Result<()>,
}

impl<T> Ran<T> {
    /// The exit code: `code` from the outcome, a failure instead of a
    /// success when the report was lost.
    pub fn code(&self, code: u8, failure: u8) -> u8 {
        if self.report.is_err() && code == 0 {
            failure
        } else {
            code
        }
    }
}

/// Verifies the manifest at `manifest` with `keys` (files or directories
/// of `*.pub`), then checks `options.root` against it; `verified` hears
/// of the manifest before the walk starts.
pub fn check(
    manifest: &Path,
    keys: &[PathBuf],
    options: &CheckOptions<'_>,
    out: &Outputs,
    verified: &mut dyn FnMut(&VerifiedManifest),
) -> Ran<(VerifiedManifest, Vec<Drift>)> {
    let started = (SystemTime::now(), Instant::now());
    let outcome = (|| -> Result<_> {
        let keys = trust::load_public_keys(keys)?;
        let manifest = trust::verify_manifest(manifest, &keys)?;
        verified(&manifest);
        let found = drift::check(&manifest.manifest, options)?;
        Ok((manifest, found))
    })();
    let run = Run {
        started: started.0,
        duration: started.1.elapsed(),
    };
    let report = fleet::report_check(out, outcome.as_ref().map(|(v, d)| (v, d.as_slice())), &run);
    Ran { outcome, report }
}

/// Audits the image or live root at `path`.
pub fn audit(path: &Path, config: &AuditConfig, out: &Outputs) -> Ran<Report> {
    let started = (SystemTime::now(), Instant::now());
    let outcome = kiln_policy::audit::audit_path(path, config);
    let run = Run {
        started: started.0,
        duration: started.1.elapsed(),
    };
    let report = fleet::report_audit(out, outcome.as_ref(), &run);
    Ran { outcome, report }
}
