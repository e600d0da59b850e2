//! The fleet view: what `kiln check` and `kiln audit` found on a node,
//! put where fleet tooling already reads — Prometheus metrics for
//! node-exporter's textfile collector (`metrics`), structured journal
//! entries (`journal`) and a patch of the node's Node object
//! (`node_labels`). kiln runs no agent: timers run it (node_check.rs),
//! these files and entries are its whole output. docs/fleet.md.

pub mod journal;
pub mod metrics;
pub mod node_labels;

use crate::drift::{DRIFT_EVENTS, Drift};
use crate::trust::VerifiedManifest;
use anyhow::Result;
use journal::{Entry, Journal};
use kiln_policy::audit::{Report, Severity, Status};
use metrics::Metrics;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The metrics files kiln writes into the textfile directory; one per
/// command, so the check and the audit never overwrite each other.
pub const CHECK_METRICS: &str = "kiln_check.prom";
pub const AUDIT_METRICS: &str = "kiln_audit.prom";

/// At most this many entries per run for single events (drift events,
/// audit findings): a node that drifted wholesale must not flood the
/// journal. The summary entry says how many were left out.
pub const MAX_EVENT_ENTRIES: usize = 100;

/// MESSAGE_IDs: one fixed 128-bit id per kind of entry, for journal
/// forwarders and SIEMs to route on (`journalctl MESSAGE_ID=…`). They
/// never change once shipped; docs/fleet.md lists them.
pub mod message_id {
    /// One drift event: KILN_EVENT, KILN_PATH, KILN_EXPECTED, KILN_FOUND.
    pub const DRIFT: &str = "78f15948e9d0417f8edff5fc0ecc0bc4";
    /// The end of a check: KILN_DRIFT_EVENTS, KILN_NOT_LOGGED.
    pub const CHECK_DONE: &str = "ecf332467d0c43c5b719d917a84a050e";
    /// A check that could not finish: an untrusted manifest (KILN_VERIFIED=0)
    /// or an error.
    pub const CHECK_FAILED: &str = "8a80975273a84225a326bb56148b3b24";
    /// One audit finding: KILN_RULE, KILN_SEVERITY, KILN_PATH, KILN_VALUE.
    pub const AUDIT_FINDING: &str = "86b4a57bfba24e53bdb67ee6ba5e7e52";
    /// The end of an audit: KILN_FAILED_RULES, KILN_CRITICAL … KILN_LOW.
    pub const AUDIT_DONE: &str = "8d7b91771acc4399939131ee66f9d0ce";
    /// An audit that could not run.
    pub const AUDIT_FAILED: &str = "4f049a371f4d40dc9f75b1ba6e795621";
}

/// syslog priorities.
const ERR: u8 = 3;
const WARNING: u8 = 4;
const NOTICE: u8 = 5;
const INFO: u8 = 6;

/// Where a run reports; each part is optional.
#[derive(Default)]
pub struct Outputs {
    /// node-exporter's textfile directory.
    pub textfile_dir: Option<PathBuf>,
    pub journal: Option<Journal>,
    /// Where the Node patch goes (node_labels).
    pub node_patch: Option<PathBuf>,
}

/// When a run started and how long it took.
pub struct Run {
    pub started: SystemTime,
    pub duration: Duration,
}

impl Run {
    fn started_seconds(&self) -> f64 {
        self.started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// The sha256 of the manifest's bytes, as the trusted comment names it.
pub fn manifest_sha256(verified: &VerifiedManifest) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(&verified.bytes))
}

/// Reports a check: the verified manifest and its drift, or why there is
/// none. Every output is attempted; the first failure is returned.
pub fn report_check(
    out: &Outputs,
    outcome: Result<(&VerifiedManifest, &[Drift]), &anyhow::Error>,
    run: &Run,
) -> Result<()> {
    let verified = outcome.as_ref().ok().map(|(v, _)| *v);
    let digest = verified.map(manifest_sha256);
    let mut results = Vec::new();
    if let Some(dir) = &out.textfile_dir {
        let m = check_metrics(outcome.as_ref().ok().copied(), digest.as_deref(), run);
        results.push(metrics::write_textfile(dir, CHECK_METRICS, &m));
    }
    if let Some(journal) = &out.journal {
        results.push(check_entries(outcome, digest.as_deref(), journal));
    }
    if let Some(path) = &out.node_patch {
        let state = outcome
            .as_ref()
            .ok()
            .zip(digest.as_deref())
            .map(|((v, d), sha)| node_labels::NodeState {
                image: &v.manifest.image.name,
                version: &v.manifest.image.version,
                manifest_sha256: sha,
                drift_events: d.len(),
            });
        let patch = node_labels::patch(state.as_ref());
        results.push(kiln_tree::write_atomic(
            path,
            format!("{patch}\n").as_bytes(),
            kiln_tree::PUBLIC_FILE,
        ));
    }
    results.into_iter().collect()
}

fn check_metrics(
    outcome: Option<(&VerifiedManifest, &[Drift])>,
    digest: Option<&str>,
    run: &Run,
) -> Metrics {
    let mut m = Metrics::default();
    if let (Some((v, _)), Some(sha)) = (outcome, digest) {
        let image = &v.manifest.image;
        m.gauge(
            "kiln_image_info",
            "The image this node runs, from its verified manifest (always 1).",
            &[
                ("image", &image.name),
                ("version", &image.version),
                ("arch", &image.arch),
                ("manifest_sha256", sha),
            ],
            1u64,
        );
        m.gauge(
            "kiln_image_build_timestamp_seconds",
            "When the image was built: its SOURCE_DATE_EPOCH.",
            &[],
            v.manifest.source_date_epoch,
        );
    }
    m.gauge(
        "kiln_check_manifest_verified",
        "1 when the manifest's signature verified with a key baked into the image.",
        &[],
        outcome.is_some(),
    );
    if let Some((_, drift)) = outcome {
        for kind in DRIFT_EVENTS {
            m.gauge(
                "kiln_check_drift_events",
                "Drift events the last check found, by kind.",
                &[("kind", kind)],
                drift.iter().filter(|d| d.event == kind).count(),
            );
        }
    }
    m.gauge(
        "kiln_check_success",
        "1 when the last check ran to its end (a verified manifest, the whole root walked).",
        &[],
        outcome.is_some(),
    );
    m.gauge(
        "kiln_check_last_run_timestamp_seconds",
        "When the last check started.",
        &[],
        run.started_seconds(),
    );
    m.gauge(
        "kiln_check_duration_seconds",
        "How long the last check took.",
        &[],
        run.duration.as_secs_f64(),
    );
    m
}

fn check_entries(
    outcome: Result<(&VerifiedManifest, &[Drift]), &anyhow::Error>,
    digest: Option<&str>,
    journal: &Journal,
) -> Result<()> {
    let (verified, drift) = match outcome {
        Ok(found) => found,
        Err(error) => {
            let untrusted = error.downcast_ref::<crate::trust::Untrusted>().is_some();
            let entry = Entry::new(
                message_id::CHECK_FAILED,
                ERR,
                format!("kiln check could not check this node: {error:#}"),
            )
            .field("KILN_VERIFIED", if untrusted { "0" } else { "unknown" });
            return journal.send(&entry);
        }
    };
    let image = &verified.manifest.image;
    let with_image = |entry: Entry| {
        entry
            .field("KILN_IMAGE", image.name.as_str())
            .field("KILN_VERSION", image.version.as_str())
            .field("KILN_MANIFEST_SHA256", digest.unwrap_or_default())
    };
    for event in drift.iter().take(MAX_EVENT_ENTRIES) {
        let mut entry = Entry::new(message_id::DRIFT, WARNING, format!("drift: {event}"))
            .field("KILN_EVENT", event.event)
            .field("KILN_PATH", event.path.as_str());
        if let Some(expected) = &event.expected {
            entry = entry.field("KILN_EXPECTED", expected.as_str());
        }
        if let Some(found) = &event.found {
            entry = entry.field("KILN_FOUND", found.as_str());
        }
        journal.send(&with_image(entry))?;
    }
    let not_logged = drift.len().saturating_sub(MAX_EVENT_ENTRIES);
    let message = match (drift.len(), not_logged) {
        (0, _) => format!("kiln check: no drift from {} {}", image.name, image.version),
        (n, 0) => format!(
            "kiln check: {n} drift event(s) from {} {}",
            image.name, image.version
        ),
        (n, left) => format!(
            "kiln check: {n} drift event(s) from {} {}; {left} not logged one by one (at most {MAX_EVENT_ENTRIES} a run): run kiln check on the node for all",
            image.name, image.version
        ),
    };
    let priority = if drift.is_empty() { INFO } else { WARNING };
    let entry = Entry::new(message_id::CHECK_DONE, priority, message)
        .field("KILN_VERIFIED", "1")
        .field("KILN_DRIFT_EVENTS", drift.len().to_string())
        .field("KILN_NOT_LOGGED", not_logged.to_string());
    journal.send(&with_image(entry))
}

/// Reports an audit of the live node, or why it could not run.
pub fn report_audit(
    out: &Outputs,
    outcome: Result<&Report, &anyhow::Error>,
    run: &Run,
) -> Result<()> {
    let mut results = Vec::new();
    if let Some(dir) = &out.textfile_dir {
        let m = audit_metrics(outcome.as_ref().ok().copied(), run);
        results.push(metrics::write_textfile(dir, AUDIT_METRICS, &m));
    }
    if let Some(journal) = &out.journal {
        results.push(audit_entries(outcome, journal));
    }
    results.into_iter().collect()
}

fn audit_metrics(report: Option<&Report>, run: &Run) -> Metrics {
    let mut m = Metrics::default();
    if let Some(report) = report {
        let failed: Vec<_> = report
            .results
            .iter()
            .filter(|r| r.status == Status::Fail)
            .collect();
        for severity in Severity::ALL {
            m.gauge(
                "kiln_audit_failed_rules",
                "Rules the last audit failed, by severity.",
                &[("severity", severity.name())],
                failed
                    .iter()
                    .filter(|r| r.rule.severity == severity)
                    .count(),
            );
        }
        for rule in &failed {
            m.gauge(
                "kiln_audit_findings",
                "Open findings of each failed rule of the last audit.",
                &[
                    ("rule", rule.rule.id),
                    ("severity", rule.rule.severity.name()),
                ],
                rule.open_findings().count(),
            );
        }
        for status in [
            Status::Pass,
            Status::Fail,
            Status::NotApplicable,
            Status::Waived,
        ] {
            m.gauge(
                "kiln_audit_rules",
                "Rules of the last audit, by outcome.",
                &[("status", status.name())],
                report.count(status),
            );
        }
        m.gauge(
            "kiln_audit_unreadable_files",
            "Files the last audit could not read (the audit is incomplete).",
            &[],
            report.errors.len(),
        );
        m.gauge(
            "kiln_audit_gate_passed",
            "1 when no failed rule is at or above the audit's fail_on threshold.",
            &[],
            report.passed(),
        );
    }
    m.gauge(
        "kiln_audit_success",
        "1 when the last audit ran.",
        &[],
        report.is_some(),
    );
    m.gauge(
        "kiln_audit_last_run_timestamp_seconds",
        "When the last audit started.",
        &[],
        run.started_seconds(),
    );
    m.gauge(
        "kiln_audit_duration_seconds",
        "How long the last audit took.",
        &[],
        run.duration.as_secs_f64(),
    );
    m
}

fn audit_entries(outcome: Result<&Report, &anyhow::Error>, journal: &Journal) -> Result<()> {
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            return journal.send(&Entry::new(
                message_id::AUDIT_FAILED,
                ERR,
                format!("kiln audit could not audit this node: {error:#}"),
            ));
        }
    };
    let mut failed: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .collect();
    // The worst first, so the bound drops the least important.
    failed.sort_by(|a, b| {
        b.rule
            .severity
            .cmp(&a.rule.severity)
            .then(a.rule.id.cmp(b.rule.id))
    });
    let findings: Vec<_> = failed
        .iter()
        .flat_map(|r| r.open_findings().map(move |f| (r, f)))
        .collect();
    for (rule, finding) in findings.iter().take(MAX_EVENT_ENTRIES) {
        let severity = rule.rule.severity;
        let priority = match severity {
            Severity::Critical => 2,
            Severity::High => ERR,
            Severity::Medium => WARNING,
            Severity::Low => NOTICE,
        };
        let entry = Entry::new(
            message_id::AUDIT_FINDING,
            priority,
            format!(
                "audit: {} ({}) {}: {}",
                rule.rule.id,
                severity.name(),
                finding.path,
                finding.message
            ),
        )
        .field("KILN_RULE", rule.rule.id)
        .field("KILN_SEVERITY", severity.name())
        .field("KILN_PATH", finding.path.as_str())
        .field("KILN_VALUE", finding.value.as_str());
        journal.send(&entry)?;
    }
    let not_logged = findings.len().saturating_sub(MAX_EVENT_ENTRIES);
    let count = |s: Severity| failed.iter().filter(|r| r.rule.severity == s).count();
    let mut message = format!(
        "kiln audit: {} rule(s) failed ({} critical, {} high, {} medium, {} low), gate {}",
        failed.len(),
        count(Severity::Critical),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low),
        if report.passed() { "passed" } else { "failed" },
    );
    if not_logged > 0 {
        message.push_str(&format!(
            "; {not_logged} finding(s) not logged one by one (at most {MAX_EVENT_ENTRIES} a run): run kiln audit / on the node for all"
        ));
    }
    let priority = if report.passed() { INFO } else { WARNING };
    let entry = Entry::new(message_id::AUDIT_DONE, priority, message)
        .field("KILN_FAILED_RULES", failed.len().to_string())
        .field("KILN_CRITICAL", count(Severity::Critical).to_string())
        .field("KILN_HIGH", count(Severity::High).to_string())
        .field("KILN_MEDIUM", count(Severity::Medium).to_string())
        .field("KILN_LOW", count(Severity::Low).to_string())
        .field("KILN_NOT_LOGGED", not_logged.to_string());
    journal.send(&entry)
}
