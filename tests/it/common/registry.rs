//! Real OCI registries for tests: Debian's `docker-registry` (distribution
//! 2.8) on loopback, with TLS from a throwaway CA and htpasswd basic auth
//! when asked, and a TCP proxy that cuts uploads or downloads part way so
//! that retries meet a real server's idea of a broken transfer.

use super::run_ok;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const REGISTRY: &str = "/usr/bin/docker-registry";

/// How long a registry may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a certificate for 127.0.0.1 and localhost, signed
    /// by a fresh CA ([`Registry::ca_cert`]).
    pub tls: bool,
    /// Require this user and password (htpasswd, bcrypt).
    pub basic_auth: Option<(String, String)>,
    /// Require bearer tokens from a token service (distribution's token
    /// authentication): JWTs signed by the key of `root_cert`.
    pub token: Option<TokenAuth>,
}

#[derive(Clone, Debug)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub root_cert: PathBuf,
}

/// A running `docker-registry`; dropping it kills the server and removes
/// its storage.
pub struct Registry {
    /// 127.0.0.1:PORT
    pub addr: SocketAddr,
    /// The filesystem driver's root directory.
    pub storage: PathBuf,
    /// The CA that signed the server's certificate, as PEM, when TLS.
    pub ca_cert: Option<PathBuf>,
    log_path: PathBuf,
    child: Child,
    // Last: the directory outlives the server that writes into it.
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry and waits until it answers.
    pub fn start(options: RegistryOptions) -> Registry {
        assert!(
            Path::new(REGISTRY).exists(),
            "{REGISTRY} is missing: apt-get install docker-registry apache2-utils"
        );
        // The free port is free only until someone else takes it: a registry
        // that loses that race exits at once, and gets another port.
        let mut last_log = String::new();
        for _ in 0..3 {
            match Registry::try_start(&options) {
                Ok(registry) => return registry,
                Err(log) => last_log = log,
            }
        }
        panic!("docker-registry found no free port in 3 tries; its last log:\n{last_log}");
    }

    /// A started registry, or the log of one that lost its port.
    fn try_start(options: &RegistryOptions) -> Result<Registry, String> {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let addr = free_port();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n  secret: kiln-test\n",
            storage.display()
        );
        let ca_cert = options.tls.then(|| {
            let (ca, cert, key) = make_certs(dir.path());
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            ca
        });
        if let Some((user, password)) = &options.basic_auth {
            let file = dir.path().join("htpasswd");
            run_ok(
                Command::new("htpasswd")
                    .arg("-Bbc")
                    .arg(&file)
                    .arg(user)
                    .arg(password),
            );
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                file.display()
            ));
        }
        if let Some(token) = &options.token {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                token.realm,
                token.service,
                token.issuer,
                token.root_cert.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {REGISTRY}: {e}"));
        let mut registry = Registry {
            addr,
            storage,
            ca_cert,
            log_path,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = registry.child.try_wait().unwrap() {
                let log = registry.log();
                if log.contains("address already in use") {
                    return Err(log);
                }
                panic!("docker-registry exited with {status} before answering; its log:\n{log}");
            }
            if registry.answers(options.tls) {
                return Ok(registry);
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {addr} within {READY_TIMEOUT:?}; its log:\n{}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server answers HTTP: `/v2/` over plain HTTP (200, or 401
    /// with auth), and over TLS Go's plain-text "400 Bad Request" to a
    /// client that did not speak TLS, which it sends only once serving.
    fn answers(&self, tls: bool) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) else {
            return false;
        };
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
        if stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = Vec::new();
        let _ = stream.take(64).read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        // Go answers an HTTP/1.0 request with an HTTP/1.0 status line.
        let status = answer.strip_prefix("HTTP/1.").and_then(|s| s.get(2..5));
        if tls {
            status.is_some()
        } else {
            matches!(status, Some("200" | "401"))
        }
    }

    /// "127.0.0.1:PORT", as image references and URLs want it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Where distribution's filesystem driver keeps a blob's bytes:
    /// STORAGE/docker/registry/v2/blobs/sha256/AB/ABCDEF.../data
    pub fn blob_data(&self, digest_hex: &str) -> PathBuf {
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&digest_hex[..2])
            .join(digest_hex)
            .join("data")
    }

    /// The registry's log so far (stderr+stdout), for assertion messages.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port nobody listened on a moment ago.
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A CA (P-256, CA:true) and a server certificate it signed for 127.0.0.1
/// and localhost, valid for ten years: (CA cert, server cert, server key).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.pem");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.pem");
    let ext = dir.join("server.ext");
    let openssl = || {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(dir);
        cmd
    };
    run_ok(
        openssl()
            .args(["req", "-x509", "-new", "-nodes", "-days", "3650"])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-subj", "/CN=kiln test CA"])
            .args(["-addext", "basicConstraints=critical,CA:true"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    run_ok(
        openssl()
            .args(["req", "-new", "-nodes"])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:false\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run_ok(
        openssl()
            .args(["x509", "-req", "-days", "3650", "-set_serial", "2"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert),
    );
    (ca, cert, key)
}

/// What a [`FaultyProxy`] breaks.
#[derive(Clone, Debug)]
pub enum ProxyFault {
    /// Forward everything, except: the first `times` requests whose method is
    /// PATCH or PUT and which carry a body of more than `after_bytes` bytes
    /// are cut (both sockets shut down) once `after_bytes` bytes of their body
    /// have been forwarded upstream.
    DropUploadAfter { after_bytes: usize, times: usize },
    /// The first `times` GET requests whose path contains "/blobs/" are cut
    /// after `after_bytes` bytes of the *response body* went back to the client.
    /// A response no longer than `after_bytes` passes and does not count.
    DropDownloadAfter { after_bytes: usize, times: usize },
}

/// A loopback HTTP/1.1 proxy (plain text, keep-alive, one upstream
/// connection per client connection) in front of `upstream`, which breaks
/// transfers as its [`ProxyFault`] says. Dropping it stops new connections.
pub struct FaultyProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    fault: ProxyFault,
    /// Cuts still to make.
    left: AtomicUsize,
    cuts: AtomicUsize,
    requests: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Shared {
    /// Takes one of the cuts left, if any.
    fn take_cut(&self) -> bool {
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Copies through a buffer this big, not byte by byte.
const CHUNK: usize = 64 * 1024;

/// Idle connections give up after this long, so no thread waits forever.
const IDLE: Duration = Duration::from_secs(60);

impl FaultyProxy {
    pub fn start(upstream: SocketAddr, fault: ProxyFault) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let times = match fault {
            ProxyFault::DropUploadAfter { times, .. } => times,
            ProxyFault::DropDownloadAfter { times, .. } => times,
        };
        let shared = Arc::new(Shared {
            upstream,
            fault,
            left: AtomicUsize::new(times),
            cuts: AtomicUsize::new(0),
            requests: Mutex::default(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = relay_connection(client, &s);
                });
            }
        });
        FaultyProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// "127.0.0.1:PORT" of the proxy.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Request lines seen ("PATCH /v2/... HTTP/1.1"), in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// An HTTP message head: the start line, and the header lines as received
/// (each with its CRLF), ending with the empty line.
struct Head {
    start: String,
    raw: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }

    fn chunked(&self) -> bool {
        self.has_token("transfer-encoding", "chunked")
    }

    /// The head without the headers named in `drop`.
    fn without(&self, drop: &[&str]) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start).into_bytes();
        for (name, value) in &self.headers {
            if !drop.iter().any(|d| name.eq_ignore_ascii_case(d)) {
                out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Reads a message head; `None` at a clean end of the connection.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(&line);
        if raw.len() > CHUNK {
            return Err(std::io::Error::other("message head too long"));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if lines.is_empty() {
                continue; // a stray CRLF between messages
            }
            break;
        }
        lines.push(text.to_owned());
    }
    let start = lines.remove(0);
    let headers = lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Some(Head {
        start,
        raw,
        headers,
    }))
}

/// Copies exactly `n` bytes.
fn copy_exact(from: &mut impl Read, to: &mut impl Write, mut n: u64) -> std::io::Result<()> {
    let mut buf = vec![0; CHUNK];
    while n > 0 {
        let want = n.min(CHUNK as u64) as usize;
        let got = from.read(&mut buf[..want])?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all(&buf[..got])?;
        n -= got as u64;
    }
    to.flush()
}

/// Copies a chunked body as it is, chunk sizes, extensions and trailer
/// included, up to and including its end.
fn copy_chunked(from: &mut impl BufRead, to: &mut impl Write) -> std::io::Result<()> {
    loop {
        let mut line = Vec::new();
        if from.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all(&line)?;
        let text = String::from_utf8_lossy(&line);
        let size = text.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size line {text:?}")))?;
        if size == 0 {
            // The trailer: header lines up to an empty one.
            loop {
                let mut line = Vec::new();
                if from.read_until(b'\n', &mut line)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                to.write_all(&line)?;
                if line == b"\r\n" || line == b"\n" {
                    return to.flush();
                }
            }
        }
        copy_exact(from, to, size + 2)?; // the data and its CRLF
    }
}

/// Copies until the end of `from`.
fn copy_to_end(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = vec![0; CHUNK];
    loop {
        let got = from.read(&mut buf)?;
        if got == 0 {
            return to.flush();
        }
        to.write_all(&buf[..got])?;
    }
}

/// Relays one client connection's requests and their responses, in turn,
/// over one upstream connection; returns when either side closes or a
/// fault cut both.
fn relay_connection(client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    if shared.stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let upstream = TcpStream::connect(shared.upstream)?;
    for s in [&client, &upstream] {
        s.set_read_timeout(Some(IDLE))?;
        s.set_nodelay(true)?;
    }
    let cut = |reason: &str| {
        // Counted first: the client may look as soon as it sees the cut.
        shared.cuts.fetch_add(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        Err(std::io::Error::other(reason.to_owned()))
    };
    let mut from_client = BufReader::with_capacity(CHUNK, client.try_clone()?);
    let mut to_client = client.try_clone()?;
    let mut from_upstream = BufReader::with_capacity(CHUNK, upstream.try_clone()?);
    let mut to_upstream = upstream.try_clone()?;
    while let Some(request) = read_head(&mut from_client)? {
        shared.requests.lock().unwrap().push(request.start.clone());
        let mut words = request.start.split_whitespace();
        let method = words.next().unwrap_or("").to_ascii_uppercase();
        let path = words.next().unwrap_or("");
        // The proxy answers "100 Continue" itself and forwards no Expect:
        // relaying the real one would need both directions at once.
        if request.has_token("expect", "100-continue") {
            to_upstream.write_all(&request.without(&["expect"]))?;
            to_client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        } else {
            to_upstream.write_all(&request.raw)?;
        }
        if request.chunked() {
            copy_chunked(&mut from_client, &mut to_upstream)?;
        } else if let Some(length) = request.content_length() {
            match shared.fault {
                ProxyFault::DropUploadAfter { after_bytes, .. }
                    if (method == "PATCH" || method == "PUT")
                        && length > after_bytes as u64
                        && shared.take_cut() =>
                {
                    copy_exact(&mut from_client, &mut to_upstream, after_bytes as u64)?;
                    return cut("upload cut");
                }
                _ => copy_exact(&mut from_client, &mut to_upstream, length)?,
            }
        }
        to_upstream.flush()?;

        let response = loop {
            let Some(head) = read_head(&mut from_upstream)? else {
                return Ok(()); // upstream closed: so does the client's side
            };
            let status = status_code(&head);
            to_client.write_all(&head.raw)?;
            if (100..200).contains(&status) && status != 101 {
                continue; // interim: the real response follows
            }
            break head;
        };
        let status = status_code(&response);
        let download_cut = match shared.fault {
            ProxyFault::DropDownloadAfter { after_bytes, .. }
                if method == "GET" && path.contains("/blobs/") =>
            {
                Some(after_bytes as u64)
            }
            _ => None,
        };
        let no_body = method == "HEAD" || status == 204 || status == 304 || status < 200;
        let mut close = response.has_token("connection", "close")
            || request.has_token("connection", "close")
            || response.start.starts_with("HTTP/1.0");
        if no_body {
            to_client.flush()?;
        } else if response.chunked() {
            // Downloads are cut only by their length: chunked ones pass.
            copy_chunked(&mut from_upstream, &mut to_client)?;
        } else if let Some(length) = response.content_length() {
            match download_cut {
                Some(after) if length > after && shared.take_cut() => {
                    copy_exact(&mut from_upstream, &mut to_client, after)?;
                    return cut("download cut");
                }
                _ => copy_exact(&mut from_upstream, &mut to_client, length)?,
            }
        } else {
            copy_to_end(&mut from_upstream, &mut to_client)?;
            close = true;
        }
        if close {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    let _ = upstream.shutdown(Shutdown::Both);
    Ok(())
}

/// The status code of a response head; 0 when there is none.
fn status_code(head: &Head) -> u16 {
    head.start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::sha256_file;

    /// curl's exit code and what `-w` and the body printed.
    fn curl(args: &[&str]) -> (i32, String) {
        let out = Command::new("curl")
            .arg("-s")
            .args(args)
            .output()
            .expect("cannot run curl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn status(args: &[&str]) -> String {
        let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        curl(&all).1
    }

    /// The value of `name` in the response headers curl printed.
    fn header(headers: &str, name: &str) -> String {
        headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in\n{headers}"))
    }

    /// A new upload session of `t/a` at `host`: its Location.
    fn start_upload(host: &str) -> String {
        let url = format!("http://{host}/v2/t/a/blobs/uploads/");
        let (_, headers) = curl(&["-D", "-", "-o", "/dev/null", "-X", "POST", &url]);
        header(&headers, "location")
    }

    /// The fixtures themselves, checked with curl: plain and TLS with auth,
    /// an upload and a download cut once, keep-alive, chunked and
    /// 100-continue requests through the proxy.
    #[test]
    fn registry_fixture_works() {
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("blob");
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&blob, &bytes).unwrap();
        let digest = sha256_file(&blob);
        let data = format!("@{}", blob.display());
        std::fs::write(dir.path().join("head"), &bytes[..2000]).unwrap();
        std::fs::write(dir.path().join("tail"), &bytes[2000..]).unwrap();
        let head = format!("@{}", dir.path().join("head").display());
        let tail = format!("@{}", dir.path().join("tail").display());

        let plain = Registry::start(RegistryOptions::default());
        let v2 = format!("http://{}/v2/", plain.host());
        assert_eq!(status(&[&v2]), "200", "{}", plain.log());

        let secure = Registry::start(RegistryOptions {
            tls: true,
            basic_auth: Some(("kiln".into(), "s3cret".into())),
            ..Default::default()
        });
        let ca = secure.ca_cert.as_ref().unwrap().to_str().unwrap();
        let v2s = format!("https://{}/v2/", secure.host());
        let by_name = format!("https://localhost:{}/v2/", secure.addr.port());
        assert_eq!(status(&["--cacert", ca, "-u", "kiln:s3cret", &v2s]), "200");
        assert_eq!(
            status(&["--cacert", ca, "-u", "kiln:s3cret", &by_name]),
            "200"
        );
        assert_eq!(status(&["--cacert", ca, &v2s]), "401");
        assert_eq!(
            status(&[&v2s]),
            "000",
            "certificate accepted without the CA"
        );

        // An upload cut once, then one that goes through.
        let proxy = FaultyProxy::start(
            plain.addr,
            ProxyFault::DropUploadAfter {
                after_bytes: 1000,
                times: 1,
            },
        );
        let octets = "Content-Type: application/octet-stream";
        let location = start_upload(&proxy.host());
        assert!(location.contains(&proxy.host()), "{location}");
        let (code, _) = curl(&[
            "-X",
            "PATCH",
            "-H",
            octets,
            "--data-binary",
            &data,
            &location,
        ]);
        assert_ne!(code, 0, "the PATCH was not cut");
        assert_eq!(proxy.cuts(), 1);
        let pv2 = format!("http://{}/v2/", proxy.host());
        // Two requests on one kept-alive connection.
        let (_, out) = curl(&[
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            &pv2,
            &pv2,
        ]);
        assert_eq!(out, "200 1\n200 0\n");
        // In two parts: chunked, and with "Expect: 100-continue".
        let location = start_upload(&proxy.host());
        let (_, headers) = curl(&[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "PATCH",
            "-H",
            octets,
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &head,
            &location,
        ]);
        assert_eq!(header(&headers, "range"), "0-1999", "{headers}");
        let (_, headers) = curl(&[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "PATCH",
            "-H",
            octets,
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &tail,
            &header(&headers, "location"),
        ]);
        assert_eq!(header(&headers, "range"), "0-4999", "{headers}");
        let put = format!("{}&digest=sha256:{digest}", header(&headers, "location"));
        assert_eq!(status(&["-X", "PUT", &put]), "201", "{}", plain.log());
        assert_eq!(std::fs::read(plain.blob_data(&digest)).unwrap(), bytes);
        assert_eq!(proxy.cuts(), 1);
        let lines = proxy.requests();
        assert!(
            lines[0].starts_with("POST /v2/t/a/blobs/uploads/ HTTP/1.1"),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("PATCH /v2/t/a/blobs/uploads/"),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 8, "{lines:?}");

        // A download cut once, then whole.
        let proxy = FaultyProxy::start(
            plain.addr,
            ProxyFault::DropDownloadAfter {
                after_bytes: 1000,
                times: 1,
            },
        );
        let url = format!("http://{}/v2/t/a/blobs/sha256:{digest}", proxy.host());
        let got = dir.path().join("got");
        let got_arg = got.to_str().unwrap();
        let (code, _) = curl(&["-o", got_arg, &url]);
        assert_eq!(code, 18, "curl: partial file");
        assert_eq!(std::fs::metadata(&got).unwrap().len(), 1000);
        let (code, _) = curl(&["-o", got_arg, &url]);
        assert_eq!(code, 0);
        assert_eq!(std::fs::read(&got).unwrap(), bytes);
        assert_eq!(proxy.cuts(), 1);
    }
}
