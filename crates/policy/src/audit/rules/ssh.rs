//! ssh.*: the OpenSSH server, through the effective configuration
//! ([`crate::sshd`]). Not applicable without /usr/sbin/sshd.

use super::{Rule, UNIT_DIRS, findings, not_applicable, owner_mode, rule, unit_files};
use crate::audit::{Check, Ctx, Finding, Mode};
use crate::sshd::{self, MAIN_CONFIG, Value};

pub const RULES: &[Rule] = &[
    rule!("ssh.root-login", Critical, root_login,
        title: "root cannot log in over SSH",
        source: "CIS 5.1.20; DS sshd-06",
        rationale: "Direct root logins bypass per-user accountability; OpenSSH's default (prohibit-password) still lets root in with a key.",
        remediation: "Set `PermitRootLogin no` in a file of /etc/ssh/sshd_config.d read before anything that sets it."),
    rule!("ssh.password-auth", Critical, password_auth,
        title: "password authentication is off",
        source: "DS sshd-27",
        rationale: "Passwords can be guessed and phished; nodes are administered with keys. OpenSSH's default is yes.",
        remediation: "Set `PasswordAuthentication no`."),
    rule!("ssh.kbd-interactive", High, kbd_interactive,
        title: "keyboard-interactive authentication is off",
        source: "DS sshd-29",
        rationale: "Keyboard-interactive is password authentication through PAM under another name.",
        remediation: "Set `KbdInteractiveAuthentication no`."),
    rule!("ssh.empty-passwords", Critical, empty_passwords,
        title: "empty passwords are refused",
        source: "CIS 5.1.19",
        rationale: "An account with an empty password would need no credential at all.",
        remediation: "Set `PermitEmptyPasswords no` (the default)."),
    rule!("ssh.pubkey", High, pubkey,
        title: "logins require a public key",
        source: "DS sshd-22",
        rationale: "Public-key authentication must be on, and AuthenticationMethods must require it so that no other method alone opens a session.",
        remediation: "Set `PubkeyAuthentication yes` and `AuthenticationMethods publickey`."),
    rule!("ssh.max-auth-tries", Medium, max_auth_tries,
        title: "few authentication attempts per connection",
        source: "CIS 5.1.16; LY SSH-7408",
        rationale: "A low MaxAuthTries slows guessing and logs failures early. The default is 6.",
        remediation: "Set `MaxAuthTries 3`."),
    rule!("ssh.login-grace", Medium, login_grace,
        title: "unauthenticated connections are dropped quickly",
        source: "CIS 5.1.13",
        rationale: "A long LoginGraceTime lets unauthenticated connections pile up (the default is 120s).",
        remediation: "Set `LoginGraceTime 60`."),
    rule!("ssh.x11", High, x11,
        title: "X11 forwarding is off",
        source: "DS sshd-42",
        rationale: "X11 forwarding exposes the client's display to the server; a K3s node has no X. Debian's sshd_config turns it on.",
        remediation: "Set `X11Forwarding no` in sshd_config.d (read before Debian's `X11Forwarding yes`)."),
    rule!("ssh.forwarding", Medium, forwarding,
        title: "SSH forwarding is off",
        source: "CIS 5.1.8",
        rationale: "TCP, agent and tunnel forwarding turn a node login into a pivot into the cluster network.",
        remediation: "Set `DisableForwarding yes` (or AllowTcpForwarding, AllowAgentForwarding, PermitTunnel and GatewayPorts to no)."),
    rule!("ssh.client-alive", Medium, client_alive,
        title: "idle sessions are closed",
        source: "CIS 5.1.7",
        rationale: "ClientAliveInterval with ClientAliveCountMax ends dead or abandoned sessions; the default interval 0 never checks.",
        remediation: "Set `ClientAliveInterval 300` and `ClientAliveCountMax 3`."),
    rule!("ssh.log-level", Low, log_level,
        title: "sshd logs logins",
        source: "CIS 5.1.14; DS sshd-13",
        rationale: "INFO or VERBOSE records logins (VERBOSE adds key fingerprints); DEBUG leaks too much, QUIET too little.",
        remediation: "Set `LogLevel VERBOSE`."),
    rule!("ssh.banner", Low, banner,
        title: "a login banner is shown",
        source: "CIS 5.1.5",
        rationale: "A warning banner states the terms of access before authentication.",
        remediation: "Set `Banner /etc/issue.net` and ship that file."),
    rule!("ssh.allow-list", High, allow_list,
        title: "SSH access is limited to listed users or groups",
        source: "CIS 5.1.4; LY SSH-7440",
        rationale: "AllowUsers or AllowGroups makes every other account unable to log in over SSH, whatever its keys.",
        remediation: "Set `AllowGroups` (or `AllowUsers`) to the administrators."),
    rule!("ssh.misc", Medium, misc,
        title: "the remaining CIS sshd settings",
        source: "CIS 5.1.9-22",
        rationale: "Host-based and GSSAPI authentication, rhosts, user environments, lax StrictModes, and generous MaxStartups/MaxSessions widen the attack surface.",
        remediation: "Set HostbasedAuthentication no, IgnoreRhosts yes, PermitUserEnvironment no, GSSAPIAuthentication no, StrictModes yes, MaxStartups 10:30:60, MaxSessions 10."),
    rule!("ssh.kex", High, kex,
        title: "only strong key exchange algorithms",
        source: "SAP",
        rationale: "NIST curves and group14 are outside the hardened policy; the default list includes them.",
        remediation: "Set `KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256`."),
    rule!("ssh.ciphers", High, ciphers,
        title: "only strong ciphers",
        source: "SAP",
        rationale: "CBC modes and legacy ciphers are outside the hardened policy.",
        remediation: "Set `Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr`."),
    rule!("ssh.macs", High, macs,
        title: "only encrypt-then-MAC algorithms",
        source: "SAP",
        rationale: "SHA-1 MACs, 64-bit tags and MAC-then-encrypt modes are outside the hardened policy; the default list includes them.",
        remediation: "Set `MACs hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,umac-128-etm@openssh.com`."),
    rule!("ssh.host-key-algorithms", Medium, host_key_algorithms,
        title: "only Ed25519 and RSA-SHA2 host keys, RSA of 3072 bits or more",
        source: "SAP",
        rationale: "ECDSA host keys use NIST curves; short RSA keys are weak. RequiredRSASize defaults to 1024.",
        remediation: "Set `HostKeyAlgorithms ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512,rsa-sha2-256` and `RequiredRSASize 3072`."),
    rule!("ssh.moduli", Medium, moduli,
        title: "no small Diffie-Hellman groups",
        source: "ssh-audit guides",
        rationale: "Groups under 3072 bits in /etc/ssh/moduli weaken diffie-hellman-group-exchange.",
        remediation: "Remove the lines whose fifth field is below 3071: `awk '$5 >= 3071' /etc/ssh/moduli`."),
    rule!("ssh.no-host-keys", Critical, no_host_keys,
        title: "no SSH host keys in the image, generated at first boot",
        source: "diskimage-builder runtime-ssh-host-keys",
        rationale: "Host keys baked into an image are shared by every node: one leak impersonates them all.",
        remediation: "Remove /etc/ssh/ssh_host_* from the image and ship a unit that runs `ssh-keygen -A` before ssh.service."),
    rule!("ssh.perms", High, perms,
        title: "sshd's configuration is root's",
        source: "CIS 5.1.1-3",
        rationale: "Whoever can write sshd's configuration can let themselves in.",
        remediation: "Make sshd_config and sshd_config.d/*.conf mode 0600 (or 0644) root:root, and /etc/ssh not group or world writable."),
    rule!("ssh.match", Low, match_blocks,
        title: "Match blocks are reviewed",
        source: "kiln (sshd_config(5) Match)",
        rationale: "Match blocks change settings for some users, groups or addresses; the checks above judge the global values, so each Match block needs a human look.",
        remediation: "Review each Match block; waive this rule with the reason once reviewed."),
];

/// sshd is installed.
pub fn sshd_present(ctx: &Ctx) -> bool {
    ["/usr/sbin/sshd", "/sbin/sshd", "/usr/bin/sshd"]
        .iter()
        .any(|p| ctx.img.is_file(p))
}

/// Runs a check when sshd is installed.
fn with_sshd(ctx: &Ctx, check: impl FnOnce(&Ctx) -> Vec<Finding>) -> Check {
    if !sshd_present(ctx) {
        return not_applicable("sshd is not installed (/usr/sbin/sshd is absent)");
    }
    let mut out = Vec::new();
    for (path, line, message) in &ctx.sshd().problems {
        out.push(
            Finding::new(
                path.clone(),
                "unreadable",
                format!("sshd would refuse this line: {message}"),
            )
            .at_line(*line),
        );
    }
    out.extend(check(ctx));
    findings(out)
}

/// How sshd_config spells a keyword, for messages.
fn spelled(keyword: &str) -> &str {
    const NAMES: &[&str] = &[
        "PermitRootLogin",
        "PasswordAuthentication",
        "KbdInteractiveAuthentication",
        "PermitEmptyPasswords",
        "PubkeyAuthentication",
        "AuthenticationMethods",
        "MaxAuthTries",
        "LoginGraceTime",
        "X11Forwarding",
        "DisableForwarding",
        "AllowTcpForwarding",
        "AllowAgentForwarding",
        "PermitTunnel",
        "GatewayPorts",
        "ClientAliveInterval",
        "ClientAliveCountMax",
        "LogLevel",
        "Banner",
        "HostbasedAuthentication",
        "IgnoreRhosts",
        "PermitUserEnvironment",
        "GSSAPIAuthentication",
        "StrictModes",
        "MaxStartups",
        "MaxSessions",
        "KexAlgorithms",
        "Ciphers",
        "MACs",
        "HostKeyAlgorithms",
        "RequiredRSASize",
    ];
    NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(keyword))
        .copied()
        .unwrap_or(keyword)
}

fn value_finding(keyword: &str, value: &Value, expected: &str, prefix: &str) -> Finding {
    let (path, line) = value
        .origin
        .clone()
        .map_or((MAIN_CONFIG.to_owned(), None), |(p, l)| (p, Some(l)));
    let source = if value.origin.is_none() {
        " (compiled-in default)"
    } else {
        ""
    };
    let mut f = Finding::new(
        path,
        format!("{} {}", spelled(keyword), value.text),
        format!(
            "{prefix}{} is {}{source}; expected {expected}",
            spelled(keyword),
            value.text
        ),
    );
    f.line = line;
    f
}

/// Checks the global value of `keyword` and every Match block's.
fn expect(ctx: &Ctx, keyword: &str, expected: &str, ok: impl Fn(&str) -> bool) -> Vec<Finding> {
    let config = ctx.sshd();
    let mut out = Vec::new();
    if let Some(value) = config.value(keyword)
        && !ok(&value.text)
    {
        out.push(value_finding(keyword, &value, expected, ""));
    }
    for (block, value) in config.match_values(keyword) {
        if !ok(&value.text) {
            out.push(value_finding(
                keyword,
                &value,
                expected,
                &format!("in Match {}: ", block.criteria),
            ));
        }
    }
    out
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

fn root_login(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        expect(ctx, "permitrootlogin", "no", |v| v == "no")
    })
}

fn password_auth(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        expect(ctx, "passwordauthentication", "no", |v| v == "no")
    })
}

fn kbd_interactive(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        expect(ctx, "kbdinteractiveauthentication", "no", |v| v == "no")
    })
}

fn empty_passwords(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        expect(ctx, "permitemptypasswords", "no", |v| v == "no")
    })
}

fn pubkey(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        let mut out = expect(ctx, "pubkeyauthentication", "yes", |v| v == "yes");
        out.extend(expect(
            ctx,
            "authenticationmethods",
            "publickey in every method list",
            |v| {
                v != "any"
                    && v.split_whitespace()
                        .all(|list| list.split(',').any(|m| m == "publickey"))
            },
        ));
        out
    })
}

fn max_auth_tries(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        expect(ctx, "maxauthtries", "3 or fewer", |v| {
            number(v).is_some_and(|n| n <= 3)
        })
    })
}

fn login_grace(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        expect(ctx, "logingracetime", "1 to 60 seconds", |v| {
            number(v).is_some_and(|n| (1..=60).contains(&n))
        })
    })
}

fn x11(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| expect(ctx, "x11forwarding", "no", |v| v == "no"))
}

fn forwarding(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        let config = ctx.sshd();
        let disabled = config
            .value("disableforwarding")
            .is_some_and(|v| v.text == "yes");
        let mut out = Vec::new();
        if !disabled {
            for (keyword, ok) in [
                ("allowtcpforwarding", "no"),
                ("allowagentforwarding", "no"),
                ("permittunnel", "no"),
                ("gatewayports", "no"),
            ] {
                out.extend(expect(ctx, keyword, "no (or DisableForwarding yes)", |v| {
                    v == ok
                }));
            }
        }
        for (block, value) in config.match_values("disableforwarding") {
            if value.text != "yes" {
                out.push(value_finding(
                    "disableforwarding",
                    &value,
                    "yes",
                    &format!("in Match {}: ", block.criteria),
                ));
            }
        }
        out
    })
}

fn client_alive(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        let mut out = expect(ctx, "clientaliveinterval", "1 to 300 seconds", |v| {
            number(v).is_some_and(|n| (1..=300).contains(&n))
        });
        out.extend(expect(ctx, "clientalivecountmax", "1 to 3", |v| {
            number(v).is_some_and(|n| (1..=3).contains(&n))
        }));
        out
    })
}

fn log_level(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        expect(ctx, "loglevel", "VERBOSE or INFO", |v| {
            v == "VERBOSE" || v == "INFO"
        })
    })
}

fn banner(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        let mut out = expect(ctx, "banner", "a file", |v| v != "none");
        if let Some(value) = ctx.sshd().value("banner")
            && value.text != "none"
            && !ctx.img.is_file(&value.text)
        {
            out.push(value_finding(
                "banner",
                &value,
                "a file that exists in the image",
                "",
            ));
        }
        out
    })
}

fn allow_list(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        let config = ctx.sshd();
        let listed = ["allowusers", "allowgroups"]
            .iter()
            .any(|k| config.list(k).iter().any(|s| !s.args.is_empty()));
        if listed {
            vec![]
        } else {
            vec![Finding::new(
                MAIN_CONFIG,
                "AllowUsers/AllowGroups unset",
                "every account with a key may log in over SSH",
            )]
        }
    })
}

fn misc(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        let mut out = expect(ctx, "hostbasedauthentication", "no", |v| v == "no");
        out.extend(expect(ctx, "ignorerhosts", "yes", |v| v == "yes"));
        out.extend(expect(ctx, "permituserenvironment", "no", |v| v == "no"));
        out.extend(expect(ctx, "gssapiauthentication", "no", |v| v == "no"));
        out.extend(expect(ctx, "strictmodes", "yes", |v| v == "yes"));
        out.extend(expect(ctx, "maxstartups", "10:30:60 or stricter", |v| {
            let parts: Vec<Option<u64>> = v.split(':').map(number).collect();
            matches!(parts.as_slice(), [Some(begin), Some(rate), Some(full)] if *begin <= 10 && *rate >= 30 && *full <= 60)
        }));
        out.extend(expect(ctx, "maxsessions", "10 or fewer", |v| {
            number(v).is_some_and(|n| n <= 10)
        }));
        out
    })
}

/// Findings for algorithms outside `strong`, global and in Match blocks.
fn algorithms(ctx: &Ctx, keyword: &str, strong: &[&str]) -> Vec<Finding> {
    let weak = |v: &str| -> Vec<String> {
        v.split(',')
            .filter(|a| !a.is_empty() && !strong.contains(a))
            .map(str::to_owned)
            .collect()
    };
    let config = ctx.sshd();
    let mut out = Vec::new();
    let mut report = |value: &Value, prefix: String| {
        let bad = weak(&value.text);
        if bad.is_empty() {
            return;
        }
        let mut f = value_finding(keyword, value, "only the hardened algorithms", &prefix);
        f.value = bad.join(",");
        f.message = format!(
            "{prefix}{} allows {}{}",
            spelled(keyword),
            bad.join(", "),
            if value.origin.is_none() {
                " (compiled-in default)"
            } else {
                ""
            }
        );
        out.push(f);
    };
    if let Some(value) = config.value(keyword) {
        report(&value, String::new());
    }
    for (block, value) in config.match_values(keyword) {
        report(&value, format!("in Match {}: ", block.criteria));
    }
    out
}

fn kex(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        algorithms(ctx, "kexalgorithms", sshd::KEX_STRONG)
    })
}

fn ciphers(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| algorithms(ctx, "ciphers", sshd::CIPHERS))
}

fn macs(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| algorithms(ctx, "macs", sshd::MACS))
}

fn host_key_algorithms(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        let mut out = algorithms(ctx, "hostkeyalgorithms", sshd::HOST_KEY_STRONG);
        out.extend(expect(ctx, "requiredrsasize", "3072 or more", |v| {
            number(v).is_some_and(|n| n >= 3072)
        }));
        out
    })
}

fn moduli(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        let path = "/etc/ssh/moduli";
        let Some(text) = ctx.img.read_text(path) else {
            return vec![];
        };
        let mut small = std::collections::BTreeMap::<u64, usize>::new();
        let mut first_line = None;
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let Some(size) = line.split_whitespace().nth(4).and_then(number) else {
                continue;
            };
            if size < 3071 {
                *small.entry(size + 1).or_default() += 1;
                first_line.get_or_insert(n as u32 + 1);
            }
        }
        let Some(line) = first_line else {
            return vec![];
        };
        let total: usize = small.values().sum();
        let sizes: Vec<String> = small
            .iter()
            .map(|(bits, count)| format!("{count} of {bits} bits"))
            .collect();
        vec![
            Finding::new(
                path,
                sizes.join(", "),
                format!("{total} Diffie-Hellman groups smaller than 3072 bits"),
            )
            .at_line(line),
        ]
    })
}

fn no_host_keys(ctx: &Ctx) -> Check {
    if ctx.mode == Mode::Live {
        return not_applicable("a live node has its own host keys");
    }
    with_sshd(ctx, |ctx| {
        let mut out: Vec<Finding> = ctx
            .img
            .glob("/etc/ssh/ssh_host_*")
            .into_iter()
            // A link to where the node keeps its keys (/var on a read-only
            // root) is not a key; a link to a key in the image is.
            .filter(|p| ctx.img.is_file(p))
            .map(|p| {
                Finding::new(
                    p,
                    "present",
                    "a host key baked into the image is shared by every node",
                )
            })
            .collect();
        let generates = unit_files(ctx, |n| n.ends_with(".service") || n.ends_with(".d"))
            .iter()
            .any(|unit| {
                ctx.img.read_text(unit).is_some_and(|t| {
                    t.lines()
                        .any(|l| l.trim_start().starts_with("Exec") && l.contains("ssh-keygen"))
                })
            });
        if !generates {
            out.push(Finding::new(
                UNIT_DIRS[0],
                "no ssh-keygen unit",
                "no systemd unit generates host keys at boot (ExecStart…=ssh-keygen -A)",
            ));
        }
        out
    })
}

fn perms(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        let mut out = Vec::new();
        for file in &ctx.sshd().files {
            owner_mode(ctx, file, 0o644, &[0], &mut out);
        }
        if let Some((_, entry)) = ctx.img.stat("/etc/ssh") {
            let m = &entry.meta;
            if m.mode & 0o022 != 0 || m.uid != 0 {
                out.push(Finding::new(
                    "/etc/ssh",
                    format!("{:04o} {}:{}", m.mode & 0o7777, m.uid, m.gid),
                    "writable by others than root",
                ));
            }
        }
        out
    })
}

fn match_blocks(ctx: &Ctx) -> Check {
    with_sshd(ctx, |ctx| {
        ctx.sshd()
            .matches
            .iter()
            .map(|b| {
                Finding::new(b.path.clone(), format!("Match {}", b.criteria), format!(
                    "a Match block ({} settings) overrides the global configuration for some connections: review it",
                    b.settings.len()
                ))
                .at_line(b.line)
            })
            .collect()
    })
}
