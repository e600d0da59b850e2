//! sshd_config as OpenSSH's sshd reads it (servconf.c), for the image's
//! daemon: keywords are case-insensitive and take `keyword value` or
//! `keyword=value`; for most keywords the first value obtained wins;
//! `Include` expands its globs (relative to /etc/ssh) in lexical order and
//! reads the files at its position; a `Match` block runs to the next
//! `Match` or to the end of the file it is in (an included file's Match
//! block ends with that file, as `sshd -T -C` shows).
//!
//! [`SshdConfig::value`] gives the effective global value in the form
//! `sshd -T` prints it, with OpenSSH 9.2's (Debian 12) compiled-in
//! defaults for the keywords the rules check. Match blocks are kept aside:
//! they only apply to some connections, so the rules report them for
//! review instead of guessing who connects.

use super::image::Image;
use std::collections::BTreeMap;

// Where kiln's hardening goes, and the hardened values (one list for the
// recipe's checks, the drop-in kiln writes and the audit).

pub const DROP_IN: &str = "/etc/ssh/sshd_config.d/00-kiln-hardening.conf";
pub const HOSTKEY_UNIT: &str = "kiln-ssh-hostkeys.service";
pub const MODULI: &str = "/etc/ssh/moduli";

pub const MAX_AUTH_TRIES: u32 = 3;
pub const LOGIN_GRACE_TIME: u32 = 60;
pub const CLIENT_ALIVE_INTERVAL: u32 = 300;
pub const CLIENT_ALIVE_COUNT_MAX: u32 = 3;
pub const MAX_SESSIONS: u32 = 10;
pub const MAX_STARTUPS: &str = "10:30:60";
pub const BANNER: &str = "/etc/issue.net";
pub const REQUIRED_RSA_SIZE: u32 = 3072;

/// The hardened defaults (ssh-audit's "Hardened Debian 12" policy).
pub const KEX: &[&str] = &[
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group-exchange-sha256",
];
/// What a recipe may pick from, and the audit accepts, without weakening:
/// the defaults and the post-quantum hybrids. The cipher and MAC defaults
/// are also the strong lists.
pub const KEX_STRONG: &[&str] = &[
    "sntrup761x25519-sha512@openssh.com",
    // the same algorithm under its standard name (OpenSSH 9.9, Debian's 9.2)
    "sntrup761x25519-sha512",
    // hybrid post-quantum, stronger than the policy's first choice; a
    // recipe cannot pick it while Debian's OpenSSH does not know it
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group-exchange-sha256",
];
pub const CIPHERS: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
];
pub const MACS: &[&str] = &[
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "umac-128-etm@openssh.com",
];
pub const HOST_KEY_ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-256",
];
pub const HOST_KEY_STRONG: &[&str] = &[
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-256-cert-v01@openssh.com",
];

/// What OpenSSH 9.2 (Debian 12) knows (`ssh -Q kex|cipher|mac|key-sig`).
pub const KEX_KNOWN: &[&str] = &[
    "diffie-hellman-group1-sha1",
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group-exchange-sha1",
    "diffie-hellman-group-exchange-sha256",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
];
pub const CIPHERS_KNOWN: &[&str] = &[
    "3des-cbc",
    "aes128-cbc",
    "aes192-cbc",
    "aes256-cbc",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
];
pub const MACS_KNOWN: &[&str] = &[
    "hmac-sha1",
    "hmac-sha1-96",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-md5",
    "hmac-md5-96",
    "umac-64@openssh.com",
    "umac-128@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "hmac-sha1-96-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-md5-etm@openssh.com",
    "hmac-md5-96-etm@openssh.com",
    "umac-64-etm@openssh.com",
    "umac-128-etm@openssh.com",
];
pub const HOST_KEY_KNOWN: &[&str] = &[
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-512-cert-v01@openssh.com",
    "ssh-rsa",
    "ssh-rsa-cert-v01@openssh.com",
];

/// The host key file of a key type.
/// Where sshd's configuration lives, and the directory relative
/// `Include` paths start from.
pub const MAIN_CONFIG: &str = "/etc/ssh/sshd_config";
const CONFIG_DIR: &str = "/etc/ssh";
/// servconf.c's SERVCONF_MAX_DEPTH.
const MAX_DEPTH: usize = 16;

/// One keyword line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub args: Vec<String>,
    pub path: String,
    pub line: u32,
}

#[derive(Clone, Debug)]
pub struct MatchBlock {
    pub criteria: String,
    pub path: String,
    pub line: u32,
    /// (lowercase keyword, setting), in file order.
    pub settings: Vec<(String, Setting)>,
}

/// The effective value of a keyword.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// As `sshd -T` prints it (lowercase keywords' values normalised).
    pub text: String,
    /// The line that set it; `None` for the compiled-in default.
    pub origin: Option<(String, u32)>,
}

impl Value {
    /// `path:line`, or "compiled-in default".
    pub fn origin_text(&self) -> String {
        match &self.origin {
            Some((path, line)) => format!("{path}:{line}"),
            None => "compiled-in default".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct SshdConfig {
    /// Every file read, in reading order.
    pub files: Vec<String>,
    first: BTreeMap<String, Setting>,
    lists: BTreeMap<String, Vec<Setting>>,
    pub matches: Vec<MatchBlock>,
    /// Lines sshd would refuse (bad quoting, includes nested too deep).
    pub problems: Vec<(String, u32, String)>,
}

/// Keywords whose lines accumulate instead of first-wins.
const ACCUMULATE: &[&str] = &[
    "acceptenv",
    "allowgroups",
    "allowusers",
    "denygroups",
    "denyusers",
    "hostcertificate",
    "hostkey",
    "listenaddress",
    "port",
    "setenv",
    "subsystem",
];

/// Old names sshd still accepts, and the keyword they set.
fn canonical_keyword(keyword: &str) -> String {
    let lower = keyword.to_ascii_lowercase();
    match lower.as_str() {
        "challengeresponseauthentication" => "kbdinteractiveauthentication".into(),
        "pubkeyacceptedkeytypes" => "pubkeyacceptedalgorithms".into(),
        "hostbasedacceptedkeytypes" => "hostbasedacceptedalgorithms".into(),
        _ => lower,
    }
}

pub const DEFAULT_KEX: &str = "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256";
pub const DEFAULT_CIPHERS: &str = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com";
pub const DEFAULT_MACS: &str = "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1";
pub const DEFAULT_HOST_KEY_ALGORITHMS: &str = "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256";

/// The compiled-in defaults of OpenSSH 9.2 (Debian 12), as `sshd -T`
/// prints them, for every keyword [`SshdConfig::value`] answers.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("allowagentforwarding", "yes"),
    ("allowstreamlocalforwarding", "yes"),
    ("allowtcpforwarding", "yes"),
    ("authenticationmethods", "any"),
    ("banner", "none"),
    ("ciphers", DEFAULT_CIPHERS),
    ("clientalivecountmax", "3"),
    ("clientaliveinterval", "0"),
    ("disableforwarding", "no"),
    ("gatewayports", "no"),
    ("gssapiauthentication", "no"),
    ("hostbasedauthentication", "no"),
    ("hostkeyalgorithms", DEFAULT_HOST_KEY_ALGORITHMS),
    ("ignorerhosts", "yes"),
    ("kbdinteractiveauthentication", "yes"),
    ("kexalgorithms", DEFAULT_KEX),
    ("loglevel", "INFO"),
    ("logingracetime", "120"),
    ("macs", DEFAULT_MACS),
    ("maxauthtries", "6"),
    ("maxsessions", "10"),
    ("maxstartups", "10:30:100"),
    ("passwordauthentication", "yes"),
    ("permitemptypasswords", "no"),
    ("permitrootlogin", "without-password"),
    ("permittunnel", "no"),
    ("permituserenvironment", "no"),
    ("pubkeyauthentication", "yes"),
    ("requiredrsasize", "1024"),
    ("strictmodes", "yes"),
    ("x11forwarding", "no"),
];

impl SshdConfig {
    /// Reads `/etc/ssh/sshd_config` and what it includes. An absent file
    /// is an empty configuration: the compiled-in defaults apply.
    pub fn load(image: &Image) -> SshdConfig {
        let mut config = SshdConfig::default();
        if image.is_file(MAIN_CONFIG) {
            config.read_file(image, MAIN_CONFIG, None, 0);
        }
        config
    }

    /// Parses `text` as if it were the main configuration file (tests).
    pub fn parse_text(image: &Image, path: &str, text: &str) -> SshdConfig {
        let mut config = SshdConfig::default();
        config.files.push(path.to_owned());
        config.parse(image, path, text, None, 0);
        config
    }

    fn read_file(&mut self, image: &Image, path: &str, in_match: Option<usize>, depth: usize) {
        let Some(text) = image.read_text(path) else {
            return;
        };
        self.files.push(path.to_owned());
        self.parse(image, path, &text, in_match, depth);
    }

    fn parse(
        &mut self,
        image: &Image,
        path: &str,
        text: &str,
        in_match: Option<usize>,
        depth: usize,
    ) {
        // A Match block started in this file ends with this file.
        let mut current = in_match;
        for (index, raw) in text.lines().enumerate() {
            let line = index as u32 + 1;
            let Some((keyword, args)) = split_line(raw) else {
                continue;
            };
            let args = match args {
                Ok(args) => args,
                Err(e) => {
                    self.problems.push((path.to_owned(), line, e));
                    continue;
                }
            };
            let keyword = canonical_keyword(&keyword);
            let setting = Setting {
                args: args.clone(),
                path: path.to_owned(),
                line,
            };
            match keyword.as_str() {
                "match" => {
                    self.matches.push(MatchBlock {
                        criteria: args.join(" "),
                        path: path.to_owned(),
                        line,
                        settings: Vec::new(),
                    });
                    current = Some(self.matches.len() - 1);
                }
                "include" => {
                    if depth + 1 > MAX_DEPTH {
                        self.problems.push((
                            path.to_owned(),
                            line,
                            format!("Include nested deeper than {MAX_DEPTH} levels"),
                        ));
                        continue;
                    }
                    for pattern in &args {
                        let absolute = if pattern.starts_with('/') {
                            pattern.clone()
                        } else {
                            format!("{CONFIG_DIR}/{pattern}")
                        };
                        for file in image.glob(&absolute) {
                            if image.is_file(&file) {
                                self.read_file(image, &file, current, depth + 1);
                            }
                        }
                    }
                }
                _ => match current {
                    Some(block) => self.matches[block].settings.push((keyword, setting)),
                    None if ACCUMULATE.contains(&keyword.as_str()) => {
                        self.lists.entry(keyword).or_default().push(setting);
                    }
                    None => {
                        self.first.entry(keyword).or_insert(setting);
                    }
                },
            }
        }
    }

    /// The global line that set `keyword` first, if any.
    pub fn setting(&self, keyword: &str) -> Option<&Setting> {
        self.first.get(keyword)
    }

    /// Every global line of an accumulating keyword (AllowUsers, HostKey…).
    pub fn list(&self, keyword: &str) -> &[Setting] {
        self.lists.get(keyword).map_or(&[], |v| v.as_slice())
    }

    /// The effective global value of `keyword` (lowercase), as `sshd -T`
    /// prints it. `None` only for keywords without a modelled default that
    /// are not set.
    pub fn value(&self, keyword: &str) -> Option<Value> {
        let default = DEFAULTS
            .iter()
            .find(|(k, _)| *k == keyword)
            .map(|(_, v)| *v);
        match self.first.get(keyword) {
            Some(setting) => Some(Value {
                text: normalise(keyword, &setting.args, default),
                origin: Some((setting.path.clone(), setting.line)),
            }),
            None => default.map(|d| Value {
                text: d.to_owned(),
                origin: None,
            }),
        }
    }

    /// The value a Match block sets for `keyword`, normalised like
    /// [`SshdConfig::value`].
    pub fn match_values<'a>(
        &'a self,
        keyword: &'a str,
    ) -> impl Iterator<Item = (&'a MatchBlock, Value)> + 'a {
        self.matches.iter().filter_map(move |block| {
            let (_, setting) = block.settings.iter().find(|(k, _)| k == keyword)?;
            let default = DEFAULTS
                .iter()
                .find(|(k, _)| *k == keyword)
                .map(|(_, v)| *v);
            Some((
                block,
                Value {
                    text: normalise(keyword, &setting.args, default),
                    origin: Some((setting.path.clone(), setting.line)),
                },
            ))
        })
    }
}

/// Splits a line into its keyword and arguments; `None` for blank lines
/// and comments.
fn split_line(raw: &str) -> Option<(String, Result<Vec<String>, String>)> {
    let line = raw.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\x0c');
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line.find([' ', '\t', '=']).unwrap_or(line.len());
    let keyword = &line[..end];
    if keyword.is_empty() {
        return None;
    }
    let mut rest = line[end..].trim_start_matches([' ', '\t']);
    if let Some(after) = rest.strip_prefix('=') {
        rest = after.trim_start_matches([' ', '\t']);
    }
    Some((keyword.to_owned(), argv_split(rest)))
}

/// OpenSSH's argv_split with comments: words split on whitespace, single
/// or double quotes group, a backslash escapes a quote, a backslash or a
/// space, and an unquoted word starting with `#` ends the line.
fn argv_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            break;
        };
        if first == '#' {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            match quote {
                None if c == ' ' || c == '\t' => break,
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    chars.next();
                }
                Some(q) if c == q => {
                    quote = None;
                    chars.next();
                }
                _ if c == '\\' => {
                    chars.next();
                    match chars.peek() {
                        Some(&n) if n == '\\' || n == '"' || n == '\'' || n == ' ' => {
                            word.push(n);
                            chars.next();
                        }
                        _ => word.push('\\'),
                    }
                }
                _ => {
                    word.push(c);
                    chars.next();
                }
            }
        }
        if quote.is_some() {
            return Err("unterminated quote".into());
        }
        out.push(word);
    }
    Ok(out)
}

/// A keyword's arguments in `sshd -T`'s form.
fn normalise(keyword: &str, args: &[String], default: Option<&str>) -> String {
    let first = args.first().map(String::as_str).unwrap_or("");
    match keyword {
        "permitrootlogin" => match first.to_ascii_lowercase().as_str() {
            "prohibit-password" | "without-password" => "without-password".into(),
            other => other.into(),
        },
        "logingracetime" | "clientaliveinterval" => match parse_time(first) {
            Some(seconds) => seconds.to_string(),
            None => first.into(),
        },
        "loglevel" => first.to_ascii_uppercase(),
        "allowtcpforwarding" => match first.to_ascii_lowercase().as_str() {
            "all" => "yes".into(),
            other => other.into(),
        },
        "maxstartups" => {
            let parts: Vec<&str> = first.split(':').collect();
            match parts.as_slice() {
                [begin] => format!("{begin}:30:{begin}"),
                _ => first.into(),
            }
        }
        "kexalgorithms" | "ciphers" | "macs" | "hostkeyalgorithms" => {
            assemble_algorithms(first, default.unwrap_or("")).join(",")
        }
        "authenticationmethods" | "banner" | "permituserenvironment" => {
            if first.eq_ignore_ascii_case("none") && keyword == "banner" {
                "none".into()
            } else if first.eq_ignore_ascii_case("any") && keyword == "authenticationmethods" {
                "any".into()
            } else if matches!(first.to_ascii_lowercase().as_str(), "yes" | "no")
                && keyword == "permituserenvironment"
            {
                first.to_ascii_lowercase()
            } else {
                args.join(" ")
            }
        }
        _ => {
            let lower = first.to_ascii_lowercase();
            if matches!(lower.as_str(), "yes" | "no") {
                lower
            } else {
                args.join(" ")
            }
        }
    }
}

/// sshd's convtime: `90`, `1m30s`, `2h`; `None` when malformed.
pub fn parse_time(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !number.is_empty() {
        total = total.checked_add(number.parse().ok()?)?;
    }
    Some(total)
}

/// kex_assemble_names: a plain list replaces the default; `+list`
/// appends, `^list` prepends (duplicates keep their first place) and
/// `-list` removes the names matching its wildcard patterns.
pub fn assemble_algorithms(spec: &str, default: &str) -> Vec<String> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let defaults = split(default);
    let dedup = |list: Vec<String>| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for item in list {
            if !out.contains(&item) {
                out.push(item);
            }
        }
        out
    };
    if let Some(rest) = spec.strip_prefix('+') {
        let mut all = defaults;
        all.extend(split(rest));
        dedup(all)
    } else if let Some(rest) = spec.strip_prefix('^') {
        let mut all = split(rest);
        all.extend(defaults);
        dedup(all)
    } else if let Some(rest) = spec.strip_prefix('-') {
        let patterns = split(rest);
        defaults
            .into_iter()
            .filter(|name| !patterns.iter().any(|p| wildcard_match(p, name)))
            .collect()
    } else {
        dedup(split(spec))
    }
}

/// OpenSSH's match_pattern: `*` and `?` wildcards, whole string.
pub use crate::wildcard::matches as wildcard_match;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Contents, Image};
    use kiln_tree::{Store, Tree};

    fn config(text: &str) -> SshdConfig {
        let tree = Tree::new();
        let store = Store::discard();
        let image = Image::new(&tree, Contents::Store(&store));
        SshdConfig::parse_text(&image, MAIN_CONFIG, text)
    }

    #[test]
    fn first_value_wins_and_keywords_ignore_case() {
        let c = config("passwordauthentication no\nPasswordAuthentication yes\n");
        let v = c.value("passwordauthentication").unwrap();
        assert_eq!(v.text, "no");
        assert_eq!(v.origin, Some((MAIN_CONFIG.to_owned(), 1)));
    }

    #[test]
    fn equals_sign_quotes_and_comments() {
        let c = config("MaxSessions=4 # four\nBanner \"/etc/issue net\"\n");
        assert_eq!(c.value("maxsessions").unwrap().text, "4");
        assert_eq!(c.value("banner").unwrap().text, "/etc/issue net");
    }

    #[test]
    fn defaults_apply_when_unset() {
        let c = config("");
        assert_eq!(c.value("permitrootlogin").unwrap().text, "without-password");
        assert_eq!(c.value("permitrootlogin").unwrap().origin, None);
    }

    #[test]
    fn algorithm_lists_follow_kex_assemble_names() {
        assert_eq!(
            assemble_algorithms("-*sha1*,umac-64*", DEFAULT_MACS),
            [
                "umac-128-etm@openssh.com",
                "hmac-sha2-256-etm@openssh.com",
                "hmac-sha2-512-etm@openssh.com",
                "umac-128@openssh.com",
                "hmac-sha2-256",
                "hmac-sha2-512"
            ]
        );
        assert_eq!(
            assemble_algorithms("^hmac-sha2-512", "a,hmac-sha2-512,b"),
            ["hmac-sha2-512", "a", "b"]
        );
        assert_eq!(assemble_algorithms("+x,a", "a,b"), ["a", "b", "x"]);
    }

    #[test]
    fn match_blocks_are_kept_aside() {
        let c =
            config("Match User bob\n PasswordAuthentication yes\nMatch all\n X11Forwarding yes\n");
        assert_eq!(c.value("passwordauthentication").unwrap().origin, None);
        assert_eq!(c.matches.len(), 2);
        let (block, value) = c.match_values("passwordauthentication").next().unwrap();
        assert_eq!(block.criteria, "User bob");
        assert_eq!(value.text, "yes");
    }

    #[test]
    fn times_and_unterminated_quotes() {
        assert_eq!(parse_time("1m30s"), Some(90));
        assert_eq!(parse_time("2h"), Some(7200));
        assert_eq!(parse_time("x"), None);
        let c = config("Banner \"/etc/x\n");
        assert_eq!(c.problems.len(), 1);
    }
}
