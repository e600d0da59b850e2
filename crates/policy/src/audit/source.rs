//! What `kiln audit PATH` reads: an image archive (tar, gzip or zstd),
//! a directory, or `/` — a live node, read-only.
//!
//! Archives are loaded into a content store in a temporary directory
//! (they are untrusted input, read through the same loader as builds).
//! Directories are walked without hashing anything: the tree gets owners,
//! modes and kinds from `lstat`, and a rule that needs a file reads it
//! from the host path then, so only the few configuration files the rules
//! look at are ever opened. For `/`, the kernel and run-time file systems
//! (/proc, /sys, /dev, /run) and container state (/var/lib/containerd,
//! K3s's containerd root, /var/lib/kubelet/pods, /var/lib/docker) are
//! skipped: they are not the node's image.

use super::{AuditConfig, Report, audit_image};
use crate::image::{Contents, Image};
use anyhow::{Context, Result};
use kiln_tree::{
    Digest, Entry, HostKind, ImagePath, Kind, Meta, Store, Tree, load_tar, open_decompressed,
    walk_host_dir,
};
use std::path::{Path, PathBuf};

/// Paths a live audit never walks.
pub const LIVE_SKIP: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/lib/containerd",
    "/var/lib/rancher/k3s/agent/containerd",
    "/var/lib/kubelet/pods",
    "/var/lib/docker",
];

/// An image ready to audit.
pub struct LoadedImage {
    pub tree: Tree,
    contents: Loaded,
    /// Shown in reports.
    pub target: String,
    /// True for the live root `/`.
    pub live: bool,
}

enum Loaded {
    Store {
        store: Store,
        _dir: tempfile::TempDir,
    },
    Host(PathBuf),
}

impl LoadedImage {
    pub fn image(&self) -> Image<'_> {
        let contents = match &self.contents {
            Loaded::Store { store, .. } => Contents::Store(store),
            Loaded::Host(root) => Contents::Host(root),
        };
        Image::new(&self.tree, contents)
    }

    pub fn audit(&self, config: &AuditConfig) -> Report {
        let mut config = config.clone();
        if self.live {
            config.mode = super::Mode::Live;
        }
        audit_image(self.image(), &self.target, &config)
    }
}

/// Loads an archive or a directory for auditing.
pub fn load(path: &Path) -> Result<LoadedImage> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let target = path.display().to_string();
    if meta.is_dir() {
        let canonical = std::fs::canonicalize(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        let live = canonical == Path::new("/");
        return load_directory(path, live);
    }
    let dir = tempfile::Builder::new()
        .prefix("kiln-audit-")
        .tempdir()
        .context("cannot create a temporary directory for the archive's contents")?;
    let store = Store::open(dir.path())?;
    let reader = open_decompressed(path)?;
    let tree = load_tar(reader, &target, &store)?;
    Ok(LoadedImage {
        tree,
        contents: Loaded::Store { store, _dir: dir },
        target,
        live: false,
    })
}

/// Loads a directory; `live` audits it as a running node's root (what
/// `load` does for `/`): run-time and container state are skipped and the
/// image-only rules do not apply.
pub fn load_directory(root: &Path, live: bool) -> Result<LoadedImage> {
    let canonical = std::fs::canonicalize(root)
        .with_context(|| format!("cannot resolve {}", root.display()))?;
    let tree = load_host_tree(&canonical, live)?;
    Ok(LoadedImage {
        tree,
        contents: Loaded::Host(canonical),
        target: root.display().to_string(),
        live,
    })
}

/// Loads and audits `path` in one go.
pub fn audit_path(path: &Path, config: &AuditConfig) -> Result<Report> {
    Ok(load(path)?.audit(config))
}

/// Walks a host directory into a tree without reading any file: contents
/// are read later, from the host, by the rules that need them. File
/// digests are left zero (no rule uses them); xattrs are not read.
pub fn load_host_tree(root: &Path, live: bool) -> Result<Tree> {
    let skip = |p: &ImagePath| live && LIVE_SKIP.contains(&p.as_str());
    let found = walk_host_dir(root, &skip)?;
    let mut tree = Tree::new();
    for e in found {
        let kind = match e.kind {
            HostKind::File => Kind::File {
                digest: Digest([0; 32]),
                size: e.size,
            },
            HostKind::Dir => Kind::Dir,
            HostKind::Symlink { target } => Kind::Symlink { target },
            HostKind::CharDevice { major, minor } => Kind::CharDevice { major, minor },
            HostKind::BlockDevice { major, minor } => Kind::BlockDevice { major, minor },
            HostKind::Fifo => Kind::Fifo,
            HostKind::Socket => continue,
        };
        let meta = Meta {
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            xattrs: Default::default(),
        };
        tree.insert(e.path, Entry { kind, meta })
            .with_context(|| format!("cannot load {}", e.host_path.display()))?;
    }
    Ok(tree)
}
