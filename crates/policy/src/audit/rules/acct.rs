//! acct.*: the account databases. Not applicable without /etc/passwd,
//! except acct.trust-files.

use super::{Rule, findings, not_applicable, owner_mode, rule};
use crate::accounts::Accounts;
use crate::audit::{Check, Ctx, Finding};
use std::collections::BTreeMap;

pub const RULES: &[Rule] = &[
    rule!("acct.shadow", High, shadow,
        title: "account databases have safe permissions",
        source: "CIS 7.1.x",
        rationale: "Readable shadow files expose password hashes to offline cracking; writable passwd or group files hand out root.",
        remediation: "shadow and gshadow (and their - backups): mode 0640 or less, root:shadow; passwd and group: 0644, root:root."),
    rule!("acct.empty-password", Critical, empty_password,
        title: "no account without a password, no hash in /etc/passwd",
        source: "CIS 7.2.1/2",
        rationale: "An empty password field lets anyone log in as that account; a hash in world-readable /etc/passwd can be cracked offline.",
        remediation: "Lock the account (`passwd -l`) or set a password; keep `x` in /etc/passwd's second field."),
    rule!("acct.uid0", Critical, uid0,
        title: "only root has uid and gid 0, no duplicate ids or names",
        source: "CIS 5.4.2.x, 7.2.5-8",
        rationale: "A second uid 0 account is a hidden root; duplicate ids or names blur who owns what.",
        remediation: "Give the extra accounts or groups their own ids and names, or remove them."),
    rule!("acct.system-shell", Medium, system_shell,
        title: "system accounts cannot log in",
        source: "CIS 5.4.2.7/8",
        rationale: "Service accounts with a shell and a usable password are extra doors.",
        remediation: "Set the shell of accounts below UID_MIN (root excepted) to /usr/sbin/nologin and lock their password."),
    rule!("acct.trust-files", Medium, trust_files,
        title: "no rhosts, equiv, netrc or forward files",
        source: "DL os-01/09",
        rationale: "hosts.equiv and .rhosts grant password-less trust; .netrc stores passwords; .forward runs programs on mail delivery.",
        remediation: "Remove /etc/hosts.equiv, /etc/shosts.equiv and every .rhosts, .shosts, .netrc and .forward."),
];

fn with_accounts(ctx: &Ctx, check: impl FnOnce(&Accounts) -> Vec<Finding>) -> Check {
    match ctx.accounts() {
        Some(accounts) => findings(check(accounts)),
        None => not_applicable("the image has no /etc/passwd"),
    }
}

fn shadow(ctx: &Ctx) -> Check {
    with_accounts(ctx, |accounts| {
        let mut out = Vec::new();
        let shadow_gid = accounts.group_named("shadow").map(|g| g.gid);
        let gids: Vec<u32> = [Some(0), shadow_gid].into_iter().flatten().collect();
        if !ctx.img.is_file("/etc/shadow") {
            out.push(Finding::new(
                "/etc/shadow",
                "absent",
                "no shadow file: password fields live in world-readable /etc/passwd",
            ));
        }
        for path in [
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/shadow-",
            "/etc/gshadow-",
        ] {
            if ctx.img.is_file(path) {
                owner_mode(ctx, path, 0o640, &gids, &mut out);
            }
        }
        for path in ["/etc/passwd", "/etc/group", "/etc/passwd-", "/etc/group-"] {
            if ctx.img.is_file(path) {
                owner_mode(ctx, path, 0o644, &[0], &mut out);
            }
        }
        out
    })
}

fn empty_password(ctx: &Ctx) -> Check {
    with_accounts(ctx, |accounts| {
        let mut out = Vec::new();
        for user in &accounts.users {
            if user.password.is_empty() {
                out.push(
                    Finding::new(
                        "/etc/passwd",
                        user.name.clone(),
                        "empty password field: no password at all",
                    )
                    .at_line(user.line),
                );
            } else if user.password != "x" {
                out.push(
                    Finding::new(
                        "/etc/passwd",
                        user.name.clone(),
                        "password field is not x: a hash or lock in world-readable /etc/passwd",
                    )
                    .at_line(user.line),
                );
            }
        }
        for entry in accounts.shadow.iter().flatten() {
            if entry.password.is_empty() {
                out.push(
                    Finding::new(
                        "/etc/shadow",
                        entry.name.clone(),
                        "empty password: logs in without one",
                    )
                    .at_line(entry.line),
                );
            }
        }
        out
    })
}

fn uid0(ctx: &Ctx) -> Check {
    with_accounts(ctx, |accounts| {
        let mut out = Vec::new();
        for (path, line) in &accounts.malformed {
            out.push(Finding::new(path.clone(), "malformed", "not a valid entry").at_line(*line));
        }
        for user in &accounts.users {
            if user.uid == 0 && user.name != "root" {
                out.push(
                    Finding::new(
                        "/etc/passwd",
                        format!("{} uid 0", user.name),
                        "a second root account",
                    )
                    .at_line(user.line),
                );
            }
            let gid0_ok =
                ["root", "sync", "shutdown", "halt", "operator"].contains(&user.name.as_str());
            if user.gid == 0 && !gid0_ok {
                out.push(
                    Finding::new(
                        "/etc/passwd",
                        format!("{} gid 0", user.name),
                        "primary group is root's",
                    )
                    .at_line(user.line),
                );
            }
        }
        for group in &accounts.groups {
            if group.gid == 0 && group.name != "root" {
                out.push(
                    Finding::new(
                        "/etc/group",
                        format!("{} gid 0", group.name),
                        "a second group with gid 0",
                    )
                    .at_line(group.line),
                );
            }
        }
        let mut duplicates = |path: &str, what: &str, keys: Vec<(String, u32)>| {
            let mut seen: BTreeMap<String, u32> = BTreeMap::new();
            for (key, line) in keys {
                if let Some(first) = seen.get(&key) {
                    out.push(
                        Finding::new(
                            path,
                            key.clone(),
                            format!("duplicate {what} (first on line {first})"),
                        )
                        .at_line(line),
                    );
                } else {
                    seen.insert(key, line);
                }
            }
        };
        duplicates(
            "/etc/passwd",
            "uid",
            accounts
                .users
                .iter()
                .map(|u| (u.uid.to_string(), u.line))
                .collect(),
        );
        duplicates(
            "/etc/passwd",
            "user name",
            accounts
                .users
                .iter()
                .map(|u| (u.name.clone(), u.line))
                .collect(),
        );
        duplicates(
            "/etc/group",
            "gid",
            accounts
                .groups
                .iter()
                .map(|g| (g.gid.to_string(), g.line))
                .collect(),
        );
        duplicates(
            "/etc/group",
            "group name",
            accounts
                .groups
                .iter()
                .map(|g| (g.name.clone(), g.line))
                .collect(),
        );
        out
    })
}

const NO_LOGIN: &[&str] = &[
    "/usr/sbin/nologin",
    "/sbin/nologin",
    "/bin/false",
    "/usr/bin/false",
];

fn system_shell(ctx: &Ctx) -> Check {
    with_accounts(ctx, |accounts| {
        let mut out = Vec::new();
        for user in &accounts.users {
            let system = user.uid < accounts.uid_min || user.uid == 65534;
            if !system || ["root", "sync", "shutdown", "halt"].contains(&user.name.as_str()) {
                continue;
            }
            if !NO_LOGIN.contains(&user.shell.as_str()) {
                out.push(
                    Finding::new(
                        "/etc/passwd",
                        format!("{} {}", user.name, user.shell),
                        "system account with a login shell",
                    )
                    .at_line(user.line),
                );
            }
            if let Some(entry) = accounts.shadow_of(&user.name)
                && !(entry.password.starts_with('!') || entry.password.starts_with('*'))
            {
                out.push(
                    Finding::new(
                        "/etc/shadow",
                        user.name.clone(),
                        "system account with a usable password (not locked)",
                    )
                    .at_line(entry.line),
                );
            }
        }
        out
    })
}

fn trust_files(ctx: &Ctx) -> Check {
    let mut out = Vec::new();
    for path in ["/etc/hosts.equiv", "/etc/shosts.equiv"] {
        if ctx.img.exists(path) {
            out.push(Finding::new(path, "present", "host-based trust file"));
        }
    }
    for (path, entry) in ctx.img.iter() {
        let name = path.file_name();
        if [".rhosts", ".shosts", ".netrc", ".forward"].contains(&name)
            && entry.kind.name() != "dir"
        {
            out.push(Finding::new(
                path.as_str(),
                "present",
                format!("a {name} file"),
            ));
        }
    }
    findings(out)
}
