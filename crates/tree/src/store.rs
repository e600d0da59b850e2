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

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The digest and length of what was read so far.
    pub fn finish(self) -> (Digest, u64) {
        (Digest(self.hasher.finalize().into()), self.len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
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

/// Contents up to this size are kept in memory rather than in a file of
/// their own (most files of an image are small: in a minimal Debian, 94%
/// of them, 57 MiB in all; a file per blob costs more than its bytes)...
const SMALL: usize = 64 << 10;

/// ...until they take this much memory in all; later ones go to files.
const MEMORY_CAP: usize = 128 << 20;

/// Where file contents go: small ones in memory, the rest in files in a
/// directory. `Discard` only hashes: enough for `inspect`, which needs
/// digests but never the bytes.
pub struct Store {
    dir: Option<PathBuf>,
    memory: std::sync::Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    blobs: std::collections::HashMap<Digest, std::sync::Arc<[u8]>>,
    bytes: usize,
}

/// A blob being read: from memory or from its file.
pub enum Blob {
    Memory(io::Cursor<std::sync::Arc<[u8]>>),
    File(File),
}

impl Read for Blob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Blob::Memory(cursor) => cursor.read(buf),
            Blob::File(file) => file.read(buf),
        }
    }
}

impl Store {
    /// A store in `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create content store {}", dir.display()))?;
        Ok(Store {
            dir: Some(dir.to_owned()),
            memory: Default::default(),
        })
    }

    /// A store that hashes contents and keeps nothing.
    pub fn discard() -> Store {
        Store {
            dir: None,
            memory: Default::default(),
        }
    }

    fn in_memory(&self, digest: &Digest) -> Option<std::sync::Arc<[u8]>> {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.blobs.get(digest).cloned()
    }

    /// Keeps `bytes` in memory if they are small and there is room.
    fn keep_in_memory(&self, digest: Digest, bytes: &[u8]) -> bool {
        if bytes.len() > SMALL {
            return false;
        }
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if memory.blobs.contains_key(&digest) {
            return true;
        }
        if memory.bytes + bytes.len() > MEMORY_CAP {
            return false;
        }
        memory.bytes += bytes.len();
        memory.blobs.insert(digest, bytes.into());
        true
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
            if self.keep_in_memory(digest, &head) {
                return Ok((digest, head.len() as u64));
            }
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

    /// Stores the `size` bytes of `reader` as the content `digest`, without
    /// hashing them: for a reader whose writer is trusted to have named
    /// the digest right (the build handing its tree to its own sandbox).
    pub fn put_given(&self, reader: impl Read, digest: Digest, size: u64) -> Result<()> {
        let Some(dir) = &self.dir else {
            bail!("internal error: this content store keeps no file contents");
        };
        let mut reader = reader.take(size);
        if size as usize <= SMALL {
            let mut bytes = Vec::with_capacity(size as usize);
            reader.read_to_end(&mut bytes)?;
            if bytes.len() as u64 != size {
                bail!(
                    "the content {digest} ends after {} of {size} bytes",
                    bytes.len()
                );
            }
            if self.keep_in_memory(digest, &bytes) {
                return Ok(());
            }
            let dest = Self::blob_path(dir, &digest);
            return match dest.exists() {
                true => Ok(()),
                false => Self::persist(dir, &dest, &bytes),
            };
        }
        let dest = Self::blob_path(dir, &digest);
        if dest.exists() || self.in_memory(&digest).is_some() {
            io::copy(&mut reader, &mut io::sink())?;
            return Ok(());
        }
        let shard = dest.parent().expect("blob paths have a shard directory");
        std::fs::create_dir_all(shard)?;
        let tmp = tempfile::NamedTempFile::new_in(shard)
            .with_context(|| format!("cannot write to content store {}", dir.display()))?;
        let mut writer = io::BufWriter::new(tmp);
        let copied = copy(reader, &mut writer)?;
        if copied != size {
            bail!("the content {digest} ends after {copied} of {size} bytes");
        }
        let tmp = writer.into_inner().map_err(|e| e.into_error())?;
        tmp.persist(&dest)
            .with_context(|| format!("cannot store blob {}", dest.display()))?;
        Ok(())
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
        if dest.exists() || self.in_memory(&digest).is_some() {
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

    /// Writes the blob `digest` as the new file `dest`; with `take`, a blob
    /// in a file is moved there (the store no longer has it), which costs
    /// no copy on one file system.
    pub fn write_blob(&self, digest: &Digest, dest: &Path, take: bool) -> Result<()> {
        let Some(dir) = &self.dir else {
            bail!("internal error: this content store keeps no file contents");
        };
        if let Some(bytes) = self.in_memory(digest) {
            std::fs::write(dest, &bytes)?;
            return Ok(());
        }
        let blob = Self::blob_path(dir, digest);
        if take {
            std::fs::rename(&blob, dest)?;
        } else {
            std::fs::copy(&blob, dest)?;
        }
        Ok(())
    }

    /// Opens the blob with `digest` for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<Blob> {
        let Some(dir) = &self.dir else {
            bail!("internal error: this content store keeps no file contents");
        };
        if let Some(bytes) = self.in_memory(digest) {
            return Ok(Blob::Memory(io::Cursor::new(bytes)));
        }
        let path = Self::blob_path(dir, digest);
        Ok(Blob::File(File::open(&path).with_context(|| {
            format!("content store has no blob {digest}")
        })?))
    }

    pub fn read_to_vec(&self, digest: &Digest) -> Result<Vec<u8>> {
        if let Some(bytes) = self.in_memory(digest) {
            return Ok(bytes.to_vec());
        }
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
        // small: kept in memory, no file
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // larger: a file, and only the blob and its shard remain: no
        // temporary files
        let big = vec![7u8; SMALL + 1];
        let (d3, n) = store.put(&big[..]).unwrap();
        assert_eq!((d3, n), (Digest::of(&big), big.len() as u64));
        let shard = dir.path().join(&d3.hex()[..2]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(std::fs::read_dir(&shard).unwrap().count(), 1);
        assert_eq!(store.read_to_vec(&d3).unwrap(), big);
        // one larger than the in-memory hashing: streamed to its file
        let huge: Vec<u8> = (0..IN_MEMORY + 5).map(|i| i as u8).collect();
        let (d4, n) = store.put(&huge[..]).unwrap();
        assert_eq!((d4, n), (Digest::of(&huge), huge.len() as u64));
        let mut read = Vec::new();
        store
            .open_blob(&d4)
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        assert!(read == huge);
    }

    #[test]
    fn blobs_are_written_out_copied_or_moved() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let small = store.put_bytes(b"small").unwrap();
        let big = vec![1u8; SMALL * 2];
        let big_digest = store.put_bytes(&big).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        store.write_blob(&small, &out.join("a"), true).unwrap();
        store
            .write_blob(&big_digest, &out.join("b"), false)
            .unwrap();
        store.write_blob(&big_digest, &out.join("c"), true).unwrap();
        assert_eq!(std::fs::read(out.join("a")).unwrap(), b"small");
        assert!(std::fs::read(out.join("b")).unwrap() == big);
        assert!(std::fs::read(out.join("c")).unwrap() == big);
        // the moved blob is the file now; the small one is still in memory
        assert!(store.open_blob(&big_digest).is_err());
        assert_eq!(store.read_to_vec(&small).unwrap(), b"small");
    }

    #[test]
    fn take_moves_a_file_in_and_drops_a_known_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let big = vec![3u8; SMALL * 2];
        let one = dir.path().join("one");
        let two = dir.path().join("two");
        std::fs::write(&one, &big).unwrap();
        std::fs::write(&two, &big).unwrap();
        let (digest, n) = store.take(&one).unwrap();
        assert_eq!((digest, n), (Digest::of(&big), big.len() as u64));
        assert!(!one.exists(), "moved");
        assert_eq!(store.take(&two).unwrap().0, digest);
        assert!(!two.exists(), "already stored: removed");
        assert!(store.read_to_vec(&digest).unwrap() == big);
        // content the store holds in memory: the file is only removed
        let small = store.put_bytes(b"tiny").unwrap();
        let three = dir.path().join("three");
        std::fs::write(&three, b"tiny").unwrap();
        assert_eq!(store.take(&three).unwrap().0, small);
        assert!(!three.exists());
        assert!(store.take(&dir.path().join("missing")).is_err());
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
