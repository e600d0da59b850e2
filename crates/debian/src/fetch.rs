//! Fetching bytes from mirrors: HTTP(S) and file:// URLs, retries with
//! backoff, bounded timeouts, and a content-addressed cache keyed by
//! sha256 that several builds may share at once.
//!
//! Nothing fetched is trusted until its digest matches what a verified
//! source (a signed Release file, a lockfile, a recipe) says; a cached blob
//! is re-hashed before every use.

use anyhow::{Context, Result, anyhow, bail};
use kiln_diag::{Limit, read_limited};
use kiln_tree::{Digest, HashingWriter, copy, hash_reader};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How patient network requests are.
#[derive(Clone, Debug)]
pub struct FetchPolicy {
    /// Attempts per URL (network errors and 5xx responses are retried).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
    /// Bound on connecting and on waiting for response headers.
    pub timeout: Duration,
    /// Bound on receiving one whole body.
    pub body_timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        // KILN_HTTP_TIMEOUT (seconds) shortens every wait, for tests and
        // impatient pipelines.
        let timeout = std::env::var("KILN_HTTP_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(30));
        FetchPolicy {
            attempts: 4,
            backoff: Duration::from_millis(500).min(timeout),
            timeout,
            body_timeout: timeout.max(Duration::from_secs(1)) * 20,
        }
    }
}

/// Fetches URLs.
pub struct Fetcher {
    agent: ureq::Agent,
    policy: FetchPolicy,
}

/// Resolves each host once per run. ureq resolves before every request,
/// even on a kept-alive connection, and a resolver that drops AAAA queries
/// then costs glibc a 5 s timeout each time (seen on real networks).
#[derive(Debug, Default)]
struct CachingResolver {
    inner: ureq::unversioned::resolver::DefaultResolver,
    resolved: std::sync::Mutex<
        std::collections::HashMap<String, ureq::unversioned::resolver::ResolvedSocketAddrs>,
    >,
}

impl ureq::unversioned::resolver::Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str())
        );
        if let Some(addrs) = self.resolved.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(addrs);
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Ok(mut cache) = self.resolved.lock() {
            cache.insert(key, addrs.clone());
        }
        Ok(addrs)
    }
}

/// Content that is not what its pin says (sha256 or size): callers that
/// may go on without an unreachable file must still stop on this.
#[derive(Debug)]
pub struct ContentMismatch(String);

impl std::fmt::Display for ContentMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ContentMismatch {}

impl ContentMismatch {
    /// Whether `error` or one of its causes is a mismatch.
    pub fn in_chain(error: &anyhow::Error) -> bool {
        error
            .chain()
            .any(|e| e.downcast_ref::<ContentMismatch>().is_some())
    }
}

/// An error that retrying will not fix (404, 403, a bad URL).
#[derive(Debug)]
struct Permanent(String);

impl std::fmt::Display for Permanent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Permanent {}

impl Fetcher {
    pub fn new(policy: FetchPolicy) -> Fetcher {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = ureq::config::Config::builder()
            .tls_config(tls)
            .timeout_connect(Some(policy.timeout))
            .timeout_recv_response(Some(policy.timeout))
            .timeout_recv_body(Some(policy.body_timeout))
            .http_status_as_error(false)
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::new(),
            CachingResolver::default(),
        );
        Fetcher { agent, policy }
    }

    /// Calls `consume` with a reader of the resource at `url`, retrying the
    /// whole request on transient failures. `consume` must be safe to
    /// repeat (it is given a fresh reader each time).
    pub fn with_reader<T>(
        &self,
        url: &str,
        mut consume: impl FnMut(&mut dyn Read) -> Result<T>,
    ) -> Result<T> {
        let mut wait = self.policy.backoff;
        let mut last = None;
        for attempt in 1..=self.policy.attempts.max(1) {
            match self.try_once(url, &mut consume) {
                Ok(value) => return Ok(value),
                Err(e) if e.downcast_ref::<Permanent>().is_some() => return Err(e),
                Err(e) => last = Some(e),
            }
            if attempt < self.policy.attempts {
                std::thread::sleep(wait);
                wait *= 2;
            }
        }
        let e = last.unwrap_or_else(|| anyhow!("no attempt was made"));
        Err(e.context(format!(
            "giving up on {url} after {} attempts",
            self.policy.attempts
        )))
    }

    fn try_once<T>(
        &self,
        url: &str,
        consume: &mut impl FnMut(&mut dyn Read) -> Result<T>,
    ) -> Result<T> {
        if let Some(path) = url.strip_prefix("file://") {
            let file = std::fs::File::open(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => anyhow!(Permanent(format!("{url}: not found"))),
                _ => anyhow!(e).context(format!("cannot read {url}")),
            })?;
            return consume(&mut BufReader::with_capacity(1 << 20, file));
        }
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(Permanent(format!(
                "{url}: only http://, https:// and file:// URLs are supported"
            ))
            .into());
        }
        let response = self
            .agent
            .get(url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let message = format!("GET {url}: the server answered {status}");
            // 5xx and 429 may pass; anything else will not.
            return if status.is_server_error() || status.as_u16() == 429 {
                Err(anyhow!(message))
            } else {
                Err(Permanent(message).into())
            };
        }
        let mut reader = response.into_body().into_reader();
        consume(&mut reader).with_context(|| format!("GET {url}"))
    }

    /// The whole resource, refused when larger than `limit` (indexes,
    /// not packages).
    pub fn get_bytes(&self, url: &str, limit: Limit) -> Result<Vec<u8>> {
        self.with_reader(url, |reader| match read_limited(reader, url, limit, 0) {
            Ok(bytes) => Ok(bytes),
            // Retrying would fetch the same oversized file again.
            Err(e @ kiln_diag::ReadError::TooLarge { .. }) => Err(Permanent(e.to_string()).into()),
            Err(kiln_diag::ReadError::Io { source, .. }) => Err(source.into()),
        })
    }
}

/// Blobs by sha256 under a directory: `DIR/sha256/ab/abcdef…`.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn open(dir: &Path) -> Result<Cache> {
        if dir.is_file() {
            bail!(
                "cache directory {}: is a file, not a directory",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir.join("sha256"))
            .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        Ok(Cache {
            dir: dir.to_owned(),
        })
    }

    /// The default: `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
    pub fn default_dir() -> Result<PathBuf> {
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir).join("kiln"));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .context("no cache directory: set --cache-dir, XDG_CACHE_HOME or HOME")?;
        Ok(PathBuf::from(home).join(".cache").join("kiln"))
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.shard(digest).join(digest.hex())
    }

    /// The directory of a blob: `DIR/sha256/ab`.
    fn shard(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir.join("sha256").join(&hex[..2])
    }

    /// The cached blob with `digest`, re-hashed to prove it is intact; a
    /// corrupt one is deleted and reported missing.
    pub fn get(&self, digest: &Digest) -> Result<Option<PathBuf>> {
        let path = self.blob_path(digest);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let (actual, _) = hash_reader(BufReader::with_capacity(1 << 20, file))?;
        if actual != *digest {
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some(path))
    }

    /// Where the blob with `digest` would be, if it is there: for a reader
    /// that hashes what it reads anyway and checks the digest at the end
    /// (one pass instead of [`Cache::get`]'s two).
    pub fn locate(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.blob_path(digest);
        path.is_file().then_some(path)
    }

    /// Removes the blob with `digest` (one found corrupt).
    pub fn remove(&self, digest: &Digest) {
        let _ = std::fs::remove_file(self.blob_path(digest));
    }

    /// Adds what `write` writes as a new blob, hashed as it is written, and
    /// returns its digest: for content kiln makes itself, whose digest is
    /// not known beforehand.
    pub fn insert_new(&self, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<Digest> {
        let mut blob = self.new_blob(Durability::Synced)?;
        write(&mut blob)?;
        blob.persist()
    }

    /// A blob being written: [`NewBlob::persist`] names it by its digest,
    /// and until then nobody sees it.
    pub fn new_blob(&self, durability: Durability) -> Result<NewBlob<'_>> {
        let dir = self.dir.join("sha256");
        let tmp = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("cannot write to the cache {}", dir.display()))?;
        Ok(NewBlob {
            cache: self,
            writer: HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, tmp)),
            durability,
        })
    }

    /// Streams `reader` into the cache, hashing as it goes; succeeds only
    /// when the content has `digest` (and `size`, when given). The blob
    /// appears under its name atomically, so concurrent builds never see
    /// half a file.
    pub fn insert(
        &self,
        reader: &mut dyn Read,
        digest: &Digest,
        size: Option<u64>,
        on_bytes: &dyn Fn(u64),
    ) -> Result<PathBuf> {
        let dest = self.blob_path(digest);
        let shard = self.shard(digest);
        let shard = shard.as_path();
        std::fs::create_dir_all(shard)?;
        let tmp = tempfile::NamedTempFile::new_in(shard)
            .with_context(|| format!("cannot write to the cache {}", shard.display()))?;
        let mut writer = HashingWriter::new(std::io::BufWriter::new(tmp));
        let mut counted = CountingReader {
            inner: reader,
            on_bytes,
            limit: size.map(|s| s + 1),
        };
        copy(&mut counted, &mut writer)?;
        let (buffered, actual, len) = writer.finish();
        if let Some(expected) = size
            && len != expected
        {
            return Err(ContentMismatch(format!(
                "size is {len} bytes, expected {expected}: truncated or wrong file"
            ))
            .into());
        }
        if actual != *digest {
            return Err(ContentMismatch(format!(
                "sha256 is {actual}, expected {digest}: the file was modified or corrupted"
            ))
            .into());
        }
        let tmp = buffered.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&dest)
            .with_context(|| format!("cannot store {}", dest.display()))?;
        Ok(dest)
    }
}

/// Whether a new blob reaches the disk before it gets its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Synced first: what a crash must not lose or tear.
    Synced,
    /// Left to the page cache: for what can be made again, whose digest
    /// catches a torn copy on its next use.
    Cached,
}

/// A blob on its way into the [`Cache`] (see [`Cache::new_blob`]).
pub struct NewBlob<'a> {
    cache: &'a Cache,
    writer: HashingWriter<std::io::BufWriter<tempfile::NamedTempFile>>,
    durability: Durability,
}

impl NewBlob<'_> {
    /// Puts the blob in place under its digest, which it returns.
    pub fn persist(self) -> Result<Digest> {
        let (buffered, digest, _) = self.writer.finish();
        let tmp = buffered.into_inner().map_err(|e| e.into_error())?;
        if self.durability == Durability::Synced {
            tmp.as_file().sync_all()?;
        }
        let dest = self.cache.blob_path(&digest);
        std::fs::create_dir_all(self.cache.shard(&digest))?;
        tmp.persist(&dest)
            .with_context(|| format!("cannot store {}", dest.display()))?;
        Ok(digest)
    }
}

impl Write for NewBlob<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// The index directory `name` of the cache in `cache_dir`, created; whatever
/// the umask made of it, only its owner writes there, so that
/// [`is_private`] holds for what this user puts in it.
pub fn index_dir(cache_dir: &Path, name: &str) -> Result<PathBuf> {
    let index = cache_dir.join(name);
    std::fs::create_dir_all(&index)
        .with_context(|| format!("cannot create {}", index.display()))?;
    if is_mine(&index) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o755));
    }
    Ok(index)
}

/// Owned by this user and writable by nobody else: what a cache's index
/// must be for kiln to trust what it says (as ccache trusts its directory).
pub fn is_private(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    is_mine(path) && std::fs::symlink_metadata(path).is_ok_and(|m| m.mode() & 0o022 == 0)
}

/// Owned by this user.
pub fn is_mine(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(path).is_ok_and(|m| m.uid() == me)
}

struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    on_bytes: &'a dyn Fn(u64),
    /// Stop reading past this many bytes: a server sending more than the
    /// expected size is wrong, and need not fill the disk to prove it.
    limit: Option<u64>,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = match self.limit {
            Some(0) => return Ok(0),
            Some(left) => buf.len().min(left as usize),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..want])?;
        if let Some(left) = &mut self.limit {
            *left -= n as u64;
        }
        (self.on_bytes)(n as u64);
        Ok(n)
    }
}

/// One file to fetch into the cache.
#[derive(Clone, Debug)]
pub struct FetchItem {
    /// For messages: a package name and version, or an artifact name.
    pub label: String,
    pub url: String,
    pub sha256: Digest,
    pub size: Option<u64>,
}

/// Fetches every item into the cache with `workers` parallel downloads,
/// skipping those already cached intact. Returns their cache paths in the
/// order given. `on_bytes` and `on_done` report progress.
pub fn fetch_all(
    fetcher: &Fetcher,
    cache: &Cache,
    items: &[FetchItem],
    workers: usize,
    on_bytes: &(dyn Fn(u64) + Sync),
    on_done: &(dyn Fn(&FetchItem) + Sync),
) -> Result<Vec<PathBuf>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers.max(1))
        .build()
        .context("cannot start download workers")?;
    use rayon::prelude::*;
    pool.install(|| {
        items
            .par_iter()
            .map(|item| {
                let path = match cache.get(&item.sha256)? {
                    Some(path) => {
                        on_bytes(item.size.unwrap_or(0));
                        path
                    }
                    None => fetcher
                        .with_reader(&item.url, |reader| {
                            cache.insert(reader, &item.sha256, item.size, on_bytes)
                        })
                        .with_context(|| format!("cannot fetch {}", item.label))?,
                };
                on_done(item);
                Ok(path)
            })
            .collect()
    })
}
