//! The placement policy: the one set of rules by which every input enters
//! the Tree — base tarballs, packages, overlays, recipe files and the tree
//! read back after maintainer scripts. docs/recipe.md ("How inputs enter
//! the image") states them for users.
//!
//! Security rules, the same for every input:
//! - names: no `..`, no absolute member names (checked where names are
//!   read), components of at most 255 bytes and paths of at most 4094
//!   ([`ImagePath`]);
//! - symlinks: an input never writes through a symlink it placed itself.
//!   Symlinks the image had before the input started (merged /usr's
//!   `/bin -> usr/bin`) are followed as dpkg follows them, inside the
//!   image (chroot semantics), and only while they lead to a place inside
//!   the directory the input may write (its scope: `/`, or an overlay's
//!   `dest`);
//! - hard links name a regular file the same input placed earlier;
//! - character and block devices and fifos go below `/dev` only;
//! - a symlink's mode is 0777 ([`Tree::insert`]).
//!
//! What differs between inputs is only how they meet what is already
//! there ([`Flavour`]): tar replaces, dpkg keeps existing directories, a
//! recipe also never replaces a directory with a file.

use crate::{Entry, Followed, ImagePath, Kind, Tree, TreeError, abbreviate};
use std::collections::BTreeSet;
use std::fmt;

/// How an input meets what the image already has at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    /// As tar extracts: a later member replaces anything, and a directory
    /// member gives an existing directory its owner and mode.
    Archive,
    /// As dpkg unpacks: an existing directory keeps its owner and mode,
    /// also when the image reaches it through a symlink it already had.
    Package,
    /// As a recipe writes: like a package for directories (a directory
    /// missing behind a symlink is created there), and a file, symlink or
    /// device never replaces a directory.
    Recipe,
}

/// The policy for one input, with what that input placed so far.
#[derive(Debug)]
pub struct Placement {
    input: String,
    scope: ImagePath,
    flavour: Flavour,
    /// Symlinks this input created or changed: never followed for it.
    planted: BTreeSet<ImagePath>,
    /// Regular files this input placed: what its hard links may name.
    files: BTreeSet<ImagePath>,
}

/// Where an entry went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub path: ImagePath,
    /// A directory that was already there and kept its metadata.
    pub existing_dir: bool,
}

/// An entry refused: the input, the path as the input named it (short),
/// and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceError {
    pub input: String,
    pub path: String,
    pub reason: String,
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.input, self.path, self.reason)
    }
}

impl std::error::Error for PlaceError {}

impl Placement {
    fn new(input: String, scope: ImagePath, flavour: Flavour) -> Placement {
        Placement {
            input,
            scope,
            flavour,
            planted: BTreeSet::new(),
            files: BTreeSet::new(),
        }
    }

    /// A tar archive or a host directory loaded as it is: base tarballs,
    /// the tree read back after maintainer scripts, cached installs.
    /// `input` names it in errors ("base tarball base.tar").
    pub fn archive(input: impl Into<String>) -> Placement {
        Placement::new(input.into(), ImagePath::root(), Flavour::Archive)
    }

    /// A package's data, unpacked as dpkg would ("package curl 8.0").
    pub fn package(input: impl Into<String>) -> Placement {
        Placement::new(input.into(), ImagePath::root(), Flavour::Package)
    }

    /// What a recipe writes: an overlay (`scope` is its resolved `dest`)
    /// or a `[[file]]`, `[[symlink]]` or artifact (`scope` is `/`).
    pub fn recipe(input: impl Into<String>, scope: ImagePath) -> Placement {
        Placement::new(input.into(), scope, Flavour::Recipe)
    }

    pub fn input(&self) -> &str {
        &self.input
    }

    fn error(&self, name: &ImagePath, reason: impl Into<String>) -> PlaceError {
        PlaceError {
            input: self.input.clone(),
            path: abbreviate(name.as_str()),
            reason: reason.into(),
        }
    }

    fn tree_error(&self, name: &ImagePath, error: TreeError) -> PlaceError {
        self.error(name, error.reason())
    }

    /// Refuses a walk through symlinks that follows one this input
    /// placed, or that ends outside the input's scope.
    fn judge(
        &self,
        name: &ImagePath,
        landed: &ImagePath,
        followed: &[Followed],
    ) -> Result<(), PlaceError> {
        if let Some(own) = followed.iter().find(|f| self.planted.contains(&f.link)) {
            return Err(self.error(
                name,
                format!(
                    "{} is a symlink to \"{}\" placed by this same input; an input never writes through its own symlinks",
                    own.link,
                    abbreviate(&own.target)
                ),
            ));
        }
        if *landed == self.scope || landed.is_below(&self.scope) {
            return Ok(());
        }
        let how = match followed.first() {
            Some(f) => format!(
                "the symlink {} -> \"{}\" leads to {landed}",
                f.link,
                abbreviate(&f.target)
            ),
            None => format!("it lands at {landed}"),
        };
        Err(self.error(
            name,
            format!(
                "{how}, outside {}, the directory this input may write",
                self.scope
            ),
        ))
    }

    /// Where an entry named `name` by this input lands: its parent
    /// resolved through symlinks the image already had (chroot semantics).
    pub fn locate(&self, tree: &Tree, name: &ImagePath) -> Result<ImagePath, PlaceError> {
        if name.is_root() {
            return Ok(ImagePath::root());
        }
        let (parent, followed) = tree
            .resolve_traced(&name.parent(), true)
            .map_err(|e| self.tree_error(name, e))?;
        let landed = parent
            .join(name.file_name())
            .map_err(|e| self.error(name, e.to_string()))?;
        self.judge(name, &landed, &followed)?;
        Ok(landed)
    }

    /// Refuses a device node or fifo that would land outside /dev.
    pub fn check_kind(
        &self,
        name: &ImagePath,
        landed: &ImagePath,
        kind: &Kind,
    ) -> Result<(), PlaceError> {
        let what = match kind {
            Kind::CharDevice { .. } => "character device",
            Kind::BlockDevice { .. } => "block device",
            Kind::Fifo => "fifo",
            _ => return Ok(()),
        };
        if landed.is_below(&ImagePath::new("/dev").expect("a valid path")) {
            return Ok(());
        }
        let at = if landed == name {
            String::new()
        } else {
            format!(" (it would land at {landed})")
        };
        Err(self.error(
            name,
            format!(
                "a {what} outside /dev{at}; device nodes and fifos are only accepted below /dev"
            ),
        ))
    }

    /// Places `entry` at `name` under this policy; returns where it went.
    pub fn place(
        &mut self,
        tree: &mut Tree,
        name: &ImagePath,
        entry: Entry,
    ) -> Result<Placed, PlaceError> {
        let Entry { mut kind, meta } = entry;
        let mut landed = self.locate(tree, name)?;
        if let Kind::HardLink { target } = &kind {
            let at = self.locate(tree, target)?;
            if tree.contains(&at) && !self.files.contains(&at) {
                return Err(self.error(
                    name,
                    format!(
                        "hard link to {target}, which this input did not place; a hard link names an earlier file of the same input"
                    ),
                ));
            }
            kind = Kind::HardLink { target: at };
        }
        self.check_kind(name, &landed, &kind)?;
        if kind == Kind::Dir && self.flavour != Flavour::Archive {
            let through = match tree.get(&landed).map(|e| &e.kind) {
                Some(Kind::Symlink { .. }) if !self.planted.contains(&landed) => {
                    let (to, followed) = tree
                        .resolve_traced(&landed, true)
                        .map_err(|e| self.tree_error(name, e))?;
                    self.judge(name, &to, &followed)?;
                    Some(to)
                }
                _ => None,
            };
            let existing = through.clone().unwrap_or_else(|| landed.clone());
            if tree.get(&existing).is_some_and(|e| e.kind == Kind::Dir) {
                return Ok(Placed {
                    path: existing,
                    existing_dir: true,
                });
            }
            if let (Some(to), Flavour::Recipe) = (through, self.flavour) {
                // like mkdir -p through the link, as cp would
                landed = to;
            }
        }
        if self.flavour == Flavour::Recipe
            && kind != Kind::Dir
            && tree.get(&landed).is_some_and(|e| e.kind == Kind::Dir)
        {
            return Err(self.error(
                name,
                format!(
                    "{landed} is a directory in the image; refusing to replace it with a {}",
                    kind.name()
                ),
            ));
        }
        let plants = match &kind {
            Kind::Symlink { target } => !matches!(
                tree.get(&landed).map(|e| &e.kind),
                Some(Kind::Symlink { target: old }) if old == target
            ),
            _ => false,
        };
        let is_file = matches!(kind, Kind::File { .. } | Kind::HardLink { .. });
        tree.insert(landed.clone(), Entry { kind, meta })
            .map_err(|e| self.tree_error(name, e))?;
        if plants {
            self.planted.insert(landed.clone());
        } else if tree
            .get(&landed)
            .is_some_and(|e| !matches!(e.kind, Kind::Symlink { .. }))
        {
            self.planted.remove(&landed);
        }
        if is_file {
            self.files.insert(landed.clone());
        } else {
            self.files.remove(&landed);
        }
        Ok(Placed {
            path: landed,
            existing_dir: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Digest, Meta};

    fn p(s: &str) -> ImagePath {
        ImagePath::new(s).unwrap()
    }

    fn file() -> Entry {
        Entry {
            kind: Kind::File {
                digest: Digest::of(b"x"),
                size: 1,
            },
            meta: Meta::root(0o644),
        }
    }

    fn link(target: &str, mode: u32) -> Entry {
        Entry {
            kind: Kind::Symlink {
                target: target.into(),
            },
            meta: Meta::root(mode),
        }
    }

    fn merged_usr() -> Tree {
        let mut t = Tree::new();
        t.insert(p("/usr/bin"), Entry::dir(Meta::root(0o755)))
            .unwrap();
        t.insert(p("/bin"), link("usr/bin", 0o777)).unwrap();
        t
    }

    #[test]
    fn own_symlinks_are_never_written_through_by_any_input() {
        for (target, placement) in [
            ("/etc", Placement::package("package evil 1")),
            ("../../etc", Placement::package("package evil 1")),
            ("/etc", Placement::archive("base tarball b.tar")),
            ("sub", Placement::recipe("r.toml:3:1", ImagePath::root())),
        ] {
            let mut placement = placement;
            let mut t = merged_usr();
            placement
                .place(&mut t, &p("/usr/share/evil/dir"), link(target, 0o644))
                .unwrap();
            let err = placement
                .place(&mut t, &p("/usr/share/evil/dir/x"), file())
                .unwrap_err();
            assert_eq!(err.path, "/usr/share/evil/dir/x");
            assert!(
                err.reason.starts_with(&format!(
                    "/usr/share/evil/dir is a symlink to \"{target}\" placed by this same input"
                )),
                "{err}"
            );
            assert!(err.to_string().starts_with(placement.input()), "{err}");
            assert!(!t.contains(&p("/etc/x")) && !t.contains(&p("/usr/share/evil/sub")));
        }
    }

    #[test]
    fn symlinks_the_image_had_are_followed_inside_the_scope() {
        let mut t = merged_usr();
        let mut package = Placement::package("package tool 1");
        let placed = package.place(&mut t, &p("/bin/tool"), file()).unwrap();
        assert_eq!(placed.path, p("/usr/bin/tool"));
        // a package's /bin/ directory member keeps the image's link
        let placed = package
            .place(&mut t, &p("/bin"), Entry::dir(Meta::root(0o700)))
            .unwrap();
        assert!(placed.existing_dir);
        assert!(matches!(
            t.get(&p("/bin")).unwrap().kind,
            Kind::Symlink { .. }
        ));
        // an overlay onto /etc/app may not follow a link out of /etc/app
        t.insert(p("/etc/app/conf.d"), link("/usr/share/app", 0o777))
            .unwrap();
        let mut overlay = Placement::recipe("overlay ov", p("/etc/app"));
        let err = overlay
            .place(&mut t, &p("/etc/app/conf.d/x"), file())
            .unwrap_err();
        assert_eq!(
            err.reason,
            "the symlink /etc/app/conf.d -> \"/usr/share/app\" leads to /usr/share/app/x, outside /etc/app, the directory this input may write"
        );
        let err = overlay
            .place(&mut t, &p("/etc/app/conf.d"), Entry::dir(Meta::root(0o755)))
            .unwrap_err();
        assert!(err.reason.contains("outside /etc/app"), "{err}");
    }

    #[test]
    fn devices_only_below_dev_and_links_are_0777() {
        let fifo = Entry {
            kind: Kind::Fifo,
            meta: Meta::root(0o644),
        };
        let mut t = Tree::new();
        let mut base = Placement::archive("base tarball b.tar");
        base.place(&mut t, &p("/dev/initctl"), fifo.clone())
            .unwrap();
        let err = base
            .place(&mut t, &p("/tmp/fifo"), fifo.clone())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "base tarball b.tar: /tmp/fifo: a fifo outside /dev; device nodes and fifos are only accepted below /dev"
        );
        let null = Entry {
            kind: Kind::CharDevice { major: 1, minor: 3 },
            meta: Meta::root(0o666),
        };
        assert!(base.place(&mut t, &p("/dev"), null.clone()).is_err());
        // through a link the image had, what counts is where it lands
        t.insert(p("/devlink"), link("/tmp", 0o777)).unwrap();
        let err = Placement::package("package p 1")
            .place(&mut t, &p("/devlink/null"), null)
            .unwrap_err();
        assert!(err.reason.contains("(it would land at /tmp/null)"), "{err}");
        base.place(&mut t, &p("/l"), link("x", 0o644)).unwrap();
        assert_eq!(t.get(&p("/l")).unwrap().meta.mode, 0o777);
    }

    #[test]
    fn hard_links_name_files_of_the_same_input() {
        let mut t = Tree::new();
        t.insert(p("/etc/shadow"), file()).unwrap();
        let mut pkg = Placement::package("package p 1");
        let link_to = |target: &str| Entry {
            kind: Kind::HardLink { target: p(target) },
            meta: Meta::root(0o644),
        };
        let err = pkg
            .place(&mut t, &p("/tmp/shadow"), link_to("/etc/shadow"))
            .unwrap_err();
        assert!(
            err.reason.contains("which this input did not place"),
            "{err}"
        );
        pkg.place(&mut t, &p("/usr/bin/a"), file()).unwrap();
        pkg.place(&mut t, &p("/usr/bin/b"), link_to("/usr/bin/a"))
            .unwrap();
        let err = pkg
            .place(&mut t, &p("/c"), link_to("/nowhere"))
            .unwrap_err();
        assert!(err.reason.contains("the target does not exist"), "{err}");
    }

    #[test]
    fn recipes_never_replace_a_directory() {
        let mut t = Tree::new();
        t.insert(p("/etc/x/y"), file()).unwrap();
        let err = Placement::recipe("r.toml:4:1", ImagePath::root())
            .place(&mut t, &p("/etc/x"), file())
            .unwrap_err();
        assert_eq!(
            err.reason,
            "/etc/x is a directory in the image; refusing to replace it with a file"
        );
        // an archive member does, as tar would
        Placement::archive("b.tar")
            .place(&mut t, &p("/etc/x"), file())
            .unwrap();
        assert!(!t.contains(&p("/etc/x/y")));
    }
}
