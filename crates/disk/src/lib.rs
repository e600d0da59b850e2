//! Bootable disk images for kiln: a GPT disk laid out by the
//! Discoverable Partitions Specification with an ESP holding a Unified
//! Kernel Image, a read-only squashfs root and its dm-verity hash tree.
//! Every byte is a function of the inputs: identifiers and salts are
//! derived from content, times from `SOURCE_DATE_EPOCH`.
//!
//! [`Disk::build`] is the whole assembly; the modules are its parts and
//! usable alone. `docs/disk.md` describes the layout and the decisions.

pub mod cloud;
pub mod esp;
pub mod gpt;
pub mod guid;
pub mod pe;
pub mod rootfs;
mod tool;
pub mod uki;
pub mod verity;

use anyhow::{Context, Result, bail, ensure};
use guid::{Guid, dps};
use kiln_tree::{Digest, hash_reader};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The architecture an image boots on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// The name in DPS and systemd-repart labels (`root-x86-64`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86-64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn root_type(self) -> Guid {
        match self {
            Arch::X86_64 => dps::ROOT_X86_64,
            Arch::Arm64 => dps::ROOT_ARM64,
        }
    }

    pub fn root_verity_type(self) -> Guid {
        match self {
            Arch::X86_64 => dps::ROOT_VERITY_X86_64,
            Arch::Arm64 => dps::ROOT_VERITY_ARM64,
        }
    }

    /// The removable-media boot path firmware tries with no boot entries.
    pub fn boot_path(self) -> &'static str {
        match self {
            Arch::X86_64 => "EFI/BOOT/BOOTX64.EFI",
            Arch::Arm64 => "EFI/BOOT/BOOTAA64.EFI",
        }
    }

    fn pe_machine(self) -> u16 {
        match self {
            Arch::X86_64 => pe::MACHINE_X86_64,
            Arch::Arm64 => pe::MACHINE_ARM64,
        }
    }
}

/// Which image this is: the source of every derived identifier.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub version: String,
    pub arch: Arch,
}

impl Identity {
    fn check(&self) -> Result<()> {
        for (what, value) in [("name", &self.name), ("version", &self.version)] {
            ensure!(
                !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b)),
                "the image {what} \"{value}\" must be letters, digits and ._+~- only"
            );
        }
        let label = self.label();
        ensure!(
            label.len() <= gpt::NAME_UNITS,
            "the partition label \"{label}\" (name_version) is {} characters; GPT allows {}",
            label.len(),
            gpt::NAME_UNITS
        );
        Ok(())
    }

    /// The label of the root and verity partitions: DPS suggests
    /// versioned names, and systemd-sysupdate matches on them.
    pub fn label(&self) -> String {
        format!("{}_{}", self.name, self.version)
    }

    /// The derivation inputs: identity plus a content digest.
    fn derive(&self, purpose: &str, content: &[u8]) -> Guid {
        Guid::derive(
            purpose,
            &[
                self.name.as_bytes(),
                self.version.as_bytes(),
                self.arch.name().as_bytes(),
                content,
            ],
        )
    }
}

/// Everything a disk is made of, besides the root file system's tar.
#[derive(Clone, Debug)]
pub struct Disk<'a> {
    pub identity: Identity,
    /// The image's own systemd-stub, kernel and initrd.
    pub stub: &'a Path,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// Kernel arguments other than the root's, which kiln appends.
    pub cmdline: &'a str,
    pub os_release: &'a str,
    pub source_date_epoch: u64,
    /// Sign the UKI for UEFI Secure Boot with this key and certificate.
    pub secure_boot: Option<uki::Signer<'a>>,
}

/// One partition of a built disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// `esp`, `root` or `root-verity`.
    pub role: &'static str,
    pub label: String,
    pub type_guid: Guid,
    pub uuid: Guid,
    /// Where the partition is on the disk, and its size.
    pub offset: u64,
    pub size: u64,
    /// The partition's content (the padding after it is zeros).
    pub data_size: u64,
    pub sha256: Digest,
}

/// What `Disk::build` made: what the signed manifest records.
#[derive(Clone, Debug)]
pub struct DiskReport {
    pub root_hash: [u8; 32],
    /// The full kernel command line in the UKI.
    pub cmdline: String,
    pub disk_guid: Guid,
    pub size: u64,
    pub sha256: Digest,
    pub uki_size: u64,
    pub uki_sha256: Digest,
    pub parts: Vec<Part>,
}

/// Kernel arguments kiln sets itself and a caller must not.
const OWN_ARGS: &[&str] = &["root", "roothash", "usrhash", "mount.usr"];

impl Disk<'_> {
    /// The command line the UKI carries: the caller's, then the root.
    pub fn full_cmdline(&self, root_hash: &[u8; 32]) -> Result<String> {
        for arg in self.cmdline.split_whitespace() {
            let key = arg.split('=').next().unwrap_or(arg);
            if OWN_ARGS.contains(&key) || key.starts_with("systemd.verity") {
                bail!("the kernel command line must not set {key}=: kiln sets the root itself");
            }
        }
        let own = format!("root=/dev/mapper/root roothash={}", hex::encode(root_hash));
        let base = self
            .cmdline
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(if base.is_empty() {
            own
        } else {
            format!("{base} {own}")
        })
    }

    /// Everything that can be refused before the long work starts.
    fn check(&self) -> Result<()> {
        self.identity.check()?;
        self.full_cmdline(&[0; 32])?;
        ensure!(
            self.source_date_epoch <= u64::from(u32::MAX),
            "SOURCE_DATE_EPOCH {} is past 2106: squashfs and PE times are 32-bit",
            self.source_date_epoch
        );
        for (what, path) in [("kernel", self.kernel), ("initrd", self.initrd)] {
            File::open(path)
                .with_context(|| format!("cannot read the {what} {}", path.display()))?;
        }
        let stub = std::fs::read(self.stub)
            .with_context(|| format!("cannot read the EFI stub {}", self.stub.display()))?;
        let machine = pe::Pe::parse(&stub)
            .with_context(|| format!("{} is not a usable EFI stub", self.stub.display()))?
            .machine;
        ensure!(
            machine == self.identity.arch.pe_machine(),
            "the EFI stub {} is for PE machine {machine:#x}, not {}",
            self.stub.display(),
            self.identity.arch.name()
        );
        Ok(())
    }

    /// Builds the disk from the root file system's tar stream and writes
    /// it to `out` atomically (a temporary file beside it, then a rename).
    pub fn build(&self, rootfs_tar: impl Read, out: &Path) -> Result<DiskReport> {
        self.check()?;
        let id = &self.identity;
        let dir = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let work = tempfile::Builder::new()
            .prefix(".kiln-disk-")
            .tempdir_in(dir)
            .with_context(|| format!("cannot make a work directory in {}", dir.display()))?;
        let w = work.path();

        let root_img = w.join("root.squashfs");
        let root = rootfs::squashfs_from_tar(rootfs_tar, &root_img, self.source_date_epoch)
            .context("cannot make the root file system image")?;

        let verity_img = w.join("root.verity");
        let params = verity::VerityParams {
            salt: verity::salt_for(&root.sha256.0),
            uuid: id.derive("verity-superblock", &root.sha256.0),
        };
        let tree = verity::format(&root_img, &verity_img, &params)?;
        let root_hash = tree.root_hash;
        let cmdline = self.full_cmdline(&root_hash)?;

        let uki_img = w.join("uki.efi");
        let scratch = w.join("uki-sections");
        std::fs::create_dir(&scratch)?;
        uki::build_uki(
            &uki::UkiInputs {
                stub: self.stub,
                kernel: self.kernel,
                initrd: self.initrd,
                cmdline: &cmdline,
                os_release: self.os_release,
            },
            &uki_img,
            &scratch,
            self.source_date_epoch,
        )
        .context("cannot make the unified kernel image")?;
        let uki_img = match &self.secure_boot {
            Some(signer) => {
                let signed = w.join("uki.signed.efi");
                signer
                    .sign(&uki_img, &signed, self.source_date_epoch)
                    .context("cannot sign the unified kernel image for Secure Boot")?;
                signed
            }
            None => uki_img,
        };
        let (uki_sha256, uki_size) = hash_file(&uki_img)?;

        let esp_img = w.join("esp.fat");
        let serial = id.derive("esp-serial", &root_hash).0;
        esp::build_esp(
            &esp_img,
            esp::esp_size(uki_size),
            u32::from_le_bytes([serial[0], serial[1], serial[2], serial[3]]),
            "ESP",
            &[esp::EspFile {
                path: id.arch.boot_path().into(),
                source: uki_img.clone(),
            }],
            self.source_date_epoch,
        )
        .context("cannot make the EFI system partition")?;

        struct Planned {
            role: &'static str,
            label: String,
            type_guid: Guid,
            uuid: Guid,
            attributes: u64,
            path: PathBuf,
        }
        let planned = [
            Planned {
                role: "esp",
                label: "esp".into(),
                type_guid: dps::ESP,
                uuid: id.derive("esp", &root_hash),
                attributes: 0,
                path: esp_img,
            },
            // DPS: the root hash's halves name the root and verity
            // partitions, so the initrd finds both from roothash= alone.
            Planned {
                role: "root",
                label: id.label(),
                type_guid: id.arch.root_type(),
                uuid: Guid(root_hash[..16].try_into()?),
                attributes: dps::FLAG_READ_ONLY,
                path: root_img,
            },
            Planned {
                role: "root-verity",
                label: id.label(),
                type_guid: id.arch.root_verity_type(),
                uuid: Guid(root_hash[16..].try_into()?),
                attributes: dps::FLAG_READ_ONLY,
                path: verity_img,
            },
        ];
        let specs: Vec<gpt::PartitionSpec> = planned
            .iter()
            .map(|p| gpt::PartitionSpec {
                type_guid: p.type_guid,
                uuid: p.uuid,
                name: p.label.clone(),
                attributes: p.attributes,
                source: gpt::Source::File(p.path.clone()),
                size: None,
            })
            .collect();
        let disk_guid = id.derive("disk", &root_hash);
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write to {}", dir.display()))?;
        let layout = gpt::write(tmp.as_file_mut(), disk_guid, &specs)?;
        tmp.as_file().sync_all()?;

        let mut parts = Vec::new();
        for (p, extent) in planned.into_iter().zip(&layout.extents) {
            let (sha256, data_size) = hash_file(&p.path)?;
            parts.push(Part {
                role: p.role,
                label: p.label,
                type_guid: p.type_guid,
                uuid: p.uuid,
                offset: extent.offset(),
                size: extent.size(),
                data_size,
                sha256,
            });
        }
        let (sha256, size) = hash_file(tmp.path())?;
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        tmp.persist(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        Ok(DiskReport {
            root_hash,
            cmdline,
            disk_guid,
            size,
            sha256,
            uki_size,
            uki_sha256,
            parts,
        })
    }
}

impl DiskReport {
    pub fn root_hash_hex(&self) -> String {
        hex::encode(self.root_hash)
    }
}

fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hash_reader(file)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(cmdline: &str) -> Disk<'_> {
        Disk {
            identity: Identity {
                name: "node".into(),
                version: "1.0".into(),
                arch: Arch::X86_64,
            },
            stub: Path::new("stub"),
            kernel: Path::new("kernel"),
            initrd: Path::new("initrd"),
            cmdline,
            os_release: "",
            source_date_epoch: 0,
            secure_boot: None,
        }
    }

    #[test]
    fn kiln_owns_the_root_arguments() {
        let rh = [0xab; 32];
        assert_eq!(
            disk("  console=ttyS0   quiet ").full_cmdline(&rh).unwrap(),
            format!(
                "console=ttyS0 quiet root=/dev/mapper/root roothash={}",
                "ab".repeat(32)
            )
        );
        assert!(disk("").full_cmdline(&rh).unwrap().starts_with("root="));
        for bad in [
            "root=/dev/sda2",
            "roothash=00",
            "systemd.verity_root_data=/dev/x",
            "usrhash=1",
        ] {
            let e = disk(bad).full_cmdline(&rh).unwrap_err().to_string();
            assert!(e.contains("kiln sets the root itself"), "{bad}: {e}");
        }
    }

    #[test]
    fn identities_that_cannot_be_labels() {
        let mut id = disk("").identity;
        id.check().unwrap();
        assert_eq!(id.label(), "node_1.0");
        id.version = "1 0".into();
        assert!(
            id.check()
                .unwrap_err()
                .to_string()
                .contains("version \"1 0\"")
        );
        id.version = "1".repeat(40);
        assert!(
            id.check()
                .unwrap_err()
                .to_string()
                .contains("GPT allows 36")
        );
        id.name = String::new();
        assert!(id.check().is_err());
    }

    #[test]
    fn derived_identifiers_depend_on_every_input() {
        let id = disk("").identity;
        let a = id.derive("disk", b"x");
        assert_ne!(a, id.derive("disk", b"y"));
        let mut other = id.clone();
        other.arch = Arch::Arm64;
        assert_ne!(a, other.derive("disk", b"x"));
    }
}
