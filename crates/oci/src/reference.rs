//! `REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`, as the distribution spec
//! names them. The registry is never implied: a reference without one is
//! refused rather than sent to some default host.

use anyhow::{Result, bail};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:HEX`.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference> {
        let shown = kiln_diag::quote(text);
        let Some((registry, rest)) = text.split_once('/') else {
            bail!(
                "{shown} is not a registry reference: write REGISTRY/REPOSITORY:TAG, for example 127.0.0.1:5000/images/node:1.0"
            );
        };
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            bail!(
                "{shown} does not name its registry: {} is read as a repository path; write the registry's host first, for example registry.example:5000/{text}",
                kiln_diag::quote(registry)
            );
        }
        if !registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            bail!(
                "{shown}: {} is not a host[:port]",
                kiln_diag::quote(registry)
            );
        }
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (rest, None),
        };
        if let Some(digest) = digest {
            check_digest(digest).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        }
        // A tag's ':' is after the last '/'.
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
            _ => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            bail!(
                "{shown}: {} is not a tag (1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)",
                kiln_diag::quote(tag)
            );
        }
        if repository.is_empty()
            || repository.len() > 255
            || !repository.split('/').all(valid_component)
        {
            bail!(
                "{shown}: {} is not a repository name (lowercase components of a-z 0-9 separated by . _ __ or -, joined by /)",
                kiln_diag::quote(repository)
            );
        }
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// What to ask the registry for: the digest when there is one.
    pub fn target(&self) -> Option<&str> {
        self.digest.as_deref().or(self.tag.as_deref())
    }

    /// The same repository at `digest`.
    pub fn at_digest(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_owned()),
            ..self.clone()
        }
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A tag made from free text (an image version such as `1.2+deb12u1`):
/// characters a tag cannot hold become `_`.
pub fn tag_from(text: &str) -> String {
    let mut tag: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if tag.is_empty() || tag.starts_with(['.', '-']) {
        tag.replace_range(0..0, "_");
        tag.truncate(128);
    }
    tag
}

pub fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Only sha256 digests: what kiln writes and checks.
pub fn check_digest(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => bail!(
            "{} is not a sha256 digest (sha256: and 64 lowercase hex digits)",
            kiln_diag::quote(digest)
        ),
    }
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    // Separators: one '.', one or two '_', or any number of '-'.
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_digests_and_ports() {
        let r = Reference::parse("127.0.0.1:5000/images/k3s-node:1.0").expect("parses");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "images/k3s-node");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/images/k3s-node:1.0");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/x@{d}")).expect("parses");
        assert_eq!(r.tag, None);
        assert_eq!(r.target(), Some(d.as_str()));
        let r = Reference::parse("reg.example/a/b").expect("parses");
        assert_eq!(r.target(), None);
    }

    #[test]
    fn refuses_what_is_not_a_reference_and_says_what_to_write() {
        for (text, says) in [
            ("images/node:1", "does not name its registry"),
            ("node", "REGISTRY/REPOSITORY:TAG"),
            ("reg.example/Images:1", "not a repository name"),
            ("reg.example/a//b:1", "not a repository name"),
            ("reg.example/a:-x", "not a tag"),
            ("reg.example/a@sha256:abc", "not a sha256 digest"),
            ("reg.example/a@md5:abc", "not a sha256 digest"),
            ("re g.example/a", "not a host"),
        ] {
            let e = Reference::parse(text).expect_err(text).to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn tags_from_versions() {
        assert_eq!(tag_from("1.2+deb12u1"), "1.2_deb12u1");
        assert_eq!(tag_from("1:2.0~rc1"), "1_2.0_rc1");
        assert_eq!(tag_from(".x"), "_.x");
        assert!(valid_tag(&tag_from(&"9".repeat(300))));
    }
}
