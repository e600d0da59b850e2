//! Packing a Tree into artifacts.

mod tar;

pub use tar::{CONTENT_REFERENCE, write_tar, write_tar_referring, write_tar_with_digests};

use crate::{Digest, HashingWriter, Store, Tree};
use anyhow::Result;
use std::io::Write;

/// How the rootfs archive is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveCompression {
    /// zstd level 12, multi-threaded (default)
    Zstd,
    /// gzip level 9 (miniz_oxide, the backend pinned in Cargo.toml)
    Gzip,
    /// plain tar, for pipelines that compress or convert it themselves
    None,
}

impl ArchiveCompression {
    pub fn extension(self) -> &'static str {
        match self {
            ArchiveCompression::Zstd => "tar.zst",
            ArchiveCompression::Gzip => "tar.gz",
            ArchiveCompression::None => "tar",
        }
    }

    /// The artifact format name recorded in the manifest.
    pub fn format(self) -> &'static str {
        match self {
            ArchiveCompression::Zstd => "rootfs-tar-zstd",
            ArchiveCompression::Gzip => "rootfs-tar-gzip",
            ArchiveCompression::None => "rootfs-tar",
        }
    }
}

const ZSTD_LEVEL: i32 = 12;

/// Digests and sizes of a packed archive, compressed and not: compressed
/// bytes depend on the compressor build, the tar stream does not.
#[derive(Clone, Debug)]
pub struct PackedArchive {
    pub sha256: Digest,
    pub size: u64,
    pub tar_sha256: Digest,
    pub tar_size: u64,
}

/// Writes `tree` as a compressed tar stream into `out`.
pub fn pack_rootfs<W: Write>(
    tree: &Tree,
    store: &Store,
    mtime: u64,
    compression: ArchiveCompression,
    out: W,
    on_bytes: &dyn Fn(u64),
) -> Result<(W, PackedArchive)> {
    let compressed = HashingWriter::new(out);
    let (compressed, tar_sha256, tar_size) = match compression {
        ArchiveCompression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(compressed, ZSTD_LEVEL)?;
            // zstd's output is identical for any worker count >= 1 but
            // differs with 0 (single-threaded mode): never use 0.
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            encoder.multithread(workers.max(1))?;
            encoder.include_checksum(true)?;
            let tar = write_tar(tree, store, mtime, HashingWriter::new(encoder), on_bytes)?;
            let (encoder, digest, size) = tar.finish();
            (encoder.finish()?, digest, size)
        }
        ArchiveCompression::Gzip => {
            // mtime 0 and no file name in the gzip header.
            let encoder = flate2::GzBuilder::new()
                .mtime(0)
                .write(compressed, flate2::Compression::best());
            let tar = write_tar(tree, store, mtime, HashingWriter::new(encoder), on_bytes)?;
            let (encoder, digest, size) = tar.finish();
            (encoder.finish()?, digest, size)
        }
        ArchiveCompression::None => {
            // The archive is the tar: one digest serves both.
            let (mut out, sha256, size) =
                write_tar(tree, store, mtime, compressed, on_bytes)?.finish();
            out.flush()?;
            return Ok((
                out,
                PackedArchive {
                    sha256,
                    size,
                    tar_sha256: sha256,
                    tar_size: size,
                },
            ));
        }
    };
    let (mut out, sha256, size) = compressed.finish();
    out.flush()?;
    Ok((
        out,
        PackedArchive {
            sha256,
            size,
            tar_sha256,
            tar_size,
        },
    ))
}

/// Total bytes of file content in `tree`, for progress bars.
pub fn content_bytes(tree: &Tree) -> u64 {
    tree.iter()
        .map(|(_, e)| match e.kind {
            crate::Kind::File { size, .. } => size,
            _ => 0,
        })
        .sum()
}
