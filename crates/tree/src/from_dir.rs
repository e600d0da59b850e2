//! Reading host directories: a faithful loader (owners, modes, xattrs,
//! hard links, devices) and the walker it shares with overlays; and
//! [`host_source`], which finds a recipe's host sources without following
//! a symlink out of the recipe's folder.

use super::{Entry, ImagePath, Kind, Meta, Placement, Store, Tree};
use anyhow::{Context, Result, anyhow};
use rayon::prelude::*;
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What a host path is, as far as an image cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKind {
    File,
    Dir,
    Symlink { target: String },
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
    Socket,
}

/// One path found by [`walk_host_dir`].
#[derive(Clone, Debug)]
pub struct HostEntry {
    /// The path inside the walked directory, as an image path.
    pub path: ImagePath,
    pub host_path: PathBuf,
    pub kind: HostKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// (device, inode, link count), to find hard links.
    pub inode: (u64, u64, u64),
    pub size: u64,
    /// Modification time, seconds since 1970.
    pub mtime: i64,
    /// Status change time (seconds, nanoseconds): no process can set it,
    /// every change of the file's content or metadata moves it on.
    pub ctime: (i64, i64),
}

/// Lists `root` and everything below it, sorted by image path, never
/// following symlinks. `skip` prunes a path and its subtree.
pub fn walk_host_dir(root: &Path, skip: &dyn Fn(&ImagePath) -> bool) -> Result<Vec<HostEntry>> {
    let mut out = Vec::new();
    // The root itself may be a symlink to a directory; below it, nothing
    // is followed.
    let meta =
        std::fs::metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("{} is not a directory", root.display());
    }
    walk(root, ImagePath::root(), &meta, skip, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(
    host: &Path,
    path: ImagePath,
    meta: &std::fs::Metadata,
    skip: &dyn Fn(&ImagePath) -> bool,
    out: &mut Vec<HostEntry>,
) -> Result<()> {
    let file_type = meta.file_type();
    let device = || (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    let kind = if file_type.is_dir() {
        HostKind::Dir
    } else if file_type.is_file() {
        HostKind::File
    } else if file_type.is_symlink() {
        let target = std::fs::read_link(host)?;
        let target = target
            .into_os_string()
            .into_string()
            .map_err(|_| anyhow!("{}: the symlink target is not valid UTF-8", host.display()))?;
        HostKind::Symlink { target }
    } else if file_type.is_char_device() {
        let (major, minor) = device();
        HostKind::CharDevice { major, minor }
    } else if file_type.is_block_device() {
        let (major, minor) = device();
        HostKind::BlockDevice { major, minor }
    } else if file_type.is_fifo() {
        HostKind::Fifo
    } else {
        HostKind::Socket
    };
    out.push(HostEntry {
        path: path.clone(),
        host_path: host.to_owned(),
        kind: kind.clone(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        inode: (meta.dev(), meta.ino(), meta.nlink()),
        size: meta.len(),
        mtime: meta.mtime(),
        ctime: (meta.ctime(), meta.ctime_nsec()),
    });
    if kind != HostKind::Dir {
        return Ok(());
    }
    let children =
        std::fs::read_dir(host).with_context(|| format!("cannot list {}", host.display()))?;
    for child in children {
        let child = child.with_context(|| format!("cannot list {}", host.display()))?;
        let name = child.file_name();
        let name = name
            .to_str()
            .ok_or_else(|| anyhow!("{}: a name in it is not valid UTF-8", host.display()))?;
        let child_path = path
            .join(name)
            .map_err(|e| anyhow!("{}: {e}", child.path().display()))?;
        if skip(&child_path) {
            continue;
        }
        let child_meta = std::fs::symlink_metadata(child.path())
            .with_context(|| format!("cannot read {}", child.path().display()))?;
        walk(&child.path(), child_path, &child_meta, skip, out)?;
    }
    Ok(())
}

/// Stores the content of every regular file in `found`, in parallel;
/// the result lines up with `found` (`None` for anything not a file).
pub fn store_host_files(
    found: &[HostEntry],
    store: &Store,
) -> Result<Vec<Option<(super::Digest, u64)>>> {
    found
        .par_iter()
        .map(|e| -> Result<_> {
            if e.kind != HostKind::File {
                return Ok(None);
            }
            let file = std::fs::File::open(&e.host_path)
                .with_context(|| format!("cannot read {}", e.host_path.display()))?;
            Ok(Some(store.put(file)?))
        })
        .collect()
}

/// Loads a host directory faithfully: owners, all mode bits, xattrs,
/// devices and hard links as they are on the host. File contents are
/// hashed in parallel into `store`. Sockets cannot live in an image and
/// are left out. Entries are placed by the [`Placement`] policy of an
/// archive (devices and fifos only below /dev, say), naming the directory.
pub fn load_dir(root: &Path, store: &Store, skip: &dyn Fn(&ImagePath) -> bool) -> Result<Tree> {
    load(root, store, skip, Contents::Copy, None)
}

/// [`load_dir`] for a directory about to be discarded: its files are
/// moved into `store` ([`Store::take`]), which costs no copy when both
/// are on one file system. `root` is left without its files.
pub fn load_dir_taking(
    root: &Path,
    store: &Store,
    skip: &dyn Fn(&ImagePath) -> bool,
) -> Result<Tree> {
    load(root, store, skip, Contents::Take, None)
}

/// Tells the digest and size of a file known unchanged since its content
/// was written (by its inode and change time).
pub type Unchanged<'a> = &'a (dyn Fn(&HostEntry) -> Option<(super::Digest, u64)> + Sync);

/// [`load_dir_taking`] of a directory written from contents the caller
/// knows: a file `unchanged` recognises is neither read nor taken, and
/// `store` does not get its content.
pub fn load_dir_taking_changed(
    root: &Path,
    store: &Store,
    skip: &dyn Fn(&ImagePath) -> bool,
    unchanged: Unchanged,
) -> Result<Tree> {
    load(root, store, skip, Contents::Take, Some(unchanged))
}

#[derive(Clone, Copy, PartialEq)]
enum Contents {
    Copy,
    Take,
}

fn load(
    root: &Path,
    store: &Store,
    skip: &dyn Fn(&ImagePath) -> bool,
    contents: Contents,
    unchanged: Option<Unchanged>,
) -> Result<Tree> {
    let found = walk_host_dir(root, skip)?;
    // The first name of each file with several: the others become hard
    // links to it, and their content is not read again.
    let mut first_name: HashMap<(u64, u64), ImagePath> = HashMap::new();
    let link_to: Vec<Option<ImagePath>> = found
        .iter()
        .map(|e| {
            let (dev, ino, nlink) = e.inode;
            if e.kind != HostKind::File || nlink < 2 {
                return None;
            }
            match first_name.get(&(dev, ino)) {
                Some(first) => Some(first.clone()),
                None => {
                    first_name.insert((dev, ino), e.path.clone());
                    None
                }
            }
        })
        .collect();
    // Extended attributes before contents: a taken file is gone.
    let xattrs = found
        .par_iter()
        .map(|e| read_xattrs(&e.host_path))
        .collect::<Result<Vec<_>>>()?;
    let stored = found
        .par_iter()
        .zip(&link_to)
        .map(|(e, link)| -> Result<_> {
            if e.kind != HostKind::File || link.is_some() {
                return Ok(None);
            }
            if let Some(known) = unchanged.and_then(|f| f(e)) {
                return Ok(Some(known));
            }
            Ok(Some(match contents {
                Contents::Copy => {
                    let file = std::fs::File::open(&e.host_path)
                        .with_context(|| format!("cannot read {}", e.host_path.display()))?;
                    store.put(file)?
                }
                Contents::Take => store.take(&e.host_path)?,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut tree = Tree::new();
    let mut placement = Placement::archive(format!("directory {}", root.display()));
    for (((e, content), link), xattrs) in found.into_iter().zip(stored).zip(link_to).zip(xattrs) {
        let meta = Meta {
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            xattrs,
        };
        let kind = match e.kind {
            HostKind::File => match link {
                Some(target) => Kind::HardLink { target },
                None => {
                    let (digest, size) = content.expect("files were hashed");
                    Kind::File { digest, size }
                }
            },
            HostKind::Dir => Kind::Dir,
            HostKind::Symlink { target } => Kind::Symlink { target },
            HostKind::CharDevice { major, minor } => Kind::CharDevice { major, minor },
            HostKind::BlockDevice { major, minor } => Kind::BlockDevice { major, minor },
            HostKind::Fifo => Kind::Fifo,
            HostKind::Socket => continue,
        };
        placement.place(&mut tree, &e.path, Entry { kind, meta })?;
    }
    Ok(tree)
}

/// A host source refused: following `link` (whose target is `target`)
/// would leave the recipe's folder.
#[derive(Debug)]
pub enum HostSourceError {
    LinkOutside {
        link: PathBuf,
        target: PathBuf,
        lands: PathBuf,
    },
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for HostSourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostSourceError::LinkOutside {
                link,
                target,
                lands,
            } => write!(
                f,
                "{} is a symlink to {}, which leads to {}, outside the recipe's folder; kiln does not follow host symlinks out of it",
                link.display(),
                target.display(),
                lands.display()
            ),
            HostSourceError::Io(path, e) => write!(f, "cannot read {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for HostSourceError {}

/// Finds the host file or directory `path` (a recipe's `[[file]]` or
/// `[[overlay]]` source, as the recipe loader joined it to `recipe_dir`)
/// without following a symlink out of the recipe's folder: the source and
/// every directory on the way to it may be symlinks only when what they
/// lead to lies inside `recipe_dir`. A `..` the recipe writes is no
/// symlink and is taken as written. Returns the path with every symlink
/// resolved, so that reading it follows none.
pub fn host_source(recipe_dir: &Path, path: &Path) -> Result<PathBuf, HostSourceError> {
    use std::path::Component;
    let io = |p: &Path| {
        let p = p.to_owned();
        move |e| HostSourceError::Io(p, e)
    };
    let dir = if recipe_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        recipe_dir
    };
    let base = std::fs::canonicalize(dir).map_err(io(dir))?;
    // The recipe's folder itself may be reached through symlinks: walk
    // from it when the source lies below it as written.
    let (mut current, rest) = match path.strip_prefix(recipe_dir) {
        Ok(rest) if !rest.is_absolute() => (base.clone(), rest),
        _ if path.is_absolute() => (PathBuf::from("/"), path),
        _ => (
            std::fs::canonicalize(".").map_err(io(Path::new(".")))?,
            path,
        ),
    };
    for component in rest.components() {
        match component {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            // `current` has no symlinks, so its parent is the real `..`
            Component::ParentDir => {
                current.pop();
            }
            Component::Normal(name) => {
                let next = current.join(name);
                let meta = std::fs::symlink_metadata(&next).map_err(io(&next))?;
                if !meta.file_type().is_symlink() {
                    current = next;
                    continue;
                }
                let target = std::fs::read_link(&next).map_err(io(&next))?;
                let lands = std::fs::canonicalize(&next).map_err(io(&next))?;
                if !lands.starts_with(&base) {
                    return Err(HostSourceError::LinkOutside {
                        link: next,
                        target,
                        lands,
                    });
                }
                current = lands;
            }
        }
    }
    Ok(current)
}

/// Extended attributes of `path` (not following symlinks). A filesystem
/// without xattr support simply has none.
pub fn read_xattrs(path: &Path) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot list xattrs of {}", path.display()));
        }
    };
    for name in names {
        let Some(name_str) = name.to_str() else {
            continue;
        };
        if let Some(value) = xattr::get(path, &name)? {
            out.insert(name_str.to_owned(), value);
        }
    }
    Ok(out)
}
