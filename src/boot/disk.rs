//! The `raw` output: the finished tree as a GPT disk with a UKI on the
//! ESP and a dm-verity root (kiln-disk). The kernel, initrd, EFI stub and
//! os-release come from the image itself, never from the build host.

use anyhow::{Context, Result, bail};
use kiln_disk::{Arch, Disk, DiskReport, Identity};
use kiln_tree::pack::{ArchiveCompression, pack_rootfs};
use kiln_tree::{ImagePath, Kind, Store, Tree};
use std::path::{Path, PathBuf};

/// What the disk is built from, besides the tree.
pub struct DiskInputs<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// The Debian architecture (`amd64`, `arm64`).
    pub arch: &'a str,
    pub cmdline: &'a [String],
    pub epoch: u64,
    /// A Secure Boot key and certificate (PEM) to sign the UKI with.
    pub secure_boot: &'a Option<(PathBuf, PathBuf)>,
}

/// Builds `out` from `tree`; `scratch` holds the boot files meanwhile.
pub fn write(
    tree: &Tree,
    store: &Store,
    inputs: &DiskInputs,
    scratch: &Path,
    out: &Path,
) -> Result<DiskReport> {
    let (arch, stub_name) = match inputs.arch {
        "amd64" => (Arch::X86_64, "linuxx64.efi.stub"),
        "arm64" => (Arch::Arm64, "linuxaa64.efi.stub"),
        other => bail!("--format raw supports amd64 and arm64 images, not {other}"),
    };
    let (kernel_version, kernel) = kernel(tree)?;
    let initrd = format!("/boot/initrd.img-{kernel_version}");
    let stub = format!("/usr/lib/systemd/boot/efi/{stub_name}");
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let kernel_file = extract(tree, store, &kernel, "the kernel", scratch)?;
    let initrd_file = extract(
        tree,
        store,
        &initrd,
        "the initrd (is dracut in [debian] packages?)",
        scratch,
    )?;
    let stub_file = extract(
        tree,
        store,
        &stub,
        "the EFI stub (is systemd-boot-efi in [debian] packages?)",
        scratch,
    )?;
    let os_release = String::from_utf8(read(tree, store, "/etc/os-release", "/etc/os-release")?)
        .context("/etc/os-release is not UTF-8")?;
    let cmdline = inputs.cmdline.join(" ");
    let disk = Disk {
        identity: Identity {
            name: inputs.name.to_owned(),
            version: inputs.version.to_owned(),
            arch,
        },
        stub: &stub_file,
        kernel: &kernel_file,
        initrd: &initrd_file,
        cmdline: &cmdline,
        os_release: &os_release,
        source_date_epoch: inputs.epoch,
        secure_boot: inputs
            .secure_boot
            .as_ref()
            .map(|(key, cert)| kiln_disk::uki::Signer {
                key: key.as_path(),
                cert: cert.as_path(),
            }),
    };
    // The root file system streams from the packer to squashfs's reader.
    let (reader, writer) = std::io::pipe().context("cannot make a pipe")?;
    std::thread::scope(|scope| {
        let packer = scope.spawn(move || {
            pack_rootfs(
                tree,
                store,
                inputs.epoch,
                ArchiveCompression::None,
                std::io::BufWriter::with_capacity(1 << 20, writer),
                &|_| {},
            )
            .map(|_| ())
        });
        let built = disk.build(reader, out);
        let packed = packer
            .join()
            .map_err(|_| anyhow::anyhow!("the root file system packer panicked"))?;
        // A failed build closes the pipe: its own error says more.
        let report = built?;
        packed.context("cannot pack the root file system")?;
        Ok(report)
    })
}

/// The one kernel in /boot: (version, path).
pub(super) fn kernel(tree: &Tree) -> Result<(String, String)> {
    let boot = ImagePath::new("/boot")?;
    let kernels: Vec<String> = tree
        .iter()
        .filter(|(p, _)| p.parent() == boot)
        .filter_map(|(p, _)| p.file_name().strip_prefix("vmlinuz-").map(str::to_owned))
        .collect();
    match kernels.as_slice() {
        [one] => Ok((one.clone(), format!("/boot/vmlinuz-{one}"))),
        [] => bail!(
            "the image has no kernel (/boot/vmlinuz-*): add a kernel package such as linux-image-amd64 to [debian] packages"
        ),
        many => bail!(
            "the image has {} kernels ({}); keep one kernel package",
            many.len(),
            many.join(", ")
        ),
    }
}

pub(super) fn read(tree: &Tree, store: &Store, path: &str, what: &str) -> Result<Vec<u8>> {
    let resolved = tree
        .resolve(&ImagePath::new(path)?, true)
        .ok()
        .with_context(|| format!("the image has no {what} ({path})"))?;
    match tree.get(&resolved).map(|e| &e.kind) {
        Some(Kind::File { digest, .. }) => store.read_to_vec(digest),
        Some(Kind::HardLink { target }) => match tree.get(target).map(|e| &e.kind) {
            Some(Kind::File { digest, .. }) => store.read_to_vec(digest),
            _ => bail!("the image has no {what} ({path})"),
        },
        _ => bail!("the image has no {what} ({path})"),
    }
}

fn extract(tree: &Tree, store: &Store, path: &str, what: &str, dir: &Path) -> Result<PathBuf> {
    let bytes = read(tree, store, path, what)?;
    let name = path.rsplit('/').next().unwrap_or("file");
    let file = dir.join(name);
    std::fs::write(&file, bytes).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}
