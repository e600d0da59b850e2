//! Whose ids the sandbox's user namespace maps the image's onto: as root,
//! a fixed range of host ids kiln maps itself (`userns::HOST_ID_BASE`);
//! without root, the building user and its subordinate ids from
//! /etc/subuid and /etc/subgid. The scripts run the same way in both
//! (`userns.rs`, then `isolate.rs` inside).

use super::isolate::{Job, Outcome};
use super::userns::{self, HOST_ID_BASE, IMAGE_IDS, IdRanges};
use anyhow::{Result, bail};
use kiln_tree::{Store, Tree};

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
            if let Err(why) = userns::host_ids_available() {
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

    /// Hands `tree` to the sandbox, runs the job's script there and takes
    /// the result back.
    pub fn run(&self, tree: &Tree, store: &Store, job: &Job) -> Result<Outcome> {
        userns::run(self, tree, store, job)
    }
}
