//! Loading a Tree from a tar archive (plain, gzip or zstd).
//!
//! Archives are untrusted input: member names are normalised and checked
//! (`..`, absolute names and over-long names are refused), and members are
//! placed by the [`Placement`] policy (never through a symlink the archive
//! planted itself: the classic "symlink, then a file through it" escape).
//! Nothing is ever written to the host except blobs in the content store,
//! named by their digest.

use super::{Entry, ImagePath, Kind, Meta, PlaceError, Placement, Store, Tree, abbreviate};
use anyhow::{Context, Result, anyhow, bail};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use tar::EntryType;

/// Compression of an archive stream, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Recognises gzip and zstd by their magic numbers; anything else is
/// taken as a plain tar (whose parser will complain if it is not).
pub fn detect_compression(head: &[u8]) -> Result<Compression> {
    Ok(match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            bail!("xz-compressed archives are not supported yet: use zstd, gzip or plain tar")
        }
        [b'B', b'Z', b'h', ..] => {
            bail!("bzip2-compressed archives are not supported: use zstd, gzip or plain tar")
        }
        _ => Compression::None,
    })
}

/// Opens `path` and returns a reader of its decompressed bytes.
pub fn open_decompressed(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    decompress(BufReader::with_capacity(256 * 1024, file))
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Wraps `reader` in the decompressor its first bytes call for.
pub fn decompress<R: BufRead + Send + 'static>(mut reader: R) -> Result<Box<dyn Read + Send>> {
    let head = reader.fill_buf()?;
    Ok(match detect_compression(head)? {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    })
}

/// Reads a whole tar stream into a new Tree. `origin` names the archive
/// in error messages.
pub fn load_tar(reader: impl Read, origin: &str, store: &Store) -> Result<Tree> {
    let mut tree = Tree::new();
    load_tar_into(&mut tree, reader, store, &mut Placement::archive(origin))?;
    Ok(tree)
}

/// What a reader of [`write_tar_referring`](crate::pack::write_tar_referring)'s
/// archives already holds: the size of each content it may be referred to.
pub type KnownContents<'a> = &'a dyn Fn(&crate::Digest) -> Option<u64>;

/// [`load_tar`] of an archive that may name contents `known` holds by
/// their digest instead of carrying them (kiln's exchange with its
/// sandbox: what the scripts left unchanged does not travel back). A
/// reference to anything else is refused.
pub fn load_tar_referring(
    reader: impl Read,
    origin: &str,
    store: &Store,
    known: KnownContents,
) -> Result<Tree> {
    load_tar_digests(reader, origin, store, Digests::Known(known))
}

/// [`load_tar`] of an archive whose file members carry their content and
/// its digest ([`write_tar_with_digests`](crate::pack::write_tar_with_digests)),
/// from a writer the reader trusts: the digests are taken as given, not
/// computed again (the sandbox receiving the build's tree).
pub fn load_tar_given_digests(reader: impl Read, origin: &str, store: &Store) -> Result<Tree> {
    load_tar_digests(reader, origin, store, Digests::Given)
}

fn load_tar_digests(
    reader: impl Read,
    origin: &str,
    store: &Store,
    digests: Digests,
) -> Result<Tree> {
    let mut tree = Tree::new();
    let mut placement = Placement::archive(origin);
    for_each_member(reader, origin, store, digests, |member| {
        place_member(&mut tree, &mut placement, member)?;
        Ok(())
    })?;
    Ok(tree)
}

/// What a member's [`CONTENT_REFERENCE`](crate::pack::CONTENT_REFERENCE)
/// record may mean to the reader.
#[derive(Clone, Copy)]
enum Digests<'a> {
    /// Nothing: archives from outside name no digests.
    Refused,
    /// A content the reader holds, sent without its bytes.
    Known(KnownContents<'a>),
    /// The digest of the bytes that follow, from a trusted writer.
    Given,
}

/// Adds every member of a tar stream to `tree` under `placement`, which
/// names the archive in errors. Returns the members' paths as named in the
/// archive, in archive order.
pub fn load_tar_into(
    tree: &mut Tree,
    reader: impl Read,
    store: &Store,
    placement: &mut Placement,
) -> Result<Vec<ImagePath>> {
    let mut names = Vec::new();
    let origin = placement.input().to_owned();
    for_each_member(reader, &origin, store, Digests::Refused, |member| {
        let name = member.name.clone();
        place_member(tree, placement, member)?;
        names.push(name);
        Ok(())
    })?;
    Ok(names)
}

/// Reads every member of a tar stream (contents into `store`) without
/// placing any: the parallel half of unpacking many archives, whose
/// members are then placed in order with [`place_member`].
pub fn read_members(reader: impl Read, origin: &str, store: &Store) -> Result<Vec<Member>> {
    let mut members = Vec::new();
    for_each_member(reader, origin, store, Digests::Refused, |member| {
        members.push(member);
        Ok(())
    })?;
    Ok(members)
}

fn for_each_member(
    reader: impl Read,
    origin: &str,
    store: &Store,
    digests: Digests,
    mut each: impl FnMut(Member) -> Result<()>,
) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .with_context(|| format!("{origin}: not a readable tar archive"))?;
    for (index, entry) in entries.enumerate() {
        let entry = entry.with_context(|| {
            format!(
                "{origin}: cannot read member #{}: the archive is truncated or corrupt",
                index + 1
            )
        })?;
        let raw_name = abbreviate(&String::from_utf8_lossy(&entry.path_bytes()));
        let member = read_member(entry, store, digests)
            .with_context(|| format!("{origin}: member \"{raw_name}\""))?;
        // placement errors name the input and the path themselves
        each(member)?;
    }
    Ok(())
}

/// An archive member read (its content in the store) but not yet placed.
/// A hard link's target is still the name the archive gives.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: ImagePath,
    pub entry: Entry,
}

/// Normalises an archive member name, refusing what could escape the root.
pub fn member_path(raw: &[u8]) -> Result<ImagePath> {
    let name = std::str::from_utf8(raw).map_err(|_| anyhow!("the name is not valid UTF-8"))?;
    if name.starts_with('/') {
        bail!("absolute member names are refused: members must be relative, like ./etc/passwd");
    }
    ImagePath::new(name).map_err(|e| anyhow!("{e}"))
}

fn read_member<R: Read>(
    mut entry: tar::Entry<'_, R>,
    store: &Store,
    digests: Digests,
) -> Result<Member> {
    let name = member_path(&entry.path_bytes())?;
    let header = entry.header();
    let mut meta = Meta {
        mode: header.mode()? & 0o7777,
        uid: u32::try_from(header.uid()?).context("uid does not fit in 32 bits")?,
        gid: u32::try_from(header.gid()?).context("gid does not fit in 32 bits")?,
        xattrs: Default::default(),
    };
    let entry_type = header.entry_type();
    let carried = header.size()?;
    let link_name = entry.link_name_bytes().map(|l| l.into_owned());
    // Only device members have meaningful device fields; GNU tar leaves
    // them blank elsewhere.
    let device = match entry_type {
        EntryType::Char | EntryType::Block => (
            header.device_major()?.unwrap_or(0),
            header.device_minor()?.unwrap_or(0),
        ),
        _ => (0, 0),
    };
    let mut reference = None;
    if let Some(extensions) = entry.pax_extensions()? {
        for ext in extensions {
            let ext = ext?;
            let key = ext
                .key()
                .map_err(|_| anyhow!("a pax record key is not UTF-8"))?;
            if key == crate::pack::CONTENT_REFERENCE {
                let digest: crate::Digest = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| anyhow!("pax {key} record is not a sha256 digest"))?;
                reference = Some(digest);
            } else if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                meta.xattrs
                    .insert(name.to_owned(), ext.value_bytes().to_vec());
            } else if key == "uid" || key == "gid" {
                let value: u32 = std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| anyhow!("pax {key} record is not a 32-bit number"))?;
                if key == "uid" {
                    meta.uid = value
                } else {
                    meta.gid = value
                }
            }
        }
    }
    let kind = match entry_type {
        EntryType::Regular | EntryType::Continuous => match reference {
            None => {
                let (digest, size) = store.put(&mut entry)?;
                Kind::File { digest, size }
            }
            Some(digest) => match digests {
                Digests::Refused => bail!(
                    "the member names its content by digest ({}), which only kiln's \
                     exchange with its sandbox does",
                    crate::pack::CONTENT_REFERENCE
                ),
                Digests::Known(known) => {
                    let size = known(&digest).ok_or_else(|| {
                        anyhow!("the member refers to content {digest} it was never given")
                    })?;
                    if carried != 0 {
                        bail!("the member refers to its content by digest but also carries bytes");
                    }
                    Kind::File { digest, size }
                }
                Digests::Given => {
                    // (the entry's size, pax records included)
                    let size = entry.size();
                    store.put_given(&mut entry, digest, size)?;
                    Kind::File { digest, size }
                }
            },
        },
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => {
            let target = link_name.ok_or_else(|| anyhow!("symlink without a target"))?;
            let target = String::from_utf8(target)
                .map_err(|_| anyhow!("the symlink target is not valid UTF-8"))?;
            if target.is_empty() || target.contains('\0') {
                bail!("the symlink target is empty or contains NUL");
            }
            Kind::Symlink { target }
        }
        EntryType::Link => {
            let target = link_name.ok_or_else(|| anyhow!("hard link without a target"))?;
            Kind::HardLink {
                target: member_path(&target).context("hard link target")?,
            }
        }
        EntryType::Char => Kind::CharDevice {
            major: device.0,
            minor: device.1,
        },
        EntryType::Block => Kind::BlockDevice {
            major: device.0,
            minor: device.1,
        },
        EntryType::Fifo => Kind::Fifo,
        other => bail!("unsupported member type {:?}", other.as_byte() as char),
    };
    Ok(Member {
        name,
        entry: Entry { kind, meta },
    })
}

/// Places a member read by [`read_members`] into `tree` under `placement`.
pub fn place_member(
    tree: &mut Tree,
    placement: &mut Placement,
    member: Member,
) -> Result<(), PlaceError> {
    placement
        .place(tree, &member.name, member.entry)
        .map(|_| ())
}
