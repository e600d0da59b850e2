//! Checks of single recipe values: names, versions, architectures, image
//! paths and globs, modes and owners, the check timer.

use super::value::RawValue;
use super::*;
use kiln_diag::quote;
use kiln_tree::PathError;

pub(super) fn check_name(loc: &Loc, what: &str, name: &str) -> Result<String, RecipeError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !ok {
        return Err(loc.error(format!(
            "{what} {name} is not valid: use 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit (it becomes part of file names)", name = quote(name)
        )));
    }
    Ok(name.to_owned())
}

pub(super) fn check_version(loc: &Loc, version: &str) -> Result<String, RecipeError> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+~_-".contains(c));
    if !ok {
        return Err(loc.error(format!(
            "version {version} is not valid: use letters, digits and . + ~ _ -, starting with a letter or digit, like \"1.2.0\"", version = quote(version)
        )));
    }
    Ok(version.to_owned())
}

pub(super) fn check_arch(loc: &Loc, arch: &str) -> Result<String, RecipeError> {
    if ARCHES.contains(&arch) {
        return Ok(arch.to_owned());
    }
    // The kernel's and GNU's names for Debian's architectures.
    let debian_name = match arch {
        "aarch64" | "arm64v8" => Some("arm64"),
        "x86_64" | "x86-64" | "x64" => Some("amd64"),
        "armv7" | "armv7l" | "armhfp" => Some("armhf"),
        "ppc64le" => Some("ppc64el"),
        _ => None,
    };
    Err(loc.error(
        match debian_name.or_else(|| did_you_mean(arch, ARCHES.iter().copied())) {
            Some(best) => format!(
                "unknown arch {arch}, did you mean {best}?",
                arch = quote(arch),
                best = quote(best)
            ),
            None => format!(
                "unknown arch {arch}; known: {}",
                ARCHES.join(", "),
                arch = quote(arch)
            ),
        },
    ))
}

/// The architectures a list entry applies to, written after it as Debian
/// writes them in build dependencies: `"linux-image-cloud-arm64 [arm64]"`,
/// `"console=ttyS0,115200 [amd64 i386]"`, `"foo [!arm64]"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchFilter {
    negated: bool,
    arches: Vec<String>,
}

impl ArchFilter {
    pub fn admits(&self, arch: &str) -> bool {
        self.arches.iter().any(|a| a == arch) != self.negated
    }
}

/// An entry with its optional [`ArchFilter`], kept until the image's
/// architecture is known (the recipe, or `--arch`).
#[derive(Debug, Clone)]
pub struct ForArch<T> {
    pub value: T,
    pub only: Option<ArchFilter>,
}

impl<T> ForArch<T> {
    pub fn admits(&self, arch: &str) -> bool {
        self.only.as_ref().is_none_or(|f| f.admits(arch))
    }
}

/// Splits `"NAME [ARCH ...]"` into the entry and its filter; an entry
/// without a trailing `[...]` applies to every architecture.
pub(super) fn arch_qualified<'a>(
    loc: &Loc,
    raw: &'a str,
) -> Result<(&'a str, Option<ArchFilter>), RecipeError> {
    let Some(open) = raw.rfind(" [").filter(|_| raw.ends_with(']')) else {
        return Ok((raw, None));
    };
    let example = "write the architectures after the entry, like \"linux-image-cloud-arm64 [arm64]\" or \"foo [!arm64]\"";
    let list: Vec<&str> = raw[open + 2..raw.len() - 1].split_whitespace().collect();
    if list.is_empty() {
        return Err(loc.error(format!("the architecture list is empty; {example}")));
    }
    let negated = list[0].starts_with('!');
    let mut arches = Vec::new();
    for item in list {
        if item.starts_with('!') != negated {
            return Err(loc.error(format!(
                "an architecture list either names architectures or excludes them (\"!arch\"), not both; {example}"
            )));
        }
        arches.push(check_arch(loc, item.trim_start_matches('!'))?);
    }
    Ok((raw[..open].trim_end(), Some(ArchFilter { negated, arches })))
}

/// An absolute image path: `dest = "/etc/motd"`.
pub(crate) fn image_path(loc: &Loc, field: &str, raw: &str) -> Result<ImagePath, RecipeError> {
    if !raw.starts_with('/') {
        return Err(loc.error(format!(
            "{field} {raw} must be an absolute path in the image, like {}",
            quote(&format!("/{}", raw.trim_start_matches("./"))),
            raw = quote(raw)
        )));
    }
    let path = ImagePath::new(raw).map_err(|e| path_error(loc, field, raw, e))?;
    if path.is_root() {
        return Err(loc.error(format!(
            "{field} {raw} is the image root; name a path below it",
            raw = quote(raw)
        )));
    }
    if raw.len() > 1 && raw.ends_with('/') {
        return Err(loc.error(format!(
            "{field} {raw} ends with '/'; name the file itself, like {}",
            quote(raw.trim_end_matches('/')),
            raw = quote(raw)
        )));
    }
    Ok(path)
}

/// Reads and parses a minisign public key named by a recipe (relative to
/// the recipe's folder), with the error at the key's place.
pub(super) fn public_key(
    file: &Arc<SourceFile>,
    dir: &Path,
    key: &Spanned<String>,
) -> Result<kiln_minisign::PublicKey, RecipeError> {
    let key_loc = Loc::new(file, key.span());
    let path = dir.join(key.get_ref());
    let text = kiln_diag::read_file(&path, crate::signing::PUBLIC_KEY_LIMIT).map_err(|e| {
        key_loc.error(match e {
            kiln_diag::ReadError::Io { source, .. } => format!(
                "cannot read public key {}: {source} (paths are relative to the recipe's folder)",
                quote(key.get_ref())
            ),
            kiln_diag::ReadError::TooLarge { limit, .. } => format!(
                "public key {} is larger than the {} a public key may be",
                quote(key.get_ref()),
                limit.size()
            ),
        })
    })?;
    kiln_minisign::PublicKey::parse(&text).map_err(|e| {
        key_loc.error(format!(
            "{} is not a minisign public key: {}",
            quote(key.get_ref()),
            kiln_diag::clip_quoted(&e.to_string())
        ))
    })
}

pub(super) fn check_timer(
    file: &Arc<SourceFile>,
    dir: &Path,
    timer: Spanned<String>,
    keys: Vec<Spanned<String>>,
    binary: Option<Spanned<String>>,
) -> Result<CheckTimerPlan, RecipeError> {
    let timer_loc = Loc::new(file, timer.span());
    let on_calendar = timer.into_inner();
    if on_calendar.trim().is_empty() || on_calendar.chars().any(char::is_control) {
        return Err(timer_loc.error(
            "timer must be a systemd calendar expression, like \"daily\" or \"*-*-* 03:00\"",
        ));
    }
    let mut baked = Vec::new();
    for key in keys {
        let path = dir.join(key.get_ref());
        let key_loc = Loc::new(file, key.span());
        public_key(file, dir, &key)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = if name.ends_with(".pub") {
            name
        } else {
            format!("{name}.pub")
        };
        if baked.iter().any(|(n, _): &(String, PathBuf)| *n == name) {
            return Err(key_loc.error(format!(
                "two keys would both be /etc/kiln/keys/{name}; rename one"
            )));
        }
        baked.push((name, path));
    }
    let binary = match binary {
        Some(b) => image_path(&Loc::new(file, b.span()), "binary", b.get_ref())?,
        None => ImagePath::new(kiln_policy::node::NODE_PROGRAM)
            .map_err(|e| timer_loc.error(format!("the default binary path: {e}")))?,
    };
    Ok(CheckTimerPlan {
        on_calendar,
        keys: baked,
        binary,
        fleet: None,
        loc: timer_loc,
    })
}

/// An absolute image directory, the root included: an overlay's `dest`.
pub(super) fn image_dir(loc: &Loc, raw: &str) -> Result<ImagePath, RecipeError> {
    if !raw.starts_with('/') {
        return Err(loc.error(format!(
            "dest {raw} must be an absolute directory in the image, like {}",
            quote(&format!("/{}", raw.trim_start_matches("./"))),
            raw = quote(raw)
        )));
    }
    ImagePath::new(raw).map_err(|e| path_error(loc, "dest", raw, e))
}

/// An invalid image path; one too long is named by its start only (the
/// error does), never quoted whole.
fn path_error(loc: &Loc, field: &str, raw: &str, e: PathError) -> RecipeError {
    match e {
        PathError::NameTooLong { .. } | PathError::TooLong { .. } => {
            loc.error(format!("{field}: {e}"))
        }
        _ => loc.error(format!("{field} \"{raw}\": {e}")),
    }
}

/// A glob over absolute image paths: `*` stays within one component,
/// `**` crosses them.
pub(super) fn image_glob(loc: &Loc, pattern: &str) -> Result<GlobMatcher, RecipeError> {
    if !pattern.starts_with('/') {
        return Err(loc.error(format!(
            "{pattern} must be an absolute image path or glob, like {}",
            quote(&format!("/{}", pattern.trim_start_matches("./"))),
            pattern = quote(pattern)
        )));
    }
    if pattern.split('/').any(|c| c == "..") {
        return Err(loc.error(format!(
            "{pattern} contains '..'; name the path directly",
            pattern = quote(pattern)
        )));
    }
    let trimmed = if pattern.len() > 1 {
        pattern.trim_end_matches('/')
    } else {
        pattern
    };
    GlobBuilder::new(trimmed)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g: Glob| g.compile_matcher())
        .map_err(|e| {
            loc.error(format!(
                "invalid glob {pattern}: {}",
                e.kind(),
                pattern = quote(pattern)
            ))
        })
}

/// `mode = "0644"`: up to four octal digits, as a string.
pub(crate) fn mode(file: &Arc<SourceFile>, value: &RawValue) -> Result<u32, RecipeError> {
    let loc = Loc::new(file, value.span());
    match value.get_ref() {
        toml::Value::String(s) => {
            let digits = s.strip_prefix("0o").unwrap_or(s);
            if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
                return Err(loc.error(format!(
                    "invalid mode {s}: expected up to four octal digits, like \"0644\" or \"4755\"", s = quote(s)
                )));
            }
            u32::from_str_radix(digits, 8).map_err(|_| {
                loc.error(format!(
                    "invalid mode {}: expected up to four octal digits",
                    quote(s)
                ))
            })
        }
        toml::Value::Integer(_) => Err(loc.error(
            "write the mode as a quoted octal string, like \"0644\" or \"4755\" (TOML reads a bare number as decimal)",
        )),
        other => Err(loc.error(format!(
            "invalid mode {other}: expected a quoted octal string, like \"0644\""
        ))),
    }
}

/// `owner = "root"` or `owner = 0`.
pub(super) fn owner(
    file: &Arc<SourceFile>,
    value: &RawValue,
    field: &str,
) -> Result<OwnerSpec, RecipeError> {
    let loc = Loc::new(file, value.span());
    let owner = match value.get_ref() {
        toml::Value::String(name) if is_account_name(name) => Owner::Name(name.clone()),
        toml::Value::String(name) => {
            return Err(loc.error(format!(
                "{field} {name} is not a valid user or group name",
                name = quote(name)
            )));
        }
        toml::Value::Integer(id) => Owner::Id(u32::try_from(*id).map_err(|_| {
            loc.error(format!(
                "{field} id {id} is out of range: ids are 0 to 4294967295"
            ))
        })?),
        other => {
            return Err(loc.error(format!(
                "invalid {field} {other}: expected a name like \"root\" or a number like 0"
            )));
        }
    };
    Ok(OwnerSpec { owner, loc })
}

/// Names as useradd accepts them (Debian's relaxed rules, minus spaces).
fn is_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-$".contains(c))
}
