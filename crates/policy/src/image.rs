//! A read-only view of an image for the rules: its tree, and where file
//! contents come from — the content store of a build or an archive, or the
//! host directory the tree was walked from (read lazily, only the files a
//! rule asks for).

use kiln_tree::{Entry, ImagePath, Kind, Store, Tree};
use std::cell::RefCell;
use std::io::Read;
use std::path::Path;

/// Where the bytes of the image's files are.
#[derive(Clone, Copy)]
pub enum Contents<'a> {
    /// A content store keyed by the digests in the tree.
    Store(&'a Store),
    /// The host directory the tree describes: `/etc/x` is `ROOT/etc/x`.
    Host(&'a Path),
}

/// The image as the rules see it.
pub struct Image<'a> {
    pub tree: &'a Tree,
    contents: Contents<'a>,
    /// Files that exist but could not be read: the audit cannot vouch for
    /// what it did not see, so these make the report fail.
    errors: RefCell<Vec<String>>,
}

/// Files larger than this are not read by any rule (configuration files
/// are small; this bounds the memory a hostile image can make us use).
const MAX_READ: u64 = 64 << 20;

impl<'a> Image<'a> {
    pub fn new(tree: &'a Tree, contents: Contents<'a>) -> Image<'a> {
        Image {
            tree,
            contents,
            errors: RefCell::new(Vec::new()),
        }
    }

    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut self.errors.borrow_mut())
    }

    fn path(raw: &str) -> Option<ImagePath> {
        ImagePath::new(raw).ok()
    }

    /// The entry at `path` itself (a symlink is not followed).
    pub fn entry(&self, path: &str) -> Option<&'a Entry> {
        self.tree.get(&Self::path(path)?)
    }

    /// `path` with every symlink resolved inside the image.
    pub fn resolve(&self, path: &str) -> Option<ImagePath> {
        self.tree.resolve(&Self::path(path)?, true).ok()
    }

    /// The entry `path` leads to, following symlinks (and hard links to
    /// the file holding the content).
    pub fn stat(&self, path: &str) -> Option<(ImagePath, &'a Entry)> {
        let resolved = self.resolve(path)?;
        let entry = self.tree.get(&resolved)?;
        Some((resolved, entry))
    }

    pub fn exists(&self, path: &str) -> bool {
        self.entry(path).is_some()
    }

    /// True when `path` leads to a regular file (through symlinks).
    pub fn is_file(&self, path: &str) -> bool {
        matches!(
            self.stat(path).map(|(_, e)| &e.kind),
            Some(Kind::File { .. } | Kind::HardLink { .. })
        )
    }

    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.stat(path).map(|(_, e)| &e.kind), Some(Kind::Dir))
    }

    /// The bytes of the file `path` leads to; `None` when it is absent or
    /// not a regular file. Unreadable files are recorded as errors.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let (resolved, entry) = self.stat(path)?;
        let (holder, size) = match &entry.kind {
            Kind::File { size, .. } => (resolved.clone(), *size),
            Kind::HardLink { target } => match self.tree.get(target).map(|e| &e.kind) {
                Some(Kind::File { size, .. }) => (target.clone(), *size),
                _ => return None,
            },
            _ => return None,
        };
        if size > MAX_READ {
            self.error(format!(
                "{path}: {size} bytes, larger than any configuration file this audit reads"
            ));
            return None;
        }
        let result = match self.contents {
            Contents::Store(store) => match &self.tree.get(&holder)?.kind {
                Kind::File { digest, .. } => store.read_to_vec(digest),
                _ => return None,
            },
            Contents::Host(root) => read_host(&kiln_tree::host_path(root, &holder)),
        };
        match result {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.error(format!("{path}: cannot read: {e:#}"));
                None
            }
        }
    }

    /// The text of a file, invalid UTF-8 replaced.
    pub fn read_text(&self, path: &str) -> Option<String> {
        self.read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    fn error(&self, message: String) {
        self.errors.borrow_mut().push(message);
    }

    /// The names in directory `dir` (following symlinks to it), sorted
    /// bytewise, each with the path it is listed under.
    pub fn list_dir(&self, dir: &str) -> Vec<(String, ImagePath)> {
        let Some((resolved, entry)) = self.stat(dir) else {
            return Vec::new();
        };
        if entry.kind != Kind::Dir {
            return Vec::new();
        }
        self.tree
            .descendants(&resolved)
            .filter(|(p, _)| p.parent() == resolved)
            .map(|(p, _)| (p.file_name().to_owned(), p.clone()))
            .collect()
    }

    /// Expands a glob(7) pattern over image paths, as sshd's Include and
    /// nft's include do: `*`, `?` and `[...]` within one component, names
    /// starting with `.` matched only by a pattern starting with `.`,
    /// results sorted bytewise per component.
    pub fn glob(&self, pattern: &str) -> Vec<String> {
        let mut found = vec![String::new()];
        let components: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
        for component in components {
            let mut next = Vec::new();
            let wild = component.contains(['*', '?', '[']);
            for prefix in &found {
                let dir = if prefix.is_empty() { "/" } else { prefix };
                if !wild {
                    next.push(format!("{prefix}/{component}"));
                    continue;
                }
                let Some(matcher) = component_matcher(component) else {
                    continue;
                };
                for (name, _) in self.list_dir(dir) {
                    if name.starts_with('.') && !component.starts_with('.') {
                        continue;
                    }
                    if matcher.is_match(&name) {
                        next.push(format!("{prefix}/{name}"));
                    }
                }
            }
            found = next;
        }
        found
            .into_iter()
            .filter(|p| !p.is_empty() && self.stat(p).is_some())
            .collect()
    }

    /// Every entry, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a ImagePath, &'a Entry)> {
        self.tree.iter()
    }
}

fn component_matcher(component: &str) -> Option<globset::GlobMatcher> {
    globset::GlobBuilder::new(component)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}

/// Reads a host file without following a symlink in its last component:
/// the tree said it is a regular file, and a live system that swapped it
/// for a link since must not make us read somewhere else.
fn read_host(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes)?;
    Ok(bytes)
}
