//! Licenses from Debian's machine-readable copyright files (DEP-5,
//! `/usr/share/doc/PACKAGE/copyright`), as SPDX license expressions.
//!
//! Read right after the packages are installed: `[minimize]` may drop
//! /usr/share/doc from the image later. A package without such a file (or
//! with a free-form one) has no declared license: NOASSERTION, never a
//! guess.

use kiln_tree::{ImagePath, Kind, Store, Tree};
use std::collections::{BTreeMap, BTreeSet};

/// The largest copyright file read; the biggest in Debian are ~1 MiB.
const COPYRIGHT_LIMIT: u64 = 4 << 20;

/// Each package's declared license (an SPDX expression over SPDX ids and
/// `LicenseRef-`s), for the packages whose copyright file is
/// machine-readable.
#[derive(Debug, Default, Clone)]
pub struct Licenses {
    pub by_package: BTreeMap<String, String>,
    /// `LicenseRef-` ids used, with the Debian name they stand for.
    pub refs: BTreeMap<String, String>,
}

impl Licenses {
    /// Reads the copyright file of each of `packages` in `tree`.
    pub fn of_tree<'a>(
        tree: &Tree,
        store: &Store,
        packages: impl Iterator<Item = &'a str>,
    ) -> Licenses {
        let mut out = Licenses::default();
        for name in packages {
            let Some(text) = copyright_file(tree, store, name) else {
                continue;
            };
            let Some(names) = dep5_licenses(&text) else {
                continue;
            };
            let mut terms = BTreeSet::new();
            for name in names {
                terms.insert(expression(&name, &mut out.refs));
            }
            if terms.is_empty() {
                continue;
            }
            let joined = terms
                .iter()
                .map(|t| {
                    if terms.len() > 1 && (t.contains(" OR ") || t.contains(" AND ")) {
                        format!("({t})")
                    } else {
                        t.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" AND ");
            out.by_package.insert(name.to_owned(), joined);
        }
        out
    }
}

fn copyright_file(tree: &Tree, store: &Store, package: &str) -> Option<String> {
    let path = ImagePath::new(&format!("/usr/share/doc/{package}/copyright")).ok()?;
    // Doc directories may be links to another package's (same source).
    let path = tree.resolve(&path, true).ok()?;
    match &tree.get(&path)?.kind {
        Kind::File { digest, size } if *size <= COPYRIGHT_LIMIT => {
            String::from_utf8(store.read_to_vec(digest).ok()?).ok()
        }
        _ => None,
    }
}

/// The license names of a DEP-5 file's `Files` paragraphs, or None when
/// the file is not machine-readable.
fn dep5_licenses(text: &str) -> Option<BTreeSet<String>> {
    let mut paragraphs = kiln_debian::deb822::paragraphs(text);
    let header = paragraphs.next()?.ok()?;
    if !header
        .get("Format")
        .is_some_and(|f| f.contains("copyright-format/1.0"))
    {
        return None;
    }
    let mut names = BTreeSet::new();
    for paragraph in paragraphs {
        let Ok(paragraph) = paragraph else { break };
        if paragraph.get("Files").is_none() {
            continue;
        }
        if let Some(license) = paragraph.get("License") {
            let first = license.lines().next().unwrap_or("").trim();
            if !first.is_empty() {
                names.insert(first.to_owned());
            }
        }
    }
    Some(names)
}

/// A DEP-5 license line (`GPL-2+ or Artistic`, `LGPL-2.1+ and BSD-3-clause`)
/// as an SPDX expression; a term SPDX has no id for becomes a
/// `LicenseRef-` recorded in `refs`.
fn expression(debian: &str, refs: &mut BTreeMap<String, String>) -> String {
    // Commas only group in DEP-5 ("A or B, and C"); SPDX needs parentheses
    // for that, and a whole-line LicenseRef keeps the meaning instead.
    if debian.contains(',') || debian.contains('(') {
        return license_ref(debian, refs);
    }
    let mut out = Vec::new();
    let mut term = Vec::new();
    let flush = |term: &mut Vec<&str>, out: &mut Vec<String>, refs: &mut BTreeMap<_, _>| {
        if !term.is_empty() {
            out.push(spdx_id(&term.join(" "), refs));
            term.clear();
        }
    };
    for word in debian.split_whitespace() {
        match word.to_ascii_lowercase().as_str() {
            "or" | "and" => {
                flush(&mut term, &mut out, refs);
                out.push(word.to_ascii_uppercase());
            }
            _ => term.push(word),
        }
    }
    flush(&mut term, &mut out, refs);
    // A dangling operator ("GPL-2 or") is not an expression.
    let valid = out.len() % 2 == 1
        && out
            .iter()
            .enumerate()
            .all(|(i, t)| (i % 2 == 1) == (t == "OR" || t == "AND"));
    if !valid {
        return license_ref(debian, refs);
    }
    out.join(" ")
}

/// One license name as an SPDX id, or a `LicenseRef-`.
fn spdx_id(name: &str, refs: &mut BTreeMap<String, String>) -> String {
    let (base, later) = match name.strip_suffix('+') {
        Some(base) => (base, true),
        None => (name, false),
    };
    let gnu = |family: &str, version: &str| {
        format!(
            "{family}-{version}-{}",
            if later { "or-later" } else { "only" }
        )
    };
    match base.to_ascii_lowercase().as_str() {
        "gpl-1" | "gpl-1.0" => gnu("GPL", "1.0"),
        "gpl-2" | "gpl-2.0" => gnu("GPL", "2.0"),
        "gpl-3" | "gpl-3.0" => gnu("GPL", "3.0"),
        "lgpl-2" | "lgpl-2.0" => gnu("LGPL", "2.0"),
        "lgpl-2.1" => gnu("LGPL", "2.1"),
        "lgpl-3" | "lgpl-3.0" => gnu("LGPL", "3.0"),
        "agpl-3" | "agpl-3.0" => gnu("AGPL", "3.0"),
        "gfdl-1.2" => gnu("GFDL", "1.2"),
        "gfdl-1.3" => gnu("GFDL", "1.3"),
        _ if later => license_ref(name, refs),
        "expat" | "mit" => "MIT".into(),
        "bsd-2-clause" => "BSD-2-Clause".into(),
        "bsd-3-clause" => "BSD-3-Clause".into(),
        "bsd-4-clause" => "BSD-4-Clause".into(),
        "apache-2" | "apache-2.0" => "Apache-2.0".into(),
        "isc" => "ISC".into(),
        "zlib" => "Zlib".into(),
        "mpl-1.1" => "MPL-1.1".into(),
        "mpl-2.0" => "MPL-2.0".into(),
        "artistic" | "artistic-1.0" => "Artistic-1.0-Perl".into(),
        "artistic-2.0" => "Artistic-2.0".into(),
        "cc0-1.0" | "cc0" => "CC0-1.0".into(),
        "psf-2" | "psf-2.0" => "PSF-2.0".into(),
        "python-2.0" => "Python-2.0".into(),
        "openssl" => "OpenSSL".into(),
        "curl" => "curl".into(),
        "bsl-1.0" => "BSL-1.0".into(),
        "x11" => "X11".into(),
        "fsfap" => "FSFAP".into(),
        "fsful" => "FSFUL".into(),
        "fsfullr" => "FSFULLR".into(),
        "mit-cmu" => "MIT-CMU".into(),
        "unicode-dfs-2016" => "Unicode-DFS-2016".into(),
        "bzip2-1.0.6" => "bzip2-1.0.6".into(),
        "wtfpl" => "WTFPL".into(),
        "0bsd" => "0BSD".into(),
        _ => license_ref(name, refs),
    }
}

/// `LicenseRef-` and the name made safe for an SPDX id.
fn license_ref(name: &str, refs: &mut BTreeMap<String, String>) -> String {
    let id = format!("LicenseRef-{}", super::spdx::id_safe(name));
    refs.entry(id.clone()).or_insert_with(|| name.to_owned());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_names_become_spdx_expressions() {
        let mut refs = BTreeMap::new();
        assert_eq!(expression("GPL-2+", &mut refs), "GPL-2.0-or-later");
        assert_eq!(expression("LGPL-2.1", &mut refs), "LGPL-2.1-only");
        assert_eq!(
            expression("GPL-1+ or Artistic", &mut refs),
            "GPL-1.0-or-later OR Artistic-1.0-Perl"
        );
        assert_eq!(expression("Expat", &mut refs), "MIT");
        assert!(refs.is_empty(), "{refs:?}");
        assert_eq!(
            expression("GPL-2+ with OpenSSL exception", &mut refs),
            "LicenseRef-GPL-2--with-OpenSSL-exception"
        );
        assert_eq!(
            expression("public-domain", &mut refs),
            "LicenseRef-public-domain"
        );
        assert_eq!(expression("GPL-2 or", &mut refs), "LicenseRef-GPL-2-or");
        assert_eq!(refs.len(), 3, "{refs:?}");
    }

    #[test]
    fn only_machine_readable_files_declare_licenses() {
        let dep5 = "Format: https://example.org/copyright-format/1.0/\n\nFiles: *\nCopyright: x\nLicense: GPL-2+\n\nFiles: lib/*\nLicense: BSD-3-clause\n\nLicense: GPL-2+\n Full text.\n";
        assert_eq!(
            dep5_licenses(dep5).map(|s| s.into_iter().collect::<Vec<_>>()),
            Some(vec!["BSD-3-clause".to_owned(), "GPL-2+".to_owned()])
        );
        assert_eq!(dep5_licenses("This package is free software.\n"), None);
    }
}
