//! Content-addressed storage for file contents, keyed by sha256.
//!
//! The Tree holds only digests; the bytes live here, on disk, so an image of
//! hundreds of megabytes does not sit in memory.

use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A sha256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl FromStr for Digest {
    type Err = String;

    fn from_str(s: &str) -> Result<Digest, String> {
        let mut out = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(format!(
                "\"{s}\" is not a sha256 digest: expected 64 hexadecimal digits"
            ));
        }
        Ok(Digest(out))
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest(self.hasher.finalize().into()), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams `reader` through sha256; returns the digest and length.
pub fn hash_reader(reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut sink = HashingWriter::new(io::sink());
    copy(reader, &mut sink)?;
    let (_, digest, len) = sink.finish();
    Ok((digest, len))
}

/// `io::copy` with a buffer large enough to keep syscalls off the profile.
pub fn copy(mut reader: impl Read, writer: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Contents up to this size are hashed in memory before the store decides
/// whether to write them.
const IN_MEMORY: usize = 4 << 20;

/// Where file contents go. `Discard` only hashes: enough for `inspect`,
/// which needs digests but never the bytes.
pub struct Store {
    dir: Option<PathBuf>,
}

impl Store {
    /// A store in `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create content store {}", dir.display()))?;
        Ok(Store {
            dir: Some(dir.to_owned()),
        })
    }

    /// A store that hashes contents and keeps nothing.
    pub fn discard() -> Store {
        Store { dir: None }
    }

    fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        dir.join(&hex[..2]).join(&hex)
    }

    /// Streams `reader` into the store; returns its digest and size.
    /// Content is written to a temporary file and renamed into place, so a
    /// blob under its digest name is always complete.
    pub fn put(&self, reader: impl Read) -> Result<(Digest, u64)> {
        let Some(dir) = &self.dir else {
            return Ok(hash_reader(reader)?);
        };
        // Most contents are small and many are stored already (a package
        // unpacked again, an image handed back after its scripts ran):
        // those are hashed in memory and never written.
        let mut reader = reader;
        let mut head = Vec::new();
        (&mut reader)
            .take(IN_MEMORY as u64 + 1)
            .read_to_end(&mut head)?;
        if head.len() <= IN_MEMORY {
            let digest = Digest::of(&head);
            let dest = Self::blob_path(dir, &digest);
            if !dest.exists() {
                Self::persist(dir, &dest, &head)?;
            }
            return Ok((digest, head.len() as u64));
        }
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write to content store {}", dir.display()))?;
        let mut writer = HashingWriter::new(io::BufWriter::new(tmp));
        writer.write_all(&head)?;
        drop(head);
        copy(reader, &mut writer)?;
        let (buffered, digest, len) = writer.finish();
        let tmp = buffered.into_inner().map_err(|e| e.into_error())?;
        let dest = Self::blob_path(dir, &digest);
        if !dest.exists() {
            let shard = dest.parent().expect("blob paths have a shard directory");
            std::fs::create_dir_all(shard)?;
            tmp.persist(&dest)
                .with_context(|| format!("cannot store blob {}", dest.display()))?;
        }
        Ok((digest, len))
    }

    /// Writes `bytes` as the blob `dest`, whole or not at all. The
    /// temporary file is made in the blob's shard directory: parallel
    /// writers then rarely wait for one directory's lock.
    fn persist(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
        let shard = dest.parent().expect("blob paths have a shard directory");
        std::fs::create_dir_all(shard)?;
        let mut tmp = tempfile::NamedTempFile::new_in(shard)
            .with_context(|| format!("cannot write to content store {}", dir.display()))?;
        tmp.write_all(bytes)
            .with_context(|| format!("cannot write to content store {}", dir.display()))?;
        tmp.persist(dest)
            .with_context(|| format!("cannot store blob {}", dest.display()))?;
        Ok(())
    }

    /// Moves the host file `path` into the store: hashed, then renamed to
    /// its blob (or removed, when the blob exists). For a directory about
    /// to be discarded, on the store's file system: no byte is copied.
    /// Across file systems it is copied and removed.
    pub fn take(&self, path: &Path) -> Result<(Digest, u64)> {
        let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let Some(dir) = &self.dir else {
            return Ok(hash_reader(file)?);
        };
        let (digest, len) = hash_reader(&file)?;
        let dest = Self::blob_path(dir, &digest);
        if dest.exists() {
            std::fs::remove_file(path)?;
            return Ok((digest, len));
        }
        let shard = dest.parent().expect("blob paths have a shard directory");
        std::fs::create_dir_all(shard)?;
        match std::fs::rename(path, &dest) {
            Ok(()) => Ok((digest, len)),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                let (copied, len) = self.put(File::open(path)?)?;
                std::fs::remove_file(path)?;
                Ok((copied, len))
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "cannot move {} into the content store",
                path.display()
            ))),
        }
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        Ok(self.put(bytes)?.0)
    }

    /// The file holding the blob with `digest`.
    pub fn blob(&self, digest: &Digest) -> Result<PathBuf> {
        let Some(dir) = &self.dir else {
            bail!("internal error: this content store keeps no file contents");
        };
        Ok(Self::blob_path(dir, digest))
    }

    /// Opens the blob with `digest` for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let Some(dir) = &self.dir else {
            bail!("internal error: this content store keeps no file contents");
        };
        let path = Self::blob_path(dir, digest);
        File::open(&path).with_context(|| format!("content store has no blob {digest}"))
    }

    pub fn read_to_vec(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_blob(digest)?.read_to_end(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (d1, n) = store.put(&b"hello"[..]).unwrap();
        let d2 = store.put_bytes(b"hello").unwrap();
        assert_eq!(d1, d2);
        assert_eq!(n, 5);
        assert_eq!(
            d1.hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(store.read_to_vec(&d1).unwrap(), b"hello");
        // only the blob and its shard remain: no temporary files
        let shard = dir.path().join("2c");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(std::fs::read_dir(shard).unwrap().count(), 1);
    }

    #[test]
    fn discard_store_hashes_without_keeping() {
        let store = Store::discard();
        let (d, n) = store.put(&b"abc"[..]).unwrap();
        assert_eq!(n, 3);
        assert_eq!(d, Digest::of(b"abc"));
        assert!(store.open_blob(&d).is_err());
    }

    #[test]
    fn digest_parses_only_64_hex_digits() {
        let good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(good.parse::<Digest>().unwrap().hex(), good);
        assert!("2cf2".parse::<Digest>().is_err());
        assert!(good.replace('2', "g").parse::<Digest>().is_err());
    }
}
