//! Bootable disk images for kiln: a GPT disk laid out by the
//! Discoverable Partitions Specification with an ESP holding a Unified
//! Kernel Image, a read-only squashfs root and its dm-verity hash tree.
//! Every byte is a function of the inputs: identifiers and salts are
//! derived from content, times from `SOURCE_DATE_EPOCH`.
//!
//! The modules are the parts of a disk, each usable alone.

pub mod esp;
pub mod gpt;
pub mod guid;
pub mod pe;
pub mod rootfs;
mod tool;
pub mod uki;
pub mod verity;
