//! `kiln audit`: hardening rules as a release gate, over an image tree —
//! a build's, an archive's, a directory's or a live node's.
//!
//! Each rule (ids and sources from the hardening reference, catalogued in
//! [`rules`]) looks at the [`Tree`] and the files it needs, through
//! faithful readers of the configurations involved: [`sshd`] (Include,
//! first value wins, Match blocks), [`k3s`] (config.yaml and its drop-ins,
//! `key+`), [`sysctl`] (sysctl.d precedence), [`nft`] (the ruleset and a
//! packet walk over it) and [`accounts`]. A rule passes, fails with
//! findings (a path, the offending value and a message), or is not
//! applicable when its subject is absent. Waivers from the recipe turn a
//! failed rule into a waived one until they expire; the gate fails when a
//! failed rule's severity is at or above `fail_on`. Reports: text, JSON,
//! SARIF 2.1.0 and JUnit XML ([`report`]). Documented in docs/audit.md.

pub mod report;
pub mod rules;
pub mod source;

pub use crate::image::{Contents, Image};
pub use source::{LoadedImage, audit_path, load, load_directory};

use crate::{accounts, containerd, k3s, kubelet, nft, sshd, sysctl};
use kiln_tree::{Store, Tree};
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;
use std::fmt;

/// How bad a failed rule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    /// GitHub code scanning's scale (critical > 9, high 7–8.9, medium
    /// 4–6.9, low < 4), as SARIF's `security-severity`.
    pub fn security_severity(self) -> &'static str {
        match self {
            Severity::Critical => "9.5",
            Severity::High => "8.0",
            Severity::Medium => "5.5",
            Severity::Low => "3.0",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The gate's threshold: failed rules at or above it fail the audit;
/// `FailOn(None)` ("none") never fails. The default is high.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailOn(pub Option<Severity>);

impl Default for FailOn {
    fn default() -> Self {
        FailOn(Some(Severity::High))
    }
}

impl FailOn {
    pub const CHOICES: [&'static str; 5] = ["critical", "high", "medium", "low", "none"];

    pub fn blocks(self, severity: Severity) -> bool {
        self.0.is_some_and(|threshold| severity >= threshold)
    }
}

impl std::str::FromStr for FailOn {
    type Err = String;

    fn from_str(s: &str) -> Result<FailOn, String> {
        match s {
            "none" => Ok(FailOn(None)),
            _ => Severity::ALL
                .into_iter()
                .find(|sev| sev.name() == s)
                .map(|sev| FailOn(Some(sev)))
                .ok_or_else(|| {
                    format!(
                        "unknown severity \"{s}\"; use one of {}",
                        FailOn::CHOICES.join(", ")
                    )
                }),
        }
    }
}

impl fmt::Display for FailOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.map_or("none", Severity::name))
    }
}

/// A calendar day (UTC), counted from 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub i64);

impl Date {
    /// The day a Unix time falls on.
    pub fn from_epoch_seconds(seconds: u64) -> Date {
        Date((seconds / 86_400) as i64)
    }

    /// Today, from the system clock.
    pub fn today() -> Date {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Date::from_epoch_seconds(now)
    }

    /// `YYYY-MM-DD`, a real day of the proleptic Gregorian calendar.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = &s[r];
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days_in_month = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month[(m - 1) as usize] {
            return None;
        }
        Some(Date(days_from_civil(y, m, d)))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// Howard Hinnant's days_from_civil.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A waiver of one rule, from `[[audit.waive]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiver {
    pub rule: String,
    pub reason: String,
    /// The last day the waiver applies (inclusive).
    pub expires: Option<Date>,
    /// Globs of image paths: when given, only findings at matching paths
    /// are waived.
    pub paths: Vec<String>,
    /// `file:line:col` of the waiver, for messages.
    pub origin: Option<String>,
}

impl Waiver {
    pub fn expired(&self, today: Date) -> bool {
        self.expires.is_some_and(|last| today > last)
    }

    fn covers(&self, path: &str) -> bool {
        self.paths.is_empty()
            || self.paths.iter().any(|p| {
                globset::GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .is_ok_and(|g| g.compile_matcher().is_match(path))
            })
    }
}

/// What is audited: an image (a build, an archive, a directory), or the
/// root of a running node — where the rules about what an image must not
/// carry (host keys, machine id, node identity, tokens) do not apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Image,
    Live,
}

#[derive(Clone, Debug)]
pub struct AuditConfig {
    pub fail_on: FailOn,
    pub waivers: Vec<Waiver>,
    /// The day waivers' expiry dates are compared with: the build's
    /// SOURCE_DATE_EPOCH for builds, today otherwise.
    pub today: Date,
    pub mode: Mode,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            fail_on: FailOn::default(),
            waivers: Vec::new(),
            today: Date::today(),
            mode: Mode::Image,
        }
    }
}

impl AuditConfig {
    /// The gate of an image build: the recipe's threshold and waivers,
    /// dated against SOURCE_DATE_EPOCH (so a rebuild decides the same way).
    pub fn for_build(fail_on: FailOn, waivers: Vec<Waiver>, source_date_epoch: u64) -> AuditConfig {
        AuditConfig {
            fail_on,
            waivers,
            today: Date::from_epoch_seconds(source_date_epoch),
            mode: Mode::Image,
        }
    }
}

/// One thing wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The image path concerned (absolute).
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The offending value, as found.
    pub value: String,
    pub message: String,
    /// Covered by a waiver.
    pub waived: bool,
}

impl Finding {
    pub fn new(
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            path: path.into(),
            line: None,
            value: value.into(),
            message: message.into(),
            waived: false,
        }
    }

    pub fn at_line(mut self, line: u32) -> Finding {
        self.line = Some(line);
        self
    }
}

/// A rule's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    NotApplicable,
    Waived,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotApplicable => "not_applicable",
            Status::Waived => "waived",
        }
    }
}

/// A rule's description, as the catalogue lists it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RuleInfo {
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub rationale: &'static str,
    pub remediation: &'static str,
    /// Where the requirement comes from (keys of the hardening reference).
    pub source: &'static str,
}

impl RuleInfo {
    /// The part of the id before the dot: k3s, fw, ssh, …
    pub fn group(&self) -> &'static str {
        self.id.split('.').next().unwrap_or(self.id)
    }
}

/// What a rule found.
pub enum Check {
    Findings(Vec<Finding>),
    NotApplicable(String),
}

/// A waiver that was applied to a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppliedWaiver {
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleResult {
    #[serde(flatten)]
    pub rule: RuleInfo,
    pub status: Status,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_applicable: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waivers: Vec<AppliedWaiver>,
}

impl RuleResult {
    /// Findings no waiver covers.
    pub fn open_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.waived)
    }
}

/// A waiver whose date has passed: it no longer applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpiredWaiver {
    pub rule: String,
    pub reason: String,
    pub expires: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What was audited, for people.
    pub target: String,
    pub mode: Mode,
    #[serde(serialize_with = "serialize_display")]
    pub fail_on: FailOn,
    /// The day waiver expiry was judged against.
    #[serde(serialize_with = "serialize_display")]
    pub date: Date,
    pub results: Vec<RuleResult>,
    pub expired_waivers: Vec<ExpiredWaiver>,
    /// Waivers that matched no finding (rule passed or not applicable).
    pub unused_waivers: Vec<String>,
    /// Files that could not be read: the audit is incomplete.
    pub errors: Vec<String>,
}

fn serialize_display<T: fmt::Display, S: serde::Serializer>(
    v: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// The failed rules at or above the threshold.
    pub fn blocking(&self) -> impl Iterator<Item = &RuleResult> {
        self.results
            .iter()
            .filter(|r| r.status == Status::Fail && self.fail_on.blocks(r.rule.severity))
    }

    /// True when the gate lets the image through: no blocking rule and no
    /// file the audit could not read.
    pub fn passed(&self) -> bool {
        self.blocking().next().is_none() && self.errors.is_empty()
    }

    /// The exit-code helper: 0 when the gate passes, `failure` otherwise.
    pub fn exit_code(&self, failure: u8) -> u8 {
        if self.passed() { 0 } else { failure }
    }

    /// The summary the manifest records.
    pub fn summary(&self) -> AuditSummary {
        let mut failed: Vec<FailedRule> = self
            .results
            .iter()
            .filter(|r| r.status == Status::Fail)
            .map(|r| FailedRule {
                rule: r.rule.id.to_owned(),
                severity: r.rule.severity.name().to_owned(),
                findings: r.open_findings().count() as u64,
            })
            .collect();
        failed.sort_by(|a, b| a.rule.cmp(&b.rule));
        let mut waived: Vec<WaiverRecord> = self
            .results
            .iter()
            .flat_map(|r| {
                let findings = r.findings.iter().filter(|f| f.waived).count() as u64;
                r.waivers.iter().map(move |w| WaiverRecord {
                    rule: r.rule.id.to_owned(),
                    reason: w.reason.clone(),
                    expires: w.expires.clone(),
                    findings,
                })
            })
            .collect();
        waived.sort_by(|a, b| (&a.rule, &a.reason).cmp(&(&b.rule, &b.reason)));
        let mut expired: Vec<WaiverRecord> = self
            .expired_waivers
            .iter()
            .map(|w| WaiverRecord {
                rule: w.rule.clone(),
                reason: w.reason.clone(),
                expires: Some(w.expires.clone()),
                findings: 0,
            })
            .collect();
        expired.sort_by(|a, b| (&a.rule, &a.reason).cmp(&(&b.rule, &b.reason)));
        AuditSummary {
            fail_on: self.fail_on.to_string(),
            result: if self.passed() { "pass" } else { "fail" }.to_owned(),
            rules_run: self.results.len() as u64,
            passed: self.count(Status::Pass) as u64,
            failed: self.count(Status::Fail) as u64,
            not_applicable: self.count(Status::NotApplicable) as u64,
            waived: self.count(Status::Waived) as u64,
            failed_rules: failed,
            waivers: waived,
            expired_waivers: expired,
        }
    }
}

/// The audit's outcome for the manifest: integers and strings only,
/// lists sorted, so it serialises canonically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSummary {
    /// The threshold: critical, high, medium, low or none.
    pub fail_on: String,
    /// "pass" or "fail".
    pub result: String,
    pub rules_run: u64,
    pub passed: u64,
    pub failed: u64,
    pub not_applicable: u64,
    pub waived: u64,
    /// Failed rules (blocking or not), by id.
    pub failed_rules: Vec<FailedRule>,
    /// Waivers that applied, by rule id.
    pub waivers: Vec<WaiverRecord>,
    /// Waivers past their date, by rule id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired_waivers: Vec<WaiverRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedRule {
    pub rule: String,
    pub severity: String,
    pub findings: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaiverRecord {
    pub rule: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Findings the waiver covered.
    pub findings: u64,
}

/// What every rule can ask for, parsed once.
pub struct Ctx<'a> {
    pub img: Image<'a>,
    pub mode: Mode,
    sshd: OnceCell<sshd::SshdConfig>,
    k3s: OnceCell<k3s::K3sConfig>,
    kubelet: OnceCell<kubelet::Kubelet>,
    streaming: OnceCell<Result<containerd::Streaming, (String, String)>>,
    sysctl: OnceCell<sysctl::Sysctl>,
    nft: OnceCell<Option<nft::Ruleset>>,
    accounts: OnceCell<Option<accounts::Accounts>>,
}

impl<'a> Ctx<'a> {
    pub fn new(img: Image<'a>, mode: Mode) -> Ctx<'a> {
        Ctx {
            img,
            mode,
            sshd: OnceCell::new(),
            k3s: OnceCell::new(),
            kubelet: OnceCell::new(),
            streaming: OnceCell::new(),
            sysctl: OnceCell::new(),
            nft: OnceCell::new(),
            accounts: OnceCell::new(),
        }
    }

    pub fn sshd(&self) -> &sshd::SshdConfig {
        self.sshd.get_or_init(|| sshd::SshdConfig::load(&self.img))
    }

    pub fn k3s(&self) -> &k3s::K3sConfig {
        self.k3s.get_or_init(|| k3s::K3sConfig::load(&self.img))
    }

    /// The K3s release of the image, when the build recorded it.
    pub fn k3s_version(&self) -> Option<kubelet::K3sVersion> {
        self.img
            .read_text(crate::node::K3S_VERSION)
            .and_then(|t| kubelet::K3sVersion::find(&t))
    }

    /// The kubelet's effective configuration.
    pub fn kubelet(&self) -> &kubelet::Kubelet {
        self.kubelet
            .get_or_init(|| kubelet::Kubelet::load(&self.img, self.k3s(), self.k3s_version()))
    }

    /// containerd's effective streaming server settings.
    pub fn streaming(&self) -> &Result<containerd::Streaming, (String, String)> {
        self.streaming
            .get_or_init(|| containerd::streaming(&self.img))
    }

    pub fn sysctl(&self) -> &sysctl::Sysctl {
        self.sysctl.get_or_init(|| sysctl::Sysctl::load(&self.img))
    }

    pub fn nft(&self) -> Option<&nft::Ruleset> {
        self.nft
            .get_or_init(|| nft::Ruleset::load(&self.img))
            .as_ref()
    }

    pub fn accounts(&self) -> Option<&accounts::Accounts> {
        self.accounts
            .get_or_init(|| accounts::Accounts::load(&self.img))
            .as_ref()
    }
}

/// Every rule, in catalogue order.
pub fn catalogue() -> impl Iterator<Item = &'static RuleInfo> {
    rules::all().map(|r| &r.info)
}

/// The rule ids, in catalogue order.
pub fn rule_ids() -> Vec<&'static str> {
    catalogue().map(|r| r.id).collect()
}

/// Audits a tree whose file contents are in `store` (a build's, or an
/// archive's loaded with a keeping store).
pub fn audit_tree(tree: &Tree, store: &Store, config: &AuditConfig) -> Report {
    audit_image(Image::new(tree, Contents::Store(store)), "image", config)
}

/// Audits any image view.
pub fn audit_image(img: Image, target: &str, config: &AuditConfig) -> Report {
    let ctx = Ctx::new(img, config.mode);
    let mut results = Vec::new();
    let mut used = vec![false; config.waivers.len()];
    let mut expired = Vec::new();
    for (i, w) in config.waivers.iter().enumerate() {
        if w.expired(config.today) {
            used[i] = true;
            expired.push(ExpiredWaiver {
                rule: w.rule.clone(),
                reason: w.reason.clone(),
                expires: w.expires.map(|d| d.to_string()).unwrap_or_default(),
                origin: w.origin.clone(),
            });
        }
    }
    for rule in rules::all() {
        let mut result = RuleResult {
            rule: rule.info,
            status: Status::Pass,
            findings: Vec::new(),
            not_applicable: None,
            waivers: Vec::new(),
        };
        match (rule.check)(&ctx) {
            Check::NotApplicable(reason) => {
                result.status = Status::NotApplicable;
                result.not_applicable = Some(reason);
            }
            Check::Findings(findings) if findings.is_empty() => {}
            Check::Findings(mut findings) => {
                findings
                    .sort_by(|a, b| (&a.path, a.line, &a.value).cmp(&(&b.path, b.line, &b.value)));
                findings.dedup();
                for (i, waiver) in config.waivers.iter().enumerate() {
                    if waiver.rule != rule.info.id || waiver.expired(config.today) {
                        continue;
                    }
                    let mut covered = false;
                    for f in findings.iter_mut().filter(|f| waiver.covers(&f.path)) {
                        f.waived = true;
                        covered = true;
                    }
                    if covered {
                        used[i] = true;
                        result.waivers.push(AppliedWaiver {
                            reason: waiver.reason.clone(),
                            expires: waiver.expires.map(|d| d.to_string()),
                            paths: waiver.paths.clone(),
                        });
                    }
                }
                result.status = if findings.iter().all(|f| f.waived) {
                    Status::Waived
                } else {
                    Status::Fail
                };
                result.findings = findings;
            }
        }
        results.push(result);
    }
    let unused_waivers = config
        .waivers
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(w, _)| match &w.origin {
            Some(origin) => format!("{} ({origin})", w.rule),
            None => w.rule.clone(),
        })
        .collect();
    let errors = ctx.img.take_errors();
    Report {
        target: target.to_owned(),
        mode: config.mode,
        fail_on: config.fail_on,
        date: config.today,
        results,
        expired_waivers: expired,
        unused_waivers,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_refuse_nonsense() {
        for s in ["1970-01-01", "2000-02-29", "2027-01-31", "2100-12-31"] {
            assert_eq!(Date::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Date::parse("1970-01-02"), Some(Date(1)));
        assert_eq!(Date::from_epoch_seconds(86_400 * 2 - 1), Date(1));
        for bad in [
            "2027-02-29",
            "2027-13-01",
            "27-01-01",
            "2027-1-01",
            "2027-01-00",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn thresholds() {
        let high: FailOn = "high".parse().unwrap();
        assert!(high.blocks(Severity::Critical) && high.blocks(Severity::High));
        assert!(!high.blocks(Severity::Medium));
        assert!(!"none".parse::<FailOn>().unwrap().blocks(Severity::Critical));
        assert!("severe".parse::<FailOn>().is_err());
    }

    #[test]
    fn catalogue_ids_are_unique_and_grouped() {
        let ids = rule_ids();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        assert!(ids.len() >= 60, "{}", ids.len());
        for id in ids {
            let group = id.split('.').next().unwrap();
            assert!(
                ["k3s", "fw", "ssh", "sys", "fs", "acct", "pkg", "img", "fim"].contains(&group),
                "{id}"
            );
        }
    }
}

/// The build's audit gate refused the image (the command line exits 5).
#[derive(Debug)]
pub struct GateFailed(pub String);

impl std::fmt::Display for GateFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GateFailed {}
