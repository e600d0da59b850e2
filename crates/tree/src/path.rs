//! Normalised absolute paths inside an image.

use std::fmt;

/// A normalised absolute path inside the image: `/` or `/a/b`, never
/// `.`/`..` components, empty components, a trailing slash or NUL.
///
/// Paths are UTF-8: an archive member whose name is not is rejected when it
/// is loaded, so the manifest can name every path exactly.
///
/// Paths are bounded ([`MAX_NAME`], [`MAX_PATH`]) so that every image kiln
/// writes can be extracted by GNU tar and held by ext4, EROFS and squashfs.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImagePath(String);

/// The longest component, in bytes: NAME_MAX of ext4, EROFS and squashfs.
pub const MAX_NAME: usize = 255;

/// The longest image path, in bytes, leading `/` included. The archive
/// member is named `./path`, one byte longer, and must fit in PATH_MAX
/// (4096) with its NUL, or GNU tar cannot extract it.
pub const MAX_PATH: usize = 4094;

/// The longest symlink target, in bytes: PATH_MAX less its NUL, what
/// symlink(2) accepts.
pub const MAX_LINK_TARGET: usize = 4095;

/// Why a path was refused. Long paths are named by a short prefix only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Empty,
    Nul,
    /// A `..` component: it could climb out of the image root.
    DotDot,
    /// A component longer than [`MAX_NAME`]: the path up to it, shortened.
    NameTooLong {
        shown: String,
        len: usize,
    },
    /// A path longer than [`MAX_PATH`], shortened.
    TooLong {
        shown: String,
        len: usize,
    },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Empty => f.write_str("empty path"),
            PathError::Nul => f.write_str("path contains a NUL byte"),
            PathError::DotDot => {
                f.write_str("path contains '..', which could escape the image root")
            }
            PathError::NameTooLong { shown, len } => write!(
                f,
                "path \"{shown}\" has a name of {len} bytes; names are at most {MAX_NAME} bytes (ext4, EROFS, squashfs)"
            ),
            PathError::TooLong { shown, len } => write!(
                f,
                "path \"{shown}\" is {len} bytes long; image paths are at most {MAX_PATH} bytes (the archive member ./path must fit in PATH_MAX for tar to extract it)"
            ),
        }
    }
}

/// How many characters of a long value a message shows.
const SHOWN_CHARS: usize = 80;

/// `value` as a message shows it: whole when short, else its first 80
/// characters and "…", so that a hostile name cannot flood a terminal.
pub fn abbreviate(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => value.to_owned(),
        Some((end, _)) => format!("{}…", &value[..end]),
    }
}

/// Refuses a normalised path whose components or length exceed what
/// archives and file systems hold.
fn check_bounds(path: &str) -> Result<(), PathError> {
    let mut start = 0;
    for component in path.split('/') {
        if component.len() > MAX_NAME {
            let end = start + component.len();
            return Err(PathError::NameTooLong {
                shown: abbreviate(&path[..end]),
                len: component.len(),
            });
        }
        start += component.len() + 1;
    }
    if path.len() > MAX_PATH {
        return Err(PathError::TooLong {
            shown: abbreviate(path),
            len: path.len(),
        });
    }
    Ok(())
}

impl std::error::Error for PathError {}

impl ImagePath {
    pub fn root() -> ImagePath {
        ImagePath("/".to_owned())
    }

    /// Normalises `raw`, relative (`etc/x`, `./etc/x`) or absolute
    /// (`/etc/x`), into an image path. `.` and empty components vanish;
    /// `..` is refused rather than resolved, because it only appears in
    /// hostile or sloppy input.
    pub fn new(raw: &str) -> Result<ImagePath, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.contains('\0') {
            return Err(PathError::Nul);
        }
        let mut out = String::with_capacity(raw.len() + 1);
        for component in raw.split('/') {
            match component {
                "" | "." => {}
                ".." => return Err(PathError::DotDot),
                name => {
                    out.push('/');
                    out.push_str(name);
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        check_bounds(&out)?;
        Ok(ImagePath(out))
    }

    /// Wraps a string that is already in normal form, or a range bound
    /// that is only ever compared, never used as a path.
    pub(super) fn from_raw(raw: String) -> ImagePath {
        ImagePath(raw)
    }

    /// Wraps a string in normal form built by walking the tree (a resolved
    /// symlink chain), checking the bounds a new path must meet.
    pub(super) fn from_normal(raw: String) -> Result<ImagePath, PathError> {
        check_bounds(&raw)?;
        Ok(ImagePath(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The containing directory; the root is its own parent.
    pub fn parent(&self) -> ImagePath {
        match self.0.rfind('/') {
            Some(0) | None => ImagePath::root(),
            Some(i) => ImagePath(self.0[..i].to_owned()),
        }
    }

    /// The last component; empty for the root.
    pub fn file_name(&self) -> &str {
        &self.0[self.0.rfind('/').map_or(0, |i| i + 1)..]
    }

    /// Appends one component (which must not contain `/` or be `..`).
    pub fn join(&self, name: &str) -> Result<ImagePath, PathError> {
        ImagePath::new(&format!("{}/{}", self.0, name))
    }

    /// The components after the root, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// True when `self` lies strictly below `dir`.
    pub fn is_below(&self, dir: &ImagePath) -> bool {
        if dir.is_root() {
            return !self.is_root();
        }
        self.0.len() > dir.0.len()
            && self.0.starts_with(&dir.0)
            && self.0.as_bytes()[dir.0.len()] == b'/'
    }

    /// The name an archive member gets: `./` for the root, `./etc/x`
    /// otherwise, as Debian's data.tar and mmdebstrap write them.
    pub fn archive_name(&self) -> String {
        format!(".{}", self.0)
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_relative_absolute_and_dotted_forms() {
        for raw in [
            "etc/ssh",
            "./etc/ssh",
            "/etc/ssh",
            "//etc//./ssh/",
            "etc/ssh/.",
        ] {
            assert_eq!(ImagePath::new(raw).unwrap().as_str(), "/etc/ssh", "{raw}");
        }
        for raw in [".", "./", "/", "//"] {
            assert!(ImagePath::new(raw).unwrap().is_root(), "{raw}");
        }
    }

    #[test]
    fn refuses_dotdot_nul_and_empty() {
        assert_eq!(ImagePath::new("../x"), Err(PathError::DotDot));
        assert_eq!(ImagePath::new("a/../../x"), Err(PathError::DotDot));
        assert_eq!(ImagePath::new("a/.."), Err(PathError::DotDot));
        assert_eq!(ImagePath::new("a\0b"), Err(PathError::Nul));
        assert_eq!(ImagePath::new(""), Err(PathError::Empty));
        assert!(
            ImagePath::new("a/..b/c").is_ok(),
            "'..b' is an ordinary name"
        );
    }

    #[test]
    fn refuses_long_names_and_paths_naming_them_briefly() {
        let name = "n".repeat(MAX_NAME);
        assert!(ImagePath::new(&format!("/etc/{name}")).is_ok());
        let long = format!("/etc/{name}x/more");
        let err = ImagePath::new(&long).unwrap_err();
        assert_eq!(
            err,
            PathError::NameTooLong {
                shown: format!("/etc/{}…", "n".repeat(75)),
                len: 256
            }
        );
        assert!(err.to_string().len() < 250, "{err}");
        // the longest path whose ./ member name GNU tar still extracts
        let deep = |len: usize| {
            let mut p = String::new();
            while p.len() < len {
                let room = (len - p.len() - 1).min(200);
                p.push('/');
                p.push_str(&"d".repeat(room.max(1)));
            }
            assert_eq!(p.len(), len);
            p
        };
        assert!(ImagePath::new(&deep(MAX_PATH)).is_ok());
        for len in [MAX_PATH + 1, 4096] {
            let err = ImagePath::new(&deep(len)).unwrap_err();
            assert!(
                matches!(&err, PathError::TooLong { shown, len: l } if *l == len && shown.chars().count() == 81),
                "{err:?}"
            );
        }
        // joining is checked too, and abbreviation respects characters
        assert!(ImagePath::root().join(&"x".repeat(256)).is_err());
        assert_eq!(abbreviate(&"ü".repeat(100)), format!("{}…", "ü".repeat(80)));
        assert_eq!(abbreviate("short"), "short");
    }

    #[test]
    fn parent_name_and_below() {
        let p = ImagePath::new("/usr/bin/ls").unwrap();
        assert_eq!(p.parent().as_str(), "/usr/bin");
        assert_eq!(p.file_name(), "ls");
        assert_eq!(ImagePath::new("/usr").unwrap().parent(), ImagePath::root());
        assert_eq!(ImagePath::root().parent(), ImagePath::root());
        assert!(p.is_below(&ImagePath::new("/usr").unwrap()));
        assert!(p.is_below(&ImagePath::root()));
        assert!(
            !ImagePath::new("/usrx/a")
                .unwrap()
                .is_below(&ImagePath::new("/usr").unwrap())
        );
        assert!(!p.is_below(&p));
        assert_eq!(p.archive_name(), "./usr/bin/ls");
        assert_eq!(ImagePath::root().archive_name(), "./");
    }

    #[test]
    fn errors_and_debug_say_what_they_mean() {
        // the messages users read when a hostile archive is refused
        assert_eq!(PathError::Empty.to_string(), "empty path");
        assert_eq!(PathError::Nul.to_string(), "path contains a NUL byte");
        assert_eq!(
            PathError::DotDot.to_string(),
            "path contains '..', which could escape the image root"
        );
        let p = ImagePath::new("etc//a b").unwrap();
        assert_eq!(p.to_string(), "/etc/a b");
        assert_eq!(format!("{p:?}"), "\"/etc/a b\"");
    }
}
