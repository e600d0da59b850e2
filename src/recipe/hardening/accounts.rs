//! `[[user]]` and `[[group]]`: the accounts the image gets.

use super::{Cx, Strings};
use crate::recipe::{Loc, RecipeError, image_path};
use kiln_diag::{Limit, quote};
use kiln_policy::keys::{PublicKey, parse_authorized_key};
use serde::Deserialize;
use toml::Spanned;

/// Largest authorized_keys file read; a key line is under 1 KB.
const AUTHORIZED_KEYS_LIMIT: Limit = Limit::mib(1, "authorized_keys file");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: Spanned<String>,
    pub uid: Option<Spanned<i64>>,
    pub system: Option<bool>,
    /// The primary group; default a group named like the user.
    pub group: Option<Spanned<String>>,
    #[serde(default)]
    pub groups: Strings,
    pub shell: Option<Spanned<String>>,
    pub home: Option<Spanned<String>>,
    pub comment: Option<Spanned<String>>,
    #[serde(default)]
    pub authorized_keys: Strings,
    /// A host file of keys, relative to the recipe's folder.
    pub authorized_keys_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Spanned<String>,
    pub gid: Option<Spanned<i64>>,
    pub system: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct UserPlan {
    pub name: String,
    pub uid: Option<u32>,
    pub system: bool,
    pub group: Option<String>,
    pub groups: Vec<String>,
    pub shell: Option<String>,
    pub home: Option<String>,
    pub comment: Option<String>,
    pub authorized_keys: Vec<(PublicKey, Loc)>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct GroupPlan {
    pub name: String,
    pub gid: Option<u32>,
    pub system: bool,
    pub loc: Loc,
}

impl Cx<'_> {
    fn name(&self, raw: &Spanned<String>, what: &str) -> Result<String, RecipeError> {
        let name = raw.get_ref();
        let ok = !name.is_empty()
            && name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
        if !ok {
            return Err(self.loc(raw.span()).error(format!(
                "{what} name {name} is not valid: use 1 to 32 of a-z, 0-9, '_', '-', starting with a letter or '_'", name = quote(name)
            )));
        }
        Ok(name.clone())
    }

    fn id(&self, raw: &Option<Spanned<i64>>, what: &str) -> Result<Option<u32>, RecipeError> {
        let Some(raw) = raw else { return Ok(None) };
        match u32::try_from(*raw.get_ref()) {
            Ok(id) if id < 65535 => Ok(Some(id)),
            _ => Err(self.loc(raw.span()).error(format!(
                "{what} {} is out of range: use 0 to 65534 (65535 and up are reserved)",
                raw.get_ref()
            ))),
        }
    }

    pub(super) fn group(&self, raw: Spanned<RawGroup>) -> Result<GroupPlan, RecipeError> {
        let loc = self.loc(raw.span());
        let raw = raw.into_inner();
        Ok(GroupPlan {
            name: self.name(&raw.name, "group")?,
            gid: self.id(&raw.gid, "gid")?,
            system: raw.system.unwrap_or(false),
            loc,
        })
    }

    pub(super) fn user(&self, raw: Spanned<RawUser>) -> Result<UserPlan, RecipeError> {
        let loc = self.loc(raw.span());
        let raw = raw.into_inner();
        let name = self.name(&raw.name, "user")?;
        let system = raw.system.unwrap_or(false);
        let group = raw
            .group
            .as_ref()
            .map(|g| self.name(g, "group"))
            .transpose()?;
        let groups = raw
            .groups
            .iter()
            .map(|g| self.name(g, "group"))
            .collect::<Result<Vec<_>, _>>()?;
        let shell = match &raw.shell {
            None => None,
            Some(s) => {
                let shell = s.get_ref();
                if !shell.starts_with('/') || shell.contains([':', '\n']) {
                    return Err(self.loc(s.span()).error(format!(
                        "shell {shell} must be an absolute path, like \"/bin/bash\"",
                        shell = quote(shell)
                    )));
                }
                if system && !kiln_policy::accounts::is_nologin(shell) {
                    return Err(self.loc(s.span()).error(format!(
                        "system accounts cannot log in: use shell = \"/usr/sbin/nologin\" (not {shell}), or remove system = true"
                    )));
                }
                Some(shell.clone())
            }
        };
        let home = match &raw.home {
            None => None,
            Some(h) => {
                let path = image_path(&self.loc(h.span()), "home", h.get_ref())?;
                if h.get_ref().contains(':') {
                    return Err(self.loc(h.span()).error("home cannot contain ':'"));
                }
                Some(path.as_str().to_owned())
            }
        };
        let comment = match &raw.comment {
            Some(c) if c.get_ref().contains([':', '\n']) => {
                return Err(self.loc(c.span()).error(
                    "comment cannot contain ':' or a newline (it is a field of /etc/passwd)",
                ));
            }
            other => other.as_ref().map(|c| c.get_ref().clone()),
        };
        let mut authorized_keys = Vec::new();
        for key in &raw.authorized_keys {
            let key_loc = self.loc(key.span());
            let parsed = parse_authorized_key(key.get_ref()).map_err(|e| {
                key_loc.error(format!(
                    "invalid SSH public key: {}",
                    kiln_diag::clip_quoted(&e.to_string())
                ))
            })?;
            authorized_keys.push((parsed, key_loc));
        }
        if let Some(file) = &raw.authorized_keys_file {
            let key_loc = self.loc(file.span());
            let path = self.dir.join(file.get_ref());
            let text =
                kiln_diag::read_file_to_string(&path, AUTHORIZED_KEYS_LIMIT).map_err(|e| {
                    key_loc.error(match e {
                        kiln_diag::ReadError::Io { source, .. } => format!(
                            "cannot read {}: {source} (paths are relative to the recipe's folder)",
                            quote(file.get_ref())
                        ),
                        kiln_diag::ReadError::TooLarge { limit, .. } => format!(
                            "{} is larger than the {} an authorized_keys file may be",
                            quote(file.get_ref()),
                            limit.size()
                        ),
                    })
                })?;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                let parsed = parse_authorized_key(line).map_err(|e| {
                    key_loc.error(format!(
                        "{} line {}: invalid SSH public key: {}",
                        quote(file.get_ref()),
                        n + 1,
                        kiln_diag::clip_quoted(&e.to_string())
                    ))
                })?;
                authorized_keys.push((parsed, key_loc.clone()));
            }
        }
        if system && !authorized_keys.is_empty() {
            return Err(loc.error(format!(
                "{name} is a system account (nologin): it cannot use authorized_keys; remove system = true"
            )));
        }
        Ok(UserPlan {
            name,
            uid: self.id(&raw.uid, "uid")?,
            system,
            group,
            groups,
            shell,
            home,
            comment,
            authorized_keys,
            loc,
        })
    }
}
