//! Packages' data archives, decompressed, kept for the next build.
//!
//! Decompressing is most of unpacking (xz: about 150 MiB/s on one core),
//! and a patch rebuild after `kiln lock --update` installs mostly the same
//! packages as the build before it. So the plain `data.tar` of each
//! package is kept in the download cache (by its own sha256, hashed again
//! as it is read back), and `CACHE/unpacked/DEB_SHA256` names it. A package
//! the cache has is read from there: the same bytes, without the
//! decompression; only the packages that changed are decompressed.
//!
//! Trust is the install cache's: a .deb is checked against the lock's pin,
//! but which plain archive belongs to it only the index entry says, so the
//! index is used only when the building user owns it and nobody else can
//! write to it.

use crate::fetch::{Cache, Durability, NewBlob, index_dir, is_private};
use anyhow::{Result, bail};
use kiln_tree::{Digest, write_atomic};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct UnpackCache {
    blobs: Cache,
    index: PathBuf,
    /// Why a data archive could not be kept, the first time it happened.
    unsaved: Mutex<Option<String>>,
    /// How many packages were read from here.
    hits: AtomicUsize,
}

impl UnpackCache {
    pub fn open(cache_dir: &Path) -> Result<UnpackCache> {
        Ok(UnpackCache {
            blobs: Cache::open(cache_dir)?,
            index: index_dir(cache_dir, "unpacked")?,
            unsaved: Mutex::new(None),
            hits: AtomicUsize::new(0),
        })
    }

    /// The plain data archive of the .deb with sha256 `deb`, by its digest
    /// and where it is (not yet re-hashed: its reader does that).
    pub(crate) fn lookup(&self, deb: &Digest) -> Result<Option<(Digest, PathBuf)>> {
        let entry = self.index.join(deb.hex());
        let Ok(text) = std::fs::read_to_string(&entry) else {
            return Ok(None);
        };
        if !is_private(&self.index) || !is_private(&entry) {
            bail!(
                "the unpack cache {} is writable by another user, so the packages' contents in it \
                 cannot be trusted; make it yours alone (chmod go-w, chown) or build with \
                 --no-install-cache",
                self.index.display()
            );
        }
        let Ok(data) = text.trim().parse::<Digest>() else {
            return Ok(None);
        };
        Ok(self.blobs.locate(&data).map(|path| (data, path)))
    }

    /// A new blob for a data archive being decompressed. A copy the next
    /// build can make again need not be synced.
    pub(crate) fn new_blob(&self) -> Result<NewBlob<'_>> {
        self.blobs.new_blob(Durability::Cached)
    }

    /// Names `blob` the data archive of the .deb `deb`.
    pub(crate) fn keep(&self, deb: &Digest, blob: NewBlob) -> Result<()> {
        let data = blob.persist()?;
        write_atomic(&self.index.join(deb.hex()), data.hex().as_bytes(), 0o644)
    }

    /// Counts a package read from here.
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// How many packages were read from here.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Forgets a data archive that did not read back as it was kept.
    pub(crate) fn forget(&self, deb: &Digest, data: &Digest) {
        let _ = std::fs::remove_file(self.index.join(deb.hex()));
        self.blobs.remove(data);
    }

    /// Notes why a data archive was not kept; the build goes on, slower
    /// next time.
    pub(crate) fn note_unsaved(&self, error: &anyhow::Error) {
        let mut unsaved = self.unsaved.lock().unwrap_or_else(|e| e.into_inner());
        unsaved.get_or_insert_with(|| format!("{error:#}"));
    }

    /// Why some data archive of this build was not kept, if one was not.
    pub fn unsaved(&self) -> Option<String> {
        self.unsaved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
