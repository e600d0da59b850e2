//! Size limits on inputs that are read whole. An untrusted file (a
//! manifest, a signature, a recipe, a lockfile, an archive index) could be
//! gigabytes, or endless; each is read only up to its limit, and a larger
//! one is refused with a message that says which limit it broke.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// The most bytes an input of one kind may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    /// What the input is, for messages: "manifest", "signature".
    pub what: &'static str,
}

impl Limit {
    pub const fn kib(n: u64, what: &'static str) -> Limit {
        Limit {
            bytes: n << 10,
            what,
        }
    }

    pub const fn mib(n: u64, what: &'static str) -> Limit {
        Limit {
            bytes: n << 20,
            what,
        }
    }

    /// `a manifest`, `an InRelease file`.
    fn a_what(&self) -> String {
        let article = if self
            .what
            .starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U'])
        {
            "an"
        } else {
            "a"
        };
        format!("{article} {}", self.what)
    }

    /// The size, as the documentation writes it: `256 MiB`, `64 KiB`.
    pub fn size(&self) -> String {
        match self.bytes {
            b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
            b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
            b => format!("{b} bytes"),
        }
    }
}

/// Why an input could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// It could not be read at all; `context` says what was being read.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// It is larger than its limit.
    TooLarge { name: String, limit: Limit },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io { context, .. } => f.write_str(context),
            ReadError::TooLarge { name, limit } => write!(
                f,
                "{name} is larger than the {} {} may be",
                limit.size(),
                limit.a_what()
            ),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io { source, .. } => Some(source),
            ReadError::TooLarge { .. } => None,
        }
    }
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The whole file at `path`, refused when larger than `limit`: a regular
/// file by its size before a byte is read, anything else (a pipe, a
/// device) after `limit + 1` bytes. An I/O error says
/// `cannot read WHAT PATH`.
pub fn read_file(path: &Path, limit: Limit) -> Result<Vec<u8>, ReadError> {
    let name = path.display().to_string();
    let io = |source| ReadError::Io {
        context: format!("cannot read {} {name}", limit.what),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_file() && meta.len() > limit.bytes {
        return Err(ReadError::TooLarge { name, limit });
    }
    let capacity = if meta.is_file() { meta.len() + 1 } else { 0 };
    read_limited(file, &name, limit, capacity as usize)
}

/// As [`read_file`], as text; not UTF-8 is an error.
pub fn read_file_to_string(path: &Path, limit: Limit) -> Result<String, ReadError> {
    let bytes = read_file(path, limit)?;
    String::from_utf8(bytes).map_err(|_| ReadError::Io {
        context: format!("cannot read {} {}", limit.what, path.display()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"),
    })
}

/// Everything `reader` gives, refused once it gives more than `limit`
/// (`name` says what it is, in messages).
pub fn read_limited(
    reader: impl Read,
    name: &str,
    limit: Limit,
    capacity: usize,
) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::with_capacity(capacity.min(limit.bytes as usize + 1));
    reader
        .take(limit.bytes + 1)
        .read_to_end(&mut out)
        .map_err(|source| ReadError::Io {
            context: format!("cannot read {} {name}", limit.what),
            source,
        })?;
    if out.len() as u64 > limit.bytes {
        return Err(ReadError::TooLarge {
            name: name.to_owned(),
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_documented() {
        assert_eq!(Limit::mib(256, "manifest").size(), "256 MiB");
        assert_eq!(Limit::kib(64, "signature").size(), "64 KiB");
        assert_eq!(
            Limit {
                bytes: 1000,
                what: "x"
            }
            .size(),
            "1000 bytes"
        );
    }

    #[test]
    fn larger_inputs_are_refused_with_the_limit_named() {
        let dir = std::env::temp_dir().join(format!("kiln-diag-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.json");
        std::fs::write(&path, vec![b'x'; 2048]).unwrap();
        let limit = Limit::kib(1, "manifest");
        let err = read_file(&path, limit).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is larger than the 1 KiB a manifest may be",
                path.display()
            )
        );
        std::fs::write(&path, vec![b'x'; 1024]).unwrap();
        assert_eq!(read_file(&path, limit).unwrap().len(), 1024);
        let err = read_file(&dir.join("absent"), Limit::kib(1, "InRelease file")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read InRelease file {}",
                dir.join("absent").display()
            )
        );
        // a stream is cut after limit + 1 bytes
        let err = read_limited(std::io::repeat(0), "stdin", Limit::kib(1, "index"), 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stdin is larger than the 1 KiB an index may be"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
