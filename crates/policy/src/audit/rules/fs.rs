//! fs.*: special permissions, ownership and special files over the whole
//! tree.

use super::{Rule, findings, not_applicable, rule};
use crate::audit::{Check, Ctx, Finding};
use kiln_tree::Kind;
use std::collections::BTreeSet;

pub const RULES: &[Rule] = &[
    rule!("fs.setuid", High, setuid,
        title: "setuid/setgid files are on the allowlist",
        source: "CIS 7.1.13; DA allow/block lists",
        rationale: "Every setuid or setgid program is a privilege-escalation path; an immutable node needs few.",
        remediation: "Remove the bit (or the program), or waive the rule for the path with a reason. Allowed: su, passwd, chsh, chfn, gpasswd, newgrp, chage, expiry, mount, umount, sudo, unix_chkpwd, dbus-daemon-launch-helper."),
    rule!("fs.world-writable", High, world_writable,
        title: "nothing is world-writable, but sticky directories",
        source: "CIS 7.1.11",
        rationale: "A world-writable file can be changed by any user; a world-writable directory without the sticky bit lets anyone delete others' files.",
        remediation: "Remove o+w from files, and add the sticky bit (1777) to shared directories."),
    rule!("fs.devices", Critical, devices,
        title: "no device nodes or fifos outside /dev",
        source: "kiln (device nodes belong in the devtmpfs mounted on /dev at boot)",
        rationale: "A character or block device outside /dev gives whoever can open it the hardware or kernel memory behind it, bypassing the permissions devtmpfs and udev set on /dev; /dev/sda planted as /var/tmp/disk with mode 0666 is the whole disk for every user. No package or hardening step needs one elsewhere, and a fifo outside /dev is build-host debris. kiln refuses them when any input brings them; this rule finds them in images built otherwise.",
        remediation: "Remove the device node or fifo from the image (device nodes belong below /dev, which devtmpfs provides at boot); on a live node, find what created it."),
    rule!("fs.unowned", Medium, unowned,
        title: "every file has a known owner and group",
        source: "CIS 7.1.12",
        rationale: "A file owned by an id without an account is taken over by whoever gets that id next.",
        remediation: "chown the files to an existing account, or add the account to the image."),
];

/// setuid/setgid programs a node may keep (merged /usr and the
/// pre-merge locations).
pub const SETUID_ALLOWED: &[&str] = &[
    "/usr/bin/su",
    "/bin/su",
    "/usr/bin/passwd",
    "/usr/bin/chsh",
    "/usr/bin/chfn",
    "/usr/bin/gpasswd",
    "/usr/bin/newgrp",
    "/usr/bin/chage",
    "/usr/bin/expiry",
    "/usr/bin/mount",
    "/bin/mount",
    "/usr/bin/umount",
    "/bin/umount",
    "/usr/bin/sudo",
    "/usr/sbin/unix_chkpwd",
    "/sbin/unix_chkpwd",
    "/usr/lib/dbus-1.0/dbus-daemon-launch-helper",
];

fn setuid(ctx: &Ctx) -> Check {
    let out = ctx
        .img
        .iter()
        .filter(|(_, e)| e.kind != Kind::Dir && e.meta.mode & 0o6000 != 0)
        .filter(|(p, _)| !SETUID_ALLOWED.contains(&p.as_str()))
        .map(|(p, e)| {
            let bits = match e.meta.mode & 0o6000 {
                0o4000 => "setuid",
                0o2000 => "setgid",
                _ => "setuid and setgid",
            };
            Finding::new(
                p.as_str(),
                format!("{:04o} {}:{}", e.meta.mode & 0o7777, e.meta.uid, e.meta.gid),
                format!("{bits}, not on the allowlist"),
            )
        })
        .collect();
    findings(out)
}

fn world_writable(ctx: &Ctx) -> Check {
    let out = ctx
        .img
        .iter()
        .filter_map(|(p, e)| {
            let m = e.meta.mode;
            if m & 0o002 == 0 {
                return None;
            }
            let message = match e.kind {
                Kind::Symlink { .. } | Kind::CharDevice { .. } | Kind::BlockDevice { .. } => {
                    return None;
                }
                Kind::Dir if m & 0o1000 != 0 => return None,
                Kind::Dir => "world-writable directory without the sticky bit",
                _ => "world-writable",
            };
            Some(Finding::new(
                p.as_str(),
                format!("{:04o}", m & 0o7777),
                message,
            ))
        })
        .collect();
    findings(out)
}

fn devices(ctx: &Ctx) -> Check {
    let out = ctx
        .img
        .iter()
        .filter_map(|(p, e)| {
            let (what, value) = match &e.kind {
                Kind::CharDevice { major, minor } => {
                    ("character device", format!("char {major}:{minor}"))
                }
                Kind::BlockDevice { major, minor } => {
                    ("block device", format!("block {major}:{minor}"))
                }
                Kind::Fifo => ("fifo", "fifo".to_owned()),
                _ => return None,
            };
            if p.as_str().starts_with("/dev/") {
                return None;
            }
            Some(Finding::new(
                p.as_str(),
                format!("{value} {:04o}", e.meta.mode & 0o7777),
                format!("{what} outside /dev"),
            ))
        })
        .collect();
    findings(out)
}

fn unowned(ctx: &Ctx) -> Check {
    let Some(accounts) = ctx.accounts() else {
        return not_applicable("the image has no /etc/passwd");
    };
    let uids: BTreeSet<u32> = accounts.users.iter().map(|u| u.uid).collect();
    let gids: BTreeSet<u32> = accounts.groups.iter().map(|g| g.gid).collect();
    let mut out = Vec::new();
    for (p, e) in ctx.img.iter() {
        if !uids.contains(&e.meta.uid) {
            out.push(Finding::new(
                p.as_str(),
                format!("uid {}", e.meta.uid),
                "owner has no account in /etc/passwd",
            ));
        }
        if !gids.contains(&e.meta.gid) {
            out.push(Finding::new(
                p.as_str(),
                format!("gid {}", e.meta.gid),
                "group is not in /etc/group",
            ));
        }
    }
    findings(out)
}
