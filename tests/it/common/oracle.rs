//! Comparing an image with an oracle's (mmdebstrap, dpkg): every path's
//! type, mode, owner, link target and content, except differences the test
//! names one by one, each of which must still occur.

use globset::Glob;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

/// A member of an archive: type, mode, owner, link target, content digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub link: String,
    pub sha256: String,
}

pub fn read_tar(path: &Path) -> BTreeMap<String, (Member, Vec<u8>)> {
    use sha2::{Digest, Sha256};
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = format!("/{}", raw.trim_start_matches("./").trim_end_matches('/'));
        let name = if name == "/." { "/".to_owned() } else { name };
        let header = entry.header().clone();
        let kind = match header.entry_type() {
            tar::EntryType::Regular => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Char => 'c',
            tar::EntryType::Block => 'b',
            tar::EntryType::Fifo => 'p',
            other => panic!("{name}: unexpected member type {other:?}"),
        };
        let link = entry
            .link_name_bytes()
            .map(|l| {
                String::from_utf8_lossy(&l)
                    .trim_start_matches("./")
                    .to_owned()
            })
            .unwrap_or_default();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        let member = Member {
            kind,
            mode: header.mode().unwrap() & 0o7777,
            uid: header.uid().unwrap(),
            gid: header.gid().unwrap(),
            link,
            sha256: hex::encode(Sha256::digest(&content)),
        };
        out.insert(name, (member, content));
    }
    out
}

/// Panics unless `ours` and `theirs` differ only on paths matching
/// `intended` (glob, why) and in the order of the lines of `same_lines`,
/// and unless every listed difference occurs (a stale list is an error).
pub fn compare_with_oracle(
    ours: &BTreeMap<String, (Member, Vec<u8>)>,
    theirs: &BTreeMap<String, (Member, Vec<u8>)>,
    intended: &[(&str, &str)],
    same_lines: &[&str],
) {
    let patterns: Vec<_> = intended
        .iter()
        .map(|(p, _)| (Glob::new(p).unwrap().compile_matcher(), *p))
        .collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut unexplained = Vec::new();
    let paths: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    for path in paths {
        let (a, b) = (ours.get(path), theirs.get(path));
        if a.map(|m| &m.0) == b.map(|m| &m.0) {
            continue;
        }
        if let Some(listed) = same_lines.iter().find(|p| **p == path.as_str()) {
            let lines = |m: Option<&(Member, Vec<u8>)>| -> Vec<String> {
                let text = m.map(|m| String::from_utf8_lossy(&m.1).into_owned());
                let mut lines: Vec<String> = text
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect();
                lines.sort();
                lines
            };
            assert_eq!(
                lines(a),
                lines(b),
                "{path}: not the same lines as the oracle's"
            );
            seen.insert(listed);
            continue;
        }
        match patterns.iter().find(|(m, _)| m.is_match(path)) {
            Some((_, pattern)) => {
                seen.insert(pattern);
            }
            None => unexplained.push(format!(
                "{path}\n    kiln:   {:?}\n    oracle: {:?}",
                a.map(|m| &m.0),
                b.map(|m| &m.0)
            )),
        }
    }
    assert!(
        unexplained.is_empty(),
        "differences from the oracle that are not on the list:\n{}",
        unexplained.join("\n")
    );
    let unseen: Vec<&str> = intended
        .iter()
        .map(|(p, _)| *p)
        .chain(same_lines.iter().copied())
        .filter(|p| !seen.contains(p))
        .collect();
    assert!(
        unseen.is_empty(),
        "listed differences that no longer occur (remove them from the list): {unseen:?}"
    );
}
