//! Writing a Tree out to a host directory, exactly: owners, all mode bits,
//! capabilities, devices, hard links. The install stage does this to run
//! maintainer scripts in a chroot; it needs root (chown, mknod).

use super::{Entry, Kind, Store, Tree};
use anyhow::{Context, Result, anyhow};
use rayon::prelude::*;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Writes `tree` below `root`, an existing empty directory. File contents
/// are copied from the store (never hard-linked: a script appending to a
/// file must not change the store), in parallel.
pub fn write_dir(tree: &Tree, store: &Store, root: &Path) -> Result<()> {
    write(tree, store, root, false)
}

/// [`write_dir`] from a store about to be discarded: each blob is renamed
/// to the last path that has its content (and copied to the others), so
/// no byte is copied twice when the store and `root` share a file system.
/// The store is left without those blobs.
pub fn write_dir_taking(tree: &Tree, store: &Store, root: &Path) -> Result<()> {
    write(tree, store, root, true)
}

fn write(tree: &Tree, store: &Store, root: &Path, take: bool) -> Result<()> {
    let host = |path| host_path(root, path);
    // Directories first (sorted order puts parents before children), then
    // contents; metadata last, because chown clears setuid bits and
    // capabilities, and a read-only directory must still be filled.
    for (path, entry) in tree.iter() {
        if entry.kind == Kind::Dir && !path.is_root() {
            std::fs::create_dir(host(path))
                .with_context(|| format!("cannot create {}", host(path).display()))?;
        }
    }
    // The paths of each content, so that the last can take the blob.
    let mut files: std::collections::BTreeMap<&super::Digest, Vec<PathBuf>> = Default::default();
    for (path, entry) in tree.iter() {
        if let Kind::File { digest, .. } = &entry.kind {
            files.entry(digest).or_default().push(host(path));
        }
    }
    files
        .par_iter()
        .try_for_each(|(digest, dests)| -> Result<()> {
            for (i, dest) in dests.iter().enumerate() {
                let last = i + 1 == dests.len();
                store
                    .write_blob(digest, dest, take && last)
                    .with_context(|| format!("cannot write {}", dest.display()))?;
            }
            Ok(())
        })?;
    for (path, entry) in tree.iter() {
        let dest = host(path);
        let made = match &entry.kind {
            Kind::Symlink { target } => std::os::unix::fs::symlink(target, &dest),
            Kind::HardLink { target } => std::fs::hard_link(host(target), &dest),
            Kind::CharDevice { major, minor } => {
                make_node(&dest, libc::S_IFCHR, libc::makedev(*major, *minor))
            }
            Kind::BlockDevice { major, minor } => {
                make_node(&dest, libc::S_IFBLK, libc::makedev(*major, *minor))
            }
            Kind::Fifo => make_node(&dest, libc::S_IFIFO, 0),
            Kind::File { .. } | Kind::Dir => Ok(()),
        };
        made.with_context(|| format!("cannot create {}", dest.display()))?;
    }
    // Deepest first, so a directory's own mode is set after its contents.
    for (path, entry) in tree.iter().collect::<Vec<_>>().into_iter().rev() {
        if !matches!(entry.kind, Kind::HardLink { .. }) {
            set_meta(&host(path), entry)?;
        }
    }
    Ok(())
}

fn make_node(path: &Path, kind: libc::mode_t, device: libc::dev_t) -> std::io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::mknod(c.as_ptr(), kind | 0o600, device) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn set_meta(path: &Path, entry: &Entry) -> Result<()> {
    let c = c_path(path)?;
    let fail = |what: &str| {
        anyhow!(
            "cannot set the {what} of {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of each call.
    if unsafe { libc::lchown(c.as_ptr(), entry.meta.uid, entry.meta.gid) } != 0 {
        return Err(fail("owner"));
    }
    if matches!(entry.kind, Kind::Symlink { .. }) {
        return Ok(());
    }
    // SAFETY: as above.
    if unsafe { libc::chmod(c.as_ptr(), entry.meta.mode as libc::mode_t) } != 0 {
        return Err(fail("mode"));
    }
    for (name, value) in &entry.meta.xattrs {
        xattr::set(path, name, value)
            .with_context(|| format!("cannot set {name} on {}", path.display()))?;
    }
    Ok(())
}

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// Where the image path `path` is below the host directory `root` (the
/// root itself for `/`).
pub fn host_path(root: &Path, path: &super::ImagePath) -> PathBuf {
    let relative = path.as_str().trim_start_matches('/');
    if relative.is_empty() {
        root.to_owned()
    } else {
        root.join(relative)
    }
}
