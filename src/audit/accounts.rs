//! The image's own account databases: /etc/passwd, /etc/shadow,
//! /etc/group (colon-separated, as in passwd(5), shadow(5), group(5)).

use super::image::Image;

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
        if let Some(defs) = image.read_text("/etc/login.defs") {
            for line in defs.lines() {
                let mut words = line.split_whitespace();
                if words.next() == Some("UID_MIN")
                    && let Some(n) = words.next().and_then(|n| n.parse().ok())
                {
                    accounts.uid_min = n;
                }
            }
        }
        Some(accounts)
    }

    pub fn parse_passwd(&mut self, text: &str) {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split(':').collect();
            let parsed = (f.len() == 7)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten();
            match parsed {
                Some((uid, gid)) => self.users.push(User {
                    name: f[0].to_owned(),
                    password: f[1].to_owned(),
                    uid,
                    gid,
                    home: f[5].to_owned(),
                    shell: f[6].to_owned(),
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
            let f: Vec<&str> = line.split(':').collect();
            match (f.len() == 4).then(|| f[2].parse().ok()).flatten() {
                Some(gid) => self.groups.push(Group {
                    name: f[0].to_owned(),
                    gid,
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
