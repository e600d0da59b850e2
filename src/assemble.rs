//! Applying a recipe's file operations to the Tree, in this order:
//! `[[remove]]` on the base, then `[[overlay]]`, `[[file]]`, `[[symlink]]`.
//! Removal comes first so that what a recipe adds is never removed by a
//! glob meant for the base.
//!
//! Everything is placed by kiln_tree's [`Placement`] policy, the one every
//! input follows: paths the recipe writes to are resolved inside the image
//! the way a chroot would (so `/bin/x` lands in `/usr/bin/x` on a
//! merged-/usr base), which can never leave the image, and an overlay
//! never follows a symlink out of its `dest`. The final component is
//! replaced, not followed: writing `/etc/motd` over a symlink replaces the
//! symlink. Host sources are found without following a symlink out of
//! the recipe's folder ([`host_source`]).

use crate::recipe::{FileContent, Loc, OverlayPlan, Owner, OwnerSpec, Plan, RecipeError};
use anyhow::{Context, Result};
use kiln_policy::accounts::{Database, ids_by_name};
use kiln_tree::{
    Entry, HostKind, ImagePath, Kind, Meta, PlaceError, Placement, Store, Tree, host_source,
    store_host_files, walk_host_dir,
};
use std::collections::BTreeMap;
use std::path::Path;

/// Applies `plan`'s removals, overlays, files and symlinks to `tree`.
/// Returns warnings worth showing (a removal that matched nothing).
pub fn apply(plan: &Plan, tree: &mut Tree, store: &Store) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for remove in &plan.removes {
        let doomed = paths_to_remove(tree, &remove.pattern, &remove.matcher, &remove.loc)?;
        if doomed.is_empty() {
            warnings.push(format!(
                "{}: [[remove]] \"{}\" matched nothing",
                remove.loc.position(),
                remove.pattern
            ));
        }
        for path in doomed {
            tree.remove(&path)
                .map_err(|e| remove.loc.error(e.to_string()))?;
        }
    }
    let mut accounts = Accounts::default();
    for overlay in &plan.overlays {
        apply_overlay(overlay, tree, store, &mut accounts)?;
    }
    for file in &plan.files {
        let (digest, size) = match &file.content {
            FileContent::Inline(text) => store.put(text.as_bytes())?,
            FileContent::Host(path) => store.put(open_source(path, &file.loc)?)?,
        };
        let entry = Entry {
            kind: Kind::File { digest, size },
            meta: Meta::root(file.mode),
        };
        let path = place(tree, &file.dest, entry, &file.loc)?;
        // Owners are looked up after placing, so a [[file]] that writes
        // /etc/passwd can be owned by a user it defines.
        let meta = Meta {
            mode: file.mode,
            uid: accounts.uid(tree, store, file.owner.as_ref())?,
            gid: accounts.gid(tree, store, file.group.as_ref())?,
            xattrs: Default::default(),
        };
        tree.set_meta(&path, meta);
    }
    for link in &plan.symlinks {
        let entry = Entry {
            kind: Kind::Symlink {
                target: link.target.clone(),
            },
            meta: Meta::root(0o777),
        };
        place(tree, &link.path, entry, &link.loc)?;
    }
    Ok(warnings)
}

/// Puts `entry` at `path` under the recipe's placement policy: parents
/// resolved inside the image and created (root-owned, 0755) when missing;
/// a directory is never replaced.
pub fn place(tree: &mut Tree, path: &ImagePath, entry: Entry, loc: &Loc) -> Result<ImagePath> {
    let mut placement = Placement::recipe(loc.position(), ImagePath::root());
    let placed = placement
        .place(tree, path, entry)
        .map_err(|e| loc.error(format!("{}: {}", e.path, e.reason)))?;
    Ok(placed.path)
}

/// The folder of the recipe file `loc` points into: relative host paths
/// in it were joined to this.
fn recipe_dir(loc: &Loc) -> &Path {
    Path::new(&loc.file.name).parent().unwrap_or(Path::new(""))
}

/// Opens a `[[file]] source` without following a host symlink out of the
/// recipe's folder: a link to the host's /etc/shadow must not put the
/// host's shadow file into the image.
fn open_source(path: &Path, loc: &Loc) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let real = host_source(recipe_dir(loc), path).map_err(|e| {
        loc.error(format!(
            "[[file]] source {shown}: {e}; copy the file into the recipe's folder, or use [[symlink]] for a link in the image"
        ))
    })?;
    // `real` has no symlink left; O_NOFOLLOW keeps it so, and a fifo
    // must not block the build
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&real)
        .with_context(|| format!("cannot read {shown}"))?;
    if !file.metadata()?.is_file() {
        return Err(loc
            .error(format!("[[file]] source {shown} is not a regular file"))
            .into());
    }
    Ok(file)
}

/// Paths matching a `[[remove]]` pattern. A pattern without glob
/// characters is a plain path and is resolved through symlinks in its
/// parents; a glob matches paths as they are stored.
fn paths_to_remove(
    tree: &Tree,
    pattern: &str,
    matcher: &globset::GlobMatcher,
    loc: &Loc,
) -> Result<Vec<ImagePath>> {
    if !pattern.contains(['*', '?', '[', '{', '\\']) {
        let path = ImagePath::new(pattern).map_err(|e| loc.error(format!("[[remove]]: {e}")))?;
        let resolved = tree.resolve(&path, false)?;
        return Ok(if tree.contains(&resolved) && !resolved.is_root() {
            vec![resolved]
        } else {
            vec![]
        });
    }
    let mut doomed: Vec<ImagePath> = Vec::new();
    for (path, _) in tree.iter() {
        // A path below one already doomed goes with it.
        if doomed.last().is_some_and(|d| path.is_below(d)) || path.is_root() {
            continue;
        }
        if matcher.is_match(path.as_str()) {
            doomed.push(path.clone());
        }
    }
    Ok(doomed)
}

/// How an overlay entry gets its metadata once owners can be resolved.
enum Placed {
    /// Created by the overlay: the overlay's owner and this mode, then rules.
    New { mode: u32 },
    /// A directory that was already there and that a rule names: it keeps
    /// its metadata except what the rule sets.
    Existing,
}

fn apply_overlay(
    overlay: &OverlayPlan,
    tree: &mut Tree,
    store: &Store,
    accounts: &mut Accounts,
) -> Result<()> {
    let source = host_source(recipe_dir(&overlay.loc), &overlay.source).map_err(|e| {
        overlay
            .loc
            .error(format!("overlay source {}: {e}", overlay.source.display()))
    })?;
    let found = walk_host_dir(&source, &|_| false)?;
    // Hash contents in parallel; place entries in order afterwards.
    let contents = store_host_files(&found, store)?;

    // Phase 1: put every entry in place, root-owned. Names are resolved in
    // phase 2, once the overlay's own /etc/passwd (if it has one) is there.
    let mut placed: Vec<(ImagePath, Placed)> = Vec::new();
    let at_dest = |e: kiln_tree::TreeError| overlay.loc.error(e.to_string());
    let dest_parent = tree
        .create_dir_all(&overlay.dest.parent(), &Meta::root(0o755))
        .map_err(at_dest)?;
    let dest = tree
        .resolve(
            &dest_parent
                .join(overlay.dest.file_name())
                .unwrap_or(dest_parent),
            true,
        )
        .map_err(at_dest)?;
    match tree.get(&dest).map(|e| &e.kind) {
        Some(Kind::Dir) => placed.push((dest.clone(), Placed::Existing)),
        None => {
            tree.insert(dest.clone(), Entry::dir(Meta::root(overlay.dir_mode)))
                .map_err(at_dest)?;
            placed.push((
                dest.clone(),
                Placed::New {
                    mode: overlay.dir_mode,
                },
            ));
        }
        Some(other) => {
            return Err(overlay
                .loc
                .error(format!(
                    "overlay dest {dest} is a {} in the image, not a directory",
                    other.name()
                ))
                .into());
        }
    }
    // The overlay may write below its dest only, as resolved above.
    let mut placement = Placement::recipe(
        format!("overlay {}", overlay.source.display()),
        dest.clone(),
    );
    for (host, content) in found.iter().zip(contents) {
        if host.path.is_root() {
            continue;
        }
        // named as the recipe would (the walk is of the resolved source)
        let shown = overlay
            .source
            .join(host.path.as_str().trim_start_matches('/'));
        let shown = shown.display();
        let err = |e: PlaceError| {
            overlay
                .loc
                .error(format!("overlay file {shown}: {}: {}", e.path, e.reason))
        };
        let logical = join_below(&dest, &host.path)?;
        let (kind, mode) = match (&host.kind, content) {
            (HostKind::File, Some((digest, size))) => {
                let executable = host.mode & 0o111 != 0;
                (
                    Kind::File { digest, size },
                    if executable {
                        overlay.exec_mode
                    } else {
                        overlay.file_mode
                    },
                )
            }
            (HostKind::Symlink { target }, _) => (
                Kind::Symlink {
                    target: target.clone(),
                },
                0o777,
            ),
            // Existing directories (think /tmp, 1777) keep their owner
            // and mode unless a rule names them; symlinks the image has
            // to directories are followed, as cp would.
            (HostKind::Dir, _) => (Kind::Dir, overlay.dir_mode),
            (other, _) => {
                let (what, kind) = match other {
                    HostKind::CharDevice { major, minor } => (
                        "device",
                        Some(Kind::CharDevice {
                            major: *major,
                            minor: *minor,
                        }),
                    ),
                    HostKind::BlockDevice { major, minor } => (
                        "device",
                        Some(Kind::BlockDevice {
                            major: *major,
                            minor: *minor,
                        }),
                    ),
                    HostKind::Fifo => ("fifo", Some(Kind::Fifo)),
                    _ => ("socket", None),
                };
                // the rule every input follows first, then the overlay's own
                if let Some(kind) = kind {
                    let landed = placement.locate(tree, &logical).map_err(err)?;
                    placement
                        .check_kind(&logical, &landed, &kind)
                        .map_err(err)?;
                }
                return Err(overlay
                    .loc
                    .error(format!("overlay file {shown} is a {what}; overlays hold only files, directories and symlinks"))
                    .into());
            }
        };
        let entry = Entry {
            kind,
            meta: Meta::root(mode),
        };
        let at = placement.place(tree, &logical, entry).map_err(err)?;
        placed.push(if at.existing_dir {
            (at.path, Placed::Existing)
        } else {
            (at.path, Placed::New { mode })
        });
    }

    // Phase 2: owners and rules. Rules see the path each entry has in the
    // image, and a later rule overrides an earlier one.
    let uid = accounts.uid(tree, store, overlay.owner.as_ref())?;
    let gid = accounts.gid(tree, store, overlay.group.as_ref())?;
    for (path, how) in placed {
        let rules: Vec<_> = overlay
            .rules
            .iter()
            .filter(|r| r.matcher.is_match(path.as_str()))
            .collect();
        let mut meta = match how {
            Placed::New { mode } => Meta {
                mode,
                uid,
                gid,
                xattrs: Default::default(),
            },
            Placed::Existing if rules.is_empty() => continue,
            Placed::Existing => tree.get(&path).map(|e| e.meta.clone()).unwrap_or_default(),
        };
        for rule in rules {
            if let Some(mode) = rule.mode {
                meta.mode = mode;
            }
            if rule.owner.is_some() {
                meta.uid = accounts.uid(tree, store, rule.owner.as_ref())?;
            }
            if rule.group.is_some() {
                meta.gid = accounts.gid(tree, store, rule.group.as_ref())?;
            }
        }
        tree.set_meta(&path, meta); // a symlink keeps 0777 whatever a rule says
    }
    Ok(())
}

/// `dest` + a path relative to the overlay root.
fn join_below(dest: &ImagePath, relative: &ImagePath) -> Result<ImagePath> {
    Ok(ImagePath::new(&format!(
        "{}{}",
        dest.as_str().trim_end_matches('/'),
        relative
    ))?)
}

/// User and group names of the image, read from its own /etc/passwd and
/// /etc/group (never the build host's). Each table is re-read whenever
/// the file's content changed, since overlays and files may replace it.
#[derive(Default)]
struct Accounts {
    users: AccountTable,
    groups: AccountTable,
}

#[derive(Default)]
struct AccountTable {
    /// The digest the names were read from; `None` when the file is missing.
    source: Option<Option<kiln_tree::Digest>>,
    ids: BTreeMap<String, u32>,
}

impl Accounts {
    fn uid(&mut self, tree: &Tree, store: &Store, spec: Option<&OwnerSpec>) -> Result<u32> {
        resolve_owner(&mut self.users, tree, store, spec, Database::Passwd)
    }

    fn gid(&mut self, tree: &Tree, store: &Store, spec: Option<&OwnerSpec>) -> Result<u32> {
        resolve_owner(&mut self.groups, tree, store, spec, Database::Group)
    }
}

fn resolve_owner(
    table: &mut AccountTable,
    tree: &Tree,
    store: &Store,
    spec: Option<&OwnerSpec>,
    database: Database,
) -> Result<u32> {
    let (what, file) = match database {
        Database::Passwd => ("user", "/etc/passwd"),
        Database::Group => ("group", "/etc/group"),
    };
    let name = match spec.map(|s| &s.owner) {
        None => return Ok(0),
        Some(Owner::Id(id)) => return Ok(*id),
        Some(Owner::Name(name)) if name == "root" => return Ok(0),
        Some(Owner::Name(name)) => name,
    };
    let spec = spec.expect("matched a name above");
    let digest = account_file_digest(tree, file);
    if table.source != Some(digest) {
        table.ids = digest
            .map(|d| read_ids(store, &d, database))
            .unwrap_or_default();
        table.source = Some(digest);
    }
    table.ids.get(name).copied().ok_or_else(|| {
        let known: Vec<&str> = table.ids.keys().map(String::as_str).collect();
        let hint = match kiln_diag::did_you_mean(name, known.iter().copied()) {
            Some(best) => format!("did you mean \"{best}\"?"),
            None if known.is_empty() => format!("the image has no {file}; use a numeric id"),
            None => format!("the image's {file} has: {}", known.join(", ")),
        };
        let e: RecipeError = spec.loc.error(format!(
            "{what} \"{name}\" does not exist in the image; {hint}"
        ));
        e.into()
    })
}

/// The digest of a passwd- or group-format file of the image, if present.
fn account_file_digest(tree: &Tree, file: &str) -> Option<kiln_tree::Digest> {
    let path = ImagePath::new(file).ok()?;
    let resolved = tree.resolve(&path, true).ok()?;
    match tree.get(&resolved) {
        Some(Entry {
            kind: Kind::File { digest, .. },
            ..
        }) => Some(*digest),
        _ => None,
    }
}

/// name → id from the image's passwd or group file.
fn read_ids(
    store: &Store,
    digest: &kiln_tree::Digest,
    database: Database,
) -> BTreeMap<String, u32> {
    match store.read_to_vec(digest) {
        Ok(bytes) => ids_by_name(&String::from_utf8_lossy(&bytes), database),
        Err(_) => BTreeMap::new(),
    }
}
