//! pkg.*: software an immutable node should not carry, found both in the
//! dpkg database and as programs on disk (an image minimised after
//! installation may have dropped either).

use super::{Rule, findings, rule};
use crate::audit::{Check, Ctx, Finding};
use std::collections::BTreeSet;

pub const RULES: &[Rule] = &[
    rule!("pkg.insecure", High, insecure,
        title: "no cleartext or legacy network services",
        source: "DL package-*; CIS 1.5.4",
        rationale: "telnet, rsh, inetd, tftp and NIS send credentials in clear or have no authentication; prelink rewrites binaries and defeats integrity checks.",
        remediation: "Remove the packages (telnetd, rsh-server, openbsd-inetd, xinetd, tftpd-hpa, nis, prelink…)."),
    rule!("pkg.compilers", Medium, compilers,
        title: "no compilers or build tools",
        source: "LY HRDN-7220/7222",
        rationale: "A compiler on a node helps an intruder build exploits in place; images are built elsewhere.",
        remediation: "Remove gcc, clang, binutils (as) and make from the image."),
    rule!("pkg.mutators", Low, mutators,
        title: "no package managers or interpreters, unless justified",
        source: "Bottlerocket precedent",
        rationale: "An immutable image is replaced, not modified: package managers and general-purpose interpreters only help change a node in place.",
        remediation: "Remove them (e.g. [minimize] in the recipe), or waive the rule with the reason they stay."),
];

/// Packages dpkg lists as installed.
pub fn installed_packages(ctx: &Ctx) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(status) = ctx.img.read_text("/var/lib/dpkg/status") else {
        return out;
    };
    for paragraph in status.split("\n\n") {
        let mut name = None;
        let mut installed = false;
        for line in paragraph.lines() {
            if let Some(n) = line.strip_prefix("Package:") {
                name = Some(n.trim().to_owned());
            } else if let Some(s) = line.strip_prefix("Status:") {
                installed = s.split_whitespace().last() == Some("installed");
            }
        }
        if let (Some(name), true) = (name, installed) {
            out.insert(name);
        }
    }
    out
}

const BIN_DIRS: &[&str] = &[
    "/usr/bin",
    "/usr/sbin",
    "/bin",
    "/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
];

/// Programs in the usual directories whose name passes `wanted`
/// (symlinks count: /usr/bin/cc is one).
fn programs(ctx: &Ctx, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for dir in BIN_DIRS {
        // /bin is /usr/bin on merged-/usr images: list each real directory once
        let Some(real) = ctx.img.resolve(dir) else {
            continue;
        };
        if !seen.insert(real) {
            continue;
        }
        for (name, path) in ctx.img.list_dir(dir) {
            if wanted(&name) && !ctx.img.is_dir(path.as_str()) {
                out.push(path.as_str().to_owned());
            }
        }
    }
    out
}

fn report(
    ctx: &Ctx,
    packages: &[&str],
    package_prefixes: &[&str],
    binary: impl Fn(&str) -> bool,
    what: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for package in installed_packages(ctx) {
        let named = packages.contains(&package.as_str())
            || package_prefixes.iter().any(|p| {
                // a versioned package of the stem: gcc-12, clang-16 (not
                // gcc-12-base, the runtime's base files)
                package.strip_prefix(p).is_some_and(|version| {
                    !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.')
                })
            });
        if named {
            out.push(Finding::new(
                "/var/lib/dpkg/status",
                package,
                format!("{what} package installed"),
            ));
        }
    }
    for path in programs(ctx, binary) {
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        out.push(Finding::new(path, name, format!("{what} program present")));
    }
    out
}

fn insecure(ctx: &Ctx) -> Check {
    findings(report(
        ctx,
        &[
            "telnetd",
            "inetutils-telnetd",
            "telnetd-ssl",
            "rsh-server",
            "rsh-redone-server",
            "openbsd-inetd",
            "inetutils-inetd",
            "xinetd",
            "tftpd",
            "tftpd-hpa",
            "atftpd",
            "nis",
            "ypserv",
            "prelink",
        ],
        &[],
        |n| {
            matches!(
                n,
                "in.telnetd"
                    | "telnetd"
                    | "in.rshd"
                    | "in.rlogind"
                    | "in.rexecd"
                    | "inetd"
                    | "xinetd"
                    | "in.tftpd"
                    | "atftpd"
                    | "ypserv"
                    | "ypbind"
                    | "prelink"
            )
        },
        "insecure service",
    ))
}

fn compilers(ctx: &Ctx) -> Check {
    let versioned = |n: &str, stem: &str| {
        n.strip_prefix(stem)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
    };
    findings(report(
        ctx,
        &[
            "gcc",
            "g++",
            "clang",
            "binutils",
            "binutils-x86-64-linux-gnu",
            "binutils-aarch64-linux-gnu",
            "make",
            "build-essential",
            "tcc",
        ],
        &["gcc-", "g++-", "clang-"],
        |n| {
            let base = n.rsplit_once("-linux-gnu-").map_or(n, |(_, b)| b);
            matches!(
                base,
                "gcc" | "cc" | "c++" | "g++" | "clang" | "clang++" | "as" | "make" | "tcc"
            ) || versioned(base, "gcc")
                || versioned(base, "g++")
                || versioned(base, "clang")
        },
        "compiler or build",
    ))
}

fn mutators(ctx: &Ctx) -> Check {
    findings(report(
        ctx,
        &[],
        &[],
        |n| {
            matches!(
                n,
                "apt"
                    | "apt-get"
                    | "aptitude"
                    | "dpkg"
                    | "pip"
                    | "pip3"
                    | "npm"
                    | "gem"
                    | "snap"
                    | "flatpak"
                    | "rpm"
                    | "yum"
                    | "dnf"
                    | "zypper"
                    | "apk"
                    | "python"
                    | "python3"
                    | "perl"
                    | "ruby"
                    | "node"
                    | "nodejs"
                    | "php"
                    | "lua"
                    | "tclsh"
            )
        },
        "package manager or interpreter",
    ))
}
