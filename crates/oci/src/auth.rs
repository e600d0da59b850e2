//! Registry credentials where container tools keep them, and the
//! distribution spec's challenges.
//!
//! Credentials come from the docker config file (`--registry-config`,
//! else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//! `credHelpers` for the host, then `auths` (`auth`, or `username` and
//! `password`), then `credsStore`. Helpers are the `docker-credential-NAME`
//! programs every container tool uses: the host on standard input, JSON
//! `{"Username", "Secret"}` on standard output.

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <secret>)", self.username)
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.secret))
        )
    }
}

/// The docker config file kiln reads when none is named.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials for `registry` (`host[:port]`), if the config file
/// has any. A named file that does not exist is an error; the default
/// one may be absent.
pub fn credentials_for(config: Option<&Path>, registry: &str) -> Result<Option<Credentials>> {
    let (path, named) = match config {
        Some(p) => (p.to_path_buf(), true),
        None => match default_config_path() {
            Some(p) => (p, false),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read registry config {}", path.display()));
        }
    };
    let config: DockerConfig = serde_json::from_str(&text).with_context(|| {
        format!(
            "registry config {} is not a docker config file",
            path.display()
        )
    })?;
    if let Some(helper) = config.cred_helpers.get(registry) {
        return helper_get(helper, registry);
    }
    for (key, entry) in &config.auths {
        if normalise_host(key) != registry {
            continue;
        }
        if let Some(auth) = &entry.auth {
            let decoded = STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())));
            let Some((username, secret)) = decoded else {
                bail!(
                    "registry config {}: auths.{key}.auth is not base64 of USER:PASSWORD",
                    path.display()
                );
            };
            return Ok(Some(Credentials { username, secret }));
        }
        if let (Some(username), Some(secret)) = (&entry.username, &entry.password) {
            return Ok(Some(Credentials {
                username: username.clone(),
                secret: secret.clone(),
            }));
        }
    }
    match &config.creds_store {
        Some(store) => helper_get(store, registry),
        None => Ok(None),
    }
}

/// `auths` keys are hosts, or URLs such as `https://host/v1/` in files
/// written by old docker versions.
fn normalise_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Asks `docker-credential-HELPER get`. A helper that knows nothing of
/// the host says so on standard output and exits non-zero: no credentials.
fn helper_get(helper: &str, registry: &str) -> Result<Option<Credentials>> {
    if helper.is_empty()
        || !helper
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!(
            "credential helper name {} is not a program name",
            kiln_diag::quote(helper)
        );
    }
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run the credential helper {program} (for {registry})"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe; its exit
        // status says what happened.
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("credential helper {program}"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout);
        if said.contains("credentials not found") {
            return Ok(None);
        }
        bail!(
            "credential helper {program} failed for {registry} ({}): {}",
            out.status,
            kiln_diag::clip_line(String::from_utf8_lossy(&out.stderr).trim(), 300)
        );
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout).with_context(|| {
        format!("credential helper {program} did not print Username and Secret as JSON")
    })?;
    Ok(Some(Credentials {
        username: answer.username,
        secret: answer.secret,
    }))
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let params = parse_params(params);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `key="value", key=value` pairs; commas inside quotes (scopes such as
/// `repository:a:pull,push`) stay in the value.
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_owned());
        rest = after.trim_start_matches([',', ' ']);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge("Basic realm=\"kiln-test\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                "Bearer realm=\"https://auth.example/token\",service=\"reg\",scope=\"repository:a/b:pull,push\""
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn reads_auths_and_refuses_a_broken_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {"https://127.0.0.1:5000/v1/": {"auth": "dXNlcjpwYTpzcw=="},
                          "other.example": {"username": "u", "password": "p"},
                          "bad.example": {"auth": "!!"}}}"#,
        )
        .expect("write");
        let c = credentials_for(Some(&path), "127.0.0.1:5000")
            .expect("reads")
            .expect("found");
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("user", "pa:ss"));
        assert!(!format!("{c:?}").contains("pa:ss"));
        let c = credentials_for(Some(&path), "other.example")
            .expect("reads")
            .expect("found");
        assert_eq!(c.username, "u");
        assert_eq!(
            credentials_for(Some(&path), "none.example").expect("reads"),
            None
        );
        let e = credentials_for(Some(&path), "bad.example").expect_err("bad");
        assert!(e.to_string().contains("not base64"), "{e}");
        let e = credentials_for(Some(&dir.path().join("missing.json")), "x").expect_err("missing");
        assert!(
            e.to_string().contains("cannot read registry config"),
            "{e:#}"
        );
    }
}
