//! OpenSSH public keys as written in `authorized_keys`: checked the way
//! sshd would read them (sshkey.c), so a typo in a recipe is an error at
//! its line instead of a node nobody can log in to.
//!
//! A line is `[options] TYPE BASE64 [comment]`. The base64 must decode to
//! the wire form of a key whose inner type string equals TYPE, with the
//! fields that type has and nothing after them.

use base64::Engine as _;

/// What a valid key is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: String,
    /// The modulus size of an RSA key.
    pub rsa_bits: Option<u32>,
    /// The line, normalised to `[options ]TYPE BASE64[ comment]`.
    pub line: String,
}

/// Key types sshd accepts for users (OpenSSH 9.x).
pub const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A cursor over the SSH wire format (RFC 4251 strings and mpints).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn string(&mut self, what: &str) -> Result<&'a [u8], String> {
        if self.0.len() < 4 {
            return Err(format!("the key data ends before its {what}"));
        }
        let len = u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]]) as usize;
        let rest = &self.0[4..];
        if rest.len() < len {
            return Err(format!("the key data ends inside its {what}"));
        }
        let (value, after) = rest.split_at(len);
        self.0 = after;
        Ok(value)
    }

    /// A positive mpint's size in bits.
    fn mpint_bits(&mut self, what: &str) -> Result<u32, String> {
        let bytes = self.string(what)?;
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(format!("the key's {what} is negative"));
        }
        let trimmed: &[u8] = {
            let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
            &bytes[start..]
        };
        Ok(match trimmed.first() {
            None => 0,
            Some(first) => (trimmed.len() as u32 - 1) * 8 + (8 - first.leading_zeros()),
        })
    }
}

/// Checks one authorized_keys line.
pub fn parse_authorized_key(line: &str) -> Result<PublicKey, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("an empty key".into());
    }
    if line.contains(['\n', '\r', '\0']) {
        return Err("a key must be one line".into());
    }
    let (options, rest) = split_options(line)?;
    let mut words = rest.split_whitespace();
    let kind = words
        .next()
        .ok_or("a key type and its base64 data are missing")?;
    if kind == "ssh-dss" {
        return Err("DSA keys (ssh-dss) are refused by OpenSSH 9; use an ssh-ed25519 key".into());
    }
    if kind.ends_with("-cert-v01@openssh.com") {
        return Err(format!(
            "{kind} is a certificate; authorized_keys takes the user's public key (or a CA key with the cert-authority option)"
        ));
    }
    if !KEY_TYPES.contains(&kind) {
        let hint = kiln_diag::did_you_mean(kind, KEY_TYPES.iter().copied())
            .map(|b| format!(", did you mean \"{b}\"?"))
            .unwrap_or_else(|| format!("; known types: {}", KEY_TYPES.join(", ")));
        return Err(format!("unknown key type \"{kind}\"{hint}"));
    }
    let data = words
        .next()
        .ok_or_else(|| format!("the base64 data of the {kind} key is missing"))?;
    let comment: Vec<&str> = words.collect();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("the key data is not valid base64 ({e})"))?;
    let mut wire = Wire(&blob);
    let inner = wire.string("type")?;
    if inner != kind.as_bytes() {
        return Err(format!(
            "the key data is a \"{}\" key, but the line says \"{kind}\"",
            String::from_utf8_lossy(inner)
        ));
    }
    let mut rsa_bits = None;
    match kind {
        "ssh-ed25519" | "sk-ssh-ed25519@openssh.com" => {
            let pk = wire.string("public key")?;
            if pk.len() != 32 {
                return Err(format!(
                    "an Ed25519 public key has 32 bytes, this one {}",
                    pk.len()
                ));
            }
            if kind.starts_with("sk-") {
                wire.string("application")?;
            }
        }
        "ssh-rsa" => {
            let e = wire.mpint_bits("exponent")?;
            if e == 0 {
                return Err("the RSA exponent is zero".into());
            }
            let n = wire.mpint_bits("modulus")?;
            if n < 1024 {
                return Err(format!(
                    "the RSA modulus has {n} bits; OpenSSH refuses fewer than 1024"
                ));
            }
            rsa_bits = Some(n);
        }
        _ => {
            let curve = wire.string("curve name")?;
            let expected = kind
                .trim_start_matches("sk-")
                .trim_start_matches("ecdsa-sha2-")
                .trim_end_matches("@openssh.com");
            if curve != expected.as_bytes() {
                return Err(format!(
                    "the key's curve is \"{}\", but the type says {expected}",
                    String::from_utf8_lossy(curve)
                ));
            }
            let point = wire.string("public point")?;
            let size = match expected {
                "nistp256" => 65,
                "nistp384" => 97,
                _ => 133,
            };
            if point.len() != size || point[0] != 4 {
                return Err(format!("the {expected} public point is malformed"));
            }
            if kind.starts_with("sk-") {
                wire.string("application")?;
            }
        }
    }
    if !wire.0.is_empty() {
        return Err(format!(
            "the key data has {} unexpected bytes after the key",
            wire.0.len()
        ));
    }
    let mut normalised = String::new();
    if let Some(o) = options {
        normalised.push_str(o);
        normalised.push(' ');
    }
    normalised.push_str(kind);
    normalised.push(' ');
    normalised.push_str(data);
    if !comment.is_empty() {
        normalised.push(' ');
        normalised.push_str(&comment.join(" "));
    }
    Ok(PublicKey {
        kind: kind.to_owned(),
        rsa_bits,
        line: normalised,
    })
}

/// Splits leading options (`from="10.0.0.0/8",no-pty`) off a line whose
/// first word is not a key type. Quotes may hold spaces.
fn split_options(line: &str) -> Result<(Option<&str>, &str), String> {
    let first = line.split_whitespace().next().unwrap_or_default();
    if KEY_TYPES.contains(&first)
        || first == "ssh-dss"
        || first.ends_with("-cert-v01@openssh.com")
        || !first.contains(['=', ','])
            && !OPTION_WORDS.contains(&first.split(',').next().unwrap_or_default())
    {
        return Ok((None, line));
    }
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Ok((Some(&line[..i]), line[i..].trim_start())),
            _ => {}
        }
    }
    if quoted {
        Err("an option's quote is not closed".into())
    } else {
        Err("options but no key".into())
    }
}

/// Options that take no value.
const OPTION_WORDS: &[&str] = &[
    "agent-forwarding",
    "cert-authority",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-user-rc",
    "no-x11-forwarding",
    "port-forwarding",
    "pty",
    "no-touch-required",
    "verify-required",
    "restrict",
    "user-rc",
    "x11-forwarding",
];

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKHgMiGPsO0TL8hebQyPYKOOCl400Sb9d9ZnFoFs6Rff ops@laptop";

    #[test]
    fn accepts_a_real_key_with_options_and_comment() {
        let k = parse_authorized_key(ED).unwrap();
        assert_eq!(k.kind, "ssh-ed25519");
        assert_eq!(k.line, ED);
        let with = format!("from=\"10.0.0.0/8,192.0.2.1\",no-pty {ED}");
        assert_eq!(parse_authorized_key(&with).unwrap().line, with);
        assert_eq!(
            parse_authorized_key(&format!("restrict {ED}"))
                .unwrap()
                .kind,
            "ssh-ed25519"
        );
    }

    #[test]
    fn refuses_typos() {
        let e = parse_authorized_key(&ED.replace("ssh-ed25519 ", "ssh-ed2551 ")).unwrap_err();
        assert_eq!(
            e,
            "unknown key type \"ssh-ed2551\", did you mean \"ssh-ed25519\"?"
        );
        let e = parse_authorized_key(&ED.replace("ssh-ed25519 ", "ssh-rsa ")).unwrap_err();
        assert_eq!(
            e,
            "the key data is a \"ssh-ed25519\" key, but the line says \"ssh-rsa\""
        );
        assert!(parse_authorized_key(&ED.replace("6Rff", "6Rf")).is_err());
        assert!(parse_authorized_key(&ED.replace("AAAAC3", "AAAAC4")).is_err());
        assert!(parse_authorized_key("ssh-ed25519").is_err());
        assert!(parse_authorized_key("").is_err());
    }
}
