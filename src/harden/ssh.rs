//! `[ssh]`: the OpenSSH server, hardened through a drop-in that sorts first
//! in /etc/ssh/sshd_config.d (Debian's sshd_config includes that directory
//! at its top, and sshd keeps the first value it reads of a keyword), no
//! host keys in the image but a first-boot unit that generates them, and
//! /etc/ssh/moduli without groups under 3072 bits.

use super::{Ctx, units};
use crate::recipe::hardening::SshPlan;
use anyhow::Result;
use kiln_policy::sshd::{DROP_IN, HOSTKEY_UNIT, MODULI};
use kiln_tree::{ImagePath, Kind};

pub fn host_key_path(kind: &str) -> String {
    format!("/etc/ssh/ssh_host_{kind}_key")
}

/// The drop-in's text.
pub fn render(plan: &SshPlan) -> String {
    let mut out = String::from(
        "# Written by kiln from the recipe's [ssh] table; do not edit on a node.\n\
         # sshd keeps the first value it reads for a keyword, and Debian's\n\
         # sshd_config includes this directory before its own settings, so\n\
         # these win. Host keys are generated at first boot (kiln-ssh-hostkeys).\n",
    );
    let mut line = |k: &str, v: &str| {
        out.push_str(k);
        out.push(' ');
        out.push_str(v);
        out.push('\n');
    };
    line("Port", &plan.port.value.to_string());
    for kind in &plan.host_keys.value {
        line("HostKey", &host_key_path(kind));
    }
    line("PermitRootLogin", "no");
    line("PasswordAuthentication", "no");
    line("KbdInteractiveAuthentication", "no");
    line("PermitEmptyPasswords", "no");
    line("PubkeyAuthentication", "yes");
    line("AuthenticationMethods", "publickey");
    line("HostbasedAuthentication", "no");
    line("IgnoreRhosts", "yes");
    line("GSSAPIAuthentication", "no");
    line("KerberosAuthentication", "no");
    line("PermitUserEnvironment", "no");
    line("StrictModes", "yes");
    line("MaxAuthTries", &plan.max_auth_tries.value.to_string());
    line("LoginGraceTime", &plan.login_grace_time.value.to_string());
    line(
        "ClientAliveInterval",
        &plan.client_alive_interval.value.to_string(),
    );
    line(
        "ClientAliveCountMax",
        &plan.client_alive_count_max.value.to_string(),
    );
    line("MaxSessions", &plan.max_sessions.value.to_string());
    line("MaxStartups", &plan.max_startups.value);
    line("X11Forwarding", "no");
    if plan.tcp_forwarding.value {
        line("AllowTcpForwarding", "local");
    } else {
        line("DisableForwarding", "yes");
        line("AllowTcpForwarding", "no");
    }
    line("AllowAgentForwarding", "no");
    line("AllowStreamLocalForwarding", "no");
    line("PermitTunnel", "no");
    line("GatewayPorts", "no");
    line("LogLevel", &plan.log_level.value);
    line("Banner", plan.banner.value.as_deref().unwrap_or("none"));
    line("KexAlgorithms", &plan.kex_algorithms.value.join(","));
    line("Ciphers", &plan.ciphers.value.join(","));
    line("MACs", &plan.macs.value.join(","));
    line(
        "HostKeyAlgorithms",
        &plan.host_key_algorithms.value.join(","),
    );
    line("RequiredRSASize", &plan.required_rsa_size.value.to_string());
    if !plan.allow_groups.is_empty() {
        line("AllowGroups", &plan.allow_groups.join(" "));
    }
    if !plan.allow_users.is_empty() {
        line("AllowUsers", &plan.allow_users.join(" "));
    }
    out
}

/// The first-boot unit: generates each missing host key before sshd
/// starts.
pub fn hostkey_unit(plan: &SshPlan) -> String {
    let mut conditions = String::new();
    let mut commands = String::new();
    for kind in &plan.host_keys.value {
        let path = host_key_path(kind);
        let bits = if kind == "rsa" {
            format!(" -b {}", plan.rsa_host_key_bits.value)
        } else {
            String::new()
        };
        conditions.push_str(&format!("ConditionPathExists=|!{path}\n"));
        commands.push_str(&format!(
            "ExecStart=/bin/sh -c 'test -e {path} || exec /usr/bin/ssh-keygen -q -t {kind}{bits} -N \"\" -C \"\" -f {path}'\n"
        ));
    }
    format!(
        "# Written by kiln: the image carries no SSH host keys (every node would\n\
         # share them); each node generates its own before sshd first starts.\n\
         [Unit]\n\
         Description=Generate this node's SSH host keys\n\
         Before=ssh.service\n\
         {conditions}\n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         {commands}\n\
         [Install]\n\
         WantedBy=ssh.service\n\
         WantedBy=multi-user.target\n"
    )
}

/// Lines of /etc/ssh/moduli whose modulus is at least 3072 bits (the
/// fifth field is the size minus one), comments kept.
pub fn filter_moduli(text: &str) -> (String, usize) {
    let mut removed = 0;
    let mut out = String::new();
    for line in text.lines() {
        let size = line
            .split_whitespace()
            .nth(4)
            .and_then(|s| s.parse::<u64>().ok());
        match size {
            Some(n) if !line.starts_with('#') && n < 3071 => removed += 1,
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    (out, removed)
}

pub fn apply(cx: &mut Ctx, plan: &SshPlan) -> Result<()> {
    let loc = plan.loc.clone();
    if plan.allow_groups.is_empty() && plan.allow_users.is_empty() {
        return Err(loc
            .error("[ssh] needs allow_groups = [\"...\"] (or allow_users): without it every account with a key may log in (rule ssh.allow-list)")
            .into());
    }
    if plan.host_keys.value.iter().any(|k| k == "rsa")
        && !plan
            .host_key_algorithms
            .value
            .iter()
            .any(|a| a.starts_with("rsa-sha2-"))
    {
        let at = plan.host_keys.loc.clone().unwrap_or(loc.clone());
        return Err(at
            .error("host_keys has \"rsa\" but host_key_algorithms offers no rsa-sha2-* algorithm")
            .into());
    }
    if plan.host_keys.value.iter().any(|k| k == "rsa")
        && plan.rsa_host_key_bits.value < plan.required_rsa_size.value
    {
        let at = plan.rsa_host_key_bits.loc.clone().unwrap_or(loc.clone());
        return Err(at
            .error(format!(
                "rsa_host_key_bits {} is below required_rsa_size {}: sshd would refuse its own key",
                plan.rsa_host_key_bits.value, plan.required_rsa_size.value
            ))
            .into());
    }
    if let Some(banner) = &plan.banner.value
        && !cx.is_file(banner)
    {
        let at = plan.banner.loc.clone().unwrap_or(loc.clone());
        return Err(at
                .error(format!(
                    "banner {banner} is not a file in the image; add it (an [[overlay]] or [[file]]), or set banner to another file"
                ))
                .into());
    }
    if plan.from.value.is_empty() {
        cx.warn(format!(
            "{}: [ssh] has no from = [...]: the firewall opens port {} to no one",
            loc.position(),
            plan.port.value
        ));
    }
    for group in &plan.allow_groups {
        if !group.contains(['*', '?']) && !cx.group_exists(group) {
            cx.warn(format!(
                "{}: [ssh] allow_groups names \"{group}\", which is not a group of the image: nobody can log in through it",
                loc.position()
            ));
        }
    }
    cx.write(DROP_IN, &render(plan), 0o600, &loc)?;
    remove_host_keys(cx)?;
    let (moduli, removed) = match cx.read_text(MODULI) {
        Some(text) => filter_moduli(&text),
        None => (String::new(), 0),
    };
    if removed > 0 {
        cx.write(MODULI, &moduli, 0o644, &loc)?;
    }
    let unit = format!("{}/{HOSTKEY_UNIT}", units::ETC);
    cx.write(&unit, &hostkey_unit(plan), 0o644, &loc)?;
    units::enable(cx, HOSTKEY_UNIT, &loc)?;
    units::enable(cx, "ssh.service", &loc)?;
    Ok(())
}

/// Removes /etc/ssh/ssh_host_* (keys made when openssh-server was
/// installed in the build); returns how many were removed.
pub fn remove_host_keys(cx: &mut Ctx) -> Result<usize> {
    let Some(dir) = cx.resolve_dir("/etc/ssh") else {
        return Ok(0);
    };
    let doomed: Vec<ImagePath> = cx
        .tree
        .descendants(&dir)
        .filter(|(p, e)| {
            p.parent() == dir
                && p.file_name().starts_with("ssh_host_")
                && !matches!(e.kind, Kind::Dir)
        })
        .map(|(p, _)| p.clone())
        .collect();
    for p in &doomed {
        cx.tree.remove(p)?;
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moduli_keeps_3072_and_up() {
        let text = "# Time Type Tests Tries Size Generator Modulus\n1 2 6 100 2047 2 AA\n1 2 6 100 3071 2 BB\n1 2 6 100 7679 5 CC\n";
        let (out, removed) = filter_moduli(text);
        assert_eq!(removed, 1);
        assert_eq!(
            out,
            "# Time Type Tests Tries Size Generator Modulus\n1 2 6 100 3071 2 BB\n1 2 6 100 7679 5 CC\n"
        );
    }
}
