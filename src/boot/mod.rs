//! Booting from a disk or the network: what an image with `[boot]` needs beyond its
//! packages, and the `raw` output.
//!
//! - [`initrd`]: the dracut configuration and kiln's dracut module, placed
//!   before packages are configured, so the kernel's postinst builds an
//!   initrd that opens the dm-verity root and the state partition.
//! - [`layout`]: the runtime layout of a read-only root (a state
//!   partition on /var made at first boot, the node's identity there,
//!   DHCP, a unique hostname), added after hardening.
//! - [`disk`]: the `raw` output, from the finished tree (kiln-disk).
//! - [`pxe`]: the `pxe` output, a diskless network boot made of the
//!   disk's parts, whose initramfs verifies the root before it mounts it.
//!
//! docs/boot.md describes the result and the decisions.

pub mod disk;
pub mod initrd;
pub mod layout;
pub mod pxe;
