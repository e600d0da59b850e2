//! The sshd_config evaluator against the real daemon: for each
//! configuration written here, `sshd -T` (run in a private mount namespace
//! where the test's /etc/ssh is bind-mounted over the host's, with a
//! throwaway host key) must print the same effective value as kiln's
//! reader for every keyword sshd prints that the reader knows (its
//! compiled-in defaults and every keyword the files set), and the reader
//! must know every keyword the files change. Needs root and
//! openssh-server (`apt-get install openssh-server`).

use crate::common;

use kiln_policy::sshd::{DEFAULTS, SshdConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

type Effective = BTreeMap<String, Vec<String>>;

/// Every test here: sshd, and root for the private mount namespace.
fn require_sshd() {
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "sshd is missing: apt-get install openssh-server (the test oracle)"
    );
    common::require_root("sshd -T cross-check (mounts in a private namespace)");
}

/// `sshd -T` on the tree at `root`: keyword → values (one per line), with
/// `root` itself (in the host key's path) written as `ROOT`.
fn sshd_t(root: &Path) -> Effective {
    let key = root.join("hostkey");
    if !key.exists() {
        common::run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key),
        );
    }
    let script = format!(
        "mount --bind '{etc}' /etc/ssh && mount -t tmpfs tmpfs /run && mkdir /run/sshd && exec /usr/sbin/sshd -T -f /etc/ssh/sshd_config -h '{key}'",
        etc = root.join("etc/ssh").display(),
        key = key.display()
    );
    let out = common::run_ok(Command::new("unshare").args(["-m", "sh", "-c", &script]));
    let root = root.display().to_string();
    let mut map = Effective::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        map.entry(k.to_owned())
            .or_default()
            .push(v.replace(&root, "ROOT"));
    }
    map
}

/// `sshd -T` of an empty configuration: the compiled-in values.
fn compiled_in() -> &'static Effective {
    static CELL: OnceLock<Effective> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[("/etc/ssh/sshd_config", "")]);
        sshd_t(dir.path())
    })
}

/// Where `sshd -T` and kiln's reader disagree. Compared: every keyword
/// sshd prints that the reader has a value for (`SshdConfig::value`; for
/// accumulating keywords the words of `SshdConfig::list`, as sshd prints
/// them one entry a line), and every keyword the reader has a value for.
/// A keyword whose value differs from the compiled-in one was set by the
/// files, so the reader must know it.
fn differences(daemon: &Effective, ours: &SshdConfig) -> Vec<String> {
    let keywords: BTreeSet<&str> = daemon
        .keys()
        .map(String::as_str)
        .chain(DEFAULTS.iter().map(|(k, _)| *k))
        .collect();
    let mut diffs = Vec::new();
    for keyword in keywords {
        let theirs = daemon.get(keyword);
        let list = ours.list(keyword);
        let (theirs, mine) = if list.is_empty() {
            (
                theirs.map(|v| v.join("\n")),
                ours.value(keyword).map(|v| v.text),
            )
        } else {
            let words = |v: &Vec<String>| -> String {
                let words: Vec<&str> = v.iter().flat_map(|l| l.split(' ')).collect();
                words.join(" ")
            };
            let mine: Vec<String> = list.iter().flat_map(|s| s.args.clone()).collect();
            (theirs.map(words), Some(mine.join(" ")))
        };
        match (theirs, mine) {
            (Some(theirs), None) if compiled_in().get(keyword) != daemon.get(keyword) => {
                diffs.push(format!(
                    "{keyword}: the files set {theirs:?} (sshd -T), kiln's reader has nothing"
                ));
            }
            (Some(_), None) => {}
            (theirs, mine) if theirs != mine => {
                diffs.push(format!("{keyword}: sshd -T {theirs:?}, kiln {mine:?}"));
            }
            _ => {}
        }
    }
    diffs
}

fn write(root: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(root.join("etc/ssh/sshd_config.d")).unwrap();
    for (path, text) in files {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// Writes `files`, reads them with sshd and with kiln; the differences.
fn compare(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), files);
    let daemon = sshd_t(dir.path());
    let loaded = kiln_policy::audit::load_directory(dir.path(), false).unwrap();
    let image = loaded.image();
    differences(&daemon, &SshdConfig::load(&image))
}

#[test]
#[ignore = "needs root"]
fn compiled_in_defaults_match_the_daemon() {
    require_sshd();
    let diffs = compare(&[("/etc/ssh/sshd_config", "")]);
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
#[ignore = "needs root"]
fn debian_layout_include_first_value_wins() {
    require_sshd();
    let diffs = compare(&[
        (
            "/etc/ssh/sshd_config",
            "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\nPasswordAuthentication yes\nMaxAuthTries 5\n",
        ),
        // lexical order: 10- before 9-; the first value obtained wins
        (
            "/etc/ssh/sshd_config.d/9-late.conf",
            "X11Forwarding yes\nMaxAuthTries 2\nPermitRootLogin yes\n",
        ),
        (
            "/etc/ssh/sshd_config.d/10-early.conf",
            "X11Forwarding no\nPasswordAuthentication no\nPermitRootLogin no\n",
        ),
        // not matched by *.conf
        (
            "/etc/ssh/sshd_config.d/50-ignored.conf.disabled",
            "LoginGraceTime 5\n",
        ),
    ]);
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
#[ignore = "needs root"]
fn include_in_the_middle_relative_paths_and_nesting() {
    require_sshd();
    let diffs = compare(&[
        (
            "/etc/ssh/sshd_config",
            "MaxSessions 4\nInclude sshd_config.d/*.conf extra/none-*.conf\nMaxSessions 8\nLoginGraceTime 30\nClientAliveInterval 1m\n",
        ),
        (
            "/etc/ssh/sshd_config.d/a.conf",
            "MaxSessions 6\nInclude /etc/ssh/nested.d/*\nLoginGraceTime 90\n",
        ),
        (
            "/etc/ssh/nested.d/x",
            "ClientAliveInterval 2h30s\nClientAliveCountMax 2\n",
        ),
    ]);
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
#[ignore = "needs root"]
fn syntax_aliases_and_algorithm_lists() {
    require_sshd();
    let diffs = compare(&[(
        "/etc/ssh/sshd_config",
        "permitrootlogin prohibit-password\nCHALLENGERESPONSEAUTHENTICATION no\nPasswordAuthentication=no\nLogLevel verbose\nMaxStartups 5\nBanner \"/etc/issue.net\"\nMaxSessions 3 # three\nAllowTcpForwarding all\nGatewayPorts clientspecified\nPermitTunnel point-to-point\nIgnoreRhosts shosts-only\nPermitUserEnvironment LANG,LC_*\nKexAlgorithms -ecdh-sha2*,*group14*\nCiphers +aes128-cbc\nMACs ^hmac-sha2-512-etm@openssh.com\nHostKeyAlgorithms -ecdsa*,sk-ecdsa*\nRequiredRSASize 3072\nAllowUsers alice bob\nAllowUsers carol\nAllowGroups admins\nAuthenticationMethods publickey\nLoginGraceTime 1m30s\n",
    )]);
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
#[ignore = "needs root"]
fn a_match_block_in_an_included_file_ends_with_that_file() {
    require_sshd();
    let diffs = compare(&[
        (
            "/etc/ssh/sshd_config",
            "Include /etc/ssh/sshd_config.d/*.conf\nMaxAuthTries 4\nX11Forwarding yes\n",
        ),
        (
            "/etc/ssh/sshd_config.d/10-match.conf",
            "PasswordAuthentication no\nMatch User bob\n  MaxAuthTries 2\n  X11Forwarding no\n",
        ),
    ]);
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
#[ignore = "needs root"]
fn the_comparison_can_fail() {
    require_sshd();
    // sshd reads one text, the reader is given another: every way of
    // disagreeing is reported, by keyword.
    const TEXT: &str =
        "X11Forwarding no\nX11Forwarding yes\nPrintMotd no\nUsePAM yes\nAcceptEnv LANG LC_*\n";
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("/etc/ssh/sshd_config", TEXT)]);
    let daemon = sshd_t(dir.path());
    assert_eq!(daemon["x11forwarding"], ["no"]);
    let tree = kiln_tree::Tree::new();
    let store = kiln_tree::Store::discard();
    let image = kiln_policy::audit::Image::new(&tree, kiln_policy::audit::Contents::Store(&store));
    let read = |text: &str| -> Vec<String> {
        let diffs = differences(
            &daemon,
            &SshdConfig::parse_text(&image, "/etc/ssh/sshd_config", text),
        );
        diffs
            .iter()
            .map(|d| d.split(':').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(read(TEXT), Vec::<String>::new());
    // a naive "last value wins" reader, on a keyword with a modelled default
    assert_eq!(
        read(&TEXT.replacen("X11Forwarding no\n", "", 1)),
        ["x11forwarding"]
    );
    // a keyword without one, read differently
    assert_eq!(
        read(&TEXT.replace("PrintMotd no", "PrintMotd yes")),
        ["printmotd"]
    );
    // a keyword the files set that the reader does not see at all
    assert_eq!(read(&TEXT.replace("UsePAM yes\n", "")), ["usepam"]);
    // an accumulating keyword
    assert_eq!(read(&TEXT.replace("LANG LC_*", "LANG")), ["acceptenv"]);
}
