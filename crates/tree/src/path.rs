//! Normalised absolute paths inside an image.

use std::fmt;

/// A normalised absolute path inside the image: `/` or `/a/b`, never
/// `.`/`..` components, empty components, a trailing slash or NUL.
///
/// Paths are UTF-8: an archive member whose name is not is rejected when it
/// is loaded, so the manifest can name every path exactly.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImagePath(String);

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Empty,
    Nul,
    /// A `..` component: it could climb out of the image root.
    DotDot,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Empty => "empty path",
            PathError::Nul => "path contains a NUL byte",
            PathError::DotDot => "path contains '..', which could escape the image root",
        })
    }
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
        Ok(ImagePath(out))
    }

    /// Wraps a string that is already in normal form, or a range bound
    /// that is only ever compared, never used as a path.
    pub(super) fn from_raw(raw: String) -> ImagePath {
        ImagePath(raw)
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
