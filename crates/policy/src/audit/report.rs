//! Report formats: text for people, JSON, SARIF 2.1.0 for code-scanning
//! dashboards (GitHub's included), JUnit XML for CI test views.

use super::{Report, RuleResult, Severity, Status, catalogue};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// The output formats of `kiln audit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Junit,
}

impl Report {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_text(),
            Format::Json => self.to_json(),
            Format::Sarif => self.to_sarif(),
            Format::Junit => self.to_junit(),
        }
    }

    /// The summary line: counts and the gate's decision.
    pub fn summary_line(&self) -> String {
        let failed: Vec<String> = Severity::ALL
            .iter()
            .filter_map(|sev| {
                let n = self
                    .results
                    .iter()
                    .filter(|r| r.status == Status::Fail && r.rule.severity == *sev)
                    .count();
                (n > 0).then(|| format!("{n} {sev}"))
            })
            .collect();
        let blocking = self.blocking().count();
        format!(
            "{} rules: {} passed, {} failed{}, {} not applicable, {} waived; fail_on {}: {}",
            self.results.len(),
            self.count(Status::Pass),
            self.count(Status::Fail),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" ({})", failed.join(", "))
            },
            self.count(Status::NotApplicable),
            self.count(Status::Waived),
            self.fail_on,
            if self.passed() {
                "PASS".to_owned()
            } else if blocking > 0 {
                format!("FAIL ({blocking} blocking)")
            } else {
                "FAIL (unreadable files)".to_owned()
            }
        )
    }

    /// Findings grouped by severity, then waivers, not-applicable rules and
    /// the summary line.
    pub fn to_text(&self) -> String {
        const SHOWN: usize = 20;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "kiln audit of {} ({})",
            self.target,
            match self.mode {
                super::Mode::Image => "image",
                super::Mode::Live => "live node",
            }
        );
        for error in &self.errors {
            let _ = writeln!(out, "error: {error}");
        }
        for sev in Severity::ALL {
            let failed: Vec<&RuleResult> = self
                .results
                .iter()
                .filter(|r| r.status == Status::Fail && r.rule.severity == sev)
                .collect();
            if failed.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{} ({})", sev.name().to_uppercase(), failed.len());
            for r in failed {
                let _ = writeln!(out, "  {}: {}", r.rule.id, r.rule.title);
                let open: Vec<_> = r.open_findings().collect();
                for f in open.iter().take(SHOWN) {
                    let line = f.line.map(|l| format!(":{l}")).unwrap_or_default();
                    let _ = writeln!(out, "    {}{line}: {} [{}]", f.path, f.message, f.value);
                }
                if open.len() > SHOWN {
                    let _ = writeln!(out, "    … and {} more", open.len() - SHOWN);
                }
                let _ = writeln!(out, "    fix: {}", r.rule.remediation);
            }
        }
        let waived: Vec<&RuleResult> = self
            .results
            .iter()
            .filter(|r| !r.waivers.is_empty())
            .collect();
        if !waived.is_empty() {
            let _ = writeln!(out, "\nWAIVED ({})", waived.len());
            for r in waived {
                for w in &r.waivers {
                    let until = w
                        .expires
                        .as_ref()
                        .map(|d| format!(", until {d}"))
                        .unwrap_or_default();
                    let n = r.findings.iter().filter(|f| f.waived).count();
                    let _ = writeln!(
                        out,
                        "  {} ({}, {n} findings{until}): {}",
                        r.rule.id, r.rule.severity, w.reason
                    );
                }
            }
        }
        for w in &self.expired_waivers {
            let origin = w
                .origin
                .as_ref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "note: the waiver of {} expired on {}{origin}; it no longer applies",
                w.rule, w.expires
            );
        }
        for w in &self.unused_waivers {
            let _ = writeln!(out, "note: the waiver of {w} matched no finding");
        }
        let na: Vec<&RuleResult> = self
            .results
            .iter()
            .filter(|r| r.status == Status::NotApplicable)
            .collect();
        if !na.is_empty() {
            let _ = writeln!(out, "\nNOT APPLICABLE ({})", na.len());
            let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
            for r in na {
                let reason = r.not_applicable.as_deref().unwrap_or_default();
                match reasons.iter_mut().find(|(why, _)| *why == reason) {
                    Some((_, ids)) => ids.push(r.rule.id),
                    None => reasons.push((reason, vec![r.rule.id])),
                }
            }
            for (reason, ids) in reasons {
                let _ = writeln!(out, "  {}: {reason}", ids.join(", "));
            }
        }
        let _ = writeln!(out, "\n{}", self.summary_line());
        out
    }

    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("a report serialises");
        value["summary"] = serde_json::to_value(self.summary()).expect("a summary serialises");
        let mut text = serde_json::to_string_pretty(&value).expect("a value serialises");
        text.push('\n');
        text
    }

    /// SARIF 2.1.0: every rule in tool.driver.rules, one result per
    /// finding (waived ones with an external suppression), locations
    /// relative to the image root.
    pub fn to_sarif(&self) -> String {
        let rules: Vec<Value> = catalogue()
            .map(|r| {
                json!({
                    "id": r.id,
                    "name": camel(r.id),
                    "shortDescription": { "text": r.title },
                    "fullDescription": { "text": r.rationale },
                    "help": {
                        "text": format!("{}\n\nSource: {}", r.remediation, r.source),
                        "markdown": format!("{}\n\nSource: {}", r.remediation, r.source),
                    },
                    "defaultConfiguration": { "level": level(r.severity) },
                    "properties": {
                        "security-severity": r.severity.security_severity(),
                        "precision": "high",
                        "problem.severity": level(r.severity),
                        "tags": ["security", "hardening", r.group()],
                    },
                })
            })
            .collect();
        let index_of = |id: &str| catalogue().position(|r| r.id == id).unwrap_or(0);
        let mut results = Vec::new();
        for r in &self.results {
            for f in &r.findings {
                let mut region = json!({});
                if let Some(line) = f.line {
                    region = json!({ "startLine": line });
                }
                let mut physical = json!({
                    "artifactLocation": { "uri": uri(&f.path), "uriBaseId": "IMAGEROOT" },
                });
                if f.line.is_some() {
                    physical["region"] = region;
                }
                let fingerprint = kiln_tree::Digest::of(
                    format!("{}\0{}\0{}", r.rule.id, f.path, f.value).as_bytes(),
                )
                .hex();
                let mut result = json!({
                    "ruleId": r.rule.id,
                    "ruleIndex": index_of(r.rule.id),
                    "level": level(r.rule.severity),
                    "message": { "text": format!("{}: {} ({})", r.rule.title, f.message, f.value) },
                    "locations": [{ "physicalLocation": physical }],
                    "partialFingerprints": { "kilnFinding/v1": fingerprint },
                });
                if f.waived {
                    let reasons: Vec<&str> = r.waivers.iter().map(|w| w.reason.as_str()).collect();
                    result["suppressions"] = json!([{
                        "kind": "external",
                        "status": "accepted",
                        "justification": reasons.join("; "),
                    }]);
                }
                results.push(result);
            }
        }
        let log = json!({
            "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {
                    "driver": {
                        "name": "kiln",
                        "semanticVersion": env!("CARGO_PKG_VERSION"),
                        "version": env!("CARGO_PKG_VERSION"),
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {
                    "IMAGEROOT": { "description": { "text": format!("the root of {}", self.target) } }
                },
                "invocations": [{
                    "executionSuccessful": self.errors.is_empty(),
                    "toolExecutionNotifications": self.errors.iter().map(|e| json!({
                        "level": "error",
                        "message": { "text": e },
                    })).collect::<Vec<_>>(),
                }],
                "results": results,
                "properties": { "summary": self.summary_line() },
            }],
        });
        let mut text = serde_json::to_string_pretty(&log).expect("a value serialises");
        text.push('\n');
        text
    }

    /// JUnit XML: one testcase per rule, a failure per failed rule
    /// (listing its findings), skipped for not applicable.
    pub fn to_junit(&self) -> String {
        let failures = self.count(Status::Fail);
        let skipped = self.count(Status::NotApplicable);
        let errors = usize::from(!self.errors.is_empty());
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"kiln audit\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">",
            self.results.len()
        );
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">",
            xml(&format!("kiln audit of {}", self.target)),
            self.results.len()
        );
        let _ = writeln!(out, "    <properties>");
        let _ = writeln!(
            out,
            "      <property name=\"fail_on\" value=\"{}\"/>",
            self.fail_on
        );
        let _ = writeln!(
            out,
            "      <property name=\"gate\" value=\"{}\"/>",
            if self.passed() { "pass" } else { "fail" }
        );
        let _ = writeln!(out, "    </properties>");
        for r in &self.results {
            let name = xml(&format!("{}: {}", r.rule.id, r.rule.title));
            let class = xml(&format!("kiln.audit.{}", r.rule.group()));
            let _ = write!(out, "    <testcase classname=\"{class}\" name=\"{name}\"");
            match r.status {
                Status::Pass => {
                    let _ = writeln!(out, "/>");
                }
                Status::NotApplicable => {
                    let _ = writeln!(out, ">");
                    let reason = r.not_applicable.as_deref().unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "      <skipped message=\"{}\"/>",
                        xml(&format!("not applicable: {reason}"))
                    );
                    let _ = writeln!(out, "    </testcase>");
                }
                Status::Fail => {
                    let _ = writeln!(out, ">");
                    let open: Vec<_> = r.open_findings().collect();
                    let mut body = String::new();
                    for f in &open {
                        let line = f.line.map(|l| format!(":{l}")).unwrap_or_default();
                        let _ = writeln!(body, "{}{line}: {} [{}]", f.path, f.message, f.value);
                    }
                    let _ = writeln!(body, "fix: {}", r.rule.remediation);
                    let _ = writeln!(
                        out,
                        "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                        r.rule.severity,
                        xml(&format!(
                            "{} finding(s), severity {}",
                            open.len(),
                            r.rule.severity
                        )),
                        xml(&body)
                    );
                    let _ = writeln!(out, "    </testcase>");
                }
                Status::Waived => {
                    let _ = writeln!(out, ">");
                    let reasons: Vec<&str> = r.waivers.iter().map(|w| w.reason.as_str()).collect();
                    let _ = writeln!(
                        out,
                        "      <system-out>{}</system-out>",
                        xml(&format!(
                            "waived ({} findings): {}",
                            r.findings.len(),
                            reasons.join("; ")
                        ))
                    );
                    let _ = writeln!(out, "    </testcase>");
                }
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(
                out,
                "    <testcase classname=\"kiln.audit\" name=\"files readable\">"
            );
            let _ = writeln!(
                out,
                "      <error message=\"unreadable files\">{}</error>",
                xml(&self.errors.join("\n"))
            );
            let _ = writeln!(out, "    </testcase>");
        }
        let _ = writeln!(out, "  </testsuite>");
        let _ = writeln!(out, "</testsuites>");
        out
    }
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// `ssh.root-login` → `SshRootLogin`, SARIF's rule `name`.
fn camel(id: &str) -> String {
    id.split(['.', '-'])
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// An image path as a URI reference relative to the image root: no
/// leading slash, reserved characters percent-encoded.
pub fn uri(path: &str) -> String {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        return ".".to_owned();
    }
    let mut out = String::new();
    for b in relative.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Escapes text for XML attributes and content, dropping the control
/// characters XML 1.0 cannot carry.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_relative_and_encoded() {
        assert_eq!(uri("/etc/ssh/sshd_config"), "etc/ssh/sshd_config");
        assert_eq!(uri("/"), ".");
        assert_eq!(uri("/a b/%x"), "a%20b/%25x");
    }

    #[test]
    fn xml_escapes_and_drops_controls() {
        assert_eq!(xml("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos;\u{FFFD}");
    }

    #[test]
    fn camel_names() {
        assert_eq!(camel("ssh.root-login"), "SshRootLogin");
    }
}
