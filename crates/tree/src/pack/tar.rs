//! A deterministic tar writer: POSIX ustar headers plus pax records, built
//! byte by byte from a sorted Tree.
//!
//! The `tar` crate's builder is not used for writing because its
//! deterministic mode drops setuid/setgid/sticky bits and fixes the mtime,
//! it zeroes device numbers and it writes GNU long-name records; here every
//! field is chosen explicitly. Rules (reproducible-builds.org):
//! - members in Tree order (sorted by path bytes), named `./path`;
//! - mtime = SOURCE_DATE_EPOCH for every member, pax headers included;
//! - numeric owners only (uname/gname empty), all 12 mode bits;
//! - hard links as link members, devices with their numbers;
//! - xattrs as `SCHILY.xattr.NAME` pax records (GNU tar and libarchive read
//!   them); long names and values beyond ustar's fields as pax records;
//! - no atime/ctime, no pid in pax header names, nothing from the host.

use crate::{Entry, ImagePath, Kind, Store, Tree};
use anyhow::{Context, Result};
use std::io::{Read, Write};

const BLOCK: usize = 512;
/// GNU tar's default record size (blocking factor 20): archives are padded
/// to it, as `tar` itself would write them.
const RECORD: u64 = 20 * BLOCK as u64;

/// Largest value of an 8-byte octal field (7 digits + NUL).
const MAX_OCTAL_7: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (11 digits + NUL).
const MAX_OCTAL_11: u64 = 0o77777777777;

/// Writes `tree` as a tar stream to `out`, reading contents from `store`.
/// `on_bytes` is told how many content bytes were written, for progress.
pub fn write_tar<W: Write>(
    tree: &Tree,
    store: &Store,
    mtime: u64,
    out: W,
    on_bytes: &dyn Fn(u64),
) -> Result<W> {
    write_tar_referring(tree, store, mtime, out, on_bytes, &|_| false)
}

/// The pax record of a file member sent without its content: the sha256
/// of content the reader already has (`load_tar_referring`).
pub const CONTENT_REFERENCE: &str = "KILN.sha256";

/// [`write_tar`] with the digest of every file's content beside it (a
/// [`CONTENT_REFERENCE`] record on a member that carries its bytes), for a
/// reader that trusts this writer and need not hash them again
/// (`load_tar_given_digests`: kiln's sandbox receiving the build's tree).
pub fn write_tar_with_digests<W: Write>(tree: &Tree, store: &Store, out: W) -> Result<W> {
    write_members(tree, store, 0, out, &|_| {}, &|_| false, true)
}

/// [`write_tar`] for a reader that already holds some contents: a file
/// whose digest `known` accepts goes as a member of size 0 that names its
/// content by digest ([`CONTENT_REFERENCE`]). Only kiln's own exchange with
/// its sandbox writes these; a plain `load_tar` refuses them.
pub fn write_tar_referring<W: Write>(
    tree: &Tree,
    store: &Store,
    mtime: u64,
    out: W,
    on_bytes: &dyn Fn(u64),
    known: &dyn Fn(&crate::Digest) -> bool,
) -> Result<W> {
    write_members(tree, store, mtime, out, on_bytes, known, false)
}

fn write_members<W: Write>(
    tree: &Tree,
    store: &Store,
    mtime: u64,
    out: W,
    on_bytes: &dyn Fn(u64),
    known: &dyn Fn(&crate::Digest) -> bool,
    with_digests: bool,
) -> Result<W> {
    let mut writer = TarWriter {
        out,
        written: 0,
        mtime,
        buf: vec![0u8; 256 * 1024],
        with_digests,
    };
    for (path, entry) in tree.iter() {
        writer
            .member(path, entry, store, on_bytes, known)
            .with_context(|| format!("cannot archive {path}"))?;
    }
    writer.finish()
}

struct TarWriter<W> {
    out: W,
    written: u64,
    mtime: u64,
    /// For copying contents: one buffer for the whole archive.
    buf: Vec<u8>,
    /// Whether carried contents have their digest beside them.
    with_digests: bool,
}

/// The header fields of one member before encoding.
struct Member<'a> {
    name: String,
    type_flag: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    link_name: &'a str,
    device: (u32, u32),
}

impl<W: Write> TarWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, multiple: u64) -> Result<()> {
        let rem = self.written % multiple;
        if rem != 0 {
            let zeros = vec![0u8; (multiple - rem) as usize];
            self.write(&zeros)?;
        }
        Ok(())
    }

    fn member(
        &mut self,
        path: &ImagePath,
        entry: &Entry,
        store: &Store,
        on_bytes: &dyn Fn(u64),
        known: &dyn Fn(&crate::Digest) -> bool,
    ) -> Result<()> {
        let mut name = path.archive_name();
        let referred = match &entry.kind {
            Kind::File { digest, .. } if known(digest) => Some(*digest),
            _ => None,
        };
        let hard_link_name;
        let (type_flag, size, link_name, device) = match &entry.kind {
            Kind::File { .. } if referred.is_some() => (b'0', 0, "", (0, 0)),
            Kind::File { size, .. } => (b'0', *size, "", (0, 0)),
            Kind::Dir => {
                if !path.is_root() {
                    name.push('/');
                }
                (b'5', 0, "", (0, 0))
            }
            Kind::Symlink { target } => (b'2', 0, target.as_str(), (0, 0)),
            Kind::HardLink { target } => {
                hard_link_name = target.archive_name();
                (b'1', 0, hard_link_name.as_str(), (0, 0))
            }
            Kind::CharDevice { major, minor } => (b'3', 0, "", (*major, *minor)),
            Kind::BlockDevice { major, minor } => (b'4', 0, "", (*major, *minor)),
            Kind::Fifo => (b'6', 0, "", (0, 0)),
        };
        let member = Member {
            name,
            type_flag,
            mode: entry.meta.mode & 0o7777,
            uid: entry.meta.uid,
            gid: entry.meta.gid,
            size,
            link_name,
            device,
        };
        let digest = match &entry.kind {
            Kind::File { digest, .. } if referred.is_some() || self.with_digests => Some(*digest),
            _ => None,
        };
        let pax = pax_records(&member, entry, digest);
        if !pax.is_empty() {
            self.pax_header(&member.name, &pax)?;
        }
        let header = self.ustar_header(&member);
        self.write(&header)?;
        if referred.is_some() {
            return Ok(());
        }
        if let Kind::File { digest, size } = &entry.kind {
            let blob = store.open_blob(digest)?;
            let mut limited = blob.take(*size);
            let mut buf = std::mem::take(&mut self.buf);
            let mut copied = 0u64;
            let copy = loop {
                let n = match limited.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(e.into()),
                };
                if let Err(e) = self.write(&buf[..n]) {
                    break Err(e);
                }
                copied += n as u64;
                on_bytes(n as u64);
            };
            self.buf = buf;
            copy?;
            anyhow::ensure!(
                copied == *size,
                "content store blob {digest} is {copied} bytes, the tree says {size}"
            );
            self.pad_to(BLOCK as u64)?;
        }
        Ok(())
    }

    /// A pax extended header ('x') for the member that follows. Its name
    /// is fixed by the member's name alone, unlike GNU tar's default
    /// (which embeds the process id).
    fn pax_header(&mut self, member_name: &str, records: &[u8]) -> Result<()> {
        let base = member_name
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        let mut name = format!("./PaxHeaders/{base}");
        truncate_on_char_boundary(&mut name, 100);
        let header = self.ustar_header(&Member {
            name,
            type_flag: b'x',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: records.len() as u64,
            link_name: "",
            device: (0, 0),
        });
        self.write(&header)?;
        self.write(records)?;
        self.pad_to(BLOCK as u64)
    }

    fn ustar_header(&self, m: &Member<'_>) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        // Values too large for a field went to pax records; the field gets
        // a truncated or zero placeholder, as GNU tar does.
        put_str(&mut h[0..100], &m.name);
        put_octal(&mut h[100..108], u64::from(m.mode));
        put_octal(&mut h[108..116], clamp(u64::from(m.uid), MAX_OCTAL_7));
        put_octal(&mut h[116..124], clamp(u64::from(m.gid), MAX_OCTAL_7));
        put_octal(&mut h[124..136], clamp(m.size, MAX_OCTAL_11));
        put_octal(&mut h[136..148], clamp(self.mtime, MAX_OCTAL_11));
        h[156] = m.type_flag;
        put_str(&mut h[157..257], m.link_name);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        put_octal(&mut h[329..337], clamp(u64::from(m.device.0), MAX_OCTAL_7));
        put_octal(&mut h[337..345], clamp(u64::from(m.device.1), MAX_OCTAL_7));
        // The checksum is computed with its own field read as spaces.
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let digits = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(digits.as_bytes());
        h
    }

    fn finish(mut self) -> Result<W> {
        self.write(&[0u8; 2 * BLOCK])?;
        self.pad_to(RECORD)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn clamp(value: u64, max: u64) -> u64 {
    if value > max { 0 } else { value }
}

fn put_str(field: &mut [u8], value: &str) {
    let bytes = value.as_bytes();
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

/// Zero-padded octal digits followed by one NUL, filling the field.
fn put_octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    field[..width].copy_from_slice(digits.as_bytes());
    field[width] = 0;
}

fn truncate_on_char_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// The pax records a member needs, sorted by key: whatever does not fit
/// ustar's fields, plus xattrs.
fn pax_records(m: &Member<'_>, entry: &Entry, digest: Option<crate::Digest>) -> Vec<u8> {
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(digest) = digest {
        records.push((CONTENT_REFERENCE.into(), digest.hex().into_bytes()));
    }
    if m.name.len() > 100 {
        records.push(("path".into(), m.name.as_bytes().to_vec()));
    }
    if m.link_name.len() > 100 {
        records.push(("linkpath".into(), m.link_name.as_bytes().to_vec()));
    }
    if m.size > MAX_OCTAL_11 {
        records.push(("size".into(), m.size.to_string().into_bytes()));
    }
    if u64::from(m.uid) > MAX_OCTAL_7 {
        records.push(("uid".into(), m.uid.to_string().into_bytes()));
    }
    if u64::from(m.gid) > MAX_OCTAL_7 {
        records.push(("gid".into(), m.gid.to_string().into_bytes()));
    }
    for (name, value) in &entry.meta.xattrs {
        records.push((format!("SCHILY.xattr.{name}"), value.clone()));
    }
    records.sort();
    let mut out = Vec::new();
    for (key, value) in records {
        out.extend_from_slice(&pax_record(&key, &value));
    }
    out
}

/// `"LEN KEY=VALUE\n"`, where LEN counts the whole record, itself included.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + body.to_string().len();
    if len.to_string().len() != body.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    debug_assert_eq!(record.len(), len);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(pax_record("path", b"abc"), b"12 path=abc\n");
        // 7 bytes of body + 1 digit = 8... lengths crossing a power of ten
        for n in 80..110 {
            let value = vec![b'x'; n];
            let record = pax_record("k", &value);
            let text = String::from_utf8(record.clone()).unwrap();
            let declared: usize = text.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(declared, record.len(), "value of {n} bytes");
        }
    }

    #[test]
    fn octal_fields_are_zero_padded_and_nul_terminated() {
        let mut field = [0xffu8; 8];
        put_octal(&mut field, 0o4755);
        assert_eq!(&field, b"0004755\0");
    }
}
