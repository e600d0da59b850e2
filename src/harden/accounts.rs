//! `[[user]]` and `[[group]]`: /etc/passwd, group, shadow and gshadow,
//! merged with the accounts the image already has (packages created them;
//! their ids are kept, their lines stay in place).
//!
//! - Missing accounts declared by systemd sysusers.d files of the image
//!   are created first, with their fixed ids, so that an image whose /etc
//!   is read-only at boot has them; their fixed ids and names are never
//!   given to recipe accounts.
//! - Recipe groups, then users, in recipe order. Explicit ids are reserved
//!   before anything is allocated. Allocation: system accounts take the
//!   highest free id below 1000 (as useradd -r and systemd-sysusers do),
//!   others the lowest free id from 1000 (adduser); a user's private group
//!   takes the user's id when it is free. The same recipe and base give
//!   the same ids.
//! - No password works: every shadow field is `*`, `!` or `!*`; a hash is
//!   replaced by `*` (with a warning), /etc/passwd's field is `x`.
//!   System accounts (below UID_MIN, root, sync, shutdown, halt excepted)
//!   get /usr/sbin/nologin. The stale `-` backups are removed.
//! - Users with keys get a home (0700), ~/.ssh (0700) and
//!   ~/.ssh/authorized_keys (0600), owned by them.

use super::Ctx;
use crate::recipe::Loc;
use crate::recipe::hardening::{HardeningPlan, UserPlan};
use anyhow::Result;
use kiln_tree::Meta;
use std::collections::{BTreeMap, BTreeSet};

use kiln_policy::accounts::{NOLOGIN, group_line, is_locked, is_nologin, passwd_line, uid_min};
const SYSTEM_MIN: u32 = 100;
const SYSTEM_MAX: u32 = 999;
const USER_MAX: u32 = 59999;
const LOGIN_EXEMPT: &[&str] = &["root", "sync", "shutdown", "halt"];

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pw {
    name: String,
    password: String,
    uid: u32,
    gid: u32,
    gecos: String,
    home: String,
    shell: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Gr {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The four account files, parsed.
#[derive(Default)]
struct Db {
    passwd: Vec<Pw>,
    group: Vec<Gr>,
    /// name → the fields after the name.
    shadow: Vec<(String, Vec<String>)>,
    /// name → (password, admins).
    gshadow: BTreeMap<String, (String, String)>,
    /// Ids no new account may take (sysusers.d's fixed ids).
    reserved_uids: BTreeSet<u32>,
    reserved_gids: BTreeSet<u32>,
    uid_min: u32,
}

fn malformed(path: &str, n: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "the image's {path} line {} is malformed; kiln rewrites this file and will not guess",
        n + 1
    )
}

impl Db {
    fn load(cx: &Ctx) -> Result<Db> {
        let mut db = Db {
            uid_min: 1000,
            ..Db::default()
        };
        let lines = |path: &str| -> Vec<(usize, String)> {
            cx.read_text(path)
                .unwrap_or_default()
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(n, l)| (n, l.to_owned()))
                .collect()
        };
        for (n, line) in lines("/etc/passwd") {
            let Some(e) = passwd_line(&line) else {
                return Err(malformed("/etc/passwd", n));
            };
            db.passwd.push(Pw {
                name: e.name.into(),
                password: e.password.into(),
                uid: e.uid,
                gid: e.gid,
                gecos: e.gecos.into(),
                home: e.home.into(),
                shell: e.shell.into(),
            });
        }
        for (n, line) in lines("/etc/group") {
            let Some(e) = group_line(&line) else {
                return Err(malformed("/etc/group", n));
            };
            db.group.push(Gr {
                name: e.name.into(),
                gid: e.gid,
                members: e.members.iter().map(|m| m.to_string()).collect(),
            });
        }
        for (n, line) in lines("/etc/shadow") {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 2 {
                return Err(malformed("/etc/shadow", n));
            }
            db.shadow
                .push((f[0].into(), f[1..].iter().map(|s| s.to_string()).collect()));
        }
        for (n, line) in lines("/etc/gshadow") {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 4 {
                return Err(malformed("/etc/gshadow", n));
            }
            db.gshadow.insert(f[0].into(), (f[1].into(), f[2].into()));
        }
        if let Some(n) = cx.read_text("/etc/login.defs").and_then(|d| uid_min(&d)) {
            db.uid_min = n;
        }
        Ok(db)
    }

    fn user(&self, name: &str) -> Option<&Pw> {
        self.passwd.iter().find(|p| p.name == name)
    }

    fn group(&self, name: &str) -> Option<&Gr> {
        self.group.iter().find(|g| g.name == name)
    }

    fn uid_free(&self, uid: u32) -> bool {
        !self.passwd.iter().any(|p| p.uid == uid) && !self.reserved_uids.contains(&uid)
    }

    fn gid_free(&self, gid: u32) -> bool {
        !self.group.iter().any(|g| g.gid == gid) && !self.reserved_gids.contains(&gid)
    }

    /// The next free id of the range a new account belongs to.
    fn allocate(&self, system: bool, free: impl Fn(u32) -> bool) -> Option<u32> {
        if system {
            (SYSTEM_MIN..=SYSTEM_MAX).rev().find(|id| free(*id))
        } else {
            (self.uid_min..=USER_MAX).find(|id| free(*id))
        }
    }

    fn add_group(&mut self, name: &str, gid: u32) {
        self.group.push(Gr {
            name: name.into(),
            gid,
            members: Vec::new(),
        });
    }

    fn add_member(&mut self, group: &str, user: &str) {
        if let Some(g) = self.group.iter_mut().find(|g| g.name == group)
            && !g.members.iter().any(|m| m == user)
        {
            g.members.push(user.into());
        }
    }

    fn render(&self) -> [String; 4] {
        let mut passwd = String::new();
        for p in &self.passwd {
            passwd.push_str(&format!(
                "{}:{}:{}:{}:{}:{}:{}\n",
                p.name, p.password, p.uid, p.gid, p.gecos, p.home, p.shell
            ));
        }
        let mut group = String::new();
        let mut gshadow = String::new();
        for g in &self.group {
            group.push_str(&format!("{}:x:{}:{}\n", g.name, g.gid, g.members.join(",")));
            let (password, admins) = self
                .gshadow
                .get(&g.name)
                .cloned()
                .unwrap_or_else(|| ("!".into(), String::new()));
            gshadow.push_str(&format!(
                "{}:{}:{}:{}\n",
                g.name,
                password,
                admins,
                g.members.join(",")
            ));
        }
        let mut shadow = String::new();
        for (name, fields) in &self.shadow {
            shadow.push_str(name);
            for f in fields {
                shadow.push(':');
                shadow.push_str(f);
            }
            shadow.push('\n');
        }
        [passwd, group, shadow, gshadow]
    }
}

/// One sysusers.d line: (type, name, id field, gecos, home, shell).
type SysUser = (String, String, String, String, String, String);

/// `u`, `g` and `m` lines of the image's sysusers.d files, in the order
/// systemd-sysusers reads them (by file name; /etc hides /usr/lib).
fn sysusers(cx: &Ctx) -> Vec<SysUser> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for dir in ["/usr/lib/sysusers.d", "/lib/sysusers.d", "/etc/sysusers.d"] {
        let Some(resolved) = cx.resolve_dir(dir) else {
            continue;
        };
        let names: Vec<String> = cx
            .tree
            .descendants(&resolved)
            .filter(|(p, _)| p.parent() == resolved && p.file_name().ends_with(".conf"))
            .map(|(p, _)| p.file_name().to_owned())
            .collect();
        for name in names {
            files.insert(name.clone(), format!("{dir}/{name}"));
        }
    }
    let mut out = Vec::new();
    for path in files.values() {
        let Some(text) = cx.read_text(path) else {
            continue;
        };
        for line in text.lines() {
            let words = sysusers_words(line);
            if words.len() < 2 || words[0].starts_with('#') {
                continue;
            }
            let field = |i: usize| {
                words
                    .get(i)
                    .cloned()
                    .filter(|w| w != "-")
                    .unwrap_or_default()
            };
            out.push((
                words[0].clone(),
                words[1].clone(),
                field(2),
                field(3),
                field(4),
                field(5),
            ));
        }
    }
    out
}

/// Splits a sysusers.d line into words; double quotes group.
fn sysusers_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.trim().chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            _ => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// A numeric sysusers id field: `100`, `100:100`, `100:group`.
fn sysusers_ids(field: &str) -> (Option<u32>, Option<u32>) {
    let (u, g) = field.split_once(':').unwrap_or((field, ""));
    (u.parse().ok(), g.parse().ok())
}

pub fn apply(cx: &mut Ctx, plan: &HardeningPlan) -> Result<()> {
    let has_files = cx.is_file("/etc/passwd");
    if !has_files && plan.users.is_empty() && plan.groups.is_empty() {
        return Ok(());
    }
    let mut db = Db::load(cx)?;
    if !has_files {
        db.passwd.push(Pw {
            name: "root".into(),
            password: "x".into(),
            uid: 0,
            gid: 0,
            gecos: "root".into(),
            home: "/root".into(),
            shell: NOLOGIN.into(),
        });
        if db.group("root").is_none() {
            db.add_group("root", 0);
        }
    }
    let sys = sysusers(cx);
    for (kind, _, ids, ..) in &sys {
        let (u, g) = sysusers_ids(ids);
        match kind.as_str() {
            "u" => {
                db.reserved_uids.extend(u);
                db.reserved_gids.extend(g.or(u));
            }
            "g" => db.reserved_gids.extend(u),
            _ => {}
        }
    }
    let section_loc = plan
        .users
        .first()
        .map(|u| u.loc.clone())
        .or_else(|| plan.groups.first().map(|g| g.loc.clone()));
    let mut created_by_sysusers = Vec::new();
    for (kind, name, ids, gecos, home, shell) in &sys {
        let (u, g) = sysusers_ids(ids);
        match kind.as_str() {
            "g" if db.group(name).is_none() => {
                let gid = u
                    .filter(|id| !db.group.iter().any(|g| g.gid == *id))
                    .or_else(|| db.allocate(true, |id| db.gid_free(id)));
                if let Some(gid) = gid {
                    db.add_group(name, gid);
                    created_by_sysusers.push(name.clone());
                }
            }
            "u" if db.user(name).is_none() => {
                let uid = u
                    .filter(|id| !db.passwd.iter().any(|p| p.uid == *id))
                    .or_else(|| db.allocate(true, |id| db.uid_free(id) && db.gid_free(id)));
                let Some(uid) = uid else { continue };
                let gid = match db.group(name) {
                    Some(existing) => existing.gid,
                    None => {
                        let gid = g
                            .or(Some(uid))
                            .filter(|id| !db.group.iter().any(|g| g.gid == *id))
                            .or_else(|| db.allocate(true, |id| db.gid_free(id)))
                            .unwrap_or(uid);
                        db.add_group(name, gid);
                        gid
                    }
                };
                db.passwd.push(Pw {
                    name: name.clone(),
                    password: "x".into(),
                    uid,
                    gid,
                    gecos: gecos.clone(),
                    home: if home.is_empty() {
                        "/".into()
                    } else {
                        home.clone()
                    },
                    shell: if shell.is_empty() {
                        NOLOGIN.into()
                    } else {
                        shell.clone()
                    },
                });
                db.shadow.push((name.clone(), shadow_fields("!*")));
                created_by_sysusers.push(name.clone());
            }
            "m" if db.user(name).is_some() => {
                let group = ids.clone();
                db.add_member(&group, name);
            }
            _ => {}
        }
    }
    if !created_by_sysusers.is_empty() {
        cx.warn(format!(
            "created accounts the image's sysusers.d declares but its /etc/passwd lacked: {}",
            created_by_sysusers.join(", ")
        ));
    }

    // Explicit ids first, so that allocation never takes them.
    for g in &plan.groups {
        if let Some(gid) = g.gid
            && db.group(&g.name).is_none()
        {
            db.reserved_gids.insert(gid);
        }
    }
    for u in &plan.users {
        if let Some(uid) = u.uid
            && db.user(&u.name).is_none()
        {
            db.reserved_uids.insert(uid);
        }
    }
    for g in &plan.groups {
        match db.group(&g.name) {
            Some(existing) => {
                if let Some(gid) = g.gid.filter(|gid| *gid != existing.gid) {
                    return Err(g
                        .loc
                        .error(format!(
                            "group {} already exists in the image with gid {}; remove gid = {gid} (the image's id is kept)",
                            g.name, existing.gid
                        ))
                        .into());
                }
            }
            None => {
                let gid = match g.gid {
                    Some(gid) => {
                        if let Some(other) = db.group.iter().find(|x| x.gid == gid) {
                            return Err(g
                                .loc
                                .error(format!(
                                    "gid {gid} is already group {} in the image",
                                    other.name
                                ))
                                .into());
                        }
                        gid
                    }
                    None => db
                        .allocate(g.system, |id| db.gid_free(id))
                        .ok_or_else(|| g.loc.error("no free gid left in the range"))?,
                };
                db.reserved_gids.remove(&gid);
                db.add_group(&g.name, gid);
            }
        }
    }
    for u in &plan.users {
        add_user(&mut db, u)?;
    }
    for u in &plan.users {
        for group in &u.groups {
            if db.group(group).is_none() {
                let known: Vec<&str> = db.group.iter().map(|g| g.name.as_str()).collect();
                let hint = kiln_diag::did_you_mean(group, known.iter().copied())
                    .map(|b| format!("did you mean \"{b}\"?"))
                    .unwrap_or_else(|| format!("add a [[group]] with name = \"{group}\""));
                return Err(u
                    .loc
                    .error(format!(
                        "user {}: group \"{group}\" does not exist; {hint}",
                        u.name
                    ))
                    .into());
            }
            db.add_member(group, &u.name);
        }
    }

    // Nobody logs in with a password; system accounts do not log in.
    let mut relocked = Vec::new();
    let mut reshelled = Vec::new();
    for p in &mut db.passwd {
        if p.password != "x" {
            if !is_locked(&p.password) && !p.password.is_empty() {
                relocked.push(p.name.clone());
            }
            p.password = "x".into();
        }
        let system = p.uid < db.uid_min || p.uid == 65534;
        if system && !LOGIN_EXEMPT.contains(&p.name.as_str()) && !is_nologin(&p.shell) {
            reshelled.push(format!("{} ({})", p.name, p.shell));
            p.shell = NOLOGIN.into();
        }
    }
    for p in &db.passwd {
        if !db.shadow.iter().any(|(n, _)| *n == p.name) {
            db.shadow.push((p.name.clone(), shadow_fields("*")));
        }
    }
    for (name, fields) in &mut db.shadow {
        if !is_locked(&fields[0]) {
            if !fields[0].is_empty() {
                relocked.push(name.clone());
            }
            fields[0] = "*".into();
        }
    }
    for (_, (password, _)) in db.gshadow.iter_mut() {
        if !is_locked(password) {
            *password = "!".into();
        }
    }
    relocked.sort();
    relocked.dedup();
    if !relocked.is_empty() {
        cx.warn(format!(
            "replaced the password hashes of {} with * (no password login on a kiln image)",
            relocked.join(", ")
        ));
    }
    if !reshelled.is_empty() {
        cx.warn(format!(
            "system accounts given {NOLOGIN}: {}",
            reshelled.join(", ")
        ));
    }

    let loc = section_loc.unwrap_or_else(|| plan_loc(plan));
    let shadow_gid = db.group("shadow").map_or(0, |g| g.gid);
    let [passwd, group, shadow, gshadow] = db.render();
    cx.write("/etc/passwd", &passwd, 0o644, &loc)?;
    cx.write("/etc/group", &group, 0o644, &loc)?;
    let secret = Meta {
        mode: 0o640,
        gid: shadow_gid,
        ..Meta::default()
    };
    cx.write_owned("/etc/shadow", shadow.as_bytes(), secret.clone(), &loc)?;
    cx.write_owned("/etc/gshadow", gshadow.as_bytes(), secret, &loc)?;
    for backup in [
        "/etc/passwd-",
        "/etc/group-",
        "/etc/shadow-",
        "/etc/gshadow-",
    ] {
        cx.remove(backup)?;
    }

    let required_rsa = plan
        .ssh
        .as_ref()
        .map_or(kiln_policy::sshd::REQUIRED_RSA_SIZE, |s| {
            s.required_rsa_size.value
        });
    for u in &plan.users {
        let pw = db.user(&u.name).expect("added above").clone();
        for (key, key_loc) in &u.authorized_keys {
            if let Some(bits) = key.rsa_bits.filter(|b| *b < required_rsa) {
                return Err(key_loc
                    .error(format!(
                        "user {}: this RSA key has {bits} bits, but sshd requires {required_rsa} (RequiredRSASize): it could not log in; use an ed25519 key",
                        u.name
                    ))
                    .into());
            }
        }
        if let Some(ssh) = &plan.ssh {
            let allowed = ssh.allow_users.iter().any(|n| n == &u.name)
                || ssh.allow_groups.iter().any(|g| {
                    db.group(g)
                        .is_some_and(|gr| gr.gid == pw.gid || gr.members.contains(&u.name))
                });
            if !u.authorized_keys.is_empty()
                && !allowed
                && !ssh
                    .allow_groups
                    .iter()
                    .chain(&ssh.allow_users)
                    .any(|p| p.contains(['*', '?']))
            {
                cx.warn(format!(
                    "{}: user {} has SSH keys but is not in [ssh] allow_groups/allow_users: sshd will refuse it",
                    u.loc.position(),
                    u.name
                ));
            }
        }
        let needs_home = !u.authorized_keys.is_empty() || (!u.system && u.home.is_none());
        if !needs_home || pw.home == "/" || pw.home == "/nonexistent" {
            if !u.authorized_keys.is_empty() {
                return Err(u
                    .loc
                    .error(format!(
                        "user {} has SSH keys but its home is {}; set home = \"/home/{}\"",
                        u.name, pw.home, u.name
                    ))
                    .into());
            }
            continue;
        }
        let owned = |mode| Meta {
            mode,
            uid: pw.uid,
            gid: pw.gid,
            ..Meta::default()
        };
        let home_exists = cx.resolve_dir(&pw.home).is_some();
        if !home_exists {
            cx.mkdir(&pw.home, owned(0o700), &u.loc)?;
        }
        if !u.authorized_keys.is_empty() {
            let ssh_dir = format!("{}/.ssh", pw.home.trim_end_matches('/'));
            cx.mkdir(&ssh_dir, owned(0o700), &u.loc)?;
            let mut text = String::new();
            for (key, _) in &u.authorized_keys {
                text.push_str(&key.line);
                text.push('\n');
            }
            cx.write_owned(
                &format!("{ssh_dir}/authorized_keys"),
                text.as_bytes(),
                owned(0o600),
                &u.loc,
            )?;
        }
    }
    Ok(())
}

fn shadow_fields(password: &str) -> Vec<String> {
    let mut f = vec![password.to_owned()];
    f.extend(std::iter::repeat_n(String::new(), 7));
    f
}

fn plan_loc(plan: &HardeningPlan) -> Loc {
    plan.ssh
        .as_ref()
        .map(|s| s.loc.clone())
        .or_else(|| plan.k3s.as_ref().map(|k| k.loc.clone()))
        .or_else(|| plan.firewall.as_ref().map(|f| f.loc.clone()))
        .or_else(|| plan.sysctl.as_ref().map(|s| s.loc.clone()))
        .or_else(|| plan.minimize.as_ref().map(|m| m.loc.clone()))
        .or_else(|| plan.kernel.as_ref().map(|k| k.loc.clone()))
        .expect("apply is only called with a hardening section")
}

fn add_user(db: &mut Db, u: &UserPlan) -> Result<()> {
    if let Some(existing) = db.user(&u.name).cloned() {
        if let Some(uid) = u.uid.filter(|uid| *uid != existing.uid) {
            return Err(u
                .loc
                .error(format!(
                    "user {} already exists in the image with uid {}; remove uid = {uid} (the image's id is kept)",
                    u.name, existing.uid
                ))
                .into());
        }
        let primary = match &u.group {
            Some(g) => {
                db.group(g)
                    .ok_or_else(|| {
                        u.loc
                            .error(format!("user {}: group \"{g}\" does not exist", u.name))
                    })?
                    .gid
            }
            None => existing.gid,
        };
        let p = db
            .passwd
            .iter_mut()
            .find(|p| p.name == u.name)
            .expect("exists");
        p.gid = primary;
        if let Some(shell) = &u.shell {
            p.shell = shell.clone();
        }
        if let Some(home) = &u.home {
            p.home = home.clone();
        }
        if let Some(comment) = &u.comment {
            p.gecos = comment.clone();
        }
        return Ok(());
    }
    let uid = match u.uid {
        Some(uid) => {
            if let Some(other) = db.passwd.iter().find(|p| p.uid == uid) {
                return Err(u
                    .loc
                    .error(format!(
                        "uid {uid} is already user {} in the image",
                        other.name
                    ))
                    .into());
            }
            db.reserved_uids.remove(&uid);
            uid
        }
        None => db
            .allocate(u.system, |id| db.uid_free(id))
            .ok_or_else(|| u.loc.error("no free uid left in the range"))?,
    };
    let gid = match &u.group {
        Some(g) => {
            db.group(g)
                .ok_or_else(|| {
                    u.loc.error(format!(
                        "user {}: primary group \"{g}\" does not exist; add a [[group]] with name = \"{g}\"",
                        u.name
                    ))
                })?
                .gid
        }
        None => match db.group(&u.name) {
            Some(g) => g.gid,
            None => {
                let gid = if db.gid_free(uid) {
                    uid
                } else {
                    db.allocate(u.system, |id| db.gid_free(id))
                        .ok_or_else(|| u.loc.error("no free gid left in the range"))?
                };
                db.add_group(&u.name, gid);
                gid
            }
        },
    };
    let home = u.home.clone().unwrap_or_else(|| {
        if u.system {
            "/nonexistent".into()
        } else {
            format!("/home/{}", u.name)
        }
    });
    let shell = u.shell.clone().unwrap_or_else(|| {
        if u.system {
            NOLOGIN.into()
        } else {
            "/bin/bash".into()
        }
    });
    db.passwd.push(Pw {
        name: u.name.clone(),
        password: "x".into(),
        uid,
        gid,
        gecos: u.comment.clone().unwrap_or_default(),
        home,
        shell,
    });
    db.shadow.push((u.name.clone(), shadow_fields("*")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_fields() {
        for locked in ["*", "!", "!*", "!!"] {
            assert!(is_locked(locked), "{locked}");
        }
        for open in ["", "$6$salt$hash", "!$6$salt$hash", "x"] {
            assert!(!is_locked(open), "{open}");
        }
    }

    #[test]
    fn sysusers_lines() {
        assert_eq!(
            sysusers_words("u systemd-network - \"systemd Network Management\" /  /bin/sh"),
            [
                "u",
                "systemd-network",
                "-",
                "systemd Network Management",
                "/",
                "/bin/sh"
            ]
        );
        assert_eq!(sysusers_ids("4:65534"), (Some(4), Some(65534)));
        assert_eq!(sysusers_ids("-"), (None, None));
    }
}
