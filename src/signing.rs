//! Keys and manifest signatures as the command line uses them: key files,
//! passwords and signing. Verifying a signed manifest is in
//! [`kiln_check::trust`] (the node verifies too), re-exported here; the
//! minisign formats themselves are in [`kiln_minisign`].

use crate::manifest::Manifest;
use anyhow::{Context, Result, anyhow, bail};
use kiln_diag::{Limit, read_file};
use kiln_minisign::{KeyId, SecretKey, Signature};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

pub use kiln_check::trust::*;

/// The environment variable a pipeline sets to unlock an encrypted key.
pub const PASSWORD_ENV: &str = "KILN_KEY_PASSWORD";

pub const SECRET_KEY_LIMIT: Limit = Limit::kib(64, "secret key");
/// Largest password file read (only its first line is used).
pub const PASSWORD_FILE_LIMIT: Limit = Limit::kib(64, "password file");

/// Where a key password comes from, in this order: a file named on the
/// command line, the environment, a prompt when stdin is a terminal.
pub fn password(file: Option<&Path>, prompt: &str, confirm: bool) -> Result<Option<String>> {
    if let Some(file) = file {
        let bytes = read_file(file, PASSWORD_FILE_LIMIT)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow!("password file {} is not UTF-8 text", file.display()))?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_owned()));
    }
    if let Ok(value) = std::env::var(PASSWORD_ENV) {
        return Ok(Some(value));
    }
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let first = rpassword::prompt_password(prompt)?;
    if confirm && rpassword::prompt_password("Repeat the password: ")? != first {
        bail!("the passwords do not match");
    }
    Ok(Some(first))
}

/// The paths `kiln keygen -o STEM` writes.
pub fn key_paths(stem: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut name = stem.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    (with(".pub"), with(".key"))
}

/// Generates a key pair: `STEM.key` (mode 0600, never overwritten unless
/// `force`) and `STEM.pub`. The secret key is encrypted when `password`
/// is given.
pub fn keygen(
    stem: &Path,
    password: Option<&str>,
    force: bool,
) -> Result<(PathBuf, PathBuf, KeyId)> {
    let (public_path, secret_path) = key_paths(stem);
    if !force {
        for path in [&public_path, &secret_path] {
            if path.exists() {
                bail!(
                    "{} already exists; use --force to replace it",
                    path.display()
                );
            }
        }
    }
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        if dir.exists() && !dir.is_dir() {
            bail!(
                "cannot write keys into {}: it is not a directory",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let secret = SecretKey::generate()?;
    let public = secret.public_key();
    kiln_tree::write_atomic(
        &secret_path,
        secret.to_file_string(password)?.as_bytes(),
        0o600,
    )?;
    kiln_tree::write_atomic(
        &public_path,
        public.to_file_string(None)?.as_bytes(),
        kiln_tree::PUBLIC_FILE,
    )?;
    Ok((public_path, secret_path, secret.key_id()))
}

/// Reads a secret key, asking for its password only when it is encrypted.
pub fn load_secret_key(path: &Path, password_file: Option<&Path>) -> Result<SecretKey> {
    let text = read_file(path, SECRET_KEY_LIMIT)?;
    match SecretKey::parse(&text, None) {
        Ok(key) => Ok(key),
        Err(kiln_minisign::Error::PasswordRequired) => {
            let prompt = format!("Password for {}: ", path.display());
            let Some(password) = password(password_file, &prompt, false)? else {
                bail!(
                    "secret key {} is encrypted: give --password-file FILE, set {PASSWORD_ENV}, or run on a terminal to be asked",
                    path.display()
                );
            };
            SecretKey::parse(&text, Some(&password))
                .with_context(|| format!("secret key {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("secret key {}", path.display())),
    }
}

/// Signs manifest bytes. Deterministic: the same key and manifest always
/// give the same signature file.
pub fn sign_manifest(
    key: &SecretKey,
    manifest: &Manifest,
    manifest_bytes: &[u8],
) -> Result<Signature> {
    let comment = trusted_comment(manifest, manifest_bytes);
    let untrusted = format!(
        "kiln signature of {}-{} manifest",
        manifest.image.name, manifest.image.version
    );
    Ok(kiln_minisign::sign(
        key,
        manifest_bytes,
        &comment,
        &untrusted,
    )?)
}
