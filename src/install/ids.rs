//! Whose ids the sandbox's user namespace maps the image's onto: as root,
//! a fixed range of host ids kiln maps itself (`HOST_ID_BASE`);
//! without root, the building user and its subordinate ids from
//! /etc/subuid and /etc/subgid. The scripts run the same way in both
//! (`userns.rs`, then `isolate.rs` inside).

use anyhow::{Result, bail};

/// Where the image's ids 0–65535 live on the host while scripts run.
pub enum Ids {
    /// kiln is root: `HOST_ID_BASE` + id.
    Root,
    /// kiln is not: the user for 0, its subordinate ids for the others.
    Subordinate(IdRanges),
}

impl std::fmt::Display for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ids::Root => write!(
                f,
                "in a user namespace, image ids 0-{} as host ids {HOST_ID_BASE}-{}",
                IMAGE_IDS - 1,
                HOST_ID_BASE + (IMAGE_IDS - 1)
            ),
            Ids::Subordinate(ids) => write!(
                f,
                "in a user namespace, image ids 1-{} as subordinate uids from {} and gids from {}",
                IMAGE_IDS - 1,
                ids.sub_uid,
                ids.sub_gid
            ),
        }
    }
}

impl Ids {
    /// The fixed range if kiln runs as root, else the user's subordinate
    /// ids; otherwise an error saying what to do.
    pub fn detect() -> Result<Ids> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            if let Err(why) = host_ids_available() {
                bail!(
                    "maintainer scripts run in a sandbox whose root is not the host's, on host ids \
                     kiln maps itself when it runs as root; but {why}: run kiln build as a user with \
                     65536 subordinate ids instead"
                );
            }
            return Ok(Ids::Root);
        }
        match IdRanges::of_this_user() {
            Ok(ids) => Ok(Ids::Subordinate(ids)),
            Err(why) => bail!(
                "installing Debian packages runs their maintainer scripts in a sandbox (a user \
                 namespace), which needs root or subordinate ids: run kiln build as root (sudo, \
                 or a container or CI job running as root), or give this user 65536 subordinate \
                 ids and install newuidmap ({why})"
            ),
        }
    }
}

/// How many ids the image has: 0–65535 (65534 is nobody).
pub const IMAGE_IDS: u32 = 65536;

/// As root, the image's ids 0–65535 are host ids 2130706432–2130771967
/// (0x7F000000 + id). The range is unused by convention: above systemd's
/// container ranges (524288–1879048191) and below its foreign range
/// (from 2147352576) and 2^31 (which some tools treat as signed), far
/// above what useradd hands out as subordinate ids (from 100000), aligned
/// to 65536 as systemd-nspawn aligns its ranges. No host file or process
/// has these ids, so a script has only the "other" permissions on
/// anything of the host's it could name (and it can name nothing).
pub const HOST_ID_BASE: u32 = 0x7F00_0000;

/// The building user and the subordinate ids the host grants it.
pub struct IdRanges {
    pub uid: u32,
    pub gid: u32,
    pub sub_uid: u32,
    pub sub_gid: u32,
}

impl IdRanges {
    /// This user's ranges, or why there are none.
    pub fn of_this_user() -> Result<IdRanges, String> {
        // SAFETY: getuid and getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let name = user_name(uid).unwrap_or_else(|| uid.to_string());
        for tool in ["newuidmap", "newgidmap"] {
            if !on_path(tool) {
                return Err(format!("{tool} is missing: apt-get install uidmap"));
            }
        }
        Ok(IdRanges {
            uid,
            gid,
            sub_uid: range_start("/etc/subuid", &name, uid)?,
            sub_gid: range_start("/etc/subgid", &name, uid)?,
        })
    }
}

/// The user's name as the system knows it (NSS: files, LDAP, …).
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 1 << 16];
    // SAFETY: an all-zero passwd is a valid value to be filled in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, `buf` for its length.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// The image's ids besides root come from the subordinate range.
pub const SUBORDINATE_IDS: u32 = IMAGE_IDS - 1;

/// The start of the first range in `file` (`name:start:count` lines, by
/// user name or uid) large enough for an image.
fn range_start(file: &str, name: &str, uid: u32) -> Result<u32, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
            let (start, count): (u32, u32) = (start.parse().ok()?, count.parse().ok()?);
            ((owner == name || owner == uid.to_string()) && count >= SUBORDINATE_IDS)
                .then_some(start)
        })
        .next()
        .ok_or_else(|| {
            format!(
                "{file} gives {name} no range of {SUBORDINATE_IDS} ids; as root: \
                 usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}"
            )
        })
}

/// Whether this process may map `HOST_ID_BASE`… in a child namespace: they
/// must be ids of its own user namespace (not so in a rootless container,
/// whose root is itself a mapped user).
pub fn host_ids_available() -> Result<(), String> {
    for file in ["/proc/self/uid_map", "/proc/self/gid_map"] {
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        let covered = text.lines().any(|line| {
            let fields: Vec<u64> = line
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            matches!(fields[..], [inside, _, count]
                if inside <= u64::from(HOST_ID_BASE)
                    && u64::from(HOST_ID_BASE) + u64::from(IMAGE_IDS) <= inside + count)
        });
        if !covered {
            return Err(format!(
                "the ids {HOST_ID_BASE}-{} that kiln gives the image are not mapped in this user \
                 namespace ({file}), as in a rootless container",
                HOST_ID_BASE + (IMAGE_IDS - 1)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranges_are_described_as_they_are_mapped() {
        assert_eq!(
            Ids::Root.to_string(),
            "in a user namespace, image ids 0-65535 as host ids 2130706432-2130771967"
        );
        let ids = Ids::Subordinate(IdRanges {
            uid: 1000,
            gid: 1001,
            sub_uid: 100000,
            sub_gid: 200000,
        });
        assert_eq!(
            ids.to_string(),
            "in a user namespace, image ids 1-65535 as subordinate uids from 100000 and gids \
             from 200000"
        );
        assert_eq!(SUBORDINATE_IDS, 65535);
    }

    fn subid_file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subuid");
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap().to_owned();
        (dir, path)
    }

    #[test]
    fn the_first_large_enough_range_of_the_user_is_taken() {
        let (_dir, file) = subid_file(
            "bob:100000:65536\n\
             alice:165536:65534\n\
             alice:x:65536\n\
             alice:231072\n\
             alice:231072:many\n\
             \x20alice:300000:65535 \n\
             alice:400000:65536\n",
        );
        // too small (65534), malformed, then exactly 65535 ids (surrounding
        // spaces are trimmed)
        assert_eq!(range_start(&file, "alice", 1000), Ok(300000));
        assert_eq!(range_start(&file, "bob", 1001), Ok(100000));
        // by uid as well as by name
        let (_dir, file) = subid_file("alice:165536:65536\n1000:500000:70000\n");
        assert_eq!(range_start(&file, "carol", 1000), Ok(500000));
        assert_eq!(range_start(&file, "alice", 1000), Ok(165536));
        assert_eq!(range_start(&file, "1000", 7), Ok(500000));
        // a name is not a prefix match, nor a uid
        let (_dir, file) = subid_file("alicia:100000:65536\n10000:100000:65536\n");
        assert_eq!(
            range_start(&file, "alice", 1000),
            Err(format!(
                "{file} gives alice no range of 65535 ids; as root: usermod --add-subuids \
                 100000-165535 --add-subgids 100000-165535 alice"
            ))
        );
        let (_dir, file) = subid_file("alice:100000:65534\n");
        assert!(range_start(&file, "alice", 1000).is_err());
        let missing = format!("{file}.missing");
        assert_eq!(
            range_start(&missing, "alice", 1000),
            Err(format!(
                "cannot read {missing}: No such file or directory (os error 2)"
            ))
        );
    }

    #[test]
    fn users_and_tools_are_looked_up_on_the_system() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(user_name(4_000_000_000), None);
        assert!(on_path("sh"));
        assert!(!on_path("kiln-no-such-tool"));
        // a directory of the name is not a tool
        assert!(!on_path("."));
    }

    /// Without newuidmap and newgidmap there is nothing to map with; with
    /// them, what is missing is a range in /etc/subuid (or nothing).
    #[test]
    fn the_building_user_needs_the_uidmap_tools() {
        let tools = on_path("newuidmap") && on_path("newgidmap");
        match IdRanges::of_this_user() {
            Ok(_) => assert!(tools),
            Err(why) if tools => assert!(why.contains("/etc/sub"), "{why}"),
            Err(why) => assert!(why.ends_with("is missing: apt-get install uidmap"), "{why}"),
        }
    }

    /// Set in the copies of the test binary that run in a user namespace:
    /// "ok", or the map file expected to be refused.
    const IN_USERNS: &str = "KILN_TEST_IN_USERNS_EXPECT";
    const THIS_TEST: &str =
        "install::ids::tests::only_a_namespace_that_maps_the_host_ids_may_hand_them_out";

    /// Runs this test again in a new user namespace with these maps.
    fn in_namespace(uid_map: &str, gid_map: &str, expect: &str) {
        use std::io::Write as _;
        use std::os::unix::process::CommandExt as _;
        use std::process::{Command, Stdio};
        let mut command = Command::new("sh");
        command
            .args(["-c", "read go && exec \"$0\" --exact \"$1\" --nocapture"])
            .arg(std::env::current_exe().unwrap())
            .arg(THIS_TEST)
            .env(IN_USERNS, expect)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: unshare is a plain system call, allowed before exec.
        unsafe {
            command.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        for (file, map) in [("uid_map", uid_map), ("gid_map", gid_map)] {
            std::fs::write(format!("/proc/{}/{file}", child.id()), map).unwrap();
        }
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("1 passed"),
            "uid_map {uid_map:?}, gid_map {gid_map:?}: {text}"
        );
    }

    /// As the host's root, kiln maps the image's ids itself; as the root
    /// of a user namespace that does not map them (a rootless container),
    /// it cannot, and says so. The test runs itself again in namespaces
    /// whose maps just cover the ids, or just miss them.
    #[test]
    fn only_a_namespace_that_maps_the_host_ids_may_hand_them_out() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if let Some(expect) = std::env::var_os(IN_USERNS) {
            let expect = expect.to_str().unwrap();
            if expect == "ok" {
                assert_eq!(host_ids_available(), Ok(()));
                if root {
                    assert!(matches!(Ids::detect(), Ok(Ids::Root)));
                }
                return;
            }
            let refusal = format!(
                "the ids 2130706432-2130771967 that kiln gives the image are not mapped in \
                 this user namespace (/proc/self/{expect}), as in a rootless container"
            );
            assert_eq!(host_ids_available(), Err(refusal.clone()));
            if root {
                assert_eq!(
                    Ids::detect().map(|_| ()).map_err(|e| e.to_string()),
                    Err(format!(
                        "maintainer scripts run in a sandbox whose root is not the host's, on \
                         host ids kiln maps itself when it runs as root; but {refusal}: run kiln \
                         build as a user with 65536 subordinate ids instead"
                    ))
                );
            }
            return;
        }
        // The host's root, in the initial user namespace, maps every id.
        let initial = ["/proc/self/uid_map", "/proc/self/gid_map"]
            .iter()
            .all(|file| {
                let map = std::fs::read_to_string(file).unwrap();
                map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
            });
        if !root || !initial {
            return; // the root tier (`just test`) runs this as the host's root
        }
        assert_eq!(host_ids_available(), Ok(()));
        assert!(matches!(Ids::detect(), Ok(Ids::Root)));
        let all = "0 0 4294967295\n";
        // the ids up to the end of the image's range, or one short of it
        in_namespace("0 0 2130771968\n", "0 0 2130771968\n", "ok");
        in_namespace("0 0 2130771967\n", all, "uid_map");
        in_namespace(all, "0 0 2130771967\n", "gid_map");
        // the range starting exactly at HOST_ID_BASE, or one id later
        in_namespace("2130706432 0 65536\n", all, "ok");
        in_namespace("2130706433 0 65536\n", all, "uid_map");
        in_namespace("2130706432 0 65535\n", all, "uid_map");
        // any line of the map may cover them
        in_namespace("0 0 1\n2130706432 1 65536\n", all, "ok");
        // a rootless container: its root is a user of the host's
        in_namespace("0 0 1\n", "0 0 1\n", "uid_map");
    }
}
