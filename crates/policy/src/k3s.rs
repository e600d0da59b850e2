//! K3s's configuration as `k3s agent` reads it (pkg/configfilearg):
//! /etc/rancher/k3s/config.yaml, then every `*.yaml`/`*.yml` (any case)
//! in config.yaml.d in name order; a key's last value wins, `key+:`
//! appends to what earlier files gave (scalars become one-item lists);
//! each list item becomes one `--key=item` flag. `kubelet-arg` and
//! `kube-proxy-arg` items are `name=value` (a leading `--` is allowed);
//! the component sees them in order, so the last one of a name wins.
//! Flags on the k3s unit's ExecStart come after the files, as K3s puts
//! config-file flags before the command line's.
//!
//! YAML: K3s configs are flat maps, so this reads the subset they use —
//! `key: scalar`, `key: [a, "b"]`, `key:` followed by `- item` lines,
//! plain, 'single'- and "double"-quoted scalars, comments, `---`. YAML 1.1
//! booleans (yes/no/on/off/true/false) read as "true"/"false", as
//! gopkg.in/yaml.v2 and K3s's ToString do. Anything else (nested maps,
//! block scalars, anchors, tags, flow maps) is refused with its line, and
//! the rules that need the config then fail rather than guess.

use super::image::Image;
use std::collections::BTreeMap;

pub const CONFIG: &str = "/etc/rancher/k3s/config.yaml";
pub const DROPIN_DIR: &str = "/etc/rancher/k3s/config.yaml.d";
pub const REGISTRIES: &str = "/etc/rancher/k3s/registries.yaml";

// The agent kiln installs and the kubelet settings it hardens (K3s CIS
// hardening guide, kube-bench 4.2.x): the recipe checks a kubelet argument
// against them, the hardening stage writes them, the audit reads them.

pub const UNIT: &str = "k3s-agent.service";
pub const BINARY: &str = "/usr/local/bin/k3s";
pub const TOKEN_FILE: &str = "/var/lib/rancher/k3s/agent-token";
pub const POD_MAX_PIDS: u32 = 4096;

/// The audit rules a kubelet or kube-proxy argument can weaken.
pub const RULES: &[&str] = &[
    "k3s.protect-kernel-defaults",
    "k3s.anonymous-auth",
    "k3s.authorization-mode",
    "k3s.client-ca",
    "k3s.read-only-port",
    "k3s.streaming-timeout",
    "k3s.iptables-chains",
    "k3s.event-qps",
    "k3s.tls-cert",
    "k3s.rotate-certs",
    "k3s.rotate-server-cert",
    "k3s.tls-ciphers",
    "k3s.pod-max-pids",
    "k3s.seccomp-default",
    "k3s.proxy-metrics",
];

fn is_loopback(address: &str) -> bool {
    let host = address
        .trim_start_matches('[')
        .rsplit_once([']', ':'])
        .filter(|(h, p)| p.chars().all(|c| c.is_ascii_digit()) && !h.is_empty())
        .map_or(address, |(h, _)| h)
        .trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The rule a kubelet argument weakens, and why; `None` when it does not.
pub fn kubelet_weakens(name: &str, value: &str) -> Option<(&'static str, String)> {
    let v = value.trim();
    let bad = |rule, why: &str| Some((rule, why.to_owned()));
    match name {
        "protect-kernel-defaults" if v != "true" => bad(
            "k3s.protect-kernel-defaults",
            "the kubelet must refuse kernels with other defaults",
        ),
        "anonymous-auth" if v != "false" => bad(
            "k3s.anonymous-auth",
            "anonymous requests to the kubelet API",
        ),
        "authorization-mode" if v.split(',').any(|m| m.trim() == "AlwaysAllow") => {
            bad("k3s.authorization-mode", "every request authorized")
        }
        "client-ca-file" => bad("k3s.client-ca", "a client CA other than K3s's"),
        "read-only-port" if v != "0" => {
            bad("k3s.read-only-port", "the unauthenticated read-only port")
        }
        "streaming-connection-idle-timeout" => bad(
            "k3s.streaming-timeout",
            "it has had no effect since kubelet 1.34; idle streams are closed by containerd's stream_idle_timeout, which kiln sets to 5m",
        ),
        "make-iptables-util-chains" if v != "true" => bad(
            "k3s.iptables-chains",
            "the kubelet would not manage its iptables chains",
        ),
        "event-qps" if v.parse::<i64>().is_ok_and(|n| n < 0) || v.parse::<i64>().is_err() => {
            bad("k3s.event-qps", "event-qps must be an integer of 0 or more")
        }
        "tls-cert-file" | "tls-private-key-file" => bad(
            "k3s.tls-cert",
            "a fixed serving certificate, the same on every node",
        ),
        "rotate-certificates" if v == "false" => {
            bad("k3s.rotate-certs", "client certificates would not rotate")
        }
        "feature-gates"
            if v.split(',')
                .any(|g| g.replace(' ', "") == "RotateKubeletServerCertificate=false") =>
        {
            bad(
                "k3s.rotate-server-cert",
                "serving certificates would not rotate",
            )
        }
        "tls-cipher-suites" => {
            let strong: &[&str] = TLS_CIPHER_SUITES;
            let weak: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !strong.contains(s))
                .collect();
            if weak.is_empty() && !v.is_empty() {
                None
            } else {
                Some((
                    "k3s.tls-ciphers",
                    format!(
                        "suites outside the hardening guide's six: {}",
                        weak.join(",")
                    ),
                ))
            }
        }
        "pod-max-pids" if v.parse::<i64>().is_ok_and(|n| n > 0) => None,
        "pod-max-pids" => bad("k3s.pod-max-pids", "pods need a positive process limit"),
        "seccomp-default" if v != "true" => {
            bad("k3s.seccomp-default", "containers would run unconfined")
        }
        _ => None,
    }
}

/// The rule a kube-proxy argument weakens.
pub fn kube_proxy_weakens(name: &str, value: &str) -> Option<(&'static str, String)> {
    (name == "metrics-bind-address" && !is_loopback(value)).then(|| {
        (
            "k3s.proxy-metrics",
            "kube-proxy's unauthenticated metrics beyond loopback".to_owned(),
        )
    })
}

/// Kubelet arguments that [k3s] keys set: the key to use instead.
pub fn managed_arg(name: &str) -> Option<&'static str> {
    match name {
        "address" => Some("kubelet_address"),
        _ => None,
    }
}

/// One value, with the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub text: String,
    pub path: String,
    pub line: u32,
}

/// A parsed value: one scalar, or a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum YValue {
    Scalar(Item),
    List(Vec<Item>),
}

impl YValue {
    pub fn items(&self) -> Vec<Item> {
        match self {
            YValue::Scalar(item) => vec![item.clone()],
            YValue::List(items) => items.clone(),
        }
    }
}

/// One `key: value` of one file, as written.
#[derive(Clone, Debug)]
pub struct RawEntry {
    /// Without the `+`.
    pub key: String,
    pub append: bool,
    pub value: YValue,
    pub path: String,
    pub line: u32,
}

#[derive(Clone, Debug, Default)]
pub struct K3sConfig {
    /// Files read, in order.
    pub files: Vec<String>,
    /// Every entry of every file, in reading order.
    pub entries: Vec<RawEntry>,
    /// The merged values.
    merged: BTreeMap<String, YValue>,
    /// The first file this reader could not parse: (path, line, message).
    pub error: Option<(String, u32, String)>,
}

impl K3sConfig {
    pub fn load(image: &Image) -> K3sConfig {
        let mut files = Vec::new();
        if image.is_file(CONFIG) {
            files.push(CONFIG.to_owned());
        }
        for (name, path) in image.list_dir(DROPIN_DIR) {
            let lower = name.to_ascii_lowercase();
            if (lower.ends_with(".yaml") || lower.ends_with(".yml")) && image.is_file(path.as_str())
            {
                files.push(path.as_str().to_owned());
            }
        }
        let mut config = K3sConfig::default();
        for file in files {
            let text = image.read_text(&file).unwrap_or_default();
            config.add_file(&file, &text);
        }
        if let Some((path, line, args)) = unit_command_line(image) {
            config.add_cli_args(&path, line, &args);
        }
        config
    }

    /// Merges flags from the command line, which K3s reads after the
    /// config files: scalar flags replace, repeatable ones append.
    pub fn add_cli_args(&mut self, path: &str, line: u32, args: &[String]) {
        let mut i = 0;
        while i < args.len() {
            let Some(flag) = args[i]
                .strip_prefix("--")
                .or_else(|| args[i].strip_prefix('-'))
            else {
                i += 1;
                continue;
            };
            let (key, value) = match flag.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None if BOOLEAN_FLAGS.contains(&flag)
                    || args.get(i + 1).is_none_or(|next| next.starts_with('-')) =>
                {
                    (flag.to_owned(), "true".to_owned())
                }
                None => {
                    i += 1;
                    (flag.to_owned(), args[i].clone())
                }
            };
            i += 1;
            let item = Item {
                text: value,
                path: path.to_owned(),
                line,
            };
            let append = REPEATABLE_FLAGS.contains(&key.as_str());
            let merged = match (self.merged.remove(&key), append) {
                (Some(old), true) => {
                    let mut items = old.items();
                    items.push(item.clone());
                    YValue::List(items)
                }
                (None, true) => YValue::List(vec![item.clone()]),
                _ => YValue::Scalar(item.clone()),
            };
            self.merged.insert(key.clone(), merged);
            self.entries.push(RawEntry {
                key,
                append,
                value: YValue::Scalar(item),
                path: path.to_owned(),
                line,
            });
        }
    }

    /// Merges one file's text (tests and `load`).
    pub fn add_file(&mut self, path: &str, text: &str) {
        self.files.push(path.to_owned());
        match parse_yaml(path, text) {
            Ok(entries) => {
                for entry in entries {
                    let merged = match (self.merged.remove(&entry.key), entry.append) {
                        (Some(old), true) => {
                            let mut items = old.items();
                            items.extend(entry.value.items());
                            YValue::List(items)
                        }
                        _ => entry.value.clone(),
                    };
                    self.merged.insert(entry.key.clone(), merged);
                    self.entries.push(entry);
                }
            }
            Err((line, message)) => {
                if self.error.is_none() {
                    self.error = Some((path.to_owned(), line, message));
                }
            }
        }
    }

    /// The value the flag `key` ends up with: for a list, its last item
    /// (a repeated scalar flag keeps its last value).
    pub fn scalar(&self, key: &str) -> Option<Item> {
        match self.merged.get(key)? {
            YValue::Scalar(item) => Some(item.clone()),
            YValue::List(items) => items.last().cloned(),
        }
    }

    /// Every item of a repeatable flag, in order.
    pub fn list(&self, key: &str) -> Vec<Item> {
        self.merged.get(key).map(YValue::items).unwrap_or_default()
    }

    /// The value the component gets for `--name` through `key`
    /// (kubelet-arg, kube-proxy-arg): the last `name=value` item wins.
    pub fn component_arg(&self, key: &str, name: &str) -> Option<Item> {
        self.list(key).into_iter().rev().find_map(|item| {
            let text = item.text.trim().trim_start_matches('-');
            let (n, v) = text.split_once('=').unwrap_or((text, "true"));
            (n == name).then(|| Item {
                text: v.to_owned(),
                ..item
            })
        })
    }

    pub fn kubelet_arg(&self, name: &str) -> Option<Item> {
        self.component_arg("kubelet-arg", name)
    }
}

/// `k3s agent` flags that take no value.
const BOOLEAN_FLAGS: &[&str] = &[
    "protect-kernel-defaults",
    "selinux",
    "rootless",
    "docker",
    "prefer-bundled-bin",
    "disable-apiserver-lb",
    "disable-default-registry-endpoint",
    "debug",
];

/// Flags K3s accumulates when repeated.
const REPEATABLE_FLAGS: &[&str] = &[
    "kubelet-arg",
    "kube-proxy-arg",
    "node-label",
    "node-taint",
    "node-ip",
    "node-external-ip",
];

/// Where systemd finds K3s's units, most specific first.
use crate::units::SEARCH as UNIT_DIRS;

/// The logical lines (a trailing backslash continues a line) of the k3s
/// unit and then its drop-ins, each with its file and first line number.
pub fn unit_lines(image: &Image) -> Vec<(String, u32, String)> {
    let Some(name) = ["k3s-agent.service", "k3s.service"]
        .into_iter()
        .find(|n| UNIT_DIRS.iter().any(|d| image.is_file(&format!("{d}/{n}"))))
    else {
        return Vec::new();
    };
    let Some(unit) = UNIT_DIRS
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| image.is_file(p))
    else {
        return Vec::new();
    };
    let mut files = vec![unit];
    for dir in UNIT_DIRS {
        for (file, path) in image.list_dir(&format!("{dir}/{name}.d")) {
            if file.ends_with(".conf") {
                files.push(path.as_str().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    for file in files {
        let text = image.read_text(&file).unwrap_or_default();
        let mut logical: Vec<(u32, String)> = Vec::new();
        let mut open = false;
        for (n, raw) in text.lines().enumerate() {
            let (part, continues) = match raw.strip_suffix('\\') {
                Some(part) => (part, true),
                None => (raw, false),
            };
            match logical.last_mut() {
                Some((_, text)) if open => {
                    text.push(' ');
                    text.push_str(part);
                }
                _ => logical.push((n as u32 + 1, part.to_owned())),
            }
            open = continues;
        }
        out.extend(logical.into_iter().map(|(l, t)| (file.clone(), l, t)));
    }
    out
}

/// The `install [OPTIONS] SRC DEST` commands of the k3s unit's
/// ExecStartPre lines: (source, destination), as the unit copies files
/// from the read-only root to K3s's state at every start.
pub fn unit_installs(image: &Image) -> Vec<(String, String)> {
    unit_lines(image)
        .into_iter()
        .filter_map(|(_, _, line)| {
            let value = line.trim().strip_prefix("ExecStartPre=")?;
            let words = shell_words(value.trim_start_matches(['-', '@', '+', '!', ':']));
            let program = words.first()?;
            if !(program == "install" || program.ends_with("/install")) {
                return None;
            }
            let operands: Vec<&String> =
                words[1..].iter().filter(|w| !w.starts_with('-')).collect();
            // `-m MODE` takes a value
            let mode_values = words[1..]
                .windows(2)
                .filter(|w| w[0] == "-m" || w[0] == "-o" || w[0] == "-g")
                .count();
            let operands = &operands[mode_values..];
            match operands {
                [src, dest] => Some(((*src).clone(), (*dest).clone())),
                _ => None,
            }
        })
        .collect()
}

/// The arguments after `k3s agent|server` in the k3s unit's ExecStart
/// (the unit, then its drop-ins; an empty `ExecStart=` resets), with the
/// file and line of the ExecStart that wins.
pub fn unit_command_line(image: &Image) -> Option<(String, u32, Vec<String>)> {
    let mut exec: Option<(String, u32, String)> = None;
    for (file, start, line) in unit_lines(image) {
        if let Some(value) = line.trim().strip_prefix("ExecStart=") {
            let value = value.trim();
            exec = if value.is_empty() {
                None
            } else {
                Some((file.clone(), start, value.to_owned()))
            };
        }
    }
    let (path, line, command) = exec?;
    let words = shell_words(command.trim_start_matches(['-', '@', '+', '!', ':']));
    let sub = words.iter().position(|w| w == "agent" || w == "server")?;
    Some((path, line, words[sub + 1..].to_vec()))
}

/// Splits a systemd command line into words: whitespace separates,
/// single and double quotes group, a backslash escapes.
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

/// Parses the flat YAML subset described in the module documentation.
pub fn parse_yaml(path: &str, text: &str) -> Result<Vec<RawEntry>, (u32, String)> {
    let mut out: Vec<RawEntry> = Vec::new();
    // The key whose value is a block list being read.
    let mut open_list: Option<usize> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index as u32 + 1;
        let content = strip_comment(raw);
        let trimmed = content.trim();
        if trimmed.is_empty() || trimmed == "---" || trimmed == "..." {
            continue;
        }
        if trimmed == "-" || trimmed.starts_with("- ") {
            let Some(i) = open_list else {
                return Err((line, "a list item without a key above it".into()));
            };
            let item_text = trimmed[1..].trim();
            let text = scalar(item_text).map_err(|e| (line, e))?;
            let item = Item {
                text,
                path: path.to_owned(),
                line,
            };
            match &mut out[i].value {
                YValue::List(items) => items.push(item),
                YValue::Scalar(_) => {
                    out[i].value = YValue::List(vec![item]);
                }
            }
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            return Err((
                line,
                "indented mapping: K3s configs are flat `key: value` maps".into(),
            ));
        }
        let (key_text, value_text) = split_key(trimmed)
            .ok_or_else(|| (line, format!("expected `key: value`, found \"{trimmed}\"")))?;
        let key_raw = scalar(key_text).map_err(|e| (line, e))?;
        let append = key_raw.ends_with('+');
        let key = key_raw.trim_end_matches('+').to_owned();
        let value_text = value_text.trim();
        let item = |text: String| Item {
            text,
            path: path.to_owned(),
            line,
        };
        let value = if value_text.is_empty() {
            open_list = Some(out.len());
            // Null, unless list items follow.
            YValue::Scalar(item(String::new()))
        } else if let Some(inner) = value_text.strip_prefix('[') {
            open_list = None;
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| (line, "a flow list must close on the same line".into()))?;
            let mut items = Vec::new();
            for part in split_flow(inner).map_err(|e| (line, e))? {
                items.push(item(scalar(part.trim()).map_err(|e| (line, e))?));
            }
            YValue::List(items)
        } else {
            open_list = None;
            YValue::Scalar(item(scalar(value_text).map_err(|e| (line, e))?))
        };
        out.push(RawEntry {
            key,
            append,
            value,
            path: path.to_owned(),
            line,
        });
    }
    Ok(out)
}

/// `key: value` → (key, value); the colon must be followed by a space or
/// end the line (a colon inside a plain scalar does not split).
fn split_key(s: &str) -> Option<(&str, &str)> {
    if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = s[1..].find(q)? + 1;
        let rest = s[close + 1..].trim_start();
        let value = rest.strip_prefix(':')?;
        return Some((&s[..=close], value));
    }
    let bytes = s.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b':'
            && (i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t')
        {
            return Some((s[..i].trim_end(), &s[i + 1..]));
        }
    }
    None
}

/// Drops a `#` comment: one at the start or after whitespace, outside
/// quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && (previous == ' ' || previous == '\t') => return &line[..i],
            None => {}
        }
        previous = c;
    }
    line
}

/// Splits the inside of `[a, "b,c"]` at top-level commas.
fn split_flow(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '[' || c == '{' => {
                return Err("nested flow collections are not supported".into());
            }
            None if c == ',' => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            None => {}
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    let last = &s[start..];
    if !last.trim().is_empty() || !parts.is_empty() {
        parts.push(last);
    }
    Ok(parts.into_iter().filter(|p| !p.trim().is_empty()).collect())
}

/// One scalar as K3s would turn it into a flag value.
fn scalar(s: &str) -> Result<String, String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or("unterminated double-quoted string")?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('/') => out.push('/'),
                Some(other) => return Err(format!("unsupported escape \\{other}")),
                None => return Err("a trailing backslash".into()),
            }
        }
        return Ok(out);
    }
    if let Some(inner) = s.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .ok_or("unterminated single-quoted string")?;
        return Ok(inner.replace("''", "'"));
    }
    if s.starts_with(['&', '*', '!', '|', '>', '{', '%', '@', '`']) {
        return Err(format!(
            "\"{s}\": anchors, aliases, tags, block scalars and flow maps are not supported in K3s configs here"
        ));
    }
    Ok(match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            "true".into()
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            "false".into()
        }
        "~" | "null" | "Null" | "NULL" => String::new(),
        other => other.to_owned(),
    })
}

/// The kubelet TLS cipher suites of the K3s CIS hardening guide: what
/// kiln sets (`harden::k3s`) and what the audit accepts.
pub const TLS_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
];

/// A Go duration (`5m`, `1h30m`, `300s`, `0`) in seconds; `None` when
/// malformed.
pub fn go_duration_seconds(s: &str) -> Option<f64> {
    let s = s.trim();
    if s == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakenings_name_their_rule() {
        assert_eq!(
            kubelet_weakens("anonymous-auth", "true").unwrap().0,
            "k3s.anonymous-auth"
        );
        assert_eq!(
            kubelet_weakens("streaming-connection-idle-timeout", "4h")
                .unwrap()
                .0,
            "k3s.streaming-timeout"
        );
        // no effect since kubelet 1.34, whatever its value
        let (_, why) = kubelet_weakens("streaming-connection-idle-timeout", "2m").unwrap();
        assert!(why.contains("no effect since kubelet 1.34"), "{why}");
        assert!(kubelet_weakens("pod-max-pids", "1024").is_none());
        assert!(kubelet_weakens("pod-max-pids", "-1").is_some());
        assert!(
            kubelet_weakens("tls-cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").is_none()
        );
        assert!(kubelet_weakens("tls-cipher-suites", "TLS_RSA_WITH_AES_128_CBC_SHA").is_some());
        assert!(kubelet_weakens("max-pods", "200").is_none());
        assert!(kube_proxy_weakens("metrics-bind-address", "0.0.0.0:10249").is_some());
        assert!(kube_proxy_weakens("metrics-bind-address", "127.0.0.1:10249").is_none());
    }

    #[test]
    fn command_line_flags_follow_the_files() {
        let mut c = K3sConfig::default();
        c.add_file(
            "a",
            "kubelet-arg: [\"a=1\"]\nprotect-kernel-defaults: true\n",
        );
        let args = shell_words(
            "'--kubelet-arg=a=2' --protect-kernel-defaults --node-label \"x=y z\" --token=abc --flannel-backend wireguard-native",
        );
        c.add_cli_args("unit", 7, &args);
        assert_eq!(c.kubelet_arg("a").unwrap().text, "2");
        assert_eq!(c.kubelet_arg("a").unwrap().path, "unit");
        assert_eq!(c.list("kubelet-arg").len(), 2);
        assert_eq!(c.scalar("protect-kernel-defaults").unwrap().text, "true");
        assert_eq!(c.scalar("node-label").unwrap().text, "x=y z");
        assert_eq!(
            c.scalar("flannel-backend").unwrap().text,
            "wireguard-native"
        );
        assert!(c.entries.iter().any(|e| e.key == "token"));
    }

    fn merged(files: &[(&str, &str)]) -> K3sConfig {
        let mut c = K3sConfig::default();
        for (path, text) in files {
            c.add_file(path, text);
        }
        c
    }

    #[test]
    fn reads_the_flat_forms() {
        let e = parse_yaml(
            "c",
            "---\n# comment\nprotect-kernel-defaults: true\nnode-label: [\"a=b\", c=d]\nkubelet-arg:\n- \"streaming-connection-idle-timeout=5m\"\n  - 'x=y' # trailing\nempty:\n",
        )
        .unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].value.items()[0].text, "true");
        assert_eq!(
            e[1].value
                .items()
                .iter()
                .map(|i| i.text.as_str())
                .collect::<Vec<_>>(),
            ["a=b", "c=d"]
        );
        assert_eq!(e[2].value.items().len(), 2);
        assert_eq!(e[2].value.items()[1].line, 7);
        assert_eq!(e[3].value.items()[0].text, "");
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(parse_yaml("c", "a:\n  b: c\n").unwrap_err().0, 2);
        assert!(parse_yaml("c", "a: |\n  x\n").is_err());
        assert!(parse_yaml("c", "- x\n").is_err());
    }

    #[test]
    fn last_wins_and_plus_appends() {
        let c = merged(&[
            (
                "a",
                "kubelet-arg: [\"a=1\"]\nprotect-kernel-defaults: false\n",
            ),
            (
                "b",
                "kubelet-arg+: [\"a=2\", \"b=3\"]\nprotect-kernel-defaults: yes\n",
            ),
            ("c", "node-label+: x\n"),
        ]);
        assert_eq!(c.scalar("protect-kernel-defaults").unwrap().text, "true");
        assert_eq!(c.kubelet_arg("a").unwrap().text, "2");
        assert_eq!(c.kubelet_arg("a").unwrap().path, "b");
        assert_eq!(c.list("kubelet-arg").len(), 3);
        assert_eq!(c.list("node-label").len(), 1);
        let replaced = merged(&[
            ("a", "kubelet-arg: [\"a=1\"]\n"),
            ("b", "kubelet-arg: [\"b=1\"]\n"),
        ]);
        assert_eq!(replaced.kubelet_arg("a"), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_seconds("5m"), Some(300.0));
        assert_eq!(go_duration_seconds("1h30m"), Some(5400.0));
        assert_eq!(go_duration_seconds("0"), Some(0.0));
        assert_eq!(go_duration_seconds("0s"), Some(0.0));
        assert_eq!(go_duration_seconds("5"), None);
    }
}
