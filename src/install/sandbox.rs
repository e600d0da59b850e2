//! Which way this build gets the privileges to configure packages: root
//! (`isolate.rs`), or a user namespace in which the building user is root
//! and a range of subordinate ids from /etc/subuid and /etc/subgid are the
//! image's other users (`userns.rs`, which runs `isolate.rs`'s job inside).

use super::isolate::{self, Job, Outcome};
use super::userns::{self, IdRanges};
use anyhow::{Result, bail};
use kiln_tree::{Store, Tree};

/// How this build gets the privileges to configure packages.
pub enum Isolation {
    Root,
    UserNamespace(IdRanges),
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Isolation::Root => f.write_str("as root"),
            Isolation::UserNamespace(ids) => write!(f, "in a user namespace, {ids}"),
        }
    }
}

impl Isolation {
    /// Root if kiln runs as root, else a user namespace if the host grants
    /// this user subordinate ids; otherwise an error saying what to do.
    pub fn detect() -> Result<Isolation> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return Ok(Isolation::Root);
        }
        match IdRanges::of_this_user() {
            Ok(ids) => Ok(Isolation::UserNamespace(ids)),
            Err(why) => bail!(
                "installing Debian packages runs their maintainer scripts in a chroot inside private \
                 namespaces, which needs root or a user namespace with subordinate ids: run kiln build \
                 as root (sudo, or a container or CI job running as root), or give this user 65536 \
                 subordinate ids and install newuidmap ({why})"
            ),
        }
    }

    /// Writes `tree` out, runs the job's script in it and reads it back.
    pub fn run(&self, tree: &Tree, store: &Store, job: &Job) -> Result<Outcome> {
        match self {
            Isolation::Root => isolate::run_as_root(tree, store, job),
            Isolation::UserNamespace(ids) => userns::run(ids, tree, store, job),
        }
    }
}
