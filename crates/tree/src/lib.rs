//! The image tree: every path of the image, with exact owners and modes,
//! held in memory as a sorted map. File contents live in a [`Store`].
//!
//! Why a Tree and not a directory on the build host: exact owners and modes
//! without root, setuid bits and devices kept, deterministic order, no host
//! leakage, and no path of the image can escape onto the host.

mod atomic;
mod from_dir;
mod from_tar;
mod path;
mod placement;
mod store;
mod to_dir;

pub mod pack;

pub use atomic::{PUBLIC_FILE, write_atomic};
pub use from_dir::{
    HostEntry, HostKind, HostSourceError, Unchanged, host_source, load_dir, load_dir_taking,
    load_dir_taking_changed, read_xattrs, store_host_files, walk_host_dir,
};
pub use from_tar::{
    Compression, KnownContents, Member, decompress, detect_compression, load_tar,
    load_tar_given_digests, load_tar_into, load_tar_referring, member_path, open_decompressed,
    place_member, read_members,
};
pub use path::{ImagePath, MAX_LINK_TARGET, MAX_NAME, MAX_PATH, PathError, abbreviate};
pub use placement::{PlaceError, Placed, Placement};
pub use store::{Blob, Digest, HashingReader, HashingWriter, Store, copy, hash_reader};
pub use to_dir::{host_path, write_dir, write_dir_taking};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File {
        digest: Digest,
        size: u64,
    },
    Dir,
    /// The target is kept verbatim, as the kernel would read it.
    Symlink {
        target: String,
    },
    /// Another name of a regular file. Invariant: `target` is a `File`
    /// whose path sorts before this one, so archives list it first.
    HardLink {
        target: ImagePath,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

impl Kind {
    /// The word the manifest and messages use.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::File { .. } => "file",
            Kind::Dir => "dir",
            Kind::Symlink { .. } => "symlink",
            Kind::HardLink { .. } => "hardlink",
            Kind::CharDevice { .. } => "char",
            Kind::BlockDevice { .. } => "block",
            Kind::Fifo => "fifo",
        }
    }
}

/// Ownership, permissions and extended attributes. Modification times are
/// not kept: every archive member gets SOURCE_DATE_EPOCH.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    /// All 12 permission bits, setuid/setgid/sticky included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Extended attributes such as `security.capability`, by full name.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Meta {
    /// root:root with `mode`.
    pub fn root(mode: u32) -> Meta {
        Meta {
            mode,
            ..Meta::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub meta: Meta,
}

impl Entry {
    /// A regular file holding `bytes`, which go into `store`.
    pub fn file(store: &Store, bytes: &[u8], meta: Meta) -> anyhow::Result<Entry> {
        Ok(Entry {
            kind: Kind::File {
                digest: store.put_bytes(bytes)?,
                size: bytes.len() as u64,
            },
            meta,
        })
    }

    pub fn dir(meta: Meta) -> Entry {
        Entry {
            kind: Kind::Dir,
            meta,
        }
    }
}

/// Why a tree operation was refused. Each names the path concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeError {
    /// A component on the way to `path` is not a directory (a file, or a
    /// symlink where following is not allowed).
    NotADirectory {
        path: ImagePath,
        blocker: ImagePath,
        kind: &'static str,
    },
    HardLink {
        path: ImagePath,
        target: ImagePath,
        reason: &'static str,
    },
    SymlinkLoop {
        path: ImagePath,
    },
    RootIsADirectory,
    /// Resolving `path` through symlinks gives a path no image can hold.
    Bounds {
        path: ImagePath,
        error: PathError,
    },
    /// A symlink target that is empty, holds NUL or is longer than
    /// [`path::MAX_LINK_TARGET`].
    LinkTarget {
        path: ImagePath,
        reason: String,
    },
}

impl TreeError {
    /// The path the error is about.
    pub fn path(&self) -> ImagePath {
        match self {
            TreeError::NotADirectory { path, .. }
            | TreeError::HardLink { path, .. }
            | TreeError::SymlinkLoop { path }
            | TreeError::Bounds { path, .. }
            | TreeError::LinkTarget { path, .. } => path.clone(),
            TreeError::RootIsADirectory => ImagePath::root(),
        }
    }

    /// What is wrong, without the path (for messages that name it first).
    pub fn reason(&self) -> String {
        match self {
            TreeError::NotADirectory { blocker, kind, .. } if *kind == "symlink" => {
                format!("{blocker} is a symlink; writing through it could leave the image")
            }
            TreeError::NotADirectory { blocker, kind, .. } => {
                format!("{blocker} is a {kind}, not a directory")
            }
            TreeError::HardLink { target, reason, .. } => {
                format!("hard link to {target}: {reason}")
            }
            TreeError::SymlinkLoop { .. } => "too many levels of symbolic links".to_owned(),
            TreeError::RootIsADirectory => "the image root must stay a directory".to_owned(),
            TreeError::Bounds { error, .. } => format!("resolved through symlinks: {error}"),
            TreeError::LinkTarget { reason, .. } => reason.clone(),
        }
    }
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeError::HardLink {
                path,
                target,
                reason,
            } => {
                write!(f, "hard link {path} -> {target}: {reason}")
            }
            TreeError::RootIsADirectory => f.write_str("the image root must stay a directory"),
            other => write!(
                f,
                "{}: {}",
                abbreviate(other.path().as_str()),
                other.reason()
            ),
        }
    }
}

impl std::error::Error for TreeError {}

/// The image: a sorted map from paths to entries. The root always exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<ImagePath, Entry>,
    /// Each hard-linked file's other names, to keep the link invariant
    /// cheap to maintain when files are removed or replaced.
    links: BTreeMap<ImagePath, BTreeSet<ImagePath>>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

/// The maximum number of symlinks followed in one lookup, as Linux does.
const MAX_SYMLINK_HOPS: usize = 40;

/// Every symlink's mode: lstat(2) reports 0777 and tar writes it.
pub const SYMLINK_MODE: u32 = 0o777;

fn check_link_target(path: &ImagePath, target: &str) -> Result<(), TreeError> {
    let reason = if target.is_empty() {
        "the symlink target is empty".to_owned()
    } else if target.contains('\0') {
        "the symlink target contains NUL".to_owned()
    } else if target.len() > MAX_LINK_TARGET {
        format!(
            "the symlink target \"{}\" is {} bytes long; targets are at most {MAX_LINK_TARGET} bytes",
            abbreviate(target),
            target.len()
        )
    } else {
        return Ok(());
    };
    Err(TreeError::LinkTarget {
        path: path.clone(),
        reason,
    })
}

/// A symlink followed while resolving a path: where it is, and its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Followed {
    pub link: ImagePath,
    pub target: String,
}

impl Tree {
    /// An empty image: just `/`, root-owned, 0755.
    pub fn new() -> Tree {
        let mut entries = BTreeMap::new();
        entries.insert(ImagePath::root(), Entry::dir(Meta::root(0o755)));
        Tree {
            entries,
            links: BTreeMap::new(),
        }
    }

    pub fn get(&self, path: &ImagePath) -> Option<&Entry> {
        self.entries.get(path)
    }

    pub fn contains(&self, path: &ImagePath) -> bool {
        self.entries.contains_key(path)
    }

    /// Every entry, in archive order (sorted by path bytes).
    pub fn iter(&self) -> impl Iterator<Item = (&ImagePath, &Entry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.len() == 1
    }

    /// Adds `entry` at `path` without following symlinks. Missing parent
    /// directories are created root-owned 0755 (as tar does); a parent that
    /// exists but is not a directory is an error — this is what stops an
    /// archive from writing through a symlink it planted earlier. An
    /// existing entry is replaced; an existing directory meeting a new
    /// directory only takes the new metadata. A symlink's mode is always
    /// 0777, as the kernel reports it, whatever the input said.
    pub fn insert(&mut self, path: ImagePath, mut entry: Entry) -> Result<(), TreeError> {
        if let Kind::HardLink { target } = &entry.kind {
            let target = target.clone();
            return self.insert_hard_link(path, target);
        }
        if let Kind::Symlink { target } = &entry.kind {
            check_link_target(&path, target)?;
            entry.meta.mode = SYMLINK_MODE;
        }
        if path.is_root() {
            if entry.kind != Kind::Dir {
                return Err(TreeError::RootIsADirectory);
            }
            self.entries.insert(path, entry);
            return Ok(());
        }
        self.ensure_parent_dirs(&path)?;
        match self.entries.get_mut(&path) {
            Some(existing) if existing.kind == Kind::Dir && entry.kind == Kind::Dir => {
                existing.meta = entry.meta;
                return Ok(());
            }
            Some(_) => self.remove(&path)?,
            None => {}
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    fn ensure_parent_dirs(&mut self, path: &ImagePath) -> Result<(), TreeError> {
        let mut missing = Vec::new();
        let mut dir = path.parent();
        loop {
            match self.entries.get(&dir) {
                Some(Entry {
                    kind: Kind::Dir, ..
                }) => break,
                Some(other) => {
                    return Err(TreeError::NotADirectory {
                        path: path.clone(),
                        blocker: dir,
                        kind: other.kind.name(),
                    });
                }
                None => {
                    let up = dir.parent();
                    missing.push(dir);
                    dir = up;
                }
            }
        }
        for dir in missing {
            self.entries.insert(dir, Entry::dir(Meta::root(0o755)));
        }
        Ok(())
    }

    /// Makes `path` another name of the regular file `target`, keeping the
    /// invariant that the first name in sort order holds the content.
    pub fn insert_hard_link(
        &mut self,
        path: ImagePath,
        target: ImagePath,
    ) -> Result<(), TreeError> {
        let fail = |reason| TreeError::HardLink {
            path: path.clone(),
            target: target.clone(),
            reason,
        };
        let primary = match self.entries.get(&target).map(|e| &e.kind) {
            None => {
                return Err(fail(
                    "the target does not exist (it must come earlier in the archive)",
                ));
            }
            Some(Kind::File { .. }) => target.clone(),
            Some(Kind::HardLink { target: primary }) => primary.clone(),
            Some(_) => return Err(fail("only regular files can be hard-linked")),
        };
        if path == primary || self.links.get(&primary).is_some_and(|l| l.contains(&path)) {
            return Ok(());
        }
        if path.is_root() {
            return Err(TreeError::RootIsADirectory);
        }
        self.ensure_parent_dirs(&path)?;
        if target.is_below(&path) || primary.is_below(&path) {
            // Replacing the directory would delete the content being linked.
            return Err(fail(
                "the link would replace the directory that holds its own target",
            ));
        }
        if self.entries.contains_key(&path) {
            self.remove(&path)?;
        }
        let file = self.entries[&primary].clone();
        if path > primary {
            let link = Entry {
                kind: Kind::HardLink {
                    target: primary.clone(),
                },
                meta: file.meta,
            };
            self.entries.insert(path.clone(), link);
            self.links.entry(primary).or_default().insert(path);
        } else {
            // The new name sorts first: it takes the content, and every
            // other name (the old holder included) points at it.
            let mut names = self.links.remove(&primary).unwrap_or_default();
            names.insert(primary);
            self.entries.insert(path.clone(), file.clone());
            for name in &names {
                let link = Entry {
                    kind: Kind::HardLink {
                        target: path.clone(),
                    },
                    meta: file.meta.clone(),
                };
                self.entries.insert(name.clone(), link);
            }
            self.links.insert(path, names);
        }
        Ok(())
    }

    /// The other names of a hard-linked file (empty when it has none).
    pub fn hard_links_of(&self, primary: &ImagePath) -> impl Iterator<Item = &ImagePath> {
        self.links.get(primary).into_iter().flatten()
    }

    /// Removes `path` and, for a directory, everything below it. A removed
    /// file whose other hard-link names survive hands its content to the
    /// first of them. Removing a missing path does nothing.
    pub fn remove(&mut self, path: &ImagePath) -> Result<(), TreeError> {
        if path.is_root() {
            return Err(TreeError::RootIsADirectory);
        }
        if !self.entries.contains_key(path) {
            return Ok(());
        }
        let mut doomed: Vec<ImagePath> = vec![path.clone()];
        doomed.extend(self.descendants(path).map(|(p, _)| p.clone()));
        let doomed_set: BTreeSet<&ImagePath> = doomed.iter().collect();
        let mut orphaned_links = Vec::new();
        for p in &doomed {
            match &self.entries[p].kind {
                Kind::HardLink { target } => {
                    if let Some(names) = self.links.get_mut(target) {
                        names.remove(p);
                    }
                }
                Kind::File { .. } => {
                    if let Some(names) = self.links.remove(p) {
                        let survivors: BTreeSet<ImagePath> = names
                            .into_iter()
                            .filter(|n| !doomed_set.contains(n))
                            .collect();
                        if !survivors.is_empty() {
                            orphaned_links.push((p.clone(), survivors));
                        }
                    }
                }
                _ => {}
            }
        }
        for (old_primary, survivors) in orphaned_links {
            let file = self.entries[&old_primary].clone();
            let mut survivors = survivors.into_iter();
            let new_primary = survivors.next().expect("survivors is not empty");
            self.entries.insert(new_primary.clone(), file.clone());
            let rest: BTreeSet<ImagePath> = survivors.collect();
            for name in &rest {
                let link = Entry {
                    kind: Kind::HardLink {
                        target: new_primary.clone(),
                    },
                    meta: file.meta.clone(),
                };
                self.entries.insert(name.clone(), link);
            }
            if !rest.is_empty() {
                self.links.insert(new_primary, rest);
            }
        }
        self.links.retain(|_, names| !names.is_empty());
        for p in doomed {
            self.entries.remove(&p);
        }
        Ok(())
    }

    /// Everything strictly below `dir`, in order. Children of `/a` sort in
    /// `["/a/", "/a0")` (`0` follows `/` in ASCII), which excludes `/a-b`.
    pub fn descendants<'a>(
        &'a self,
        dir: &ImagePath,
    ) -> impl Iterator<Item = (&'a ImagePath, &'a Entry)> + 'a {
        use std::ops::Bound::Excluded;
        let (lo, hi) = if dir.is_root() {
            (dir.clone(), ImagePath::from_raw("0".to_owned()))
        } else {
            (
                ImagePath::from_raw(format!("{dir}/")),
                ImagePath::from_raw(format!("{dir}0")),
            )
        };
        let range = (Excluded(lo), Excluded(hi));
        self.entries.range(range)
    }

    /// Sets mode, owner and xattrs of `path`, and of every other name of
    /// the same file, since hard links share one inode.
    pub fn set_meta(&mut self, path: &ImagePath, meta: Meta) {
        let primary = match self.entries.get(path).map(|e| &e.kind) {
            None => return,
            Some(Kind::HardLink { target }) => target.clone(),
            Some(_) => path.clone(),
        };
        let mut names: Vec<ImagePath> = self.hard_links_of(&primary).cloned().collect();
        names.push(primary);
        for name in names {
            if let Some(entry) = self.entries.get_mut(&name) {
                entry.meta = meta.clone();
                if let Kind::Symlink { .. } = entry.kind {
                    entry.meta.mode = SYMLINK_MODE;
                }
            }
        }
    }

    /// Resolves symlinks in `path` the way the kernel would inside a
    /// chroot of the image: absolute targets start at the image root and
    /// `..` stops there, so the result always lies inside the image. The
    /// last component is followed only when `follow_last` is set. Missing
    /// components are fine: the result may name a path yet to be created.
    pub fn resolve(&self, path: &ImagePath, follow_last: bool) -> Result<ImagePath, TreeError> {
        Ok(self.resolve_traced(path, follow_last)?.0)
    }

    /// [`Tree::resolve`], also returning every symlink followed on the way,
    /// in order, so that a placement policy can judge them.
    pub fn resolve_traced(
        &self,
        path: &ImagePath,
        follow_last: bool,
    ) -> Result<(ImagePath, Vec<Followed>), TreeError> {
        let mut followed = Vec::new();
        let mut resolved: Vec<String> = Vec::new();
        let mut pending: std::collections::VecDeque<String> =
            path.components().map(str::to_owned).collect();
        let mut hops = 0;
        while let Some(component) = pending.pop_front() {
            match component.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => resolved.push(component),
            }
            let is_last = pending.is_empty();
            if is_last && !follow_last {
                break;
            }
            let current = ImagePath::from_raw(format!("/{}", resolved.join("/")));
            match self.entries.get(&current).map(|e| &e.kind) {
                Some(Kind::Symlink { target }) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(TreeError::SymlinkLoop { path: path.clone() });
                    }
                    followed.push(Followed {
                        link: current,
                        target: target.clone(),
                    });
                    resolved.pop();
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    for c in target.split('/').rev() {
                        pending.push_front(c.to_owned());
                    }
                }
                None | Some(Kind::Dir) => {}
                Some(other) if !is_last => {
                    return Err(TreeError::NotADirectory {
                        path: path.clone(),
                        blocker: current,
                        kind: other.name(),
                    });
                }
                Some(_) => {}
            }
        }
        let resolved =
            ImagePath::from_normal(format!("/{}", resolved.join("/"))).map_err(|error| {
                TreeError::Bounds {
                    path: path.clone(),
                    error,
                }
            })?;
        Ok((resolved, followed))
    }

    /// Creates `dir` and its missing parents with `meta`, resolving
    /// symlinks on the way (chroot semantics). Returns the resolved path.
    pub fn create_dir_all(&mut self, dir: &ImagePath, meta: &Meta) -> Result<ImagePath, TreeError> {
        let resolved = self.resolve(dir, true)?;
        let mut prefix = String::new();
        for component in resolved.components() {
            prefix.push('/');
            prefix.push_str(component);
            let current = ImagePath::from_raw(prefix.clone());
            match self.entries.get(&current).map(|e| &e.kind) {
                Some(Kind::Dir) => {}
                None => {
                    self.entries.insert(current, Entry::dir(meta.clone()));
                }
                Some(other) => {
                    return Err(TreeError::NotADirectory {
                        path: dir.clone(),
                        blocker: current,
                        kind: other.name(),
                    });
                }
            }
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests;
