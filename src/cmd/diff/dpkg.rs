//! Installed packages from dpkg's status database, and what changed
//! between two such lists by dpkg's version ordering.

use super::{Package, PackageChanges, PackageUpdate};
use anyhow::{Context, Result, anyhow, bail};
use kiln_debian::deb822;
use kiln_debian::version::Version;
use kiln_diag::quote;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// dpkg's database of installed packages.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// A package as dpkg's status database (or, later, a manifest) lists it:
/// what [`package_changes`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    pub name: String,
    pub arch: Option<String>,
    pub version: Version,
}

impl InstalledPackage {
    fn to_package(&self) -> Package {
        Package {
            name: self.name.clone(),
            arch: self.arch.clone(),
            version: self.version.to_string(),
        }
    }
}

/// The packages dpkg's status database lists as installed: `Status`
/// `install ok installed`, or `hold ok installed` (held packages are
/// installed too). Errors name the line of the problem.
pub fn installed_packages(status: &str) -> Result<Vec<InstalledPackage>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for paragraph in deb822::paragraphs(status) {
        let paragraph = paragraph?;
        let line = paragraph.line().unwrap_or(0);
        let installed = paragraph.get("Status").is_some_and(|status| {
            matches!(
                status.split_ascii_whitespace().collect::<Vec<_>>()[..],
                ["install" | "hold", "ok", "installed"]
            )
        });
        if !installed {
            continue;
        }
        let name = paragraph
            .get("Package")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow!("line {line}: an installed package has no Package field"))?;
        let version: Version = paragraph
            .get("Version")
            .ok_or_else(|| anyhow!("line {line}: package {} has no Version field", quote(name)))?
            .parse()
            .with_context(|| format!("line {line}: package {}", quote(name)))?;
        let arch = paragraph.get("Architecture").map(str::to_owned);
        if !seen.insert((name.to_owned(), arch.clone())) {
            bail!("line {line}: package {} is listed twice", quote(name));
        }
        out.push(InstalledPackage {
            name: name.to_owned(),
            arch,
            version,
        });
    }
    Ok(out)
}

/// Added, removed, upgraded and downgraded packages, by dpkg's version
/// ordering. Versions that dpkg holds equal (`1.0` and `1.0-0`) are not
/// a change.
pub fn package_changes(old: &[InstalledPackage], new: &[InstalledPackage]) -> PackageChanges {
    let mut out = PackageChanges::default();
    for list in [old, new] {
        let mut arches: BTreeMap<&str, usize> = BTreeMap::new();
        for package in list {
            *arches.entry(&package.name).or_default() += 1;
        }
        let several = arches.into_iter().filter(|(_, n)| *n > 1);
        out.multi_arch
            .extend(several.map(|(name, _)| name.to_owned()));
    }
    let (old, new) = (by_package(old), by_package(new));
    for (key, package) in &old {
        if !new.contains_key(key) {
            out.removed.push(package.to_package());
        }
    }
    for (key, package) in &new {
        let Some(old_package) = old.get(key) else {
            out.added.push(package.to_package());
            continue;
        };
        let update = || PackageUpdate {
            name: package.name.clone(),
            arch: package.arch.clone(),
            old_version: old_package.version.to_string(),
            new_version: package.version.to_string(),
        };
        match package.version.cmp(&old_package.version) {
            Ordering::Greater => out.upgraded.push(update()),
            Ordering::Less => out.downgraded.push(update()),
            Ordering::Equal => {}
        }
    }
    out
}

/// Packages by name and architecture.
fn by_package(list: &[InstalledPackage]) -> BTreeMap<(&str, Option<&str>), &InstalledPackage> {
    list.iter()
        .map(|p| ((p.name.as_str(), p.arch.as_deref()), p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_packages_and_version_ordering() {
        let installed = |text: &str| installed_packages(text).unwrap_or_else(|e| panic!("{e:#}"));
        let old = installed(
            "Package: a\nStatus: install ok installed\nVersion: 1.0~rc1\n\n\
             Package: b\nStatus: install ok installed\nVersion: 2\n\n\
             Package: e\nStatus: install ok installed\nVersion: 1.0\n",
        );
        let new = installed(
            "Package: a\nStatus: install ok installed\nVersion: 1.0\n\n\
             Package: c\nStatus: hold ok installed\nVersion: 1\n\n\
             Package: d\nStatus: install ok unpacked\nVersion: 1\n\n\
             Package: e\nStatus: install ok installed\nVersion: 0:1.0-0\n",
        );
        let changes = package_changes(&old, &new);
        let names = |list: &[Package]| list.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&changes.added),
            ["c"],
            "held is installed, unpacked is not"
        );
        assert_eq!(names(&changes.removed), ["b"]);
        let update = &changes.upgraded[..];
        assert_eq!(
            (
                update.len(),
                update[0].old_version.as_str(),
                update[0].new_version.as_str()
            ),
            (1, "1.0~rc1", "1.0")
        );
        assert!(changes.downgraded.is_empty(), "1.0 and 0:1.0-0 are equal");
        // the other way round, an upgrade is a downgrade
        let back = package_changes(&new, &old);
        assert_eq!(back.downgraded.len(), 1);
        assert!(back.upgraded.is_empty());

        for (text, expected) in [
            (
                "Package: x\nStatus: install ok installed\nVersion: 1:\n",
                "line 1: package \"x\": invalid version \"1:\": nothing after the epoch colon",
            ),
            (
                "Package: x\nStatus: install ok installed\nVersion: 1\n\n\
                 Package: x\nStatus: install ok installed\nVersion: 2\n",
                "line 5: package \"x\" is listed twice",
            ),
            (
                "Status: install ok installed\nVersion: 1\n",
                "line 1: an installed package has no Package field",
            ),
            ("Package: x\nbroken\n", "line 2: expected 'Name: value'"),
        ] {
            let error = format!("{:#}", installed_packages(text).unwrap_err());
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
