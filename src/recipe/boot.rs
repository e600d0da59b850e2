//! `[boot]`: what makes the image boot as a node from a disk, validated
//! into a [`BootPlan`].
//!
//! ```toml
//! [boot]
//! formats = ["rootfs", "raw"]            # outputs of `kiln build` (--format overrides)
//! cmdline = ["console=ttyS0,115200"]     # kernel arguments; kiln adds the root's
//! pxe_keys = ["../signing/next.pub"]     # more keys a PXE initramfs trusts
//! ```
//!
//! A recipe with `[boot]` gets the read-only root's runtime layout (a
//! writable /var made at first boot, network, hostname; see docs/boot.md).
//! A file that `extends` another overrides `formats` and adds to `cmdline`
//! and `pxe_keys`.

use super::fields::{ForArch, arch_qualified, public_key};
use super::{Loc, RecipeError, SourceFile, did_you_mean};
use kiln_diag::quote;
use serde::Deserialize;
use std::sync::Arc;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBoot {
    pub formats: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub cmdline: Vec<Spanned<String>>,
    #[serde(default)]
    pub pxe_keys: Vec<Spanned<String>>,
}

/// An output `kiln build` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Format {
    /// `NAME-VERSION.rootfs.tar.zst`: the root file system as a tar archive.
    Rootfs,
    /// `NAME-VERSION.raw`: a GPT disk that UEFI firmware boots, with a
    /// read-only root verified by dm-verity (needs `[boot]`). AWS imports it.
    Raw,
    /// `NAME-VERSION.qcow2`: the disk for OpenStack, Proxmox, libvirt.
    Qcow2,
    /// `NAME-VERSION.vhd`: the disk as a fixed VHD, for Azure.
    Vhd,
    /// `NAME-VERSION.gce.tar.gz`: the disk as Google Compute Engine imports it.
    Gce,
    /// `NAME-VERSION.pxe/`: kernel, initramfs, root image and iPXE script
    /// for a diskless network boot that verifies the root before using it.
    Pxe,
}

impl Format {
    pub const ALL: &[(&str, Format)] = &[
        ("rootfs", Format::Rootfs),
        ("raw", Format::Raw),
        ("qcow2", Format::Qcow2),
        ("vhd", Format::Vhd),
        ("gce", Format::Gce),
        ("pxe", Format::Pxe),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Rootfs => "rootfs",
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vhd => "vhd",
            Format::Gce => "gce",
            Format::Pxe => "pxe",
        }
    }

    /// A disk image, made from the raw disk.
    pub fn is_disk(self) -> bool {
        matches!(
            self,
            Format::Raw | Format::Qcow2 | Format::Vhd | Format::Gce
        )
    }

    /// Made from the raw disk's parts: a disk image or the PXE bundle.
    pub fn needs_boot(self) -> bool {
        self != Format::Rootfs
    }
}

/// Kernel arguments kiln sets itself.
const OWN_ARGS: &[&str] = &[
    "root",
    "roothash",
    "usrhash",
    "mount.usr",
    "rootflags",
    "kiln.pxe",
];

#[derive(Debug, Clone)]
pub struct BootPlan {
    pub formats: Vec<Format>,
    /// The kernel arguments for the image's architecture, chosen from
    /// `cmdline_written` by [`BootPlan::select_arch`].
    pub cmdline: Vec<String>,
    /// As written, each with its `[arch ...]` qualifier.
    pub cmdline_written: Vec<ForArch<String>>,
    /// Keys a PXE initramfs trusts besides the one signing the build.
    pub pxe_keys: Vec<kiln_minisign::PublicKey>,
    pub loc: Loc,
}

impl BootPlan {
    pub fn add_layer(
        previous: Option<BootPlan>,
        file: &Arc<SourceFile>,
        dir: &std::path::Path,
        raw: Spanned<RawBoot>,
    ) -> Result<BootPlan, RecipeError> {
        let loc = Loc::new(file, raw.span());
        let raw = raw.into_inner();
        let mut plan = previous.unwrap_or(BootPlan {
            formats: vec![Format::Rootfs, Format::Raw],
            cmdline: Vec::new(),
            cmdline_written: Vec::new(),
            pxe_keys: Vec::new(),
            loc: loc.clone(),
        });
        plan.loc = loc;
        if let Some(formats) = raw.formats {
            let span = formats.span();
            let mut chosen = Vec::new();
            for name in formats.into_inner() {
                let here = Loc::new(file, name.span());
                let format = Format::ALL
                    .iter()
                    .find(|(n, _)| *n == name.get_ref())
                    .map(|(_, f)| *f)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Format::ALL.iter().map(|(n, _)| *n).collect();
                        let hint = did_you_mean(name.get_ref(), names.iter().copied())
                            .map(|n| format!(" (did you mean \"{n}\"?)"))
                            .unwrap_or_default();
                        here.error(format!(
                            "unknown format {}{hint}; formats are {}",
                            quote(name.get_ref()),
                            names.join(", ")
                        ))
                    })?;
                chosen.push(format);
            }
            chosen.sort();
            chosen.dedup();
            if chosen.is_empty() {
                return Err(Loc::new(file, span)
                    .error("formats is empty; list at least one of \"rootfs\", \"raw\""));
            }
            plan.formats = chosen;
        }
        for arg in raw.cmdline {
            let here = Loc::new(file, arg.span());
            let (value, only) = arch_qualified(&here, arg.get_ref())?;
            let value = value.to_owned();
            if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(here.error(
                    "a kernel argument is one word without spaces; write each as its own string: cmdline = [\"console=ttyS0\", \"quiet\"]",
                ));
            }
            if value.contains('$') {
                return Err(here.error(
                    "a kernel argument must not contain $: the PXE boot script (iPXE) would expand it",
                ));
            }
            let key = value.split('=').next().unwrap_or(&value);
            if OWN_ARGS.contains(&key) || key.starts_with("systemd.verity") {
                return Err(here.error(format!(
                    "kiln sets {key}= itself (the verified root); remove it from cmdline"
                )));
            }
            plan.cmdline_written.push(ForArch { value, only });
        }
        for key in &raw.pxe_keys {
            let key = public_key(file, dir, key)?;
            if !plan.pxe_keys.contains(&key) {
                plan.pxe_keys.push(key);
            }
        }
        Ok(plan)
    }

    /// Keeps the kernel arguments whose `[arch ...]` admits `arch`.
    pub fn select_arch(&mut self, arch: &str) {
        self.cmdline = self
            .cmdline_written
            .iter()
            .filter(|a| a.admits(arch))
            .map(|a| a.value.clone())
            .collect();
    }
}
