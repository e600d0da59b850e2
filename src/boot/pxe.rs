//! The `pxe` output: a directory a web server serves for diskless nodes
//! (docs/pxe.md). It holds the image's kernel, its initramfs with what the
//! initramfs trusts appended (the public keys, the image's name and the
//! oldest version it accepts), the root image and its dm-verity hash tree
//! (the raw disk's two partitions: the same root hash), an iPXE script,
//! and, once the build is signed, the manifest and its signature. The
//! initramfs (kiln-node's `pxe-root`, in the image's dracut module) checks
//! all of it before it mounts the root.

use anyhow::{Context, Result, bail};
use kiln_disk::DiskReport;
use kiln_minisign::PublicKey;
use kiln_tree::{Store, Tree};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use kiln_node::pxe::{
    IMAGE_FILE, KEYS_DIR, MANIFEST, ROOT_FORMAT, SIGNATURE, TRUST_DIR, VERITY_FORMAT,
};

/// What the bundle is made of, besides the tree and the disk.
pub struct PxeInputs<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// The recipe's kernel arguments (`[boot] cmdline`).
    pub cmdline: &'a [String],
    /// The keys the initramfs trusts: the build's signing key first.
    pub keys: &'a [PublicKey],
    pub epoch: u64,
}

/// One file of the bundle, as the manifest lists it.
pub struct PxeFile {
    /// The file's name in the bundle directory.
    pub name: &'static str,
    /// Its format in the manifest.
    pub format: &'static str,
    pub path: PathBuf,
}

/// The bundle directory's name in the output directory.
pub fn dir_name(stem: &str) -> String {
    format!("{stem}.pxe")
}

/// Writes the bundle's files (all but the manifest) into `dir`.
pub fn write(
    tree: &Tree,
    store: &Store,
    raw: &Path,
    report: &DiskReport,
    inputs: &PxeInputs,
    dir: &Path,
) -> Result<Vec<PxeFile>> {
    if inputs.keys.is_empty() {
        bail!(
            "--format pxe needs a signing key (--key): the initramfs boots only a root whose manifest is signed by a key it trusts"
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (kernel_version, kernel) = super::disk::kernel(tree)?;
    let file = |name: &'static str, format: &'static str| PxeFile {
        name,
        format,
        path: dir.join(name),
    };
    let files = vec![
        file("vmlinuz", "pxe-kernel"),
        file("initrd.img", "pxe-initrd"),
        file("root.squashfs", ROOT_FORMAT),
        file("root.verity", VERITY_FORMAT),
        file("boot.ipxe", "pxe-script"),
    ];
    write_new(
        &files[0].path,
        &super::disk::read(tree, store, &kernel, "the kernel")?,
    )?;
    let mut initrd = super::disk::read(
        tree,
        store,
        &format!("/boot/initrd.img-{kernel_version}"),
        "the initrd (is dracut in [debian] packages?)",
    )?;
    // The kernel unpacks archives appended to its initramfs in order; an
    // uncompressed one starts on a 4-byte boundary.
    initrd.resize(initrd.len().next_multiple_of(4), 0);
    initrd.extend(trust_archive(inputs)?);
    write_new(&files[1].path, &initrd)?;
    for (role, out) in [("root", &files[2].path), ("root-verity", &files[3].path)] {
        let part = report
            .parts
            .iter()
            .find(|p| p.role == role)
            .with_context(|| format!("the disk has no {role} partition"))?;
        copy_range(raw, part.offset, part.data_size, out)?;
    }
    write_new(&files[4].path, script(inputs).as_bytes())?;
    Ok(files)
}

/// Copies the signed manifest and its signature into the bundle.
pub fn add_manifest(dir: &Path, manifest: &Path, signature: &Path) -> Result<()> {
    for (from, name) in [(manifest, MANIFEST), (signature, SIGNATURE)] {
        std::fs::copy(from, dir.join(name))
            .with_context(|| format!("cannot copy {} into {}", from.display(), dir.display()))?;
    }
    Ok(())
}

/// The iPXE script. `kiln-url` is where the initramfs finds the bundle:
/// this script's URL when iPXE got it as its DHCP boot file name, else
/// whatever the operator's menu sets before `chain`; `kiln-args` adds
/// per-node kernel arguments (`kiln.provision=URL`).
fn script(inputs: &PxeInputs) -> String {
    let cmdline: String = inputs.cmdline.iter().map(|a| format!(" {a}")).collect();
    format!(
        "#!ipxe\n\
         # kiln PXE bundle of {name} {version} (docs/pxe.md): serve this\n\
         # directory over HTTP(S) and boot this script with iPXE. When it is\n\
         # not iPXE's DHCP boot file, set kiln-url to its URL before chaining.\n\
         isset ${{kiln-url}} || set kiln-url ${{filename}}\n\
         echo kiln: booting {name} {version} from ${{kiln-url}}\n\
         kernel vmlinuz initrd=initrd.img root=/dev/mapper/root ro kiln.pxe=${{kiln-url}}{cmdline} ${{kiln-args}}\n\
         initrd initrd.img\n\
         boot\n",
        name = inputs.name,
        version = inputs.version,
    )
}

/// A newc cpio archive of what the initramfs trusts, owned by root and
/// dated SOURCE_DATE_EPOCH.
fn trust_archive(inputs: &PxeInputs) -> Result<Vec<u8>> {
    let base = TRUST_DIR.trim_start_matches('/');
    let mut cpio = Cpio::new(inputs.epoch);
    let mut dir = String::new();
    for part in base.split('/') {
        if !dir.is_empty() {
            dir.push('/');
        }
        dir.push_str(part);
        // /etc is the initramfs's own.
        if dir != "etc" {
            cpio.dir(&dir);
        }
    }
    let image = format!("name={}\nminimum_version={}\n", inputs.name, inputs.version);
    cpio.file(&format!("{base}/{IMAGE_FILE}"), image.as_bytes());
    cpio.dir(&format!("{base}/{KEYS_DIR}"));
    for key in inputs.keys {
        let text = key.to_file_string(Some("a key the kiln PXE initramfs trusts"))?;
        cpio.file(
            &format!("{base}/{KEYS_DIR}/{}.pub", key.key_id()),
            text.as_bytes(),
        );
    }
    Ok(cpio.finish())
}

/// The "new ASCII" cpio format the kernel unpacks (no CRC).
struct Cpio {
    out: Vec<u8>,
    ino: u32,
    mtime: u64,
}

impl Cpio {
    fn new(mtime: u64) -> Cpio {
        Cpio {
            out: Vec::new(),
            ino: 0,
            mtime,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o040000 != 0 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            self.mtime as u32,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    fn file(&mut self, name: &str, data: &[u8]) {
        self.entry(name, 0o100644, data);
    }

    fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Copies `len` bytes at `offset` of `from` into a new file `to`.
fn copy_range(from: &Path, offset: u64, len: u64, to: &Path) -> Result<()> {
    let mut input =
        std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    input.seek(SeekFrom::Start(offset))?;
    let mut output =
        std::fs::File::create(to).with_context(|| format!("cannot write {}", to.display()))?;
    let copied = std::io::copy(&mut input.take(len), &mut output)
        .with_context(|| format!("cannot write {}", to.display()))?;
    if copied != len {
        bail!("{} ended before its partition did", from.display());
    }
    output.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trust_archive_is_what_cpio_reads() {
        let key = kiln_minisign::SecretKey::generate().unwrap().public_key();
        let inputs = PxeInputs {
            name: "node",
            version: "1.2",
            cmdline: &[],
            keys: std::slice::from_ref(&key),
            epoch: 1_700_000_000,
        };
        let archive = trust_archive(&inputs).unwrap();
        assert_eq!(archive.len() % 4, 0);
        let dir = tempfile::tempdir().unwrap();
        let mut cpio = std::process::Command::new("cpio")
            .args(["-id", "--quiet", "--no-absolute-filenames"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("cpio is installed");
        cpio.stdin.take().unwrap().write_all(&archive).unwrap();
        assert!(cpio.wait().unwrap().success());
        let trust = kiln_node::pxe::Trust::read(&dir.path().join("etc/kiln/pxe")).unwrap();
        assert_eq!(trust.name, "node");
        assert_eq!(trust.minimum_version, "1.2");
        assert_eq!(trust.keys, vec![key]);
    }

    #[test]
    fn the_script_passes_the_recipe_arguments() {
        let inputs = PxeInputs {
            name: "node",
            version: "1",
            cmdline: &["console=ttyS0,115200".into()],
            keys: &[],
            epoch: 0,
        };
        let text = script(&inputs);
        assert!(text.starts_with("#!ipxe\n"));
        assert!(text.contains(
            "kernel vmlinuz initrd=initrd.img root=/dev/mapper/root ro kiln.pxe=${kiln-url} console=ttyS0,115200 ${kiln-args}\n"
        ));
    }
}
