//! Reading `.deb` packages: the ar container, the control archive and the
//! data archive (gzip, xz, zstd or uncompressed), streamed.
//!
//! The data archive is unpacked into a Tree as dpkg unpacks into a root
//! ([`Placement::package`], the policy every input follows): member names
//! with `..` or a leading `/` are refused, naming the package; symlinked
//! directories the image already had are followed with chroot semantics,
//! but never a symlink the package itself ships, so nothing can land
//! outside the image or anywhere but where the package names it.

use crate::fetch::NewBlob;
use crate::unpack_cache::UnpackCache;
use anyhow::{Context, Result, anyhow, bail};
use kiln_tree::{
    Digest, HashingReader, ImagePath, Member, Placement, Store, Tree, place_member, read_members,
};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::Path;

/// What a package brings besides its files: the members of control.tar
/// (`control`, `md5sums`, `conffiles`, maintainer scripts, …).
#[derive(Debug, Default)]
pub struct ControlFiles {
    pub files: BTreeMap<String, Vec<u8>>,
    /// Each member's permission bits (dpkg keeps them in its database).
    pub modes: BTreeMap<String, u32>,
}

impl ControlFiles {
    /// The `control` file's text.
    pub fn control(&self) -> Result<&str> {
        let bytes = self
            .files
            .get("control")
            .context("the package has no control file")?;
        std::str::from_utf8(bytes).map_err(|_| anyhow!("the control file is not UTF-8"))
    }
}

/// A package unpacked into a tree.
#[derive(Debug)]
pub struct Unpacked {
    pub control: ControlFiles,
    /// Data members as the package names them (dpkg's `info/PKG.list`).
    pub paths: Vec<ImagePath>,
}

/// A package read but not yet placed: its control members, and its data
/// members with their contents already in the store. Reading is the slow,
/// parallel half of unpacking (decompression, hashing); placing is cheap
/// and must follow the install order.
#[derive(Debug)]
pub struct Deb {
    pub label: String,
    pub control: ControlFiles,
    pub members: Vec<Member>,
}

impl Deb {
    /// Places the data members into `tree` as dpkg unpacks them.
    pub fn place(self, tree: &mut Tree) -> Result<Unpacked> {
        let mut placement = Placement::package(format!("package {}", self.label));
        let mut paths = Vec::with_capacity(self.members.len());
        for member in self.members {
            let name = member.name.clone();
            // the error names the package and the member's path
            place_member(tree, &mut placement, member)?;
            paths.push(name);
        }
        Ok(Unpacked {
            control: self.control,
            paths,
        })
    }
}

/// The largest control member kept in memory; real ones are a few KiB.
const MAX_CONTROL_MEMBER: u64 = 16 << 20;

/// Unpacks the `.deb` at `path` into `tree`; `label` (name and version)
/// names it in errors.
pub fn unpack(path: &Path, label: &str, tree: &mut Tree, store: &Store) -> Result<Unpacked> {
    read(path, label, store)?.place(tree)
}

/// [`unpack`] from any reader of `.deb` bytes.
pub fn unpack_from(
    reader: impl Read,
    label: &str,
    tree: &mut Tree,
    store: &Store,
) -> Result<Unpacked> {
    read_from(reader, label, store)?.place(tree)
}

/// Reads the `.deb` at `path`: control members in memory, data contents
/// into `store`.
pub fn read(path: &Path, label: &str, store: &Store) -> Result<Deb> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("{label}: cannot open {}", path.display()))?;
    read_from(BufReader::with_capacity(1 << 20, file), label, store)
}

/// [`read`] from any reader of `.deb` bytes.
pub fn read_from(reader: impl Read, label: &str, store: &Store) -> Result<Deb> {
    Ok(read_parts(reader, label, store, Data::Decompress)?.0)
}

/// [`read`], with the data archive taken decompressed from `cache` when a
/// build before left it there for the .deb with sha256 `deb` (the file at
/// `path`, already checked against it), and left there otherwise.
pub fn read_cached(
    path: &Path,
    deb: &Digest,
    label: &str,
    store: &Store,
    cache: &UnpackCache,
) -> Result<Deb> {
    let open = || {
        std::fs::File::open(path)
            .map(|f| BufReader::with_capacity(1 << 20, f))
            .with_context(|| format!("{label}: cannot open {}", path.display()))
    };
    if let Some((data, blob)) = cache.lookup(deb)? {
        match read_parts(open()?, label, store, Data::Cached(&blob, &data)) {
            Ok((read, _)) => {
                cache.hit();
                return Ok(read);
            }
            // Whatever went wrong with the copy, the package itself tells.
            Err(_) => cache.forget(deb, &data),
        }
    }
    let blob = match cache.new_blob() {
        Ok(blob) => Some(blob),
        Err(e) => {
            cache.note_unsaved(&e);
            None
        }
    };
    let (read, kept) = read_parts(open()?, label, store, Data::Keep(blob))?;
    match kept {
        Kept::Whole(blob) => {
            if let Err(e) = cache.keep(deb, blob) {
                cache.note_unsaved(&e);
            }
        }
        Kept::Failed(e) => cache.note_unsaved(&e.into()),
        Kept::Nothing => {}
    }
    Ok(read)
}

/// What became of the plain copy of a data archive.
enum Kept<'a> {
    Whole(NewBlob<'a>),
    Failed(std::io::Error),
    Nothing,
}

/// Where the data archive's members come from.
enum Data<'a> {
    /// Decompressed from the package.
    Decompress,
    /// Decompressed from the package, and a plain copy written to the blob
    /// (when there is one).
    Keep(Option<NewBlob<'a>>),
    /// From this plain copy, whose digest this is; the package's own member
    /// is skipped.
    Cached(&'a Path, &'a Digest),
}

fn read_parts<'a>(
    mut reader: impl Read,
    label: &str,
    store: &Store,
    mut data: Data<'a>,
) -> Result<(Deb, Kept<'a>)> {
    let mut magic = [0u8; 8];
    reader
        .read_exact(&mut magic)
        .with_context(|| format!("{label}: not a Debian package (too short)"))?;
    if &magic != b"!<arch>\n" {
        bail!("{label}: not a Debian package (no ar signature)");
    }
    let mut control = None;
    let mut members = None;
    let mut saw_version = false;
    let mut kept = Kept::Nothing;
    let origin = format!("package {label}");
    while let Some((name, size)) =
        next_member(&mut reader).with_context(|| format!("{label}: corrupt ar container"))?
    {
        let mut member = (&mut reader).take(size);
        match name.as_str() {
            "debian-binary" => {
                let mut text = String::new();
                member
                    .read_to_string(&mut text)
                    .with_context(|| format!("{label}: unreadable debian-binary"))?;
                if !text.starts_with("2.") {
                    bail!("{label}: unsupported package format {}", text.trim());
                }
                saw_version = true;
            }
            n if n.starts_with("control.tar") => {
                let reader = decompressor(n, &mut member)?;
                control = Some(read_control(reader).with_context(|| format!("{label}: {n}"))?);
            }
            n if n.starts_with("data.tar") => {
                let reader = decompressor(n, &mut member)?;
                members = Some(match &mut data {
                    Data::Decompress => read_members(reader, &origin, store)?,
                    Data::Keep(blob) => {
                        let mut tee = Tee {
                            inner: reader,
                            copy: blob.take(),
                            failed: None,
                        };
                        let members = read_members(&mut tee, &origin, store)?;
                        // The copy is the whole archive, padding included.
                        std::io::copy(&mut tee, &mut std::io::sink())?;
                        kept = match (tee.copy, tee.failed) {
                            (_, Some(e)) => Kept::Failed(e),
                            (Some(copy), None) => Kept::Whole(copy),
                            (None, None) => Kept::Nothing,
                        };
                        members
                    }
                    Data::Cached(path, digest) => read_plain_copy(path, digest, &origin, store)?,
                });
            }
            // Signatures and other extra members are allowed and ignored, as dpkg does.
            _ => {}
        }
        // Skip what the member's reader left unread, then ar's padding byte.
        std::io::copy(&mut member, &mut std::io::sink())?;
        if size % 2 == 1 {
            let mut pad = [0u8; 1];
            reader
                .read_exact(&mut pad)
                .with_context(|| format!("{label}: truncated ar container"))?;
        }
    }
    if !saw_version {
        bail!("{label}: not a Debian package (no debian-binary member)");
    }
    let read = Deb {
        label: label.to_owned(),
        control: control
            .ok_or_else(|| anyhow!("{label}: the package has no control.tar member"))?,
        members: members.ok_or_else(|| anyhow!("{label}: the package has no data.tar member"))?,
    };
    Ok((read, kept))
}

/// The members of a kept plain data archive, which must hash to `digest`.
fn read_plain_copy(
    path: &Path,
    digest: &Digest,
    origin: &str,
    store: &Store,
) -> Result<Vec<Member>> {
    let file = std::fs::File::open(path)?;
    let mut hashing = HashingReader::new(BufReader::with_capacity(1 << 20, file));
    let members = read_members(&mut hashing, origin, store)?;
    std::io::copy(&mut hashing, &mut std::io::sink())?;
    let (actual, _) = hashing.finish();
    if actual != *digest {
        bail!("{}: sha256 is {actual}, expected {digest}", path.display());
    }
    Ok(members)
}

/// Passes what it reads on, and writes a copy to a blob; a copy that
/// cannot be written is dropped, and the reading goes on.
struct Tee<'a, R> {
    inner: R,
    copy: Option<NewBlob<'a>>,
    /// Why the copy was dropped.
    failed: Option<std::io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(copy) = &mut self.copy
            && let Err(e) = copy.write_all(&buf[..n])
        {
            self.copy = None;
            self.failed = Some(e);
        }
        Ok(n)
    }
}

/// Reads one ar header: the member's name and size, or `None` at the end.
fn next_member(reader: &mut impl Read) -> Result<Option<(String, u64)>> {
    let mut header = [0u8; 60];
    let mut filled = 0;
    while filled < header.len() {
        let n = reader.read(&mut header[filled..])?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(anyhow!("truncated member header"))
            };
        }
        filled += n;
    }
    if &header[58..60] != b"`\n" {
        bail!("bad member header");
    }
    let name = String::from_utf8_lossy(&header[..16])
        .trim_end()
        .trim_end_matches('/')
        .to_owned();
    let size: u64 = std::str::from_utf8(&header[48..58])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| anyhow!("bad member size in header of {name}"))?;
    Ok(Some((name, size)))
}

fn decompressor<'a>(name: &str, member: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    Ok(match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("gz") => Box::new(flate2::read::GzDecoder::new(member)),
        Some("xz") => Box::new(liblzma::read::XzDecoder::new(member)),
        Some("zst") => Box::new(zstd::stream::read::Decoder::new(member)?),
        Some("tar") => Box::new(member),
        _ => bail!("member {name}: unsupported compression (dpkg writes gzip, xz or zstd)"),
    })
}

fn read_control(reader: impl Read) -> Result<ControlFiles> {
    let mut archive = tar::Archive::new(reader);
    let mut control = ControlFiles::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes())
            .trim_start_matches("./")
            .to_owned();
        if name.contains('/') || name.is_empty() {
            bail!("unexpected control member \"{name}\"");
        }
        if entry.size() > MAX_CONTROL_MEMBER {
            bail!("control member {name} is larger than {MAX_CONTROL_MEMBER} bytes");
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        control
            .modes
            .insert(name.clone(), entry.header().mode()? & 0o7777);
        control.files.insert(name, bytes);
    }
    Ok(control)
}
