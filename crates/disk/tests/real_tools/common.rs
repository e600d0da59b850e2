//! Helpers: the real tools (a missing one fails the test and says which
//! package to install), sample data and a kiln Tree packed by kiln's own
//! tar writer.

use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const EPOCH: u64 = 1_700_000_000;
/// `EPOCH` as the tools print it in UTC.
pub const EPOCH_DATE: &str = "2023-11-14 22:13";

/// The path of `program`, or a failure naming the Debian package.
pub fn need(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{program} is missing: install the Debian package {package} (apt-get install {package})")
        })
}

/// A command for `program` with a fixed locale and time zone.
pub fn tool(program: &str, package: &str) -> Command {
    let mut cmd = Command::new(need(program, package));
    cmd.env("LC_ALL", "C").env("TZ", "UTC");
    cmd
}

/// Runs `cmd`, which must succeed; returns its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the tool starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// Deterministic bytes that do not compress (xorshift64*).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn p(s: &str) -> ImagePath {
    ImagePath::new(s).unwrap()
}

fn meta(mode: u32, uid: u32, gid: u32) -> Meta {
    Meta {
        mode,
        uid,
        gid,
        xattrs: Default::default(),
    }
}

/// A small image with every kind of entry, odd owners and modes, and
/// extended attributes; its root directory is owned by `root_owner`.
pub fn sample_tree(store: &Store, root_owner: (u32, u32)) -> Tree {
    let mut t = Tree::new();
    let put = |t: &mut Tree, path: &str, entry: Entry| t.insert(p(path), entry).unwrap();
    put(
        &mut t,
        "/",
        Entry::dir(meta(0o755, root_owner.0, root_owner.1)),
    );
    for dir in ["/etc", "/usr", "/usr/bin", "/var", "/home"] {
        put(&mut t, dir, Entry::dir(meta(0o755, 0, 0)));
    }
    put(&mut t, "/home/kube", Entry::dir(meta(0o700, 1000, 1000)));
    put(&mut t, "/tmp", Entry::dir(meta(0o1777, 0, 0)));
    let file = |bytes: &[u8], m: Meta| Entry::file(store, bytes, m).unwrap();
    put(&mut t, "/etc/hostname", file(b"node\n", meta(0o644, 0, 0)));
    put(&mut t, "/etc/empty", file(b"", meta(0o600, 0, 42)));
    put(
        &mut t,
        "/home/kube/big",
        file(&noise(300_000, 1), meta(0o640, 1000, 1000)),
    );
    put(
        &mut t,
        "/usr/bin/su",
        file(b"#!/bin/true\n", meta(0o4755, 0, 0)),
    );
    let mut ping = meta(0o755, 0, 0);
    ping.xattrs.insert(
        "security.capability".into(),
        hex_bytes("0100000200200000000000000000000000000000"),
    );
    put(&mut t, "/usr/bin/ping", file(b"ping\n", ping));
    let mut tagged = meta(0o644, 0, 0);
    tagged.xattrs.insert("user.kiln".into(), b"tagged".to_vec());
    put(&mut t, "/etc/tagged", file(b"x\n", tagged));
    put(
        &mut t,
        "/usr/bin/sh",
        Entry {
            kind: Kind::Symlink {
                target: "su".into(),
            },
            meta: meta(0o777, 0, 0),
        },
    );
    put(
        &mut t,
        "/usr/bin/zz-hardlink",
        Entry {
            kind: Kind::HardLink {
                target: p("/usr/bin/su"),
            },
            meta: meta(0o4755, 0, 0),
        },
    );
    put(
        &mut t,
        "/var/null",
        Entry {
            kind: Kind::CharDevice { major: 1, minor: 3 },
            meta: meta(0o666, 0, 0),
        },
    );
    put(
        &mut t,
        "/var/fifo",
        Entry {
            kind: Kind::Fifo,
            meta: meta(0o600, 0, 0),
        },
    );
    t
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `tree` as kiln's deterministic tar stream, members at `EPOCH`.
pub fn kiln_tar(tree: &Tree, store: &Store) -> Vec<u8> {
    kiln_tree::pack::write_tar(tree, store, EPOCH, Vec::new(), &|_| {}).unwrap()
}

/// `ls -l`-style permissions, as unsquashfs prints them.
pub fn ls_mode(kind: &Kind, mode: u32) -> String {
    let mut s = String::from(match kind {
        Kind::Dir => 'd',
        Kind::Symlink { .. } => 'l',
        Kind::CharDevice { .. } => 'c',
        Kind::BlockDevice { .. } => 'b',
        Kind::Fifo => 'p',
        _ => '-',
    });
    for (shift, special, lower, upper) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => lower,
            (false, true) => upper,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// The host's systemd EFI stub (tests only: kiln takes the image's own).
pub fn stub() -> PathBuf {
    let stub = Path::new("/usr/lib/systemd/boot/efi/linuxx64.efi.stub");
    assert!(
        stub.is_file(),
        "{} is missing: install the Debian package systemd-boot-efi",
        stub.display()
    );
    stub.to_path_buf()
}

/// A host kernel from /boot if there is one, else `fallback` (the format
/// tests do not boot it).
pub fn kernel_or(fallback: &Path) -> PathBuf {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
                && std::fs::File::open(p).is_ok()
        })
        .collect();
    kernels.sort();
    kernels.pop().unwrap_or_else(|| fallback.to_path_buf())
}

/// Bytes `offset..offset+len` of `file`.
pub fn slice(file: &Path, offset: u64, len: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut out = vec![0; len as usize];
    f.read_exact(&mut out).unwrap();
    out
}
