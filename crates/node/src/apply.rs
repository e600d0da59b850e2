//! Writes validated provisioning data onto the node's state partition.
//! Everything is checked before the first write; each file appears whole
//! (written beside its place, then renamed). Re-provisioning replaces
//! what an earlier provisioning wrote.

use crate::provision::{Provision, TOKEN_PATH, is_user_name};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Where the node's hostname lives (bound over /etc/hostname at boot).
pub const HOSTNAME: &str = "/var/lib/kiln/hostname";
/// Extra SSH keys, one file per user (sshd's second AuthorizedKeysFile).
pub const KEYS_DIR: &str = "/var/lib/kiln/authorized_keys";
/// `KILN_K3S_ARGS=...` for k3s-agent.service (node labels and taints).
pub const K3S_ENV: &str = "/var/lib/kiln/k3s-agent.env";

/// Applies `p` under `root` (`/` on the node). Returns what was done.
pub fn apply(root: &Path, p: &Provision, live: bool) -> Result<Vec<String>> {
    let at = |path: &str| root.join(path.trim_start_matches('/'));
    // Check every user first: nothing is written for a wrong one.
    let passwd = std::fs::read_to_string(at("/etc/passwd")).context("cannot read /etc/passwd")?;
    let mut keys = Vec::new();
    for (user, list) in &p.keys {
        let name = match user {
            Some(name) if is_user_name(name) && user_exists(&passwd, name) => name.clone(),
            Some(name) => bail!("users: {name:?} is not a user of this image; kiln adds keys to existing users only"),
            None => default_user(&passwd).context(
                "ssh_authorized_keys: the image has no login user to give them to (name one under users:)",
            )?,
        };
        keys.push((name, list));
    }
    let mut done = Vec::new();
    if let Some(token) = &p.token {
        write_atomic(&at(TOKEN_PATH), token, 0o600)?;
        done.push(format!("wrote the join token to {TOKEN_PATH} (0600)"));
    }
    if let Some(name) = &p.hostname {
        write_in_place(&at(HOSTNAME), format!("{name}\n").as_bytes())?;
        if live {
            set_hostname(name)?;
        }
        done.push(format!("hostname {name}"));
    }
    let dir = at(KEYS_DIR);
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keys.iter().any(|(u, _)| *u == name) {
            std::fs::remove_file(entry.path())?;
            done.push(format!("removed the earlier provisioned keys of {name}"));
        }
    }
    for (user, list) in &keys {
        let mut text =
            String::from("# Written by kiln-node provision; replaced at every provisioning.\n");
        for key in *list {
            text.push_str(key);
            text.push('\n');
        }
        write_atomic(&dir.join(user), text.as_bytes(), 0o644)?;
        done.push(format!("{} SSH key(s) for {user}", list.len()));
    }
    let args: Vec<String> = p
        .node_labels
        .iter()
        .map(|l| format!("--node-label={l}"))
        .chain(p.node_taints.iter().map(|t| format!("--node-taint={t}")))
        .collect();
    write_atomic(
        &at(K3S_ENV),
        format!("KILN_K3S_ARGS={}\n", args.join(" ")).as_bytes(),
        0o644,
    )?;
    if !args.is_empty() {
        done.push(format!("K3s arguments {}", args.join(" ")));
    }
    Ok(done)
}

fn user_exists(passwd: &str, name: &str) -> bool {
    passwd.lines().any(|l| l.split(':').next() == Some(name))
}

/// cloud-init's "default user": the first account with a uid from 1000
/// and a login shell.
fn default_user(passwd: &str) -> Option<String> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let uid: u32 = f.get(2)?.parse().ok()?;
        let shell = f.get(6)?;
        let login = !shell.ends_with("nologin") && !shell.ends_with("false");
        ((1000..60000).contains(&uid) && login).then(|| f[0].to_owned())
    })
}

/// Writes a file atomically (a temporary file beside it, then a rename).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().context("a path without a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-provision-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Rewrites a file keeping its inode: the hostname file is bound over
/// /etc/hostname at boot, and a renamed-over file would leave the bind
/// showing the old one.
fn write_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a path without a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

fn set_hostname(name: &str) -> Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        bail!(
            "cannot set the hostname: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
