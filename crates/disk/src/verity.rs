//! The dm-verity hash tree, computed in Rust, byte for byte what
//! `veritysetup format --salt S --uuid U data hash` writes with its
//! defaults: format version 1, sha256, 4096-byte data and hash blocks, a
//! superblock at the start of the hash device and the tree right after it.
//!
//! Layout (cryptsetup's `lib/verity`): block 0 of the hash device holds
//! the 512-byte superblock (zero-filled to 4096). The tree's levels follow,
//! the top level (one block) first and level 0 (the hashes of the data
//! blocks) last. Each hash is `sha256(salt || block)`; a hash block holds
//! 128 hashes and is zero-padded. The root hash is the hash of the top
//! block, or of the only data block when there is just one (no levels).
//!
//! The tree is written as it is computed: one pending block per level is
//! all the memory it takes, whatever the size of the data.
//!
//! How kiln chooses the inputs (see `docs/disk.md`): the salt is
//! [`salt_for`] the sha256 of the data image (public, deterministic, unique
//! per image content); the superblock UUID is derived from the image's
//! identity and that same digest. Neither comes from a random source, so
//! two builds of the same image give the same tree and root hash.

use crate::guid::Guid;
use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Data and hash block size.
pub const BLOCK: u64 = 4096;
const DIGEST: usize = 32;
/// Hashes per hash block.
const FANOUT: u64 = BLOCK / DIGEST as u64;
const SUPERBLOCK_LEN: usize = 512;
/// veritysetup's default salt length.
pub const SALT_LEN: usize = 32;
const MAX_SALT: usize = 256;

/// What goes into the superblock besides the sizes.
#[derive(Clone, Debug)]
pub struct VerityParams {
    /// At most 256 bytes; kiln uses 32 (`salt_for`).
    pub salt: Vec<u8>,
    pub uuid: Guid,
}

/// The result of formatting: what the kernel needs to open the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityTree {
    pub root_hash: [u8; 32],
    pub data_blocks: u64,
    /// Bytes of the hash device: superblock plus every tree level.
    pub hash_size: u64,
}

impl VerityTree {
    pub fn root_hash_hex(&self) -> String {
        hex::encode(self.root_hash)
    }
}

/// kiln's salt for a data image whose sha256 is `data_sha256`.
pub fn salt_for(data_sha256: &[u8; 32]) -> Vec<u8> {
    crate::guid::derive_bytes("verity-salt", &[data_sha256]).to_vec()
}

/// Size in blocks of each level, level 0 first (cryptsetup's
/// `hash_levels`). No levels for a single data block.
fn level_sizes(data_blocks: u64) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut n = data_blocks;
    while n > 1 {
        n = n.div_ceil(FANOUT);
        sizes.push(n);
    }
    sizes
}

/// Bytes of the hash device for `data_size` bytes of data.
pub fn hash_size(data_size: u64) -> u64 {
    let blocks: u64 = level_sizes(data_size / BLOCK).iter().sum();
    (1 + blocks) * BLOCK
}

/// Formats the file `data` into a new file `hash` (truncated first).
pub fn format(data: &Path, hash: &Path, params: &VerityParams) -> Result<VerityTree> {
    let input = File::open(data).with_context(|| format!("cannot open {}", data.display()))?;
    let size = input.metadata()?.len();
    let mut out =
        File::create(hash).with_context(|| format!("cannot create {}", hash.display()))?;
    let tree = write_tree(
        BufReader::with_capacity(1 << 20, input),
        size,
        params,
        &mut out,
    )
    .with_context(|| format!("cannot compute the dm-verity tree of {}", data.display()))?;
    out.sync_all()?;
    Ok(tree)
}

/// Hashes `size` bytes read from `data` and writes the hash device into
/// `out` (from its start; it grows to `hash_size(size)` bytes).
pub fn write_tree<R: Read, W: Write + Seek>(
    mut data: R,
    size: u64,
    params: &VerityParams,
    mut out: W,
) -> Result<VerityTree> {
    if size == 0 || !size.is_multiple_of(BLOCK) {
        bail!("the data image is {size} bytes: dm-verity needs a non-zero multiple of {BLOCK}");
    }
    if params.salt.len() > MAX_SALT {
        bail!(
            "the salt is {} bytes; the superblock holds at most {MAX_SALT}",
            params.salt.len()
        );
    }
    let data_blocks = size / BLOCK;
    let sizes = level_sizes(data_blocks);
    // Block index of each level on the hash device: the top level right
    // after the superblock, level 0 last.
    let mut starts = vec![0u64; sizes.len()];
    let mut next = 1;
    for level in (0..sizes.len()).rev() {
        starts[level] = next;
        next += sizes[level];
    }
    let mut salted = Sha256::new();
    salted.update(&params.salt);
    let mut tree = Tree {
        salted,
        pending: vec![Vec::with_capacity(BLOCK as usize); sizes.len()],
        written: vec![0; sizes.len()],
        starts,
        root: None,
    };

    let mut block = vec![0u8; BLOCK as usize];
    for index in 0..data_blocks {
        read_block(&mut data, &mut block).with_context(|| {
            format!("the data ended at block {index} of {data_blocks}: was it changed meanwhile?")
        })?;
        let digest = tree.hash(&block);
        if sizes.is_empty() {
            tree.root = Some(digest);
        } else {
            tree.push(0, digest, &mut out)?;
        }
    }
    if data.read(&mut block[..1])? != 0 {
        bail!("the data is longer than {size} bytes: was it changed meanwhile?");
    }
    // Bottom up: finishing a level adds a hash to the one above.
    for (level, &blocks) in sizes.iter().enumerate() {
        if !tree.pending[level].is_empty() {
            tree.flush(level, &mut out)?;
        }
        debug_assert_eq!(tree.written[level], blocks);
    }
    let Some(root_hash) = tree.root else {
        bail!("internal error: the hash tree has no root");
    };

    let mut sb = vec![0u8; BLOCK as usize];
    sb[..SUPERBLOCK_LEN].copy_from_slice(&superblock(params, data_blocks));
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&sb)?;
    out.flush()?;
    Ok(VerityTree {
        root_hash,
        data_blocks,
        hash_size: next * BLOCK,
    })
}

/// Reads exactly one block; an early end is an error.
fn read_block(data: &mut impl Read, block: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < block.len() {
        match data.read(&mut block[filled..]) {
            Ok(0) => bail!("unexpected end of data"),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

struct Tree {
    /// sha256 already fed the salt: cloned for every block.
    salted: Sha256,
    /// The hash block being filled, per level.
    pending: Vec<Vec<u8>>,
    /// Blocks written so far, per level.
    written: Vec<u64>,
    starts: Vec<u64>,
    root: Option<[u8; 32]>,
}

impl Tree {
    fn hash(&self, block: &[u8]) -> [u8; 32] {
        let mut h = self.salted.clone();
        h.update(block);
        h.finalize().into()
    }

    fn push<W: Write + Seek>(&mut self, level: usize, digest: [u8; 32], out: &mut W) -> Result<()> {
        self.pending[level].extend_from_slice(&digest);
        if self.pending[level].len() == BLOCK as usize {
            self.flush(level, out)?;
        }
        Ok(())
    }

    /// Writes the pending block of `level` (zero-padded) and hands its
    /// hash to the level above, or makes it the root.
    fn flush<W: Write + Seek>(&mut self, level: usize, out: &mut W) -> Result<()> {
        let mut block = std::mem::take(&mut self.pending[level]);
        block.resize(BLOCK as usize, 0);
        let at = (self.starts[level] + self.written[level]) * BLOCK;
        out.seek(SeekFrom::Start(at))?;
        out.write_all(&block)?;
        self.written[level] += 1;
        let digest = self.hash(&block);
        block.clear();
        self.pending[level] = block;
        if level + 1 < self.starts.len() {
            self.push(level + 1, digest, out)
        } else {
            self.root = Some(digest);
            Ok(())
        }
    }
}

/// cryptsetup's `struct verity_sb`, little-endian, 512 bytes.
fn superblock(params: &VerityParams, data_blocks: u64) -> [u8; SUPERBLOCK_LEN] {
    let mut sb = [0u8; SUPERBLOCK_LEN];
    sb[0..8].copy_from_slice(b"verity\0\0");
    sb[8..12].copy_from_slice(&1u32.to_le_bytes()); // superblock version
    sb[12..16].copy_from_slice(&1u32.to_le_bytes()); // hash type: normal
    sb[16..32].copy_from_slice(&params.uuid.0);
    sb[32..38].copy_from_slice(b"sha256");
    sb[64..68].copy_from_slice(&(BLOCK as u32).to_le_bytes());
    sb[68..72].copy_from_slice(&(BLOCK as u32).to_le_bytes());
    sb[72..80].copy_from_slice(&data_blocks.to_le_bytes());
    sb[80..82].copy_from_slice(&(params.salt.len() as u16).to_le_bytes());
    sb[88..88 + params.salt.len()].copy_from_slice(&params.salt);
    sb
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn params() -> VerityParams {
        VerityParams {
            salt: vec![7; SALT_LEN],
            uuid: "12345678-1234-1234-1234-123456789abc".parse().unwrap(),
        }
    }

    fn tree_of(data: &[u8]) -> (VerityTree, Vec<u8>) {
        let mut out = Cursor::new(Vec::new());
        let t = write_tree(data, data.len() as u64, &params(), &mut out).unwrap();
        (t, out.into_inner())
    }

    #[test]
    fn levels_follow_cryptsetup() {
        assert_eq!(level_sizes(1), Vec::<u64>::new());
        assert_eq!(level_sizes(2), [1]);
        assert_eq!(level_sizes(128), [1]);
        assert_eq!(level_sizes(129), [2, 1]);
        assert_eq!(level_sizes(128 * 128), [128, 1]);
        assert_eq!(level_sizes(128 * 128 + 1), [129, 2, 1]);
        assert_eq!(hash_size(4096), 4096);
        assert_eq!(hash_size(129 * 4096), 4 * 4096);
    }

    #[test]
    fn one_block_hashes_the_block_itself() {
        let data = vec![0xab; 4096];
        let (t, hash) = tree_of(&data);
        let mut h = Sha256::new();
        h.update([7; SALT_LEN]);
        h.update(&data);
        assert_eq!(t.root_hash, <[u8; 32]>::from(h.finalize()));
        assert_eq!(hash.len(), 4096);
        assert_eq!(t.hash_size, 4096);
    }

    #[test]
    fn two_levels_by_hand() {
        let data: Vec<u8> = (0..129 * 4096).map(|i| (i / 4096) as u8).collect();
        let (t, hash) = tree_of(&data);
        let salted = |b: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update([7; SALT_LEN]);
            h.update(b);
            h.finalize().into()
        };
        let mut level0 = Vec::new();
        for chunk in data.chunks(4096) {
            level0.extend_from_slice(&salted(chunk));
        }
        level0.resize(2 * 4096, 0);
        let mut level1 = Vec::new();
        for chunk in level0.chunks(4096) {
            level1.extend_from_slice(&salted(chunk));
        }
        level1.resize(4096, 0);
        assert_eq!(&hash[4096..8192], level1.as_slice());
        assert_eq!(&hash[8192..], level0.as_slice());
        assert_eq!(t.root_hash, salted(&level1));
        assert_eq!(t.hash_size as usize, hash.len());
    }

    #[test]
    fn superblock_fields() {
        let (_, hash) = tree_of(&[0; 3 * 4096]);
        assert_eq!(&hash[0..8], b"verity\0\0");
        assert_eq!(&hash[16..32], &params().uuid.0);
        assert_eq!(u64::from_le_bytes(hash[72..80].try_into().unwrap()), 3);
        assert_eq!(u16::from_le_bytes([hash[80], hash[81]]), 32);
        assert_eq!(&hash[88..120], &[7; 32]);
        assert!(hash[120..4096].iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut out = Cursor::new(Vec::new());
        let e = write_tree(&[][..], 0, &params(), &mut out).unwrap_err();
        assert!(e.to_string().contains("non-zero multiple of 4096"), "{e}");
        let e = write_tree(&[0u8; 100][..], 100, &params(), &mut out).unwrap_err();
        assert!(e.to_string().contains("multiple of 4096"), "{e}");
        let e = write_tree(&[0u8; 4096][..], 8192, &params(), &mut out).unwrap_err();
        assert!(format!("{e:#}").contains("ended at block 1 of 2"), "{e:#}");
        let e = write_tree(&[0u8; 8192][..], 4096, &params(), &mut out).unwrap_err();
        assert!(e.to_string().contains("longer than 4096"), "{e}");
        let long = VerityParams {
            salt: vec![0; 257],
            ..params()
        };
        let e = write_tree(&[0u8; 4096][..], 4096, &long, &mut out).unwrap_err();
        assert!(e.to_string().contains("at most 256"), "{e}");
    }
}
