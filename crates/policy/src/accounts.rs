//! The image's own account databases: /etc/passwd, /etc/shadow,
//! /etc/group (colon-separated, as in passwd(5), shadow(5), group(5)) and
//! login.defs. One line reader serves every stage: the recipe's owner
//! names, the hardening stage that rewrites the files, and the audit.

use crate::image::Image;
use std::collections::BTreeMap;

/// The shell of accounts that must not log in.
pub const NOLOGIN: &str = "/usr/sbin/nologin";

/// A shell that lets nobody in.
pub fn is_nologin(shell: &str) -> bool {
    shell.ends_with("/nologin") || shell.ends_with("/false")
}

/// A shadow password field that lets no password in: `*`, `!`, `!*`…
pub fn is_locked(field: &str) -> bool {
    !field.is_empty() && field.chars().all(|c| c == '!' || c == '*')
}

/// One /etc/passwd line: exactly seven fields, numeric ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdLine<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub gecos: &'a str,
    pub home: &'a str,
    pub shell: &'a str,
}

/// `None` when the line is not a valid passwd(5) entry.
pub fn passwd_line(line: &str) -> Option<PasswdLine<'_>> {
    let f: Vec<&str> = line.split(':').collect();
    let [name, password, uid, gid, gecos, home, shell] = f.as_slice() else {
        return None;
    };
    Some(PasswdLine {
        name,
        password,
        uid: uid.parse().ok()?,
        gid: gid.parse().ok()?,
        gecos,
        home,
        shell,
    })
}

/// One /etc/group line: exactly four fields, a numeric id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLine<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub gid: u32,
    /// The comma-separated member list, empty names dropped.
    pub members: Vec<&'a str>,
}

/// `None` when the line is not a valid group(5) entry.
pub fn group_line(line: &str) -> Option<GroupLine<'_>> {
    let f: Vec<&str> = line.split(':').collect();
    let [name, password, gid, members] = f.as_slice() else {
        return None;
    };
    Some(GroupLine {
        name,
        password,
        gid: gid.parse().ok()?,
        members: members.split(',').filter(|m| !m.is_empty()).collect(),
    })
}

/// Which account file a text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    Passwd,
    Group,
}

/// name → id of a passwd or group file; the first entry of a name wins,
/// as with getpwnam and getgrnam.
pub fn ids_by_name(text: &str, database: Database) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    for line in text.lines() {
        let entry = match database {
            Database::Passwd => passwd_line(line).map(|e| (e.name, e.uid)),
            Database::Group => group_line(line).map(|e| (e.name, e.gid)),
        };
        if let Some((name, id)) = entry {
            ids.entry(name.to_owned()).or_insert(id);
        }
    }
    ids
}

/// UID_MIN of a login.defs text, if it sets one.
pub fn uid_min(login_defs: &str) -> Option<u32> {
    login_defs.lines().rev().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("UID_MIN"))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowEntry {
    pub name: String,
    pub password: String,
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub line: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Accounts {
    pub users: Vec<User>,
    /// `None` when /etc/shadow is absent.
    pub shadow: Option<Vec<ShadowEntry>>,
    pub groups: Vec<Group>,
    /// Lines that are not valid entries: (path, line).
    pub malformed: Vec<(String, u32)>,
    /// UID_MIN of /etc/login.defs (1000 when unset).
    pub uid_min: u32,
}

impl Accounts {
    /// `None` when the image has no /etc/passwd.
    pub fn load(image: &Image) -> Option<Accounts> {
        let passwd = image.read_text("/etc/passwd")?;
        let mut accounts = Accounts {
            uid_min: 1000,
            ..Accounts::default()
        };
        accounts.parse_passwd(&passwd);
        if let Some(shadow) = image.read_text("/etc/shadow") {
            accounts.parse_shadow(&shadow);
        }
        if let Some(group) = image.read_text("/etc/group") {
            accounts.parse_group(&group);
        }
        if let Some(n) = image
            .read_text("/etc/login.defs")
            .and_then(|defs| uid_min(&defs))
        {
            accounts.uid_min = n;
        }
        Some(accounts)
    }

    pub fn parse_passwd(&mut self, text: &str) {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            match passwd_line(line) {
                Some(e) => self.users.push(User {
                    name: e.name.to_owned(),
                    password: e.password.to_owned(),
                    uid: e.uid,
                    gid: e.gid,
                    home: e.home.to_owned(),
                    shell: e.shell.to_owned(),
                    line: i as u32 + 1,
                }),
                None => self.malformed.push(("/etc/passwd".into(), i as u32 + 1)),
            }
        }
    }

    pub fn parse_shadow(&mut self, text: &str) {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 2 {
                self.malformed.push(("/etc/shadow".into(), i as u32 + 1));
                continue;
            }
            entries.push(ShadowEntry {
                name: f[0].to_owned(),
                password: f[1].to_owned(),
                line: i as u32 + 1,
            });
        }
        self.shadow = Some(entries);
    }

    pub fn parse_group(&mut self, text: &str) {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match group_line(line) {
                Some(e) => self.groups.push(Group {
                    name: e.name.to_owned(),
                    gid: e.gid,
                    line: i as u32 + 1,
                }),
                None => self.malformed.push(("/etc/group".into(), i as u32 + 1)),
            }
        }
    }

    pub fn shadow_of(&self, name: &str) -> Option<&ShadowEntry> {
        self.shadow.as_ref()?.iter().find(|s| s.name == name)
    }

    pub fn group_named(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}
