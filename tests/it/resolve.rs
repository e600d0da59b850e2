//! The package index and the dependency resolver: one hand-written index
//! per rule, then real apt as the oracle on the machine's own apt lists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use kiln::recipe::debian::Variant;
use kiln_debian::index::PackageIndex;
use kiln_debian::resolve::{
    self, DepKind, MAX_ATTEMPTS, Reason, Request, ResolveError, resolve_explained,
};

// ---------------------------------------------------------------------------
// Synthetic indexes

const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A Packages file from short stanzas separated by blank lines. Each gets
/// `Architecture: amd64` unless it names one, and placeholder Filename,
/// Size and SHA256.
fn packages_file(stanzas: &str) -> String {
    let mut out = String::new();
    for stanza in stanzas.split("\n\n") {
        let stanza = stanza.trim();
        if stanza.is_empty() {
            continue;
        }
        out.push_str(stanza);
        out.push('\n');
        if !stanza.contains("Architecture:") {
            out.push_str("Architecture: amd64\n");
        }
        out.push_str(&format!(
            "Filename: pool/main/x/x.deb\nSize: 1000\nSHA256: {SHA}\n\n"
        ));
    }
    out
}

fn index_of(suites: &[(&str, &str)]) -> PackageIndex {
    index_for("amd64", suites)
}

fn index_for(arch: &str, suites: &[(&str, &str)]) -> PackageIndex {
    let mut index = PackageIndex::new(arch);
    for (suite, stanzas) in suites {
        index
            .add_packages_file(&packages_file(stanzas), suite)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    index
}

fn idx_of(stanzas: &str) -> PackageIndex {
    index_of(&[("bookworm", stanzas)])
}

struct Ask<'a> {
    variant: Variant,
    packages: &'a [&'a str],
    exclude: &'a [&'a str],
    recommends: bool,
}

fn ask<'a>(packages: &'a [&'a str]) -> Ask<'a> {
    Ask {
        variant: Variant::Essential,
        packages,
        exclude: &[],
        recommends: false,
    }
}

impl Ask<'_> {
    fn run<'i>(&self, index: &'i PackageIndex) -> Result<Vec<resolve::Selected<'i>>, ResolveError> {
        let packages: Vec<String> = self.packages.iter().map(|s| s.to_string()).collect();
        let exclude: Vec<String> = self.exclude.iter().map(|s| s.to_string()).collect();
        let request = Request {
            variant: self.variant,
            packages: &packages,
            exclude: &exclude,
            recommends: self.recommends,
        };
        resolve_explained(index, &request)
    }

    /// `name=version` of every selected package, sorted by name.
    fn names(&self, index: &PackageIndex) -> Vec<String> {
        match self.run(index) {
            Ok(selected) => selected
                .iter()
                .map(|s| format!("{}={}", s.package.name, s.package.version))
                .collect(),
            Err(e) => panic!("resolution failed: {e}"),
        }
    }

    fn error(&self, index: &PackageIndex) -> String {
        match self.run(index) {
            Ok(selected) => panic!(
                "resolution succeeded: {:?}",
                selected
                    .iter()
                    .map(|s| s.package.name.as_str())
                    .collect::<Vec<_>>()
            ),
            Err(e) => e.to_string(),
        }
    }
}

#[test]
fn newest_version_across_suites_wins() {
    let index = index_of(&[
        (
            "bookworm",
            "Package: app\nVersion: 1\nDepends: libssl3\n\n\
             Package: libssl3\nVersion: 3.0.11-1~deb12u2",
        ),
        (
            "bookworm-security",
            "Package: libssl3\nVersion: 3.0.15-1~deb12u1",
        ),
        (
            "bookworm-updates",
            "Package: libssl3\nVersion: 3.0.13-1~deb12u1",
        ),
    ]);
    let selected = ask(&["app"]).run(&index).unwrap();
    let libssl = selected
        .iter()
        .find(|s| s.package.name == "libssl3")
        .unwrap();
    assert_eq!(libssl.package.version.as_str(), "3.0.15-1~deb12u1");
    assert_eq!(libssl.package.suite, "bookworm-security");
}

#[test]
fn unsatisfiable_version_names_the_chain() {
    let index = idx_of(
        "Package: openssh-server\nVersion: 1:9.2p1-2\nDepends: libssl3 (>= 3.0.9)\n\n\
         Package: libssl3\nVersion: 3.0.2-1\n\n\
         Package: top\nVersion: 1\nDepends: mid\n\n\
         Package: mid\nVersion: 2\nDepends: openssh-server (>= 1:9)",
    );
    assert_eq!(
        ask(&["openssh-server"]).error(&index),
        "openssh-server (requested) depends on libssl3 (>= 3.0.9), but the newest libssl3 is 3.0.2-1 (bookworm)"
    );
    assert_eq!(
        ask(&["top"]).error(&index),
        "openssh-server (needed by mid, which is needed by top, which is requested) depends on libssl3 (>= 3.0.9), but the newest libssl3 is 3.0.2-1 (bookworm)"
    );
    // An older version that would fit is never used: apt does not
    // downgrade without a pin either.
    let index = index_of(&[
        (
            "a",
            "Package: app\nVersion: 1\nDepends: lib (<< 2)\n\nPackage: lib\nVersion: 1",
        ),
        ("b", "Package: lib\nVersion: 2"),
    ]);
    assert_eq!(
        ask(&["app"]).error(&index),
        "app (requested) depends on lib (<< 2), but the newest lib is 2 (b)"
    );
    // Missing entirely.
    let index = idx_of("Package: app\nVersion: 1\nPre-Depends: nothing-here");
    assert_eq!(
        ask(&["app"]).error(&index),
        "app (requested) pre-depends on nothing-here, but nothing-here is not in the package index"
    );
}

#[test]
fn version_relations_are_checked() {
    let index = idx_of(
        "Package: app\nVersion: 1\nDepends: a (>= 2), b (<< 2:0), c (= 1.0-1), d (>> 1), e (<= 1)\n\n\
         Package: a\nVersion: 2\n\nPackage: b\nVersion: 1:5\n\nPackage: c\nVersion: 1.0-1\n\n\
         Package: d\nVersion: 1.1\n\nPackage: e\nVersion: 1~rc1",
    );
    assert_eq!(
        ask(&["app"]).names(&index),
        ["a=2", "app=1", "b=1:5", "c=1.0-1", "d=1.1", "e=1~rc1"]
    );
    let index =
        idx_of("Package: app\nVersion: 1\nDepends: d (>> 1)\n\nPackage: d\nVersion: 1~beta");
    assert_eq!(
        ask(&["app"]).error(&index),
        "app (requested) depends on d (>> 1), but the newest d is 1~beta (bookworm)"
    );
}

#[test]
fn alternatives() {
    let stanzas = "Package: app\nVersion: 1\nDepends: first | second\n\n\
         Package: first\nVersion: 1\n\nPackage: second\nVersion: 1";
    // The first satisfiable alternative wins...
    assert_eq!(ask(&["app"]).names(&idx_of(stanzas)), ["app=1", "first=1"]);
    // ...unless another one is already selected, whatever the order.
    assert_eq!(
        ask(&["app", "second"]).names(&idx_of(stanzas)),
        ["app=1", "second=1"]
    );
    assert_eq!(
        ask(&["second", "app"]).names(&idx_of(stanzas)),
        ["app=1", "second=1"]
    );
    // A first alternative whose version does not fit is skipped.
    let index2 = idx_of(
        "Package: app\nVersion: 1\nDepends: first (>= 2) | second\n\n\
         Package: first\nVersion: 1\n\nPackage: second\nVersion: 1",
    );
    assert_eq!(ask(&["app"]).names(&index2), ["app=1", "second=1"]);
    // A first alternative that fails further down is rolled back entirely.
    let index3 = idx_of(
        "Package: app\nVersion: 1\nDepends: first | second\n\n\
         Package: first\nVersion: 1\nDepends: helper, broken\n\n\
         Package: helper\nVersion: 1\n\n\
         Package: broken\nVersion: 1\nDepends: missing\n\n\
         Package: second\nVersion: 1",
    );
    assert_eq!(ask(&["app"]).names(&index3), ["app=1", "second=1"]);
    // When nothing works, every alternative says why.
    let index4 = idx_of(
        "Package: app\nVersion: 1\nDepends: first | second (>= 2) | third\n\n\
         Package: first\nVersion: 1\nDepends: missing\n\n\
         Package: second\nVersion: 1",
    );
    assert_eq!(
        ask(&["app"]).error(&index4),
        "app (requested) depends on first | second (>= 2) | third, but nothing can satisfy it:\n  \
         - first (needed by app, which is requested) depends on missing, but missing is not in the package index\n  \
         - second (>= 2): the newest second is 1 (bookworm)\n  \
         - third: third is not in the package index"
    );
}

#[test]
fn virtual_packages() {
    // The only provider of a virtual name is chosen.
    let index1 = idx_of(
        "Package: app\nVersion: 1\nDepends: mail-transport-agent\n\n\
         Package: postfix\nVersion: 3\nProvides: mail-transport-agent",
    );
    assert_eq!(ask(&["app"]).names(&index1), ["app=1", "postfix=3"]);
    // Several providers: a selected one wins; otherwise Essential first,
    // then priority, then name.
    let stanzas = "Package: app\nVersion: 1\nDepends: awk\n\n\
         Package: original-awk\nVersion: 1\nPriority: optional\nProvides: awk\n\n\
         Package: gawk\nVersion: 1\nPriority: optional\nProvides: awk\n\n\
         Package: mawk\nVersion: 1\nPriority: required\nProvides: awk";
    let idx = idx_of(stanzas);
    assert_eq!(ask(&["app"]).names(&idx), ["app=1", "mawk=1"]);
    assert_eq!(
        ask(&["app", "original-awk"]).names(&idx),
        ["app=1", "original-awk=1"]
    );
    let idx = idx_of(&stanzas.replace("Priority: required", "Priority: optional"));
    assert_eq!(ask(&["app"]).names(&idx), ["app=1", "gawk=1"]);
    let idx = idx_of(&stanzas.replace(
        "Package: original-awk\nVersion: 1\nPriority: optional",
        "Package: original-awk\nVersion: 1\nPriority: optional\nEssential: yes",
    ));
    // An Essential provider is always in the base set already, so it
    // satisfies the dependency before any choice is made.
    let selected = ask(&["app"]).run(&idx).unwrap();
    let names: Vec<_> = selected.iter().map(|s| s.package.name.as_str()).collect();
    assert_eq!(names, ["app", "original-awk"]);
    assert_eq!(selected[1].reason, Reason::Essential);
    // The real package beats providers.
    let idx = idx_of(&format!("{stanzas}\n\nPackage: awk\nVersion: 9"));
    assert_eq!(ask(&["app"]).names(&idx), ["app=1", "awk=9"]);

    // Versioned Provides satisfy versioned dependencies; unversioned ones
    // never do (Policy 7.5).
    let idx = idx_of(
        "Package: app\nVersion: 1\nDepends: libfoo (>= 2)\n\n\
         Package: libfoo-compat\nVersion: 1\nProvides: libfoo (= 1)\n\n\
         Package: libfoo-ng\nVersion: 5\nProvides: libfoo (= 2.5)\n\n\
         Package: libfoo-any\nVersion: 5\nProvides: libfoo",
    );
    assert_eq!(ask(&["app"]).names(&idx), ["app=1", "libfoo-ng=5"]);
    let idx = idx_of(
        "Package: app\nVersion: 1\nDepends: libfoo (>= 2)\n\n\
         Package: libfoo-compat\nVersion: 1\nProvides: libfoo (= 1)\n\n\
         Package: libfoo-any\nVersion: 5\nProvides: libfoo",
    );
    assert_eq!(
        ask(&["app"]).error(&idx),
        "app (requested) depends on libfoo (>= 2), but libfoo is a virtual package and no provider satisfies it: \
         libfoo-any 5 provides libfoo without a version, libfoo-compat 1 provides libfoo (= 1)"
    );
    // Only candidates provide: an older version's Provides do not count.
    let idx = index_of(&[
        (
            "old",
            "Package: app\nVersion: 1\nDepends: virt\n\nPackage: p\nVersion: 1\nProvides: virt",
        ),
        ("new", "Package: p\nVersion: 2"),
    ]);
    assert_eq!(
        ask(&["app"]).error(&idx),
        "app (requested) depends on virt, but virt is not in the package index"
    );

    // Requesting a virtual name: fine with one provider, an error with more.
    let selected = ask(&["mail-transport-agent"]).run(&index1).unwrap();
    assert_eq!(selected.len(), 1);
    assert_eq!(
        selected[0].reason,
        Reason::RequestedVirtual("mail-transport-agent".into())
    );
    assert_eq!(
        ask(&["awk"]).error(&idx_of(stanzas)),
        "\"awk\" is a virtual package provided by gawk, mawk, original-awk; request one of them"
    );
}

#[test]
fn conflicts_and_breaks() {
    let stanzas = "Package: nftables\nVersion: 1.0.6\nConflicts: iptables-legacy\n\n\
         Package: iptables-legacy\nVersion: 1.8\n\n\
         Package: firewall\nVersion: 1\nDepends: iptables-legacy\n\n\
         Package: app\nVersion: 1\nDepends: nftables";
    let idx = idx_of(stanzas);
    assert_eq!(
        ask(&["nftables", "firewall"]).error(&idx),
        "cannot install iptables-legacy 1.8 (needed by firewall, which is requested): \
         nftables (requested) conflicts with iptables-legacy"
    );
    assert_eq!(
        ask(&["iptables-legacy", "app"]).error(&idx),
        "cannot install nftables 1.0.6 (needed by app, which is requested): \
         it conflicts with iptables-legacy (requested)"
    );
    assert_eq!(
        ask(&["nftables", "iptables-legacy"]).error(&idx),
        "cannot install nftables 1.0.6 (requested): it conflicts with iptables-legacy (requested)"
    );

    // Versioned: only matching versions conflict; Breaks is as strong.
    let idx = idx_of(
        "Package: a\nVersion: 2\nBreaks: b (<< 2), c (<< 2)\n\n\
         Package: b\nVersion: 2\n\nPackage: c\nVersion: 1",
    );
    assert_eq!(ask(&["a", "b"]).names(&idx), ["a=2", "b=2"]);
    assert_eq!(
        ask(&["a", "c"]).error(&idx),
        "cannot install c 1 (requested): a (requested) breaks c (<< 2)"
    );

    // A conflicting alternative makes way for the next one.
    let idx = idx_of(
        "Package: app\nVersion: 1\nDepends: nft | legacy\n\n\
         Package: nft\nVersion: 1\nConflicts: oldlib\n\n\
         Package: legacy\nVersion: 1\n\n\
         Package: oldlib\nVersion: 1",
    );
    assert_eq!(
        ask(&["app", "oldlib"]).names(&idx),
        ["app=1", "legacy=1", "oldlib=1"]
    );
    // Also when the conflict is found below the alternative.
    let idx = idx_of(
        "Package: app\nVersion: 1\nDepends: nft | legacy\n\n\
         Package: nft\nVersion: 1\nDepends: libnft\n\n\
         Package: libnft\nVersion: 1\nBreaks: oldlib (<< 3)\n\n\
         Package: legacy\nVersion: 1\n\n\
         Package: oldlib\nVersion: 2",
    );
    assert_eq!(
        ask(&["app", "oldlib"]).names(&idx),
        ["app=1", "legacy=1", "oldlib=2"]
    );

    // Provides + Conflicts on the same virtual name: one of a kind, and
    // never in conflict with itself.
    let mta = "Package: postfix\nVersion: 3\nProvides: mail-transport-agent\nConflicts: mail-transport-agent\n\n\
         Package: exim4\nVersion: 4\nProvides: mail-transport-agent\nConflicts: mail-transport-agent\n\n\
         Package: app\nVersion: 1\nDepends: exim4 | mail-transport-agent";
    let idx = idx_of(mta);
    assert_eq!(ask(&["postfix"]).names(&idx), ["postfix=3"]);
    assert_eq!(ask(&["app", "postfix"]).names(&idx), ["app=1", "postfix=3"]);
    assert_eq!(
        ask(&["postfix", "exim4"]).error(&idx),
        "cannot install postfix 3 (requested): it conflicts with mail-transport-agent, \
         which exim4 4 provides (requested)"
    );
    // A versioned conflict on a virtual name only hits versioned Provides.
    let idx = idx_of(
        "Package: a\nVersion: 1\nConflicts: virt (<< 2)\n\n\
         Package: old\nVersion: 1\nProvides: virt (= 1)\n\n\
         Package: plain\nVersion: 1\nProvides: virt",
    );
    assert_eq!(ask(&["a", "plain"]).names(&idx), ["a=1", "plain=1"]);
    assert_eq!(
        ask(&["a", "old"]).error(&idx),
        "cannot install old 1 (requested): a (requested) conflicts with virt (<< 2), which old provides"
    );
}

#[test]
fn architecture_lists_and_qualifiers() {
    let stanzas = "Package: app\nVersion: 1\nDepends: a [amd64], b [arm64], c [!amd64], d [linux-any] | e, f [i386] | g [i386]\n\n\
         Package: a\nVersion: 1\n\nPackage: b\nVersion: 1\nArchitecture: all\n\n\
         Package: c\nVersion: 1\nArchitecture: all\n\nPackage: d\nVersion: 1\nArchitecture: all\n\n\
         Package: e\nVersion: 1\nArchitecture: all\n\n\
         Package: app\nVersion: 1\nArchitecture: arm64\nDepends: b\n\n\
         Package: a\nVersion: 9\nArchitecture: arm64";
    let idx = idx_of(stanzas);
    assert_eq!(ask(&["app"]).names(&idx), ["a=1", "app=1", "d=1"]);
    // The same stanzas seen from arm64.
    let idx = index_for("arm64", &[("bookworm", stanzas)]);
    assert_eq!(ask(&["app"]).names(&idx), ["app=1", "b=1"]);
    assert_eq!(idx.candidate("a").unwrap().version.as_str(), "9");

    // :any needs Multi-Arch: allowed (also through Provides), :native and
    // the index's own architecture are fine, others are not.
    let idx = idx_of(
        "Package: app\nVersion: 1\nDepends: python3:any (>= 3.11), perl:native, libc6:amd64, py:any\n\n\
         Package: python3\nVersion: 3.11.2-1\nMulti-Arch: allowed\n\n\
         Package: perl\nVersion: 5.36\n\nPackage: libc6\nVersion: 2.36\n\n\
         Package: pypy\nVersion: 1\nMulti-Arch: allowed\nProvides: py\n\n\
         Package: strict\nVersion: 1\nDepends: perl:any\n\n\
         Package: foreign\nVersion: 1\nDepends: libc6:i386\n\n\
         Package: virtual\nVersion: 1\nDepends: vv:any\n\n\
         Package: vprov\nVersion: 1\nProvides: vv",
    );
    assert_eq!(
        ask(&["app"]).names(&idx),
        [
            "app=1",
            "libc6=2.36",
            "perl=5.36",
            "pypy=1",
            "python3=3.11.2-1"
        ]
    );
    assert_eq!(
        ask(&["strict"]).error(&idx),
        "strict (requested) depends on perl:any, but perl 5.36 is not Multi-Arch: allowed, so it cannot satisfy perl:any"
    );
    assert_eq!(
        ask(&["foreign"]).error(&idx),
        "foreign (requested) depends on libc6:i386, but the index only holds amd64 and all packages"
    );
    assert_eq!(
        ask(&["virtual"]).error(&idx),
        "virtual (requested) depends on vv:any, but vv is a virtual package and no provider satisfies it: vprov 1 is not Multi-Arch: allowed"
    );
}

#[test]
fn exclusions() {
    let stanzas = "Package: base\nVersion: 1\nEssential: yes\n\n\
         Package: tzdata\nVersion: 1\nPriority: required\n\n\
         Package: bar\nVersion: 1\nDepends: libfoo\n\n\
         Package: libfoo\nVersion: 1\n\n\
         Package: top\nVersion: 1\nDepends: bar\n\n\
         Package: alt\nVersion: 1\nDepends: libfoo | libfoo-ng\n\n\
         Package: libfoo-ng\nVersion: 1";
    let idx = idx_of(stanzas);
    let minbase = |packages, exclude| Ask {
        variant: Variant::Minbase,
        packages,
        exclude,
        recommends: false,
    };
    assert_eq!(minbase(&[], &[]).names(&idx), ["base=1", "tzdata=1"]);
    // An excluded base package is left out.
    assert_eq!(minbase(&[], &["tzdata"]).names(&idx), ["base=1"]);
    // A dependency on an excluded package is an error naming the chain.
    assert_eq!(
        minbase(&["bar"], &["libfoo"]).error(&idx),
        "libfoo is excluded, but bar (requested) depends on it"
    );
    assert_eq!(
        minbase(&["top"], &["libfoo"]).error(&idx),
        "libfoo is excluded, but bar (needed by top, which is requested) depends on it"
    );
    // ... unless an alternative avoids it.
    assert_eq!(
        minbase(&["alt"], &["libfoo"]).names(&idx),
        ["alt=1", "base=1", "libfoo-ng=1", "tzdata=1"]
    );
    assert_eq!(
        minbase(&["bar"], &["bar"]).error(&idx),
        "package \"bar\" is both requested and excluded"
    );
    assert_eq!(
        minbase(&[], &["libfooo"]).error(&idx),
        "excluded package \"libfooo\" is not in the package index; did you mean \"libfoo\"?"
    );
    // Excluding a base package that the base set itself needs.
    let idx = idx_of(
        "Package: base\nVersion: 1\nEssential: yes\nPre-Depends: libc\n\n\
         Package: libc\nVersion: 1\nPriority: required",
    );
    assert_eq!(
        minbase(&[], &["libc"]).error(&idx),
        "libc is excluded, but base (in the base set as Essential: yes) pre-depends on it"
    );
}

#[test]
fn unknown_packages_suggest_a_name() {
    let idx = idx_of("Package: openssh-server\nVersion: 1\n\nPackage: nftables\nVersion: 1");
    assert_eq!(
        ask(&["opensh-server"]).error(&idx),
        "package \"opensh-server\" is not in the package index; did you mean \"openssh-server\"?"
    );
    assert_eq!(
        ask(&["completely-different"]).error(&idx),
        "package \"completely-different\" is not in the package index"
    );
    match ask(&["nftable"]).run(&idx) {
        Err(ResolveError::UnknownPackage { name, suggestion }) => {
            assert_eq!(
                (name.as_str(), suggestion.as_deref()),
                ("nftable", Some("nftables"))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn variants_pick_the_base_set() {
    let idx = idx_of(
        "Package: ess\nVersion: 1\nEssential: yes\nPriority: optional\n\n\
         Package: req\nVersion: 1\nPriority: required\n\n\
         Package: imp\nVersion: 1\nPriority: important\n\n\
         Package: std\nVersion: 1\nPriority: standard\n\n\
         Package: gone\nVersion: 1\nPriority: required\n\n\
         Package: gone\nVersion: 2\nPriority: optional",
    );
    let base = |variant| {
        Ask {
            variant,
            packages: &[],
            exclude: &[],
            recommends: false,
        }
        .names(&idx)
    };
    assert_eq!(base(Variant::Essential), ["ess=1"]);
    // The candidate's fields decide: gone 2 is optional.
    assert_eq!(base(Variant::Minbase), ["ess=1", "req=1"]);
    assert_eq!(base(Variant::Important), ["ess=1", "imp=1", "req=1"]);
    let reasons: Vec<_> = Ask {
        variant: Variant::Important,
        packages: &["std"],
        exclude: &[],
        recommends: false,
    }
    .run(&idx)
    .unwrap()
    .into_iter()
    .map(|s| s.reason)
    .collect();
    assert_eq!(
        reasons,
        [
            Reason::Essential,
            Reason::Important,
            Reason::Required,
            Reason::Requested
        ]
    );
}

#[test]
fn recommends_are_optional_and_best_effort() {
    let idx = idx_of(
        "Package: app\nVersion: 1\nRecommends: helper, broken, absent\n\n\
         Package: helper\nVersion: 1\nDepends: libhelper\n\n\
         Package: libhelper\nVersion: 1\n\n\
         Package: broken\nVersion: 1\nDepends: missing",
    );
    assert_eq!(ask(&["app"]).names(&idx), ["app=1"]);
    let with = Ask {
        recommends: true,
        ..ask(&["app"])
    };
    assert_eq!(with.names(&idx), ["app=1", "helper=1", "libhelper=1"]);
    let selected = with.run(&idx).unwrap();
    assert_eq!(
        selected[1].reason,
        Reason::Dependency {
            by: "app".into(),
            kind: DepKind::Recommends,
            relation: "helper".into()
        }
    );
}

#[test]
fn cycles_and_pre_depends() {
    let idx = idx_of(
        "Package: a\nVersion: 1\nPre-Depends: b\n\n\
         Package: b\nVersion: 1\nDepends: c\n\n\
         Package: c\nVersion: 1\nDepends: a (>= 1)",
    );
    assert_eq!(ask(&["a"]).names(&idx), ["a=1", "b=1", "c=1"]);
}

#[test]
fn reasons_explain_the_selection() {
    let idx = idx_of(
        "Package: base\nVersion: 1\nEssential: yes\nDepends: libc\n\n\
         Package: libc\nVersion: 2\n\n\
         Package: openssh-server\nVersion: 1\nDepends: libssl3 (>= 3) | libssl1.1, libc\n\n\
         Package: libssl3\nVersion: 3.1\nDepends: libcrypto\n\n\
         Package: libcrypto\nVersion: 3.1",
    );
    let selected = ask(&["openssh-server"]).run(&idx).unwrap();
    let reason = |name: &str| {
        selected
            .iter()
            .find(|s| s.package.name == name)
            .map(|s| s.reason.to_string())
            .unwrap()
    };
    assert_eq!(reason("base"), "Essential: yes");
    assert_eq!(reason("libc"), "Depends of base: libc");
    assert_eq!(reason("openssh-server"), "requested");
    assert_eq!(
        reason("libssl3"),
        "Depends of openssh-server: libssl3 (>= 3) | libssl1.1"
    );
    assert_eq!(
        resolve::why(&selected, "libcrypto").unwrap(),
        "needed by libssl3, which is needed by openssh-server, which is requested"
    );
    assert_eq!(resolve::why(&selected, "nothing"), None);
}

#[test]
fn deterministic_whatever_the_order() {
    // Several equally good providers and alternatives: the answer must not
    // depend on stanza order, suite order or hash seeds.
    let stanzas = [
        "Package: app\nVersion: 1\nDepends: awk, mta | mail-transport-agent, www-browser",
        "Package: gawk\nVersion: 1\nProvides: awk",
        "Package: mawk\nVersion: 1\nProvides: awk",
        "Package: busybox-awk\nVersion: 1\nProvides: awk",
        "Package: postfix\nVersion: 1\nProvides: mail-transport-agent",
        "Package: exim4\nVersion: 1\nProvides: mail-transport-agent",
        "Package: lynx\nVersion: 1\nProvides: www-browser",
        "Package: w3m\nVersion: 1\nProvides: www-browser",
        "Package: links\nVersion: 1\nProvides: www-browser",
    ];
    let expected = ["app=1", "busybox-awk=1", "exim4=1", "links=1"];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..40 {
        let mut order: Vec<&str> = stanzas.to_vec();
        // xorshift shuffle
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let split = (seed % order.len() as u64) as usize;
        let (first, second) = order.split_at(split);
        let idx = index_of(&[("s1", &first.join("\n\n")), ("s2", &second.join("\n\n"))]);
        assert_eq!(ask(&["app"]).names(&idx), expected, "round {round}");
    }
}

#[test]
fn search_is_bounded() {
    // Each level has two ways down, and the bottom is missing: the full
    // search would take 2^20 steps.
    let mut stanzas = vec!["Package: top\nVersion: 1\nDepends: x0".to_string()];
    for i in 0..20 {
        stanzas.push(format!(
            "Package: x{i}\nVersion: 1\nDepends: a{i} | b{i}\n\n\
             Package: a{i}\nVersion: 1\nDepends: x{n}\n\n\
             Package: b{i}\nVersion: 1\nDepends: x{n}",
            n = i + 1
        ));
    }
    stanzas.push("Package: x20\nVersion: 1\nDepends: missing".into());
    let idx = idx_of(&stanzas.join("\n\n"));
    let started = Instant::now();
    match ask(&["top"]).run(&idx) {
        Err(ResolveError::TooComplex { attempts }) => assert!(attempts > MAX_ATTEMPTS),
        other => panic!("{other:?}"),
    }
    eprintln!("bounded search gave up after {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// Real apt as the oracle

const LISTS: &str = "/var/lib/apt/lists";
const CODENAME: &str = "bookworm";
const REQUEST: &[&str] = &["openssh-server", "nftables", "systemd-sysv"];

/// One apt list: suite, its archive URI (as apt names list files), and
/// the decompressed text.
struct List {
    suite: String,
    uri: String,
    text: String,
}

fn native_arch() -> String {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .expect("dpkg --print-architecture");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The main-component Packages lists of bookworm, bookworm-updates and
/// bookworm-security, decompressed with apt's own helper.
fn real_lists() -> &'static [List] {
    static CELL: OnceLock<Vec<List>> = OnceLock::new();
    CELL.get_or_init(|| {
        let arch = native_arch();
        let mut lists = Vec::new();
        let entries: Vec<PathBuf> = std::fs::read_dir(LISTS)
            .unwrap_or_else(|e| panic!("cannot read {LISTS}: {e}; the apt oracle needs apt lists"))
            .map(|e| e.unwrap().path())
            .collect();
        for suite in [CODENAME.to_string(), format!("{CODENAME}-updates"), format!("{CODENAME}-security")] {
            let marker = format!("_dists_{suite}_main_binary-{arch}_Packages");
            let mut found: Vec<&PathBuf> = entries
                .iter()
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    name.contains(&marker)
                        && !name.ends_with(".diff_Index")
                        && name[name.find(&marker).unwrap() + marker.len()..]
                            .trim_start_matches('.')
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric())
                })
                .collect();
            found.sort();
            let Some(path) = found.first() else {
                assert!(
                    suite != CODENAME,
                    "no apt list for {CODENAME} main {arch} in {LISTS} (looked for *{marker}*). \
                     This test uses real apt as its oracle and does not run `apt-get update` itself: \
                     run it once (as root) with {CODENAME} in the sources, then rerun."
                );
                continue;
            };
            let file = path.file_name().unwrap().to_string_lossy().to_string();
            let prefix = &file[..file.find("_dists_").unwrap()];
            let out = Command::new("/usr/lib/apt/apt-helper")
                .arg("cat-file")
                .arg(path)
                .output()
                .expect("run /usr/lib/apt/apt-helper");
            assert!(out.status.success(), "apt-helper cat-file {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
            lists.push(List {
                suite,
                uri: format!("http://{}", prefix.replace('_', "/")),
                text: String::from_utf8(out.stdout).expect("Packages list is UTF-8"),
            });
        }
        lists
    })
}

/// A private apt configuration in `dir`: an empty status, `sources`, the
/// lists in `lists`; nothing of the host's apt state is written.
fn apt_config(dir: &Path, lists: &Path, sources: &str, arch: &str) -> PathBuf {
    for sub in [
        "etc/apt.conf.d",
        "etc/preferences.d",
        "etc/sources.list.d",
        "etc/trusted.gpg.d",
        "state",
        "cache",
        "log",
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("status"), "").unwrap();
    std::fs::write(dir.join("etc/sources.list"), sources).unwrap();
    let d = dir.display();
    let lists = lists.display();
    let config = format!(
        "Dir::State \"{d}/state\";\n\
         Dir::State::status \"{d}/status\";\n\
         Dir::State::Lists \"{lists}\";\n\
         Dir::Cache \"{d}/cache\";\n\
         Dir::Log \"{d}/log\";\n\
         Dir::Etc \"{d}/etc\";\n\
         Dir::Etc::Main \"{d}/etc/apt.conf\";\n\
         Dir::Etc::Parts \"{d}/etc/apt.conf.d\";\n\
         Dir::Etc::SourceList \"{d}/etc/sources.list\";\n\
         Dir::Etc::SourceParts \"{d}/etc/sources.list.d\";\n\
         Dir::Etc::Preferences \"{d}/etc/preferences\";\n\
         Dir::Etc::PreferencesParts \"{d}/etc/preferences.d\";\n\
         APT::Architecture \"{arch}\";\n\
         APT::Architectures {{ \"{arch}\"; }};\n\
         APT::Install-Recommends \"false\";\n\
         APT::Sandbox::User \"root\";\n\
         Debug::NoLocking \"true\";\n"
    );
    let conf = dir.join("apt.conf");
    std::fs::write(&conf, config).unwrap();
    conf
}

/// What apt-get decides for `args` on an empty system: `name -> version`
/// of what it would install, or its error.
fn apt_decision(conf: &Path, args: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let out = Command::new("apt-get")
        .env("APT_CONFIG", conf)
        .env("LC_ALL", "C")
        .args(["install", "--simulate", "--no-install-recommends", "-q"])
        .args(args)
        .output()
        .expect("run apt-get");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
    }
    // Inst NAME (VERSION Origin:release [arch])
    let installs: BTreeMap<String, String> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("Inst "))
        .map(|rest| {
            let (name, rest) = rest.split_once(' ').unwrap();
            let version = rest.trim_start_matches('(').split(' ').next().unwrap();
            let name = name.split(':').next().unwrap();
            (name.to_string(), version.to_string())
        })
        .collect();
    assert!(
        !installs.is_empty(),
        "no Inst lines from apt-get:\n{stdout}"
    );
    Ok(installs)
}

/// `name -> version` that apt-get would install on an empty system.
fn apt_simulation(lists: &[List], arch: &str, args: &[&str]) -> BTreeMap<String, String> {
    let root = tempfile::tempdir().unwrap();
    let sources: String = lists
        .iter()
        .map(|l| format!("deb {} {} main\n", l.uri, l.suite))
        .collect();
    let conf = apt_config(root.path(), Path::new(LISTS), &sources, arch);
    apt_decision(&conf, args).unwrap_or_else(|e| panic!("apt-get failed: {e}"))
}

/// apt's decision on a synthetic archive: each suite's stanzas (as
/// [`packages_file`] writes them) in a `file:` repository that `apt-get
/// update` reads into private lists. `name=version` sorted, or apt's error.
fn apt_on(suites: &[(&str, &str)], request: &[&str]) -> Result<Vec<String>, String> {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("repo");
    let mut sources = String::new();
    for (suite, stanzas) in suites {
        let dist = repo.join("dists").join(suite);
        let binary = dist.join("main/binary-amd64");
        std::fs::create_dir_all(&binary).unwrap();
        std::fs::write(binary.join("Packages"), packages_file(stanzas)).unwrap();
        let release = Command::new("apt-ftparchive")
            .arg("-o")
            .arg(format!("APT::FTPArchive::Release::Suite={suite}"))
            .args(["release", "."])
            .current_dir(&dist)
            .output()
            .expect("apt-ftparchive is missing: apt-get install apt-utils");
        assert!(release.status.success(), "{release:?}");
        std::fs::write(dist.join("Release"), release.stdout).unwrap();
        sources.push_str(&format!(
            "deb [trusted=yes] file:{} {suite} main\n",
            repo.display()
        ));
    }
    let lists = root.path().join("lists");
    std::fs::create_dir_all(lists.join("partial")).unwrap();
    let conf = apt_config(&root.path().join("apt"), &lists, &sources, "amd64");
    let update = Command::new("apt-get")
        .env("APT_CONFIG", &conf)
        .env("LC_ALL", "C")
        .args(["update", "-q"])
        .output()
        .expect("run apt-get");
    assert!(update.status.success(), "apt-get update: {update:?}");
    apt_decision(&conf, request).map(|installs| {
        installs
            .into_iter()
            .map(|(name, version)| format!("{name}={version}"))
            .collect()
    })
}

/// kiln's decision checked against apt's on the same archive: the same
/// packages (`Some`), or both refuse (`None`).
fn same_as_apt_on(suites: &[(&str, &str)], request: &[&str]) -> Option<Vec<String>> {
    let index = index_of(suites);
    let kiln = ask(request).run(&index).map(|selected| {
        let mut names: Vec<String> = selected
            .iter()
            .map(|s| format!("{}={}", s.package.name, s.package.version))
            .collect();
        names.sort();
        names
    });
    match (kiln, apt_on(suites, request)) {
        (Ok(ours), Ok(apt)) if ours == apt => Some(ours),
        (Err(_), Err(_)) => None,
        (ours, apt) => {
            panic!("{request:?}: kiln and apt disagree\n  kiln: {ours:?}\n  apt: {apt:?}")
        }
    }
}

#[test]
fn breaks_agree_with_apt() {
    // Version ranges: every operator, with dpkg's ordering deciding
    // (1.0-1 is newer than 1; 1.0~rc1 older than 1.0~rc2).
    let ranges = [(
        "bookworm",
        "Package: a\nVersion: 2\nBreaks: b (>= 1.5), c (<< 3), d (= 2), e (>> 1), f (<= 1), g (<< 1.0~rc2)\n\n\
         Package: b\nVersion: 1\n\nPackage: c\nVersion: 3\n\nPackage: d\nVersion: 2\n\n\
         Package: e\nVersion: 1\n\nPackage: f\nVersion: 1.0-1\n\nPackage: g\nVersion: 1.0~rc1\n\n\
         Package: app\nVersion: 1\nDepends: lib\n\nPackage: lib\nVersion: 1\nBreaks: d (>= 2~)",
    )];
    assert_eq!(
        same_as_apt_on(&ranges, &["a", "b", "c", "e", "f"]).unwrap(),
        ["a=2", "b=1", "c=3", "e=1", "f=1.0-1"]
    );
    for request in [
        &["a", "d"][..],
        &["d", "a"][..],
        &["a", "g"][..],
        // the breaking package pulled in by a dependency
        &["d", "app"][..],
    ] {
        assert_eq!(same_as_apt_on(&ranges, request), None, "{request:?}");
    }

    // Satisfied by an upgrade: the candidate is the newer version, so the
    // old one in the release does not matter, whichever side upgrades.
    let upgraded = [
        (
            "bookworm",
            "Package: a\nVersion: 2\nBreaks: b (<< 2)\n\n\
             Package: b\nVersion: 1\n\n\
             Package: app\nVersion: 1\nDepends: b (>= 1)\n\n\
             Package: tool\nVersion: 1\n\n\
             Package: lib\nVersion: 1\nBreaks: tool (<< 2)",
        ),
        (
            "bookworm-updates",
            "Package: b\nVersion: 2\n\n\
             Package: lib\nVersion: 1+deb12u1\nBreaks: tool (<< 1)",
        ),
    ];
    assert_eq!(
        same_as_apt_on(&upgraded, &["a", "b"]).unwrap(),
        ["a=2", "b=2"]
    );
    assert_eq!(
        same_as_apt_on(&upgraded, &["a", "app"]).unwrap(),
        ["a=2", "app=1", "b=2"]
    );
    assert_eq!(
        same_as_apt_on(&upgraded, &["lib", "tool"]).unwrap(),
        ["lib=1+deb12u1", "tool=1"]
    );
    // an upgrade that is not enough
    let short = [
        upgraded[0],
        ("bookworm-updates", "Package: b\nVersion: 1.9"),
    ];
    assert_eq!(same_as_apt_on(&short, &["a", "b"]), None);

    // Against a virtual package: an unversioned Breaks hits every
    // provider, a versioned one only versioned Provides that match, and
    // a package never breaks itself through its own Provides.
    let virtual_ = [(
        "bookworm",
        "Package: a\nVersion: 1\nBreaks: virt\n\n\
         Package: p\nVersion: 1\nProvides: virt\n\n\
         Package: q\nVersion: 1\n\n\
         Package: v\nVersion: 1\nBreaks: vv (<< 2)\n\n\
         Package: old\nVersion: 1\nProvides: vv (= 1)\n\n\
         Package: new\nVersion: 1\nProvides: vv (= 3)\n\n\
         Package: plain\nVersion: 1\nProvides: vv\n\n\
         Package: mta1\nVersion: 1\nProvides: mta\nBreaks: mta\n\n\
         Package: mta2\nVersion: 1\nProvides: mta\nBreaks: mta",
    )];
    assert_eq!(same_as_apt_on(&virtual_, &["a", "p"]), None);
    assert_eq!(
        same_as_apt_on(&virtual_, &["a", "q"]).unwrap(),
        ["a=1", "q=1"]
    );
    assert_eq!(same_as_apt_on(&virtual_, &["v", "old"]), None);
    assert_eq!(
        same_as_apt_on(&virtual_, &["v", "new"]).unwrap(),
        ["new=1", "v=1"]
    );
    assert_eq!(
        same_as_apt_on(&virtual_, &["v", "plain"]).unwrap(),
        ["plain=1", "v=1"]
    );
    assert_eq!(same_as_apt_on(&virtual_, &["mta1"]).unwrap(), ["mta1=1"]);
    assert_eq!(same_as_apt_on(&virtual_, &["mta1", "mta2"]), None);
}

fn real_index(lists: &[List], arch: &str) -> PackageIndex {
    let mut index = PackageIndex::new(arch);
    for list in lists {
        index
            .add_packages_file(&list.text, &list.suite)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    index
}

fn kiln_resolution(index: &PackageIndex, packages: &[&str]) -> BTreeMap<String, String> {
    kiln_resolution_of(index, Variant::Minbase, packages)
}

fn kiln_resolution_of(
    index: &PackageIndex,
    variant: Variant,
    packages: &[&str],
) -> BTreeMap<String, String> {
    let packages: Vec<String> = packages.iter().map(|s| s.to_string()).collect();
    let request = Request {
        variant,
        packages: &packages,
        exclude: &[],
        recommends: false,
    };
    resolve::resolve(index, &request)
        .unwrap_or_else(|e| panic!("kiln cannot resolve {packages:?}: {e}"))
        .into_iter()
        .map(|p| (p.name.clone(), p.version.to_string()))
        .collect()
}

/// Prints both sides of a disagreement and fails.
fn compare(ours: &BTreeMap<String, String>, apt: &BTreeMap<String, String>, what: &str) {
    let mut problems = Vec::new();
    for (name, version) in ours {
        match apt.get(name) {
            None => problems.push(format!("  only kiln: {name} {version}")),
            Some(v) if v != version => problems.push(format!("  {name}: kiln {version}, apt {v}")),
            Some(_) => {}
        }
    }
    for (name, version) in apt {
        if !ours.contains_key(name) {
            problems.push(format!("  only apt:  {name} {version}"));
        }
    }
    if !problems.is_empty() {
        let side = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        panic!(
            "{what}: kiln and apt disagree on {} package(s):\n{}\n\nkiln ({}): {}\n\napt ({}): {}",
            problems.len(),
            problems.join("\n"),
            ours.len(),
            side(ours),
            apt.len(),
            side(apt)
        );
    }
}

#[test]
fn same_as_apt_for_a_minbase_node() {
    let lists = real_lists();
    let arch = native_arch();
    let index = real_index(lists, &arch);
    let ours = kiln_resolution(&index, REQUEST);
    // apt computes the minbase set itself from the same lists, as
    // mmdebstrap has it do: Essential: yes and Priority: required.
    let mut args = vec!["?essential", "?priority(required)"];
    args.extend(REQUEST);
    let apt = apt_simulation(lists, &arch, &args);
    eprintln!("kiln and apt: {} packages each", ours.len());
    compare(
        &ours,
        &apt,
        "minbase + openssh-server nftables systemd-sysv",
    );
}

#[test]
fn same_as_apt_for_other_requests() {
    // Requests with alternatives, virtual packages and Recommends-free
    // stacks that exercise the provider and alternative rules.
    let lists = real_lists();
    let arch = native_arch();
    let index = real_index(lists, &arch);
    for request in [
        &["curl", "ca-certificates", "iproute2", "openssh-client"][..],
        &["python3", "ifupdown", "isc-dhcp-client"][..],
        &["cron", "logrotate", "rsyslog", "sudo"][..],
        // default-mta | mail-transport-agent: a virtual package with many
        // providers.
        &["bsd-mailx"][..],
    ] {
        let ours = kiln_resolution(&index, request);
        let mut args = vec!["?essential", "?priority(required)"];
        args.extend(request);
        let apt = apt_simulation(lists, &arch, &args);
        compare(&ours, &apt, &format!("minbase + {}", request.join(" ")));
    }
}

#[test]
fn essential_variant_differs_from_apt_only_by_apt_itself() {
    // apt-pkg flags the package named "apt" as Essential when it builds
    // its cache (deblistparser.cc), so apt's `?essential` includes apt and
    // its dependencies. kiln's Essential variant is `Essential: yes` only,
    // like mmdebstrap's "essential" (its "apt" variant adds apt). That is
    // the whole difference: with apt requested, both agree exactly.
    let lists = real_lists();
    let arch = native_arch();
    let index = real_index(lists, &arch);
    let mut args = vec!["?essential"];
    args.extend(REQUEST);
    let apt = apt_simulation(lists, &arch, &args);
    let ours = kiln_resolution_of(&index, Variant::Essential, REQUEST);
    assert!(
        apt.contains_key("apt"),
        "apt's ?essential no longer selects apt"
    );
    assert!(!ours.contains_key("apt"), "kiln's essential set has apt");
    let extra: Vec<&String> = ours.keys().filter(|k| !apt.contains_key(*k)).collect();
    assert!(extra.is_empty(), "kiln selects more than apt: {extra:?}");
    let mut with_apt = REQUEST.to_vec();
    with_apt.push("apt");
    let ours = kiln_resolution_of(&index, Variant::Essential, &with_apt);
    compare(
        &ours,
        &apt,
        "essential + apt + openssh-server nftables systemd-sysv",
    );
}

/// CPU time of this process so far: unlike wall time, other builds on
/// the machine do not inflate it.
fn cpu_time() -> std::time::Duration {
    // SAFETY: getrusage writes into the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    std::time::Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

#[test]
fn speed_on_real_lists() {
    let lists = real_lists();
    let arch = native_arch();
    let bytes: usize = lists.iter().map(|l| l.text.len()).sum();
    let (started, cpu) = (Instant::now(), cpu_time());
    let index = real_index(lists, &arch);
    let ours = kiln_resolution(&index, REQUEST);
    let (wall, cpu) = (started.elapsed(), cpu_time() - cpu);
    let (profile, mb_per_s) = if cfg!(debug_assertions) {
        ("debug", 1.0)
    } else {
        ("release", 10.0)
    };
    let mb = bytes as f64 / 1e6;
    eprintln!(
        "[{profile}] indexed {} packages ({mb:.1} MB, {} lists) and resolved {} in {wall:?}, {cpu:?} of CPU",
        index.len(),
        lists.len(),
        ours.len()
    );
    // About ten times what it takes (debug: 53 MB of lists in 4.5 s of
    // CPU), so only a blow-up fails; the CPU of the whole process, so
    // tests running beside this one count against it too.
    let budget = std::time::Duration::from_secs_f64(mb / mb_per_s);
    assert!(
        cpu < budget,
        "indexing and resolving took {cpu:?} of CPU, over the budget of {budget:?} ({mb_per_s} MB/s)"
    );
}
