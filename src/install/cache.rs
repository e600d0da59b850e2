//! The installed-tree cache: the result of the install stage, keyed by
//! everything it depends on.
//!
//! Installing is a pure function of its inputs (the builds are
//! reproducible: that is what the tests prove), so a second build of the
//! same lock need not run a single maintainer script. The key covers the
//! kiln binary itself, the base tree, the architecture, the merged-/usr
//! choice, SOURCE_DATE_EPOCH and every package's sha256; the value is the
//! installed tree as a deterministic plain tar, stored by its sha256 in
//! the download cache (and re-hashed on every use, like every blob there).
//!
//! Packages in the cache are checked against the lock's pins; an installed
//! tree can only be checked against the index that names it. So the index
//! is trusted only when this user owns it and nobody else can write it
//! (as ccache trusts its directory); `--no-install-cache` trusts nothing.

use anyhow::{Context, Result, bail};
use kiln_debian::fetch::{Cache, Durability, index_dir, is_private};
use kiln_debian::lock::LockedPackage;
use kiln_tree::write_atomic;
use kiln_tree::{Digest, Store, Tree, hash_reader, load_tar};
use sha2::{Digest as _, Sha256};
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Bump when the install stage changes what it produces.
const FORMAT: &str = "kiln-installed-tree-2";

pub struct InstallCache {
    blobs: Cache,
    index: PathBuf,
}

/// The inputs an installed tree depends on.
pub struct Inputs<'a> {
    pub packages: &'a [LockedPackage],
    pub arch: &'a str,
    pub merged_usr: bool,
    pub epoch: u64,
    /// The `[base]` tarball the packages are installed onto, if any.
    pub base: Option<Digest>,
}

impl InstallCache {
    pub fn open(cache_dir: &Path) -> Result<InstallCache> {
        Ok(InstallCache {
            blobs: Cache::open(cache_dir)?,
            index: index_dir(cache_dir, "installed")?,
        })
    }

    /// The cache key of `inputs`, as hex.
    pub fn key(inputs: &Inputs) -> Result<String> {
        let mut h = Sha256::new();
        h.update(format!("{FORMAT}\n{}\n", env!("CARGO_PKG_VERSION")));
        h.update(format!("binary {}\n", this_binary()?.hex()));
        // kiln-node goes into the initrd that the kernel's postinst builds.
        h.update(format!("node-program {}\n", node_program(inputs.arch)));
        h.update(format!(
            "arch {}\nmerged-usr {}\nepoch {}\nbase {}\n",
            inputs.arch,
            inputs.merged_usr,
            inputs.epoch,
            inputs.base.map(|d| d.hex()).unwrap_or_default()
        ));
        for p in inputs.packages {
            h.update(format!(
                "{} {} {} {}\n",
                p.name, p.version, p.arch, p.sha256
            ));
        }
        Ok(hex::encode(h.finalize()))
    }

    /// The cached tree for `key`, loaded into `store`; `None` when there
    /// is none or it is no longer intact.
    pub fn load(&self, key: &str, store: &Store) -> Result<Option<Tree>> {
        let entry = self.index.join(key);
        if !entry.exists() {
            return Ok(None);
        }
        if !is_private(&self.index) || !is_private(&entry) {
            bail!(
                "the install cache {} is writable by another user, so an installed tree in it cannot be trusted; \
                 make it yours alone (chmod go-w, chown) or build with --no-install-cache",
                self.index.display()
            );
        }
        let Ok(text) = std::fs::read_to_string(&entry) else {
            return Ok(None);
        };
        let Ok(digest) = text.trim().parse::<Digest>() else {
            return Ok(None);
        };
        let Some(path) = self.blobs.get(&digest)? else {
            return Ok(None);
        };
        let file = std::fs::File::open(&path)?;
        let tree = load_tar(
            BufReader::with_capacity(1 << 20, file),
            &format!("cached install {}", &key[..16]),
            store,
        )?;
        Ok(Some(tree))
    }

    /// Stores `tree` under `key`, packed straight into the cache.
    pub fn save(&self, key: &str, tree: &Tree, store: &Store) -> Result<()> {
        // Not synced: a torn copy fails its hash on the next use and is
        // installed again, and a sync of a few hundred MiB is the build's
        // slowest write.
        let mut blob = self.blobs.new_blob(Durability::Cached)?;
        kiln_tree::pack::write_tar(tree, store, 0, &mut blob, &|_| {})?;
        let digest = blob.persist()?;
        write_atomic(&self.index.join(key), digest.hex().as_bytes(), 0o644)
    }
}

impl InstallCache {
    /// The blob holding the installed tree of `key`, if the index names
    /// one that is in the cache intact.
    pub fn entry(&self, key: &str) -> Result<Option<(Digest, PathBuf)>> {
        let Ok(text) = std::fs::read_to_string(self.index.join(key)) else {
            return Ok(None);
        };
        let Ok(digest) = text.trim().parse::<Digest>() else {
            return Ok(None);
        };
        Ok(self.blobs.get(&digest)?.map(|path| (digest, path)))
    }

    /// Records that the blob `digest`, already in the cache, is the
    /// installed tree of `key` (an entry from a shared registry cache).
    pub fn adopt(&self, key: &str, digest: &Digest) -> Result<()> {
        write_atomic(&self.index.join(key), digest.hex().as_bytes(), 0o644)
    }

    pub fn blobs(&self) -> &Cache {
        &self.blobs
    }
}

/// The digest of the kiln-node program that images of `arch` get, or "none".
fn node_program(arch: &str) -> String {
    static DIGESTS: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut digests = DIGESTS.lock().unwrap_or_else(|e| e.into_inner());
    digests
        .entry(arch.to_owned())
        .or_insert_with(|| {
            crate::boot::layout::node_program(arch)
                .ok()
                .and_then(|path| std::fs::File::open(path).ok())
                .and_then(|file| hash_reader(BufReader::with_capacity(1 << 20, file)).ok())
                .map_or_else(|| "none".to_owned(), |(d, _)| d.hex())
        })
        .clone()
}

/// The digest of the running binary: a kiln built from other code installs
/// differently, even under the same version number.
pub(crate) fn this_binary() -> Result<Digest> {
    static DIGEST: std::sync::OnceLock<Option<Digest>> = std::sync::OnceLock::new();
    let digest = DIGEST.get_or_init(|| {
        let exe = std::env::current_exe().ok()?;
        let file = std::fs::File::open(exe).ok()?;
        hash_reader(BufReader::with_capacity(1 << 20, file))
            .ok()
            .map(|(d, _)| d)
    });
    digest.context("cannot read the kiln binary to key the install cache")
}
