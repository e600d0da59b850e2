//! `[audit]` in recipes: the threshold and waivers validated with
//! `file:line:col` errors (through the library and the real `kiln build`),
//! layering through `extends`, and waiver expiry judged against the
//! build's SOURCE_DATE_EPOCH.

use kiln::recipe::load;
use kiln_policy::audit::{AuditConfig, Date, FailOn, Severity, Status, audit_tree};
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};
use std::path::Path;
use std::process::Command;

const IMAGE: &str = "[image]\nname = \"node\"\nversion = \"1.0.0\"\n";

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The error `kiln::recipe::load` gives, as `file:line:col: message`,
/// with the recipe named relative to its folder.
fn error_of(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write(dir.path(), "r.toml", &format!("{IMAGE}{text}"));
    let message = load(&recipe)
        .expect_err("the recipe should be refused")
        .to_string();
    message
        .strip_prefix(&format!("{}/", dir.path().display()))
        .unwrap_or(&message)
        .to_owned()
}

#[test]
fn valid_audit_tables() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write(
        dir.path(),
        "r.toml",
        &format!(
            "{IMAGE}[audit]\nfail_on = \"medium\"\n\n[[audit.waive]]\nrule = \"pkg.mutators\"\nreason = \"perl-base is Essential\"\nexpires = \"2027-01-31\"\n\n[[audit.waive]]\nrule = \"fs.setuid\"\nreason = \"ping\"\nexpires = 2027-03-01\npaths = [\"/usr/bin/ping\"]\n"
        ),
    );
    let plan = load(&recipe).unwrap();
    assert_eq!(plan.audit.fail_on, FailOn(Some(Severity::Medium)));
    assert_eq!(plan.audit.waivers.len(), 2);
    assert_eq!(plan.audit.waivers[0].expires, Date::parse("2027-01-31"));
    assert_eq!(plan.audit.waivers[1].expires, Date::parse("2027-03-01"));
    assert_eq!(plan.audit.waivers[1].paths, ["/usr/bin/ping"]);
    let waivers = plan.audit.waivers();
    assert!(
        waivers[0]
            .origin
            .as_deref()
            .unwrap()
            .ends_with("r.toml:8:8"),
        "{:?}",
        waivers[0].origin
    );
}

#[test]
fn the_default_gate_is_high_and_none_disables_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = load(&write(dir.path(), "a.toml", IMAGE)).unwrap();
    assert_eq!(plan.audit.fail_on, FailOn(Some(Severity::High)));
    assert!(plan.audit.waivers.is_empty());
    let plan = load(&write(
        dir.path(),
        "b.toml",
        &format!("{IMAGE}[audit]\nfail_on = \"none\"\n"),
    ))
    .unwrap();
    assert_eq!(plan.audit.fail_on, FailOn(None));
}

#[test]
fn errors_point_at_the_mistake() {
    assert_eq!(
        error_of("[audit]\nfail_on = \"hihg\"\n"),
        "r.toml:5:11: unknown fail_on \"hihg\", did you mean \"high\"?"
    );
    assert_eq!(
        error_of("[audit]\nfail_on = \"severe\"\n"),
        "r.toml:5:11: unknown fail_on \"severe\"; use one of critical, high, medium, low, none"
    );
    assert_eq!(
        error_of("[[audit.waive]]\nrule = \"ssh.x1l\"\nreason = \"r\"\n"),
        "r.toml:5:8: unknown rule \"ssh.x1l\", did you mean \"ssh.x11\"?"
    );
    assert_eq!(
        error_of("[[audit.waive]]\nrule = \"nothing.like.it\"\nreason = \"r\"\n"),
        "r.toml:5:8: unknown rule \"nothing.like.it\"; list the rules with kiln audit --list-rules"
    );
    assert_eq!(
        error_of("[[audit.waive]]\nrule = \"ssh.x11\"\n"),
        "r.toml:4:1: the waiver of ssh.x11 needs a reason: add reason = \"...\" saying why it may fail"
    );
    assert_eq!(
        error_of("[[audit.waive]]\nrule = \"ssh.x11\"\nreason = \"  \"\n"),
        "r.toml:6:10: reason is empty; say why this rule may fail for this image"
    );
    assert_eq!(
        error_of("[[audit.waive]]\nrule = \"ssh.x11\"\nreason = \"r\"\nexpires = \"2027-02-30\"\n"),
        "r.toml:7:11: expires \"2027-02-30\" is not a date like \"2027-01-31\" (YYYY-MM-DD, the last day the waiver applies)"
    );
    assert_eq!(
        error_of("[[audit.waive]]\nrule = \"ssh.x11\"\nreason = \"r\"\nexpires = 20270131\n"),
        "r.toml:7:11: expires must be a date like \"2027-01-31\" (the last day the waiver applies)"
    );
    assert_eq!(
        error_of("[[audit.waive]]\nrule = \"ssh.x11\"\nreason = \"r\"\npaths = [\"usr/bin/x\"]\n"),
        "r.toml:7:10: \"usr/bin/x\" must be an absolute image path or glob, like \"/usr/bin/x\""
    );
    assert_eq!(
        error_of("[[audit.waive]]\nrule = \"ssh.x11\"\nreason = \"r\"\nexpire = \"2027-01-01\"\n"),
        "r.toml:7:1: unknown field \"expire\", did you mean \"expires\"?"
    );
    assert!(
        error_of("[[audit.waive]]\nreason = \"r\"\n")
            .starts_with("r.toml:4:1: a waiver needs the rule")
    );
}

#[test]
fn kiln_build_refuses_a_bad_waiver_as_an_invalid_recipe() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "r.toml",
        &format!("{IMAGE}[[audit.waive]]\nrule = \"ssh.rootlogin\"\nreason = \"x\"\n"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "r.toml", "-o", "out"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: r.toml:5:8: unknown rule \"ssh.rootlogin\", did you mean \"ssh.root-login\"?"
        ),
        "{stderr}"
    );
}

#[test]
fn extends_overrides_the_threshold_and_adds_waivers() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "base.toml",
        &format!(
            "{IMAGE}[audit]\nfail_on = \"low\"\n[[audit.waive]]\nrule = \"pkg.mutators\"\nreason = \"base\"\n"
        ),
    );
    let child = write(
        dir.path(),
        "child.toml",
        "extends = \"base.toml\"\n[audit]\nfail_on = \"critical\"\n[[audit.waive]]\nrule = \"ssh.banner\"\nreason = \"child\"\n",
    );
    let plan = load(&child).unwrap();
    assert_eq!(plan.audit.fail_on, FailOn(Some(Severity::Critical)));
    let rules: Vec<&str> = plan.audit.waivers.iter().map(|w| w.rule.as_str()).collect();
    assert_eq!(rules, ["pkg.mutators", "ssh.banner"]);
}

#[test]
fn build_waivers_expire_by_source_date_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write(
        dir.path(),
        "r.toml",
        &format!(
            "{IMAGE}[[audit.waive]]\nrule = \"img.machine-id\"\nreason = \"golden image for one box\"\nexpires = \"2027-01-31\"\n"
        ),
    );
    let plan = load(&recipe).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let mut tree = Tree::new();
    let (digest, size) = store
        .put(&b"0123456789abcdef0123456789abcdef\n"[..])
        .unwrap();
    tree.insert(
        ImagePath::new("/etc/machine-id").unwrap(),
        Entry {
            kind: Kind::File { digest, size },
            meta: Meta::root(0o444),
        },
    )
    .unwrap();
    let status = |epoch: u64| {
        let report = audit_tree(
            &tree,
            &store,
            &AuditConfig::for_build(plan.audit.fail_on, plan.audit.waivers(), epoch),
        );
        report
            .results
            .iter()
            .find(|r| r.rule.id == "img.machine-id")
            .unwrap()
            .status
    };
    // 2027-01-31T23:59:59Z: the last second of the last day
    assert_eq!(status(1_801_439_999), Status::Waived);
    // 2027-02-01T00:00:00Z
    assert_eq!(status(1_801_440_000), Status::Fail);
    // a build without SOURCE_DATE_EPOCH (0, 1970): before any expiry
    assert_eq!(status(0), Status::Waived);
}
