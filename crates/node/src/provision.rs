//! Provisioning data, validated: the supported subset of cloud-init's
//! `#cloud-config` user-data and NoCloud meta-data, and kiln's own
//! provisioning file. Everything outside the subset is refused, with a
//! message naming it, and nothing of a refused input is used.

use crate::yaml::{self, Node};
use base64::Engine;
use std::collections::BTreeMap;

/// Where the K3s join token goes (the one `write_files` path besides
/// kiln's provisioning file).
pub const TOKEN_PATH: &str = "/var/lib/rancher/k3s/agent-token";
/// kiln's provisioning file, as `write_files` may give it.
pub const KILN_FILE: &str = "/var/lib/kiln/provision.yaml";

/// Bounds on untrusted input.
pub const MAX_INPUT: usize = 64 * 1024;
const MAX_TOKEN: usize = 4096;
const MAX_KEYS: usize = 64;
const MAX_KEY_LEN: usize = 16 * 1024;
const MAX_LABELS: usize = 64;

/// What provisioning gives a node.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Provision {
    pub hostname: Option<String>,
    /// The join token, exactly as given (K3s trims it). Never logged.
    pub token: Option<Vec<u8>>,
    /// Extra SSH keys by user name; `None` as the name is the image's
    /// default user (the first login user).
    pub keys: BTreeMap<Option<String>, Vec<String>>,
    pub node_labels: Vec<String>,
    pub node_taints: Vec<String>,
}

impl std::fmt::Display for Provision {
    /// A summary for the journal: never the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.hostname {
            parts.push(format!("hostname {h}"));
        }
        if self.token.is_some() {
            parts.push("the join token".into());
        }
        let keys: usize = self.keys.values().map(Vec::len).sum();
        if keys > 0 {
            parts.push(format!("{keys} SSH key(s)"));
        }
        if !self.node_labels.is_empty() {
            parts.push(format!("labels {}", self.node_labels.join(",")));
        }
        if !self.node_taints.is_empty() {
            parts.push(format!("taints {}", self.node_taints.join(",")));
        }
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Every reason an input was refused.
pub type Refusals = Vec<String>;

/// Reads `#cloud-config` user-data into `out`.
pub fn user_data(text: &[u8], out: &mut Provision) -> Result<(), Refusals> {
    let text = bounded_text(text, "user-data")?;
    if text.trim().is_empty() {
        return Ok(());
    }
    if !text.starts_with("#cloud-config") {
        let first = text.lines().next().unwrap_or("");
        return Err(vec![format!(
            "user-data must start with #cloud-config (starts with {:?}): scripts, MIME multipart and includes are never run",
            short(first)
        )]);
    }
    let doc = yaml::parse(text).map_err(|e| vec![format!("user-data: {e}")])?;
    let Node::Map(entries) = doc else {
        return Err(vec!["user-data: the top level must be a mapping".into()]);
    };
    let mut refused = Vec::new();
    for (key, value) in entries {
        let result = match key.as_str() {
            "hostname" | "local-hostname" => {
                scalar(&value, &key).and_then(|h| set_hostname(out, &h))
            }
            "ssh_authorized_keys" => {
                strings(&value, &key).and_then(|keys| add_keys(out, None, keys))
            }
            "users" => users(&value, out),
            "write_files" => write_files(&value, out),
            "kiln" => kiln_settings(&value, out),
            // cloud-init's own bookkeeping that changes nothing here.
            "preserve_hostname" | "manage_etc_hosts" => Ok(()),
            other => Err(format!(
                "user-data: {other:?} is not supported by kiln's provisioning and is not run (supported: hostname, ssh_authorized_keys, users, write_files, kiln)"
            )),
        };
        if let Err(e) = result {
            refused.push(e);
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused)
    }
}

/// Reads NoCloud meta-data (`instance-id`, `local-hostname`) into `out`.
pub fn meta_data(text: &[u8], out: &mut Provision) -> Result<(), Refusals> {
    let text = bounded_text(text, "meta-data")?;
    let doc = yaml::parse(text).map_err(|e| vec![format!("meta-data: {e}")])?;
    let Node::Map(entries) = doc else {
        return Err(vec!["meta-data: the top level must be a mapping".into()]);
    };
    for (key, value) in entries {
        match key.as_str() {
            "local-hostname" | "hostname" => {
                let name = scalar(&value, &key).map_err(|e| vec![e])?;
                set_hostname(out, &name).map_err(|e| vec![e])?;
            }
            // Identifies the instance to cloud-init; kiln provisions at every boot.
            _ => {}
        }
    }
    Ok(())
}

/// kiln's provisioning file (`kiln:` in user-data, or the file
/// /var/lib/kiln/provision.yaml given by write_files).
fn kiln_settings(value: &Node, out: &mut Provision) -> Result<(), String> {
    let Node::Map(entries) = value else {
        return Err("kiln: must be a mapping of node_labels, node_taints".into());
    };
    for (key, value) in entries {
        match key.as_str() {
            "node_labels" => {
                for label in strings(value, key)? {
                    check_label(&label)?;
                    out.node_labels.push(label);
                }
            }
            "node_taints" => {
                for taint in strings(value, key)? {
                    check_taint(&taint)?;
                    out.node_taints.push(taint);
                }
            }
            other => {
                return Err(format!(
                    "kiln: {other:?} is not a provisioning setting (node_labels, node_taints)"
                ));
            }
        }
    }
    if out.node_labels.len() > MAX_LABELS || out.node_taints.len() > MAX_LABELS {
        return Err(format!("more than {MAX_LABELS} node labels or taints"));
    }
    Ok(())
}

fn users(value: &Node, out: &mut Provision) -> Result<(), String> {
    let Node::Seq(items) = value else {
        return Err("users: must be a list".into());
    };
    for item in items {
        match item {
            // cloud-init's "the default user": nothing to create here.
            Node::Scalar(s) if s == "default" => {}
            Node::Map(entries) => {
                let mut name = None;
                let mut keys = Vec::new();
                for (key, value) in entries {
                    match key.as_str() {
                        "name" => name = Some(scalar(value, key)?),
                        "ssh_authorized_keys" => keys = strings(value, key)?,
                        other => {
                            return Err(format!(
                                "users: {other:?} is not supported: kiln only adds SSH keys to the image's existing users (name, ssh_authorized_keys)"
                            ));
                        }
                    }
                }
                let name = name.ok_or("users: an entry without a name")?;
                if !is_user_name(&name) {
                    return Err(format!("users: {:?} is not a user name", short(&name)));
                }
                add_keys(out, Some(name), keys)?;
            }
            _ => return Err("users: each entry is \"default\" or a mapping with a name".into()),
        }
    }
    Ok(())
}

fn write_files(value: &Node, out: &mut Provision) -> Result<(), String> {
    let Node::Seq(items) = value else {
        return Err("write_files: must be a list".into());
    };
    for item in items {
        let Node::Map(entries) = item else {
            return Err("write_files: each entry must be a mapping".into());
        };
        let (mut path, mut content, mut encoding) = (None, String::new(), None);
        for (key, value) in entries {
            match key.as_str() {
                "path" => path = Some(scalar(value, key)?),
                "content" => content = scalar(value, key)?,
                "encoding" => encoding = Some(scalar(value, key)?),
                // kiln sets owner and mode itself (the token is root's, 0600).
                "owner" | "permissions" => {}
                other => {
                    return Err(format!(
                        "write_files: {other:?} is not supported (path, content, encoding, owner, permissions)"
                    ));
                }
            }
        }
        let path = path.ok_or("write_files: an entry without a path")?;
        let bytes = match encoding.as_deref() {
            None | Some("text/plain") => content.into_bytes(),
            Some("b64" | "base64") => base64::engine::general_purpose::STANDARD
                .decode(content.trim())
                .map_err(|_| format!("write_files {path}: content is not valid base64"))?,
            Some(other) => {
                return Err(format!(
                    "write_files {path}: encoding {:?} is not supported (b64 or plain)",
                    short(other)
                ));
            }
        };
        match path.as_str() {
            TOKEN_PATH => {
                check_token(&bytes)?;
                out.token = Some(bytes);
            }
            KILN_FILE => {
                let text = bounded_text(&bytes, KILN_FILE).map_err(|e| e.join("; "))?;
                let doc = yaml::parse(text).map_err(|e| format!("{KILN_FILE}: {e}"))?;
                kiln_settings(&doc, out).map_err(|e| format!("{KILN_FILE}: {e}"))?;
            }
            other => {
                return Err(format!(
                    "write_files: {:?} is not a path kiln's provisioning writes (only {TOKEN_PATH} and {KILN_FILE}); the image's files change by rebuilding it",
                    short(other)
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn set_hostname(out: &mut Provision, name: &str) -> Result<(), String> {
    if !is_host_name(name) {
        return Err(format!(
            "hostname {:?} is not a valid host name (letters, digits and '-', dot-separated labels of at most 63)",
            short(name)
        ));
    }
    out.hostname = Some(name.to_ascii_lowercase());
    Ok(())
}

pub(crate) fn add_keys(
    out: &mut Provision,
    user: Option<String>,
    keys: Vec<String>,
) -> Result<(), String> {
    for key in &keys {
        check_ssh_key(key)?;
    }
    let list = out.keys.entry(user).or_default();
    list.extend(keys);
    if list.len() > MAX_KEYS {
        return Err(format!("more than {MAX_KEYS} SSH keys for one user"));
    }
    Ok(())
}

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
];

/// One public key: `TYPE BASE64 [comment]`, no options (no `command=`),
/// and the blob names the same type.
fn check_ssh_key(key: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("SSH key {:?}: {why}", short(key)));
    if key.len() > MAX_KEY_LEN || key.contains(['\n', '\r', '\0']) {
        return bad("must be one line");
    }
    let mut words = key.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return bad("expected \"TYPE BASE64 [comment]\"");
    };
    if !KEY_TYPES.contains(&kind) {
        return bad(
            "not a public key type sshd accepts here (options like command= are not accepted either)",
        );
    }
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(blob) else {
        return bad("the key is not valid base64");
    };
    let named = bytes
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| bytes.get(4..4 + n));
    if named != Some(kind.as_bytes()) {
        return bad("the key's data does not match its type");
    }
    Ok(())
}

/// As K3s reads it: non-empty after trimming whitespace.
fn check_token(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() > MAX_TOKEN {
        return Err(format!("the join token is larger than {MAX_TOKEN} bytes"));
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err("the join token is not text".into());
    };
    if text.trim().is_empty() {
        return Err("the join token is empty (K3s trims whitespace)".into());
    }
    if text.trim().chars().any(|c| c.is_control() || c == ' ') {
        return Err("the join token holds spaces or control characters".into());
    }
    Ok(())
}

/// `[prefix/]name=value` as Kubernetes accepts a label.
fn check_label(label: &str) -> Result<(), String> {
    let (key, value) = label
        .split_once('=')
        .ok_or_else(|| format!("node label {:?}: expected key=value", short(label)))?;
    if !is_label_key(key) || !(value.is_empty() || is_label_name(value)) {
        return Err(format!(
            "node label {:?} is not a valid Kubernetes label",
            short(label)
        ));
    }
    Ok(())
}

/// `key[=value]:Effect` as Kubernetes accepts a taint.
fn check_taint(taint: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "node taint {:?}: expected key=value:NoSchedule (or PreferNoSchedule, NoExecute)",
            short(taint)
        ))
    };
    let Some((left, effect)) = taint.rsplit_once(':') else {
        return bad();
    };
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        return bad();
    }
    let (key, value) = left.split_once('=').unwrap_or((left, ""));
    if !is_label_key(key) || !(value.is_empty() || is_label_name(value)) {
        return bad();
    }
    Ok(())
}

fn is_label_key(key: &str) -> bool {
    match key.rsplit_once('/') {
        Some((prefix, name)) => prefix.len() <= 253 && is_host_name(prefix) && is_label_name(name),
        None => is_label_name(key),
    }
}

fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

pub fn is_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn bounded_text<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, Refusals> {
    if bytes.len() > MAX_INPUT {
        return Err(vec![format!(
            "{what} is {} bytes; kiln reads at most {MAX_INPUT}",
            bytes.len()
        )]);
    }
    std::str::from_utf8(bytes).map_err(|_| vec![format!("{what} is not UTF-8 text")])
}

fn scalar(node: &Node, key: &str) -> Result<String, String> {
    match node {
        Node::Scalar(s) => Ok(s.clone()),
        _ => Err(format!("{key}: expected a single value")),
    }
}

fn strings(node: &Node, key: &str) -> Result<Vec<String>, String> {
    match node {
        Node::Seq(items) => items.iter().map(|i| scalar(i, key)).collect(),
        _ => Err(format!("{key}: expected a list")),
    }
}

/// At most 60 characters of a value, for messages.
fn short(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests;
