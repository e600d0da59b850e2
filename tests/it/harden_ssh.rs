//! `[ssh]` judged by the real OpenSSH: the rendered drop-in, included the
//! way Debian's sshd_config includes it, passes `sshd -t` and `sshd -T`
//! shows every hardened value; weakening is refused with the setting's
//! file:line unless the recipe says why; public keys are checked exactly
//! as `ssh-keygen -l` accepts them.

use crate::common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Debian bookworm's /etc/ssh/sshd_config, without its comments: the
/// drop-in directory first, then settings kiln's values must beat.
const DEBIAN_MAIN: &str = "Include DROPINS/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n";

fn recipe(dir: &Path, ssh: &str) {
    std::fs::write(
        dir.join("r.toml"),
        format!(
            "[image]\nname = \"ssh\"\nversion = \"1\"\n\n\
             [[file]]\ndest = \"/etc/issue.net\"\ncontent = \"Authorised access only.\\n\"\n\n\
             [[group]]\nname = \"ssh-users\"\nsystem = true\n\n\
             [ssh]\nallow_groups = [\"ssh-users\"]\nfrom = [\"192.0.2.0/24\"]\n{ssh}\n\n\
             [audit]\nfail_on = \"none\"\n"
        ),
    )
    .unwrap();
}

/// Builds `r.toml` in `dir` and extracts the image to `dir/root`.
fn build(dir: &Path) -> std::path::PathBuf {
    run_ok(
        kiln()
            .current_dir(dir)
            .args(["build", "r.toml", "-o", "dist"]),
    );
    let root = dir.join("root");
    std::fs::create_dir(&root).unwrap();
    run_ok(
        Command::new("tar")
            .args(["--zstd", "-xf", "dist/ssh-1.rootfs.tar.zst", "-C", "root"])
            .current_dir(dir),
    );
    root
}

/// `sshd -t` then `sshd -T` on the image's drop-in under Debian's main
/// file, with a throwaway host key; the effective settings.
fn effective(dir: &Path, root: &Path) -> BTreeMap<String, Vec<String>> {
    let main = dir.join("sshd_config");
    let dropins = root.join("etc/ssh/sshd_config.d");
    std::fs::write(
        &main,
        DEBIAN_MAIN.replace("DROPINS", dropins.to_str().unwrap()),
    )
    .unwrap();
    let key = dir.join("hostkey");
    if !key.exists() {
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key),
        );
    }
    // sshd checks its privilege separation directory exists
    let _ = std::fs::create_dir_all("/run/sshd");
    let sshd = |flag: &str| {
        Command::new("/usr/sbin/sshd")
            .arg(flag)
            .arg("-f")
            .arg(&main)
            .arg("-h")
            .arg(&key)
            .output()
            .expect("sshd is needed (openssh-server)")
    };
    let t = sshd("-t");
    assert!(
        t.status.success(),
        "sshd -t refused the configuration: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let big_t = sshd("-T");
    assert!(
        big_t.status.success(),
        "{}",
        String::from_utf8_lossy(&big_t.stderr)
    );
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&big_t.stdout).lines() {
        if let Some((k, v)) = line.split_once(' ') {
            out.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    out
}

#[test]
fn sshd_accepts_the_drop_in_and_applies_every_hardened_value() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(w, "");
    let root = build(w);
    let dropin = root.join("etc/ssh/sshd_config.d/00-kiln-hardening.conf");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dropin).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let got = effective(w, &root);
    let expected: &[(&str, &str)] = &[
        ("permitrootlogin", "no"),
        ("passwordauthentication", "no"),
        ("kbdinteractiveauthentication", "no"),
        ("permitemptypasswords", "no"),
        ("pubkeyauthentication", "yes"),
        ("authenticationmethods", "publickey"),
        ("maxauthtries", "3"),
        ("logingracetime", "60"),
        ("x11forwarding", "no"),
        ("disableforwarding", "yes"),
        ("allowtcpforwarding", "no"),
        ("allowagentforwarding", "no"),
        ("allowstreamlocalforwarding", "no"),
        ("permittunnel", "no"),
        ("gatewayports", "no"),
        ("clientaliveinterval", "300"),
        ("clientalivecountmax", "3"),
        ("loglevel", "VERBOSE"),
        ("banner", "/etc/issue.net"),
        ("allowgroups", "ssh-users"),
        ("hostbasedauthentication", "no"),
        ("ignorerhosts", "yes"),
        ("permituserenvironment", "no"),
        ("gssapiauthentication", "no"),
        ("strictmodes", "yes"),
        ("maxstartups", "10:30:60"),
        ("maxsessions", "10"),
        ("requiredrsasize", "3072"),
        (
            "kexalgorithms",
            "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256",
        ),
        (
            "ciphers",
            "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr",
        ),
        (
            "macs",
            "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,umac-128-etm@openssh.com",
        ),
        (
            "hostkeyalgorithms",
            "ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512,rsa-sha2-256",
        ),
        ("hostkey", "/etc/ssh/ssh_host_ed25519_key"),
    ];
    let mut wrong = Vec::new();
    for (key, value) in expected {
        let values = got.get(*key).cloned().unwrap_or_default();
        if !values.iter().any(|v| v == value) {
            wrong.push(format!("{key}: expected {value}, sshd -T says {values:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // no host key is baked, and the first-boot unit is enabled for ssh.service
    assert!(!root.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert!(
        root.join("etc/systemd/system/kiln-ssh-hostkeys.service")
            .is_file()
    );
}

#[test]
fn stricter_values_build_and_weaker_ones_need_a_reason() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(
        w,
        "max_auth_tries = 2\nmacs = [\"hmac-sha2-512-etm@openssh.com\"]\nclient_alive_interval = 120\n",
    );
    let root = build(w);
    let got = effective(w, &root);
    assert_eq!(got["maxauthtries"], ["2"]);
    assert_eq!(got["macs"], ["hmac-sha2-512-etm@openssh.com"]);
    assert_eq!(got["clientaliveinterval"], ["120"]);

    // a weaker MAC: the error names the setting, the file and the line
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(
        w,
        "macs = [\"hmac-sha2-256-etm@openssh.com\", \"hmac-sha1\"]\n",
    );
    let out = kiln()
        .current_dir(w)
        .args(["build", "r.toml", "-o", "dist"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("r.toml:16:42: [ssh] macs: \"hmac-sha1\" is outside the hardened set"),
        "{stderr}"
    );
    assert!(stderr.contains("allow_weaker"), "{stderr}");
    assert!(!w.join("dist/ssh-1.rootfs.tar.zst").exists());

    for (setting, line) in [
        ("max_auth_tries = 6", "max_auth_tries: 6 is more than 3"),
        ("login_grace_time = 0", "login_grace_time: 0 means no limit"),
        (
            "tcp_forwarding = true",
            "tcp_forwarding: true lets logins tunnel",
        ),
        (
            "banner = \"none\"",
            "banner: \"none\" shows no login banner",
        ),
        (
            "max_startups = \"100\"",
            "max_startups: \"100\" admits more",
        ),
    ] {
        let work = tempfile::tempdir().unwrap();
        recipe(work.path(), &format!("{setting}\n"));
        let out = kiln()
            .current_dir(work.path())
            .args(["build", "r.toml"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{setting}: {stderr}");
        assert!(
            stderr.contains("r.toml:16:") && stderr.contains(line),
            "{setting}: {stderr}"
        );
    }

    // with the reason, the weaker value is built and sshd uses it
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(
        w,
        "macs = [\"hmac-sha2-256-etm@openssh.com\", \"hmac-sha2-256\"]\nallow_weaker = \"a legacy appliance only speaks hmac-sha2-256\"\n",
    );
    run_ok(
        kiln()
            .current_dir(w)
            .args(["build", "r.toml", "-o", "dist"]),
    );
    let root = w.join("root");
    std::fs::create_dir(&root).unwrap();
    run_ok(
        Command::new("tar")
            .args(["--zstd", "-xf", "dist/ssh-1.rootfs.tar.zst", "-C", "root"])
            .current_dir(w),
    );
    let got = effective(w, &root);
    assert_eq!(got["macs"], ["hmac-sha2-256-etm@openssh.com,hmac-sha2-256"]);
}

/// Every line `ssh-keygen -l` reads as a key, kiln accepts, and the other
/// way round: real keys of each type, and typos of them.
#[test]
fn key_validation_agrees_with_ssh_keygen() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut lines: Vec<String> = Vec::new();
    for (kind, bits) in [
        ("ed25519", ""),
        ("rsa", "3072"),
        ("ecdsa", "256"),
        ("ecdsa", "521"),
    ] {
        let file = w.join(format!("{kind}{bits}"));
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", kind, "-N", "", "-C", "someone@example", "-f"])
            .arg(&file);
        if !bits.is_empty() {
            cmd.args(["-b", bits]);
        }
        run_ok(&mut cmd);
        let line = std::fs::read_to_string(file.with_extension("pub"))
            .unwrap()
            .trim()
            .to_owned();
        let (kind_word, rest) = line.split_once(' ').unwrap();
        let (data, comment) = rest.split_once(' ').unwrap();
        lines.push(line.clone());
        lines.push(format!("restrict,from=\"10.0.0.0/8\" {line}"));
        if kind == "ecdsa" {
            continue; // ssh-keygen checks the curve point, which kiln does not
        }
        let mut typos = vec![
            format!("{kind_word}x {data} {comment}"),
            format!(
                "{} {data} {comment}",
                if kind == "rsa" {
                    "ssh-ed25519"
                } else {
                    "ssh-rsa"
                }
            ),
            format!("{kind_word} {} {comment}", &data[..data.len() - 4]),
            format!("{kind_word} {}A {comment}", data),
            format!("{kind_word} {} {comment}", data.replacen("AAAA", "AAAB", 1)),
            format!("{kind_word} {}{} {comment}", &data[..20], &data[21..]),
            format!("{kind_word}"),
        ];
        // one changed character inside the key material: still a key
        let mut chars: Vec<char> = data.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'Q' { 'R' } else { 'Q' };
        typos.push(format!(
            "{kind_word} {} {comment}",
            chars.iter().collect::<String>()
        ));
        lines.extend(typos);
    }
    let mut disagreements = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let file = w.join(format!("line{n}.pub"));
        std::fs::write(&file, format!("{line}\n")).unwrap();
        let keygen = Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        let kiln = kiln_policy::keys::parse_authorized_key(line);
        if keygen.status.success() != kiln.is_ok() {
            disagreements.push(format!(
                "{line}\n  ssh-keygen: {} {}\n  kiln: {kiln:?}",
                keygen.status,
                String::from_utf8_lossy(&keygen.stderr).trim()
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert_eq!(lines.len(), 24);
}

#[test]
fn a_typo_in_a_key_is_a_recipe_error_at_its_line() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(w.join("k")),
    );
    let public = std::fs::read_to_string(w.join("k.pub")).unwrap();
    let broken = public.trim().replacen("AAAAC3Nz", "AAAAC3Mz", 1);
    std::fs::write(
        w.join("r.toml"),
        format!("[image]\nname = \"k\"\nversion = \"1\"\n\n[[user]]\nname = \"ops\"\nauthorized_keys = [\n  \"{}\",\n  \"{broken}\",\n]\n", public.trim()),
    )
    .unwrap();
    let out = kiln()
        .current_dir(w)
        .args(["build", "r.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("r.toml:9:3: invalid SSH public key: the key data is a \"ssh-ed25519\" key")
            || stderr.contains("r.toml:9:3: invalid SSH public key:"),
        "{stderr}"
    );
    // an RSA key shorter than RequiredRSASize would be a lock-out
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
            .arg(w.join("rsa")),
    );
    let rsa = std::fs::read_to_string(w.join("rsa.pub")).unwrap();
    std::fs::write(
        w.join("r.toml"),
        format!("[image]\nname = \"k\"\nversion = \"1\"\n\n[[user]]\nname = \"ops\"\nauthorized_keys = [\"{}\"]\n", rsa.trim()),
    )
    .unwrap();
    let out = kiln()
        .current_dir(w)
        .args(["build", "r.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr
            .contains("r.toml:7:20: user ops: this RSA key has 2048 bits, but sshd requires 3072"),
        "{stderr}"
    );
}
