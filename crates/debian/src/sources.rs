//! The build host's apt sources: where its Debian mirror is. Reads the
//! one-line format (`/etc/apt/sources.list`, `sources.list.d/*.list`) and
//! deb822 (`sources.list.d/*.sources`), as apt does.

use super::deb822;
use anyhow::{Context, Result};
use kiln_diag::{Limit, read_file_to_string};
use std::path::Path;

/// Largest apt sources file read; a host's are a few lines.
const SOURCES_LIMIT: Limit = Limit::mib(1, "apt sources file");

/// One `deb` source: a mirror URI with the suites and components it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// Where the entry came from, for messages.
    pub origin: String,
}

/// Every enabled binary (`deb`) source under `etc_apt` (normally
/// `/etc/apt`), in apt's reading order: sources.list, then sources.list.d
/// by file name.
pub fn read_apt_sources(etc_apt: &Path) -> Result<Vec<AptSource>> {
    let mut out = Vec::new();
    let main = etc_apt.join("sources.list");
    if main.is_file() {
        out.extend(parse_one_line(&read(&main)?, &main.display().to_string()));
    }
    let dir = etc_apt.join("sources.list.d");
    if dir.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for file in files {
            let origin = file.display().to_string();
            match file.extension().and_then(|e| e.to_str()) {
                Some("list") => out.extend(parse_one_line(&read(&file)?, &origin)),
                Some("sources") => out.extend(parse_deb822(&read(&file)?, &origin)?),
                _ => {}
            }
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String> {
    Ok(read_file_to_string(path, SOURCES_LIMIT)?)
}

/// `deb [options] URI SUITE COMPONENT...`; `deb-src` lines are skipped.
fn parse_one_line(text: &str, origin: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        if rest.starts_with('[') {
            let Some(end) = rest.find(']') else { continue };
            rest = rest[end + 1..].trim_start();
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(AptSource {
            uri: uri.trim_end_matches('/').to_owned(),
            suites: vec![suite.to_owned()],
            components: words.map(str::to_owned).collect(),
            origin: origin.to_owned(),
        });
    }
    out
}

/// deb822 stanzas with Types, URIs, Suites, Components, Enabled.
fn parse_deb822(text: &str, origin: &str) -> Result<Vec<AptSource>> {
    let mut out = Vec::new();
    for paragraph in deb822::paragraphs(text) {
        let paragraph =
            paragraph.with_context(|| format!("{origin}: not a valid deb822 sources file"))?;
        let words = |field: &str| -> Vec<String> {
            paragraph
                .get(field)
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        if !words("Types").iter().any(|t| t == "deb") {
            continue;
        }
        if paragraph
            .get("Enabled")
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("no"))
        {
            continue;
        }
        for uri in words("URIs") {
            out.push(AptSource {
                uri: uri.trim_end_matches('/').to_owned(),
                suites: words("Suites"),
                components: words("Components"),
                origin: origin.to_owned(),
            });
        }
    }
    Ok(out)
}

/// The URI of the first source that serves `suite`.
pub fn mirror_for<'a>(sources: &'a [AptSource], suite: &str) -> Option<&'a AptSource> {
    sources.iter().find(|s| s.suites.iter().any(|x| x == suite))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_and_deb822_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sources.list"),
            "# comment\ndeb-src http://m.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main contrib # trailing\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb deb-src\nURIs: http://s.example/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb\nURIs: http://off.example/\nSuites: trixie\nEnabled: no\n",
        )
        .unwrap();
        let sources = read_apt_sources(dir.path()).unwrap();
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].uri, "http://m.example/debian");
        assert_eq!(sources[0].components, ["main", "contrib"]);
        assert_eq!(
            mirror_for(&sources, "bookworm-security").unwrap().uri,
            "http://s.example/debian-security"
        );
        assert!(
            mirror_for(&sources, "trixie").is_none(),
            "disabled sources are ignored"
        );
    }
}
