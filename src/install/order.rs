//! The order in which preinst scripts run: a package after what it
//! (pre-)depends on, as dpkg would have unpacked them; ties and cycles
//! broken by name, so the order never depends on anything but the set.

use super::dpkg_db::Package;
use kiln_debian::relation::Relations;
use std::collections::{BTreeMap, BTreeSet};

/// Indexes into `packages`, dependencies first.
pub fn dependency_order(packages: &[Package]) -> Vec<usize> {
    // Which packages satisfy a name: the package itself and its providers.
    let mut by_name: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); packages.len()];
    let paragraphs: Vec<_> = packages.iter().map(Package::control).collect();
    for (i, (p, paragraph)) in packages.iter().zip(&paragraphs).enumerate() {
        by_name.entry(p.name.clone()).or_default().insert(i);
        let provides = paragraph.get("Provides");
        for alternatives in provides
            .and_then(|v| v.parse::<Relations>().ok())
            .map(|r| r.0)
            .unwrap_or_default()
        {
            for relation in alternatives.0 {
                by_name.entry(relation.name).or_default().insert(i);
            }
        }
    }
    for (i, paragraph) in paragraphs.iter().enumerate() {
        for field in ["Pre-Depends", "Depends"] {
            let Some(value) = paragraph.get(field) else {
                continue;
            };
            let Ok(relations) = value.parse::<Relations>() else {
                continue;
            };
            for alternatives in relations.0 {
                // The first alternative the set can satisfy.
                if let Some(found) = alternatives
                    .0
                    .iter()
                    .find_map(|r| by_name.get(&r.name).filter(|s| !s.is_empty()))
                {
                    deps[i].extend(found.iter().copied().filter(|&d| d != i));
                }
            }
        }
    }
    let mut done = vec![false; packages.len()];
    let mut order = Vec::with_capacity(packages.len());
    let by_position: BTreeMap<(&str, usize), usize> = packages
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.name.as_str(), i), i))
        .collect();
    while order.len() < packages.len() {
        // The first package by name whose dependencies are all done, else
        // (a cycle) the first by name that is not done.
        let ready = by_position
            .values()
            .copied()
            .find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]))
            .or_else(|| by_position.values().copied().find(|&i| !done[i]))
            .expect("a package is left");
        done[ready] = true;
        order.push(ready);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_debian::deb::{ControlFiles, Unpacked};

    fn package(control: &str) -> Package {
        let mut files = ControlFiles::default();
        files
            .files
            .insert("control".into(), control.as_bytes().to_vec());
        Package::new(Unpacked {
            control: files,
            paths: Vec::new(),
        })
        .unwrap()
    }

    fn names(packages: &[Package]) -> Vec<&str> {
        dependency_order(packages)
            .into_iter()
            .map(|i| packages[i].name.as_str())
            .collect()
    }

    #[test]
    fn dependencies_come_first_ties_by_name() {
        let packages = [
            package("Package: app\nDepends: libz (>= 1), mail-transport-agent | postfix\n"),
            package("Package: libz\nPre-Depends: libc\n"),
            package("Package: exim\nProvides: mail-transport-agent\n"),
            package("Package: libc\n"),
            package("Package: aaa\n"),
        ];
        assert_eq!(names(&packages), ["aaa", "exim", "libc", "libz", "app"]);
    }

    #[test]
    fn cycles_are_broken_by_name() {
        let packages = [
            package("Package: b\nDepends: a\n"),
            package("Package: a\nDepends: b\n"),
            package("Package: c\nDepends: missing\n"),
        ];
        assert_eq!(names(&packages), ["c", "a", "b"]);
    }
}
