//! kiln-disk against the real tools, one binary: veritysetup for the hash
//! tree, sfdisk and sgdisk for the partition table, mkfs.fat's output read
//! by mtools and fsck.fat, objdump/objcopy/sbsign for the UKI, unsquashfs
//! and sqfscat for the root. A missing tool fails its test and names the
//! Debian package to install.

#![allow(clippy::unwrap_used)] // a panic in a test is its failure

#[path = "real_tools/common.rs"]
mod common;
#[path = "real_tools/disk.rs"]
mod disk;
#[path = "real_tools/esp.rs"]
mod esp;
#[path = "real_tools/gpt.rs"]
mod gpt;
#[path = "real_tools/rootfs.rs"]
mod rootfs;
#[path = "real_tools/uki.rs"]
mod uki;
#[path = "real_tools/verity.rs"]
mod verity;
