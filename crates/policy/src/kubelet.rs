//! The kubelet's configuration as K3s's kubelet reads it: K3s's defaults
//! (`00-k3s-defaults.conf`), then KubeletConfiguration drop-ins, then
//! command-line flags, which win over every file.
//!
//! K3s ≥ 1.32 runs the kubelet with `--config-dir` =
//! /var/lib/rancher/k3s/agent/etc/kubelet.conf.d and writes its defaults
//! there as `00-k3s-defaults.conf` at every start. A `kubelet-arg`
//! `config-dir=DIR` is not passed on: K3s copies DIR into that directory as
//! `20-cli-config-dir/` at every start (`config=FILE` becomes
//! `10-cli-config.conf`), and the kubelet walks the directory in name order,
//! a later file's keys replacing earlier ones (maps merged, lists and
//! scalars replaced). kiln keeps its drop-in in /etc (the read-only root)
//! and names the directory with `config-dir`, so an image update reaches
//! the node at the next start; a file placed under /var would be copied to
//! the state partition once, at first boot, and never refreshed.
//!
//! Files are JSON or the block-YAML subset KubeletConfigurations use
//! (nested maps, `- item` lists, flow lists, scalars); anything else is an
//! error, and the rules that need the configuration then fail.

use super::image::Image;
use super::k3s::{self, K3sConfig};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The directory K3s gives the kubelet (`--config-dir`).
pub const K3S_DIR: &str = "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d";
/// The file K3s writes its kubelet defaults to.
pub const K3S_DEFAULTS: &str = "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/00-k3s-defaults.conf";
/// kiln's drop-in directory, named by `kubelet-arg: config-dir=`.
pub const DIR: &str = "/etc/rancher/k3s/kubelet.conf.d";
/// kiln's hardening drop-in.
pub const DROPIN: &str = "/etc/rancher/k3s/kubelet.conf.d/50-kiln-hardening.conf";

pub const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";

/// A K3s release, from `v1.36.4+k3s1` (or a download URL holding it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct K3sVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The `N` of `+k3sN`.
    pub build: u32,
}

impl K3sVersion {
    /// The first `vMAJOR.MINOR.PATCH` followed by `+k3s` (or `%2Bk3s`).
    pub fn find(text: &str) -> Option<K3sVersion> {
        let text = text.replace("%2B", "+").replace("%2b", "+");
        for (i, _) in text.match_indices('v') {
            let rest = &text[i + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let mut parts = rest[..end].split('.').map(str::parse::<u32>);
            if let (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
                && let Some(tail) = rest[end..].strip_prefix("+k3s")
            {
                let digits = tail
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(tail.len());
                return Some(K3sVersion {
                    major,
                    minor,
                    patch,
                    build: tail[..digits].parse().unwrap_or(1),
                });
            }
        }
        None
    }

    /// At least `1.minor`.
    pub fn at_least(self, minor: u32) -> bool {
        (self.major, self.minor) >= (1, minor)
    }
}

impl std::fmt::Display for K3sVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "v{}.{}.{}+k3s{}",
            self.major, self.minor, self.patch, self.build
        )
    }
}

/// Since kubelet 1.34 `streamingConnectionIdleTimeout` (and its flag) has
/// no effect: the container runtime times idle streams out.
pub const STREAMING_NO_EFFECT_SINCE: u32 = 34;
/// K3s hands the kubelet a drop-in directory from 1.32 on; kubelets from
/// 1.30 read `--config-dir` by default (beta), so the flag passed on by
/// older K3s releases works from 1.30.
pub const DROPINS_SINCE: u32 = 30;

/// Whether the kubelet of `version` honours streamingConnectionIdleTimeout
/// (unknown: the newest behaviour).
pub fn streaming_timeout_has_effect(version: Option<K3sVersion>) -> bool {
    version.is_some_and(|v| !v.at_least(STREAMING_NO_EFFECT_SINCE))
}

/// How a flag's value becomes a configuration value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Str,
    Duration,
    /// A comma-separated list.
    List,
    /// `A=true,B=false`.
    Gates,
}

/// Kubelet flags and the KubeletConfiguration (v1beta1) field each one
/// sets: what kiln moves into its drop-in and what the audit reads.
pub const FIELDS: &[(&str, &str, Kind)] = &[
    (
        "anonymous-auth",
        "authentication.anonymous.enabled",
        Kind::Bool,
    ),
    (
        "authentication-token-webhook",
        "authentication.webhook.enabled",
        Kind::Bool,
    ),
    ("authorization-mode", "authorization.mode", Kind::Str),
    (
        "client-ca-file",
        "authentication.x509.clientCAFile",
        Kind::Str,
    ),
    ("read-only-port", "readOnlyPort", Kind::Int),
    (
        "streaming-connection-idle-timeout",
        "streamingConnectionIdleTimeout",
        Kind::Duration,
    ),
    (
        "make-iptables-util-chains",
        "makeIPTablesUtilChains",
        Kind::Bool,
    ),
    ("event-qps", "eventRecordQPS", Kind::Int),
    ("tls-cert-file", "tlsCertFile", Kind::Str),
    ("tls-private-key-file", "tlsPrivateKeyFile", Kind::Str),
    ("rotate-certificates", "rotateCertificates", Kind::Bool),
    ("feature-gates", "featureGates", Kind::Gates),
    ("tls-cipher-suites", "tlsCipherSuites", Kind::List),
    ("tls-min-version", "tlsMinVersion", Kind::Str),
    ("pod-max-pids", "podPidsLimit", Kind::Int),
    ("seccomp-default", "seccompDefault", Kind::Bool),
    (
        "protect-kernel-defaults",
        "protectKernelDefaults",
        Kind::Bool,
    ),
    ("address", "address", Kind::Str),
    ("max-pods", "maxPods", Kind::Int),
];

/// The configuration field a kubelet flag sets, if it has one.
pub fn field_of(flag: &str) -> Option<(&'static str, Kind)> {
    FIELDS
        .iter()
        .find(|(f, _, _)| *f == flag)
        .map(|(_, path, kind)| (*path, *kind))
}

/// A flag's value as the configuration field holds it; `None` when it
/// does not parse as the field's type.
pub fn flag_value(kind: Kind, value: &str) -> Option<Value> {
    let v = value.trim();
    Some(match kind {
        Kind::Bool => Value::Bool(match v {
            "true" | "1" | "t" | "T" | "TRUE" | "True" => true,
            "false" | "0" | "f" | "F" | "FALSE" | "False" => false,
            _ => return None,
        }),
        Kind::Int => Value::from(v.parse::<i64>().ok()?),
        Kind::Str | Kind::Duration => Value::from(v),
        Kind::List => Value::from(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
        ),
        Kind::Gates => {
            let mut gates = Map::new();
            for gate in v.split(',').filter(|g| !g.trim().is_empty()) {
                let (name, on) = gate.split_once('=')?;
                gates.insert(
                    name.trim().to_owned(),
                    Value::Bool(on.trim().parse::<bool>().ok()?),
                );
            }
            Value::Object(gates)
        }
    })
}

/// Sets `path` (dotted) in a configuration object.
pub fn set(config: &mut Value, path: &str, value: Value) {
    let mut node = config;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else {
            unreachable!("made an object above")
        };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        node = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// The value at `path` (dotted).
pub fn get<'v>(config: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(config, |node, part| node.get(part))
}

/// kiln's hardening drop-in (K3s CIS hardening guide, kube-bench 4.2.x):
/// every kubelet setting that has a configuration field, then the
/// recipe's kubelet arguments that have one (which replace kiln's).
pub fn hardened_dropin(version: Option<K3sVersion>, overrides: &[(String, String)]) -> Value {
    let mut c = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "enabled": true }
        },
        "authorization": { "mode": "Webhook" },
        "readOnlyPort": 0,
        "protectKernelDefaults": true,
        "makeIPTablesUtilChains": true,
        "tlsCipherSuites": k3s::TLS_CIPHER_SUITES,
        "podPidsLimit": k3s::POD_MAX_PIDS,
        "seccompDefault": true
    });
    if streaming_timeout_has_effect(version) {
        set(
            &mut c,
            "streamingConnectionIdleTimeout",
            Value::from(crate::containerd::STREAM_IDLE_TIMEOUT),
        );
    }
    for (flag, value) in overrides {
        if let Some((path, kind)) = field_of(flag)
            && let Some(v) = flag_value(kind, value)
        {
            set(&mut c, path, v);
        }
    }
    c
}

/// The drop-in's text: a comment, then JSON (which is YAML, as the
/// kubelet reads drop-ins).
pub fn render_dropin(config: &Value) -> String {
    let json = serde_json::to_string_pretty(config).expect("a JSON value serialises");
    format!(
        "# Written by kiln: the kubelet's hardening (K3s CIS hardening guide). K3s copies\n\
         # this directory into {K3S_DIR}/20-cli-config-dir\n\
         # at every start (kubelet-arg config-dir); command-line flags override it.\n\
         {json}\n"
    )
}

/// Parses one drop-in: JSON, or the block-YAML subset.
pub fn parse(text: &str) -> Result<Value, (u32, String)> {
    let body: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with('#') {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let trimmed = body.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed).map_err(|e| (e.line() as u32, e.to_string()));
    }
    if trimmed.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let lines: Vec<(u32, usize, &str)> = text
        .lines()
        .enumerate()
        .filter_map(|(n, raw)| {
            let content = strip_comment(raw).trim_end();
            let t = content.trim_start();
            (!t.is_empty() && t != "---").then(|| (n as u32 + 1, content.len() - t.len(), t))
        })
        .collect();
    let mut i = 0;
    let value = block(&lines, &mut i, 0)?;
    if let Some((line, _, _)) = lines.get(i) {
        return Err((*line, "unexpected indentation".into()));
    }
    Ok(value)
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return &line[..i],
            None => {}
        }
        previous = c;
    }
    line
}

/// A map or a list whose items start at `indent`.
fn block(
    lines: &[(u32, usize, &str)],
    i: &mut usize,
    indent: usize,
) -> Result<Value, (u32, String)> {
    let Some(&(_, first_indent, first)) = lines.get(*i) else {
        return Ok(Value::Null);
    };
    if first_indent < indent {
        return Ok(Value::Null);
    }
    let indent = first_indent;
    if first == "-" || first.starts_with("- ") {
        let mut items = Vec::new();
        while let Some(&(line, ind, text)) = lines.get(*i) {
            if ind != indent || !(text == "-" || text.starts_with("- ")) {
                break;
            }
            *i += 1;
            items.push(scalar(line, text[1..].trim())?);
        }
        return Ok(Value::Array(items));
    }
    let mut map = Map::new();
    while let Some(&(line, ind, text)) = lines.get(*i) {
        if ind < indent {
            break;
        }
        if ind > indent {
            return Err((line, "unexpected indentation".into()));
        }
        let (key, rest) =
            split_key(text).ok_or((line, format!("expected `key: value`, found \"{text}\"")))?;
        let key = match scalar(line, key)? {
            Value::String(s) => s,
            other => other.to_string(),
        };
        *i += 1;
        let value = if rest.is_empty() {
            match lines.get(*i) {
                Some(&(_, next, t))
                    if next > indent || (next == indent && (t == "-" || t.starts_with("- "))) =>
                {
                    block(lines, i, next)?
                }
                _ => Value::Null,
            }
        } else {
            scalar(line, rest)?
        };
        if map.insert(key.clone(), value).is_some() {
            return Err((line, format!("{key} appears twice")));
        }
    }
    Ok(Value::Object(map))
}

fn split_key(s: &str) -> Option<(&str, &str)> {
    if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = s[1..].find(q)? + 1;
        let rest = s[close + 1..].trim_start().strip_prefix(':')?;
        return Some((&s[..=close], rest.trim()));
    }
    let bytes = s.as_bytes();
    (0..bytes.len())
        .find(|&i| bytes[i] == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' '))
        .map(|i| (s[..i].trim_end(), s[i + 1..].trim()))
}

/// A scalar or a flow list/map, as YAML 1.2 (sigs.k8s.io/yaml) reads it.
fn scalar(line: u32, s: &str) -> Result<Value, (u32, String)> {
    let s = s.trim();
    if s.starts_with('[') || s.starts_with('{') {
        // flow collections of plain or double-quoted scalars: JSON once the
        // plain words are quoted
        return serde_json::from_str(&quote_plain(s))
            .map_err(|e| (line, format!("flow collection: {e}")));
    }
    if s.starts_with('"') {
        return serde_json::from_str(s).map_err(|e| (line, e.to_string()));
    }
    if let Some(inner) = s.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .ok_or((line, "unterminated quote".to_owned()))?;
        return Ok(Value::from(inner.replace("''", "'")));
    }
    if s.starts_with(['&', '*', '!', '|', '>', '%', '@', '`']) {
        return Err((
            line,
            format!("\"{s}\": anchors, tags and block scalars are not read here"),
        ));
    }
    Ok(match s {
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        "~" | "null" | "Null" | "NULL" | "" => Value::Null,
        other => match (other.parse::<i64>(), other.parse::<f64>()) {
            (Ok(n), _) => Value::from(n),
            (_, Ok(f))
                if other
                    .chars()
                    .all(|c| c.is_ascii_digit() || ".-+eE".contains(c)) =>
            {
                Value::from(f)
            }
            _ => Value::from(other),
        },
    })
}

/// `[a, "b", 3]` → `["a", "b", 3]`.
fn quote_plain(s: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let flush = |word: &mut String, out: &mut String| {
        let w = word.trim();
        if !w.is_empty() {
            if w.parse::<f64>().is_ok() || ["true", "false", "null"].contains(&w) {
                out.push_str(w);
            } else {
                out.push_str(&serde_json::to_string(w).expect("a string serialises"));
            }
        }
        word.clear();
    };
    for c in s.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '[' | ']' | '{' | '}' | ',' | ':' => {
                flush(&mut word, &mut out);
                out.push(c);
            }
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Merges a drop-in into the configuration as the kubelet does: maps key by
/// key, everything else replaced. Records each leaf's source.
fn merge(
    into: &mut Value,
    from: &Value,
    prefix: &str,
    source: &Source,
    sources: &mut BTreeMap<String, Source>,
) {
    let (Value::Object(into_map), Value::Object(from_map)) = (&mut *into, from) else {
        *into = from.clone();
        record(from, prefix, source, sources);
        return;
    };
    for (k, v) in from_map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match into_map.get_mut(k) {
            Some(existing) if existing.is_object() && v.is_object() => {
                merge(existing, v, &path, source, sources)
            }
            _ => {
                into_map.insert(k.clone(), v.clone());
                record(v, &path, source, sources);
            }
        }
    }
}

fn record(value: &Value, path: &str, source: &Source, sources: &mut BTreeMap<String, Source>) {
    sources.retain(|p, _| !(p == path || p.starts_with(&format!("{path}."))));
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                record(v, &format!("{path}.{k}"), source, sources);
            }
        }
        _ => {
            sources.insert(path.to_owned(), source.clone());
        }
    }
}

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub path: String,
    /// 0 when unknown (a JSON or YAML drop-in).
    pub line: u32,
    pub kind: SourceKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The kubelet's own default.
    Kubelet,
    /// What K3s writes to 00-k3s-defaults.conf (or passes as flags).
    K3s,
    /// A drop-in file.
    DropIn,
    /// A kubelet-arg flag.
    Flag,
}

/// The kubelet's effective configuration, for the fields kiln hardens.
#[derive(Clone, Debug, Default)]
pub struct Kubelet {
    pub version: Option<K3sVersion>,
    pub config: Value,
    sources: BTreeMap<String, Source>,
    /// Drop-ins read, in the kubelet's order: (path it is read from).
    pub dropins: Vec<String>,
    /// The first drop-in this reader could not parse: (path, line, message).
    pub error: Option<(String, u32, String)>,
    /// Drop-ins are not read by this K3s release (before 1.30).
    pub dropins_ignored: bool,
}

impl Kubelet {
    /// The effective kubelet of the image (or live root).
    pub fn load(image: &Image, config: &K3sConfig, version: Option<K3sVersion>) -> Kubelet {
        let mut k = Kubelet {
            version,
            config: Value::Object(Map::new()),
            ..Kubelet::default()
        };
        let k3s_source = Source {
            path: K3S_DEFAULTS.to_owned(),
            line: 0,
            kind: SourceKind::K3s,
        };
        // K3s's defaults (pkg/daemons/agent defaultKubeletConfig)
        let mut defaults = serde_json::json!({
            "authentication": { "anonymous": { "enabled": false }, "webhook": { "enabled": true } },
            "authorization": { "mode": "Webhook" },
            "readOnlyPort": 0,
            "streamingConnectionIdleTimeout": "4h"
        });
        let pkd = config.scalar("protect-kernel-defaults");
        set(
            &mut defaults,
            "protectKernelDefaults",
            Value::Bool(pkd.as_ref().is_some_and(|i| i.text == "true")),
        );
        k.apply(&defaults, &k3s_source);
        if let Some(item) = pkd {
            k.sources.insert(
                "protectKernelDefaults".into(),
                Source {
                    path: item.path,
                    line: item.line,
                    kind: SourceKind::K3s,
                },
            );
        }
        let honoured = version.is_none_or(|v| v.at_least(DROPINS_SINCE));
        // (name in the kubelet's directory, path read from)
        let mut files: Vec<(String, String)> = Vec::new();
        walk(image, K3S_DIR, "", &mut files);
        files.retain(|(name, _)| name != "00-k3s-defaults.conf");
        if let Some(item) = config.kubelet_arg("config") {
            files.push(("10-cli-config.conf".into(), item.text.trim().to_owned()));
        }
        if let Some(item) = config.kubelet_arg("config-dir") {
            let mut copied = Vec::new();
            walk(image, item.text.trim(), "20-cli-config-dir/", &mut copied);
            files.extend(copied);
        }
        files.sort();
        for (_, path) in files {
            if !honoured {
                k.dropins_ignored = true;
                break;
            }
            let Some(text) = image.read_text(&path) else {
                continue;
            };
            match parse(&text) {
                Ok(value) => {
                    k.dropins.push(path.clone());
                    k.apply(
                        &value,
                        &Source {
                            path,
                            line: 0,
                            kind: SourceKind::DropIn,
                        },
                    );
                }
                Err((line, message)) => {
                    if k.error.is_none() {
                        k.error = Some((path, line, message));
                    }
                }
            }
        }
        // flags win over every file
        for (flag, path, kind) in FIELDS {
            if let Some(item) = config.kubelet_arg(flag) {
                let value = flag_value(*kind, &item.text).unwrap_or(Value::from(item.text.clone()));
                k.apply_at(
                    path,
                    value,
                    &Source {
                        path: item.path.clone(),
                        line: item.line,
                        kind: SourceKind::Flag,
                    },
                );
            }
        }
        k
    }

    fn apply(&mut self, value: &Value, source: &Source) {
        let mut value = value.clone();
        if let Value::Object(map) = &mut value {
            map.remove("apiVersion");
            map.remove("kind");
        }
        merge(&mut self.config, &value, "", source, &mut self.sources);
    }

    fn apply_at(&mut self, path: &str, value: Value, source: &Source) {
        let mut patch = Value::Object(Map::new());
        set(&mut patch, path, value);
        self.apply(&patch, source);
    }

    /// The value of a field and where it comes from; `None` when nothing
    /// sets it (the kubelet's default applies).
    pub fn get(&self, path: &str) -> Option<(&Value, &Source)> {
        let value = get(&self.config, path)?;
        let source = self.sources.get(path).or_else(|| {
            self.sources
                .iter()
                .find(|(p, _)| p.starts_with(&format!("{path}.")))
                .map(|(_, s)| s)
        })?;
        Some((value, source))
    }
}

/// `*.conf` files under `dir`, recursively, named relative to it.
fn walk(image: &Image, dir: &str, prefix: &str, out: &mut Vec<(String, String)>) {
    for (name, path) in image.list_dir(dir) {
        let p = path.as_str();
        if image.is_dir(p) {
            walk(image, p, &format!("{prefix}{name}/"), out);
        } else if name.ends_with(".conf") && image.is_file(p) {
            out.push((format!("{prefix}{name}"), p.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_urls_and_names() {
        let v =
            K3sVersion::find("https://github.com/k3s-io/k3s/releases/download/v1.36.4%2Bk3s1/k3s")
                .unwrap();
        assert_eq!(v.to_string(), "v1.36.4+k3s1");
        assert!(v.at_least(34));
        assert_eq!(
            K3sVersion::find("v1.31.2+k3s1\n").map(|v| v.minor),
            Some(31)
        );
        assert_eq!(K3sVersion::find("k3s"), None);
        assert!(!streaming_timeout_has_effect(None));
        assert!(streaming_timeout_has_effect(K3sVersion::find(
            "v1.33.1+k3s1"
        )));
    }

    #[test]
    fn reads_yaml_and_json_dropins() {
        let y = parse(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nauthentication:\n  anonymous:\n    enabled: true # hm\n  x509:\n    clientCAFile: /ca.pem\ntlsCipherSuites:\n- A\n- \"B\"\nfeatureGates: {RotateKubeletServerCertificate: false}\npodPidsLimit: 100\nstreamingConnectionIdleTimeout: 5m0s\n",
        )
        .unwrap();
        assert_eq!(
            get(&y, "authentication.anonymous.enabled"),
            Some(&Value::Bool(true))
        );
        assert_eq!(
            get(&y, "tlsCipherSuites"),
            Some(&serde_json::json!(["A", "B"]))
        );
        assert_eq!(
            get(&y, "featureGates.RotateKubeletServerCertificate"),
            Some(&Value::Bool(false))
        );
        assert_eq!(get(&y, "podPidsLimit"), Some(&Value::from(100)));
        let j = parse(&render_dropin(&hardened_dropin(None, &[]))).unwrap();
        assert_eq!(get(&j, "seccompDefault"), Some(&Value::Bool(true)));
        assert!(get(&j, "streamingConnectionIdleTimeout").is_none());
        assert!(parse("a:\n  b: |\n    x\n").is_err());
        assert!(parse("a: 1\n   b: 2\n").is_err());
    }

    #[test]
    fn flags_become_fields() {
        let c = hardened_dropin(
            K3sVersion::find("v1.33.0+k3s1"),
            &[
                ("pod-max-pids".into(), "2048".into()),
                ("feature-gates".into(), "A=true,B=false".into()),
            ],
        );
        assert_eq!(get(&c, "podPidsLimit"), Some(&Value::from(2048)));
        assert_eq!(get(&c, "featureGates.B"), Some(&Value::Bool(false)));
        assert_eq!(
            get(&c, "streamingConnectionIdleTimeout"),
            Some(&Value::from("5m"))
        );
    }
}
