//! One registry, over the distribution spec's HTTP API: authentication
//! on challenge, retries of what can be repeated, resumable chunked blob
//! uploads, downloads resumed by range and checked against their digest.

use crate::auth::{self, Challenge, Credentials};
use crate::reference::{Reference, check_digest};
use crate::spec::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, IMAGE_INDEX, IMAGE_MANIFEST};
use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::{self, Response};

/// Manifests and indexes are small; the distribution spec suggests
/// registries refuse more than 4 MiB.
pub const MANIFEST_LIMIT: u64 = 4 << 20;

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `http://` instead of TLS (a registry on loopback or a lab network).
    pub plain_http: bool,
    /// Trust only this PEM bundle instead of the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// The docker config file with credentials (default: the usual one).
    pub config: Option<PathBuf>,
    /// Tries of each request that can be repeated, and of each upload chunk.
    pub attempts: u32,
    pub backoff: Duration,
    pub timeout: Duration,
    /// Uploads larger than this go in chunks of this size, each resumable.
    pub chunk_size: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            ca_cert: None,
            config: None,
            attempts: 5,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(60),
            chunk_size: 32 << 20,
        }
    }
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    registry: String,
    options: ClientOptions,
    credentials: Mutex<Option<Option<Credentials>>>,
    /// The Authorization header that answered the last challenge, per
    /// repository (bearer tokens are scoped to one).
    authorization: Mutex<HashMap<String, String>>,
}

/// What a request sends.
enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`: opened afresh for each try.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

struct Request<'a> {
    method: http::Method,
    url: String,
    repository: &'a str,
    headers: Vec<(&'static str, String)>,
    payload: Payload<'a>,
    /// Whether a failed try may be repeated as it is.
    idempotent: bool,
}

/// Content that is not what its digest says: a registry's storage
/// corrupted or tampered with. Callers treat it as a failed verification.
#[derive(Debug)]
pub struct WrongContent(pub String);
impl std::fmt::Display for WrongContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for WrongContent {}

/// A failure retrying will not fix; never retried.
#[derive(Debug)]
struct Permanent(String);
impl std::fmt::Display for Permanent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Permanent {}

impl Client {
    pub fn new(registry: &str, options: ClientOptions) -> Result<Client> {
        let roots = match &options.ca_cert {
            None => ureq::tls::RootCerts::PlatformVerifier,
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read CA certificate {}", path.display()))?;
                let mut certs = Vec::new();
                for item in ureq::tls::parse_pem(&pem) {
                    if let ureq::tls::PemItem::Certificate(cert) =
                        item.with_context(|| format!("{} is not a PEM file", path.display()))?
                    {
                        certs.push(cert);
                    }
                }
                if certs.is_empty() {
                    bail!("{} holds no PEM certificate", path.display());
                }
                ureq::tls::RootCerts::new_with_certs(&certs)
            }
        };
        let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
        let config = ureq::config::Config::builder()
            .tls_config(tls)
            .timeout_connect(Some(options.timeout))
            .timeout_recv_response(Some(options.timeout))
            .timeout_recv_body(Some(options.timeout))
            .http_status_as_error(false)
            // Redirects are followed by hand only where the spec allows
            // them (blob downloads), so credentials never leave the host.
            .max_redirects(0)
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build();
        let scheme = if options.plain_http { "http" } else { "https" };
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            base: format!("{scheme}://{registry}"),
            registry: registry.to_owned(),
            options,
            credentials: Mutex::new(None),
            authorization: Mutex::new(HashMap::new()),
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A Location header, absolute or relative to the registry.
    fn location(&self, response: &Response<ureq::Body>, what: &str) -> Result<String> {
        let value = header(response, "location")
            .ok_or_else(|| anyhow!("{what}: the registry answered without a Location"))?;
        Ok(
            if value.starts_with("http://") || value.starts_with("https://") {
                value
            } else if value.starts_with('/') {
                self.url(&value)
            } else {
                bail!("{what}: the registry answered with Location {value:?}, not a URL")
            },
        )
    }

    // ---- requests --------------------------------------------------------

    fn send(&self, request: &Request<'_>) -> Result<Response<ureq::Body>> {
        let mut wait = self.options.backoff;
        let mut challenged = false;
        let mut attempt = 1;
        loop {
            let authorization = self
                .authorization
                .lock()
                .expect("no thread panics holding the authorization map")
                .get(request.repository)
                .cloned();
            let outcome = self.send_once(request, authorization.as_deref());
            match outcome {
                Ok(response) if response.status() == 401 && !challenged => {
                    challenged = true;
                    self.answer_challenge(&response, request.repository)?;
                    continue;
                }
                Ok(response) if response.status() == 401 => {
                    return Err(Permanent(format!(
                        "the registry {} refused the credentials for {} (401)",
                        self.registry, request.repository
                    ))
                    .into());
                }
                Ok(response)
                    if matches!(
                        response.status().as_u16(),
                        408 | 429 | 500 | 502 | 503 | 504
                    ) =>
                {
                    if !request.idempotent || attempt >= self.options.attempts {
                        return Ok(response);
                    }
                }
                Ok(response) => return Ok(response),
                Err(e)
                    if transient(&e) && request.idempotent && attempt < self.options.attempts => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "{} {} failed",
                        request.method,
                        shown_url(&request.url)
                    )));
                }
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(30));
            attempt += 1;
        }
    }

    fn send_once(
        &self,
        request: &Request<'_>,
        authorization: Option<&str>,
    ) -> std::result::Result<Response<ureq::Body>, ureq::Error> {
        let mut builder = http::Request::builder()
            .method(request.method.clone())
            .uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(authorization) = authorization {
            builder = builder.header("authorization", authorization);
        }
        match &request.payload {
            Payload::Empty => {
                let builder = builder.header("content-length", "0");
                self.agent.run(builder.body(())?)
            }
            Payload::Bytes(bytes) => {
                let builder = builder.header("content-length", bytes.len().to_string());
                self.agent.run(builder.body(*bytes)?)
            }
            Payload::File { path, offset, len } => {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(*offset))?;
                let reader = file.take(*len);
                let builder = builder.header("content-length", len.to_string());
                self.agent
                    .run(builder.body(ureq::SendBody::from_owned_reader(reader))?)
            }
        }
    }

    /// A GET or HEAD: repeated on transient failures.
    fn fetch(
        &self,
        method: http::Method,
        url: String,
        repository: &str,
        headers: Vec<(&'static str, String)>,
    ) -> Result<Response<ureq::Body>> {
        self.send(&Request {
            method,
            url,
            repository,
            headers,
            payload: Payload::Empty,
            idempotent: true,
        })
    }

    fn answer_challenge(&self, response: &Response<ureq::Body>, repository: &str) -> Result<()> {
        let header_value = header(response, "www-authenticate").unwrap_or_default();
        let challenge = auth::parse_challenge(&header_value).ok_or_else(|| {
            Permanent(format!(
                "the registry {} asks for authentication kiln does not speak: {}",
                self.registry,
                kiln_diag::quote(&header_value)
            ))
        })?;
        let credentials = self.credentials()?;
        let authorization = match challenge {
            Challenge::Basic => {
                let Some(credentials) = credentials else {
                    return Err(self.no_credentials());
                };
                credentials.basic_header()
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = scope.unwrap_or_else(|| format!("repository:{repository}:pull,push"));
                format!(
                    "Bearer {}",
                    self.token(&realm, service.as_deref(), &scope, credentials.as_ref())?
                )
            }
        };
        self.authorization
            .lock()
            .expect("no thread panics holding the authorization map")
            .insert(repository.to_owned(), authorization);
        Ok(())
    }

    fn no_credentials(&self) -> anyhow::Error {
        let config = match &self.options.config {
            Some(p) => p.display().to_string(),
            None => auth::default_config_path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "$DOCKER_CONFIG/config.json".into()),
        };
        Permanent(format!(
            "the registry {} needs a login and {config} has none for it: add one with `docker login {}` (or any tool writing the docker config), or name another file with --registry-config",
            self.registry, self.registry
        ))
        .into()
    }

    fn credentials(&self) -> Result<Option<Credentials>> {
        let mut cached = self
            .credentials
            .lock()
            .expect("no thread panics holding the credentials");
        if let Some(c) = &*cached {
            return Ok(c.clone());
        }
        let found = auth::credentials_for(self.options.config.as_deref(), &self.registry)?;
        *cached = Some(found.clone());
        Ok(found)
    }

    /// A token from the registry's token service (distribution's token
    /// authentication), with the credentials when there are any.
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String> {
        let mut url = format!("{realm}?scope={}", encode(scope));
        if let Some(service) = service {
            url.push_str(&format!("&service={}", encode(service)));
        }
        let mut request = self.agent.get(&url);
        if let Some(c) = credentials {
            request = request.header("authorization", c.basic_header());
        }
        let mut response = request.call().with_context(|| {
            format!(
                "cannot reach the token service {realm} of {}",
                self.registry
            )
        })?;
        if response.status() == 401 || response.status() == 403 {
            if credentials.is_none() {
                return Err(self.no_credentials());
            }
            return Err(Permanent(format!(
                "the token service {realm} refused the credentials for {} ({})",
                self.registry,
                response.status()
            ))
            .into());
        }
        if !response.status().is_success() {
            bail!("the token service {realm} answered {}", response.status());
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()?;
        let token: Token = serde_json::from_slice(&body)
            .with_context(|| format!("the token service {realm} did not answer with a token"))?;
        token
            .token
            .or(token.access_token)
            .ok_or_else(|| anyhow!("the token service {realm} answered without a token"))
    }

    // ---- the API -----------------------------------------------------------

    /// Checks that the registry speaks the distribution API and that the
    /// credentials, if it asks for them, are accepted.
    pub fn ping(&self, repository: &str) -> Result<()> {
        let response = self.fetch(http::Method::GET, self.url("/v2/"), repository, Vec::new())?;
        expect(
            response,
            &[200],
            &format!("{} is not an OCI registry", self.base),
        )
        .map(drop)
    }

    /// Whether the repository has the blob.
    pub fn has_blob(&self, repository: &str, digest: &str) -> Result<bool> {
        let response = self.fetch(
            http::Method::HEAD,
            self.url(&format!("/v2/{repository}/blobs/{digest}")),
            repository,
            Vec::new(),
        )?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error(
                response,
                &format!("HEAD blob {digest} in {repository}"),
            )),
        }
    }

    /// Uploads bytes as a blob unless the repository has it.
    pub fn push_bytes(&self, repository: &str, bytes: &[u8]) -> Result<String> {
        let digest = crate::digest_of(bytes);
        if self.has_blob(repository, &digest)? {
            return Ok(digest);
        }
        let location = self.start_upload(repository)?;
        let response = self.send(&Request {
            method: http::Method::PUT,
            url: with_query(&location, &format!("digest={digest}")),
            repository,
            headers: vec![("content-type", "application/octet-stream".into())],
            payload: Payload::Bytes(bytes),
            idempotent: true,
        })?;
        expect(
            response,
            &[201],
            &format!("upload of blob {digest} to {repository}"),
        )?;
        Ok(digest)
    }

    /// Uploads the file at `path` (of `size` bytes and sha256 `digest`)
    /// unless the repository has it; returns whether it was sent. Files
    /// larger than a chunk go in chunks. After a cut-off request the
    /// upload resumes where the registry says it stands; a registry that
    /// dropped the session instead (distribution 2.8 does, once a request
    /// body was cut) gets a new session and the whole file again.
    pub fn push_file(
        &self,
        repository: &str,
        path: &Path,
        digest: &str,
        size: u64,
    ) -> Result<bool> {
        check_digest(digest)?;
        if self.has_blob(repository, digest)? {
            return Ok(false);
        }
        let what = format!(
            "upload of {} ({digest}) to {}/{repository}",
            path.display(),
            self.registry
        );
        let mut failures = 0;
        let mut session: Option<(String, u64)> = None;
        loop {
            let (mut location, mut offset) = match session.take() {
                Some(session) => session,
                None => (self.start_upload(repository)?, 0),
            };
            match self.upload_from(
                repository,
                path,
                digest,
                size,
                &mut location,
                &mut offset,
                &what,
            ) {
                Ok(()) => return Ok(true),
                Err(e) if e.downcast_ref::<Permanent>().is_some() => return Err(e),
                Err(e) => {
                    failures += 1;
                    if failures >= self.options.attempts {
                        return Err(e.context(format!("{what}: gave up after {failures} tries")));
                    }
                    std::thread::sleep(self.options.backoff * failures);
                    session = self.upload_status(repository, &location, &what).ok();
                }
            }
        }
    }

    /// Sends the file from `offset` on, then commits it; `location` and
    /// `offset` follow the registry's answers, for a resume.
    #[allow(clippy::too_many_arguments)]
    fn upload_from(
        &self,
        repository: &str,
        path: &Path,
        digest: &str,
        size: u64,
        location: &mut String,
        offset: &mut u64,
        what: &str,
    ) -> Result<()> {
        let commit = |location: &str, payload| Request {
            method: http::Method::PUT,
            url: with_query(location, &format!("digest={digest}")),
            repository,
            headers: vec![("content-type", "application/octet-stream".into())],
            payload,
            // Retried by the caller, which knows where the session stands.
            idempotent: false,
        };
        if *offset == 0 && size <= self.options.chunk_size {
            let response = self.send(&commit(
                location,
                Payload::File {
                    path,
                    offset: 0,
                    len: size,
                },
            ))?;
            expect(response, &[201], what)?;
            return Ok(());
        }
        while *offset < size {
            let len = self.options.chunk_size.min(size - *offset);
            let response = self.send(&Request {
                method: http::Method::PATCH,
                url: location.clone(),
                repository,
                headers: vec![
                    ("content-type", "application/octet-stream".into()),
                    (
                        "content-range",
                        format!("{}-{}", *offset, *offset + len - 1),
                    ),
                ],
                payload: Payload::File {
                    path,
                    offset: *offset,
                    len,
                },
                idempotent: false,
            })?;
            let response = expect(response, &[202], what)?;
            *location = self.location(&response, what)?;
            *offset = match header(&response, "range").as_deref().and_then(range_end) {
                Some(end) => end + 1,
                None => *offset + len,
            };
        }
        let response = self.send(&commit(location, Payload::Empty))?;
        expect(response, &[201], what)?;
        Ok(())
    }

    fn start_upload(&self, repository: &str) -> Result<String> {
        let what = format!("starting an upload to {}/{repository}", self.registry);
        let response = self.send(&Request {
            method: http::Method::POST,
            url: self.url(&format!("/v2/{repository}/blobs/uploads/")),
            repository,
            headers: Vec::new(),
            payload: Payload::Empty,
            // An upload started twice is an abandoned session, no harm.
            idempotent: true,
        })?;
        let response = expect(response, &[202], &what)?;
        self.location(&response, &what)
    }

    /// Where an interrupted upload stands: its Location and the next offset.
    fn upload_status(&self, repository: &str, location: &str, what: &str) -> Result<(String, u64)> {
        let response = self.fetch(
            http::Method::GET,
            location.to_owned(),
            repository,
            Vec::new(),
        )?;
        let response = expect(
            response,
            &[204],
            &format!("{what}: asking where the upload stands"),
        )?;
        // "0-0" is what an empty session reports (and one holding a
        // single byte: chunks are never that small).
        let next = match header(&response, "range").as_deref().and_then(range_end) {
            Some(0) | None => 0,
            Some(end) => end + 1,
        };
        Ok((self.location(&response, what)?, next))
    }

    /// Downloads a blob into `file` (truncated first), at most `limit`
    /// bytes, checking its sha256; a cut-off download is resumed with a
    /// range request. The file holds nothing trustworthy unless this
    /// returns Ok.
    pub fn pull_blob(
        &self,
        repository: &str,
        digest: &str,
        limit: u64,
        file: &mut File,
    ) -> Result<()> {
        let hex = check_digest(digest)?;
        let what = format!("blob {digest} of {}/{repository}", self.registry);
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut failures = 0;
        let mut url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        loop {
            let mut headers = Vec::new();
            if received > 0 {
                headers.push(("range", format!("bytes={received}-")));
            }
            let mut response = self.send(&Request {
                method: http::Method::GET,
                url: url.clone(),
                repository,
                headers,
                payload: Payload::Empty,
                idempotent: true,
            })?;
            // Registries may hand blobs to a storage service; follow,
            // without the registry's credentials.
            if matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                url = self.location(&response, &what)?;
                let mut redirected = self.agent.get(&url);
                if received > 0 {
                    redirected = redirected.header("range", format!("bytes={received}-"));
                }
                response = redirected
                    .call()
                    .with_context(|| format!("{what}: redirected download"))?;
            }
            match response.status().as_u16() {
                200 if received > 0 => {
                    // The range was ignored: start over.
                    hasher = Sha256::new();
                    received = 0;
                    file.set_len(0)?;
                    file.seek(SeekFrom::Start(0))?;
                }
                200 | 206 => {}
                404 => bail!("{what} does not exist"),
                _ => return Err(status_error(response, &what)),
            }
            let mut reader = response.into_body().into_reader();
            let mut buf = vec![0u8; 256 << 10];
            let cut = loop {
                match reader.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => {
                        received += n as u64;
                        if received > limit {
                            bail!("{what} is larger than the {limit} bytes expected of it");
                        }
                        hasher.update(&buf[..n]);
                        file.write_all(&buf[..n])
                            .with_context(|| format!("cannot write {what}"))?;
                    }
                    Err(e) => break Some(e),
                }
            };
            match cut {
                None => break,
                Some(e) => {
                    failures += 1;
                    if failures >= self.options.attempts {
                        return Err(anyhow::Error::new(e)
                            .context(format!("{what}: cut off {failures} times, gave up")));
                    }
                    std::thread::sleep(self.options.backoff * failures);
                    url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
                }
            }
        }
        file.flush()?;
        let got = hex::encode(hasher.finalize());
        if got != hex {
            return Err(WrongContent(format!(
                "{what}: the registry sent content whose sha256 is {got}: refused (tampered or corrupted storage)"
            ))
            .into());
        }
        Ok(())
    }

    /// A reader of the blob, or `None` when the repository lacks it; the
    /// caller checks the content against the digest (a cache that hashes
    /// as it stores does, without a second pass). Not resumed: for
    /// content that has another source when this one fails.
    pub fn open_blob(&self, repository: &str, digest: &str) -> Result<Option<impl Read + use<>>> {
        check_digest(digest)?;
        let what = format!("blob {digest} of {}/{repository}", self.registry);
        let response = self.fetch(
            http::Method::GET,
            self.url(&format!("/v2/{repository}/blobs/{digest}")),
            repository,
            Vec::new(),
        )?;
        let response = match response.status().as_u16() {
            200 => response,
            404 => return Ok(None),
            301 | 302 | 303 | 307 | 308 => {
                let url = self.location(&response, &what)?;
                let response = self
                    .agent
                    .get(&url)
                    .call()
                    .with_context(|| format!("{what}: redirected download"))?;
                expect(response, &[200], &what)?
            }
            _ => return Err(status_error(response, &what)),
        };
        Ok(Some(response.into_body().into_reader()))
    }

    /// Downloads a small blob into memory, checked against its digest.
    pub fn pull_small_blob(&self, repository: &str, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let hex = check_digest(digest)?;
        let what = format!("blob {digest} of {}/{repository}", self.registry);
        let response = self.fetch(
            http::Method::GET,
            self.url(&format!("/v2/{repository}/blobs/{digest}")),
            repository,
            Vec::new(),
        )?;
        let mut response = match response.status().as_u16() {
            200 => response,
            404 => bail!("{what} does not exist"),
            _ => return Err(status_error(response, &what)),
        };
        let bytes = read_limited(&mut response, limit, &what)?;
        if hex::encode(Sha256::digest(&bytes)) != hex {
            return Err(WrongContent(format!(
                "{what}: the registry sent content that does not match its digest: refused"
            ))
            .into());
        }
        Ok(bytes)
    }

    /// The manifest or index at `reference` (a tag or digest) of `repository`:
    /// its bytes, media type and digest. `None` when there is none.
    pub fn get_manifest(&self, repository: &str, reference: &str) -> Result<Option<Fetched>> {
        let what = format!("manifest {}/{repository}:{reference}", self.registry);
        let response = self.send(&Request {
            method: http::Method::GET,
            url: self.url(&format!("/v2/{repository}/manifests/{reference}")),
            repository,
            headers: vec![(
                "accept",
                [
                    IMAGE_MANIFEST,
                    IMAGE_INDEX,
                    DOCKER_MANIFEST,
                    DOCKER_MANIFEST_LIST,
                ]
                .join(", "),
            )],
            payload: Payload::Empty,
            idempotent: true,
        })?;
        let mut response = match response.status().as_u16() {
            200 => response,
            404 => return Ok(None),
            _ => return Err(status_error(response, &what)),
        };
        let media_type = header(&response, "content-type").unwrap_or_default();
        let bytes = read_limited(&mut response, MANIFEST_LIMIT, &what)?;
        let digest = crate::digest_of(&bytes);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(WrongContent(format!(
                "{what}: the registry sent a manifest whose digest is {digest}: refused"
            ))
            .into());
        }
        let media_type = serde_json::from_slice::<MediaTypeOnly>(&bytes)
            .ok()
            .and_then(|m| m.media_type)
            .unwrap_or(media_type);
        Ok(Some(Fetched {
            bytes,
            media_type,
            digest,
        }))
    }

    /// Stores a manifest at `reference` (a tag, or its own digest).
    /// Returns its digest and whether the registry processed its `subject`
    /// (the `OCI-Subject` header of registries with the referrers API).
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(String, bool)> {
        let what = format!(
            "storing manifest {}/{repository}:{reference}",
            self.registry
        );
        let response = self.send(&Request {
            method: http::Method::PUT,
            url: self.url(&format!("/v2/{repository}/manifests/{reference}")),
            repository,
            headers: vec![("content-type", media_type.to_owned())],
            payload: Payload::Bytes(bytes),
            idempotent: true,
        })?;
        let response = expect(response, &[201], &what)?;
        let subject_processed = header(&response, "oci-subject").is_some();
        Ok((crate::digest_of(bytes), subject_processed))
    }

    /// The referrers API: `None` when the registry does not have it.
    pub fn referrers_api(&self, repository: &str, digest: &str) -> Result<Option<Vec<u8>>> {
        let what = format!("referrers of {}/{repository}@{digest}", self.registry);
        let response = self.fetch(
            http::Method::GET,
            self.url(&format!("/v2/{repository}/referrers/{digest}")),
            repository,
            vec![("accept", IMAGE_INDEX.to_owned())],
        )?;
        let mut response = match response.status().as_u16() {
            200 => response,
            // 404 (or 405 from a proxy) from a registry without the API.
            404 | 405 => return Ok(None),
            _ => return Err(status_error(response, &what)),
        };
        Ok(Some(read_limited(&mut response, MANIFEST_LIMIT, &what)?))
    }

    /// The reference of an image in this registry, for messages.
    pub fn shown(&self, reference: &Reference) -> String {
        reference.to_string()
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaTypeOnly {
    media_type: Option<String>,
}

/// A manifest or index as the registry sent it.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

fn header(response: &Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Range: 0-1234` (distribution's upload status) → 1234.
fn range_end(value: &str) -> Option<u64> {
    let value = value.trim().trim_start_matches("bytes=");
    value.split_once('-')?.1.trim().parse().ok()
}

fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{}", query.replace(':', "%3A"))
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL without its query (upload state tokens say nothing to people).
fn shown_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn read_limited(response: &mut Response<ureq::Body>, limit: u64, what: &str) -> Result<Vec<u8>> {
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => {
                anyhow!("{what} is larger than {limit} bytes: refused")
            }
            other => anyhow::Error::new(other).context(format!("cannot read {what}")),
        })
}

fn transient(error: &ureq::Error) -> bool {
    matches!(
        error,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled
    )
}

fn expect(response: Response<ureq::Body>, ok: &[u16], what: &str) -> Result<Response<ureq::Body>> {
    if ok.contains(&response.status().as_u16()) {
        Ok(response)
    } else {
        Err(status_error(response, what))
    }
}

/// An error status with the registry's own error codes (the spec's
/// `{"errors": [{"code", "message"}]}`), which say what is wrong.
fn status_error(mut response: Response<ureq::Body>, what: &str) -> anyhow::Error {
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: String,
        #[serde(default)]
        message: String,
    }
    let detail = match serde_json::from_slice::<Errors>(&body) {
        Ok(errors) if !errors.errors.is_empty() => errors
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => kiln_diag::clip_line(String::from_utf8_lossy(&body).trim(), 200),
    };
    let message = if detail.is_empty() {
        format!("{what}: the registry answered {status}")
    } else {
        format!("{what}: the registry answered {status} ({detail})")
    };
    if status.is_client_error() {
        Permanent(message).into()
    } else {
        anyhow!(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_queries_and_encoding() {
        assert_eq!(range_end("0-1023"), Some(1023));
        assert_eq!(range_end("bytes=0-9"), Some(9));
        assert_eq!(range_end("junk"), None);
        assert_eq!(
            with_query("http://h/u?_state=x", "digest=sha256:ab"),
            "http://h/u?_state=x&digest=sha256%3Aab"
        );
        assert_eq!(
            with_query("http://h/u", "digest=sha256:ab"),
            "http://h/u?digest=sha256%3Aab"
        );
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
