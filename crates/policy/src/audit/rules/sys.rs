//! sys.*: kernel and network parameters set at boot (sysctl.d). A key no
//! file sets fails: the kernel's default depends on its build and version,
//! and an image states its own posture. Values are the effective ones, as
//! systemd-sysctl computes them ([`crate::sysctl`]); sys.kiln-effective
//! holds kiln's own files (the recipe's values) to being in effect.

use super::{Rule, SysctlWant, findings, not_applicable, rule, sysctl_findings};
use crate::audit::{Check, Ctx, Finding};
use crate::sysctl::KILN_FILES;

pub const RULES: &[Rule] = &[
    rule!("sys.rp-filter", Medium, rp_filter,
        title: "reverse-path filtering is strict",
        source: "CIS 3.3.7",
        rationale: "Strict reverse-path filtering drops spoofed packets arriving on the wrong interface.",
        remediation: "Set net.ipv4.conf.all.rp_filter=1 and net.ipv4.conf.default.rp_filter=1 in /etc/sysctl.d."),
    rule!("sys.redirects", Medium, redirects,
        title: "ICMP redirects are neither accepted nor sent",
        source: "CIS 3.3.2/5/6",
        rationale: "Accepted redirects let a neighbour reroute traffic; a node is not a router that should send them.",
        remediation: "Set accept_redirects=0 (IPv4 and IPv6), secure_redirects=0 and send_redirects=0 for all and default."),
    rule!("sys.source-route", Medium, source_route,
        title: "source-routed packets are refused",
        source: "CIS 3.3.8",
        rationale: "Source routing lets a sender choose the path through the node.",
        remediation: "Set net.ipv4.conf.{all,default}.accept_source_route=0 and net.ipv6.conf.{all,default}.accept_source_route=0."),
    rule!("sys.icmp-syn", Medium, icmp_syn,
        title: "martians logged, broadcast pings and bogus ICMP ignored, SYN cookies on",
        source: "CIS 3.3.x",
        rationale: "These settings log spoofed packets, refuse smurf amplification and resist SYN floods.",
        remediation: "Set net.ipv4.conf.{all,default}.log_martians=1, net.ipv4.icmp_echo_ignore_broadcasts=1, net.ipv4.icmp_ignore_bogus_error_responses=1, net.ipv4.tcp_syncookies=1."),
    rule!("sys.kernel-leaks", Medium, kernel_leaks,
        title: "kernel pointers and logs are hidden",
        source: "DA",
        rationale: "Kernel addresses and the kernel log help exploits defeat KASLR.",
        remediation: "Set kernel.kptr_restrict=2 and kernel.dmesg_restrict=1."),
    rule!("sys.ptrace", Medium, ptrace,
        title: "ptrace is restricted",
        source: "CIS 1.5.2",
        rationale: "With Yama's ptrace_scope of 1 or more, a process can only trace its descendants.",
        remediation: "Set kernel.yama.ptrace_scope=1 (or 2)."),
    rule!("sys.aslr-dump", Medium, aslr_dump,
        title: "full ASLR, no setuid core dumps, no magic SysRq",
        source: "CIS 1.5.x",
        rationale: "Address randomisation hinders exploits; setuid core dumps leak secrets; SysRq gives the console kernel control.",
        remediation: "Set kernel.randomize_va_space=2, fs.suid_dumpable=0, kernel.sysrq=0."),
    rule!("sys.fs-protected", Medium, fs_protected,
        title: "link and FIFO protections are on",
        source: "DL; DA",
        rationale: "These stop classic /tmp symlink, hard-link and FIFO attacks on privileged programs.",
        remediation: "Set fs.protected_hardlinks=1, fs.protected_symlinks=1, fs.protected_fifos=1 (or 2), fs.protected_regular=2."),
    rule!("sys.bpf-kexec", Low, bpf_kexec,
        title: "unprivileged BPF, perf and kexec are off",
        source: "DA; LY",
        rationale: "Unprivileged BPF and perf are frequent kernel exploit paths; kexec can replace the running kernel.",
        remediation: "Set kernel.unprivileged_bpf_disabled=1, net.core.bpf_jit_harden=2, kernel.perf_event_paranoid=2 (or 3), kernel.kexec_load_disabled=1."),
    rule!("sys.kiln-effective", High, kiln_effective,
        title: "every value kiln's sysctl files set is the one in effect",
        source: "kiln (sysctl.d(5) precedence)",
        rationale: "sysctl.d files apply in the order of their names, whatever their directory: a file a package or overlay ships that sorts after kiln's silently replaces the recipe's values (procps's 99-protect-links.conf did so with fs.protected_fifos).",
        remediation: "Remove the overriding line or file, or mask that file with a link to /dev/null of the same name in /etc/sysctl.d. kiln writes the recipe's values to /etc/sysctl.d/99-zz-kiln-hardening.conf, read after every file Debian ships; only a file named after it can override them."),
];

fn expect(ctx: &Ctx, wanted: &[SysctlWant]) -> Check {
    findings(sysctl_findings(
        ctx,
        wanted,
        "/etc/sysctl.d",
        "is not set by any sysctl file",
    ))
}

fn rp_filter(ctx: &Ctx) -> Check {
    expect(
        ctx,
        &[
            ("net.ipv4.conf.all.rp_filter", "1", |v| v == 1),
            ("net.ipv4.conf.default.rp_filter", "1", |v| v == 1),
        ],
    )
}

fn redirects(ctx: &Ctx) -> Check {
    expect(
        ctx,
        &[
            ("net.ipv4.conf.all.accept_redirects", "0", |v| v == 0),
            ("net.ipv4.conf.default.accept_redirects", "0", |v| v == 0),
            ("net.ipv6.conf.all.accept_redirects", "0", |v| v == 0),
            ("net.ipv6.conf.default.accept_redirects", "0", |v| v == 0),
            ("net.ipv4.conf.all.secure_redirects", "0", |v| v == 0),
            ("net.ipv4.conf.default.secure_redirects", "0", |v| v == 0),
            ("net.ipv4.conf.all.send_redirects", "0", |v| v == 0),
            ("net.ipv4.conf.default.send_redirects", "0", |v| v == 0),
        ],
    )
}

fn source_route(ctx: &Ctx) -> Check {
    expect(
        ctx,
        &[
            ("net.ipv4.conf.all.accept_source_route", "0", |v| v == 0),
            ("net.ipv4.conf.default.accept_source_route", "0", |v| v == 0),
            ("net.ipv6.conf.all.accept_source_route", "0", |v| v == 0),
            ("net.ipv6.conf.default.accept_source_route", "0", |v| v == 0),
        ],
    )
}

fn icmp_syn(ctx: &Ctx) -> Check {
    expect(
        ctx,
        &[
            ("net.ipv4.conf.all.log_martians", "1", |v| v == 1),
            ("net.ipv4.conf.default.log_martians", "1", |v| v == 1),
            ("net.ipv4.icmp_echo_ignore_broadcasts", "1", |v| v == 1),
            ("net.ipv4.icmp_ignore_bogus_error_responses", "1", |v| {
                v == 1
            }),
            ("net.ipv4.tcp_syncookies", "1", |v| v == 1),
        ],
    )
}

fn kernel_leaks(ctx: &Ctx) -> Check {
    expect(
        ctx,
        &[
            ("kernel.kptr_restrict", "2", |v| v == 2),
            ("kernel.dmesg_restrict", "1", |v| v == 1),
        ],
    )
}

fn ptrace(ctx: &Ctx) -> Check {
    expect(
        ctx,
        &[("kernel.yama.ptrace_scope", "1 or more", |v| v >= 1)],
    )
}

fn aslr_dump(ctx: &Ctx) -> Check {
    expect(
        ctx,
        &[
            ("kernel.randomize_va_space", "2", |v| v == 2),
            ("fs.suid_dumpable", "0", |v| v == 0),
            ("kernel.sysrq", "0", |v| v == 0),
        ],
    )
}

fn fs_protected(ctx: &Ctx) -> Check {
    expect(
        ctx,
        &[
            ("fs.protected_hardlinks", "1", |v| v == 1),
            ("fs.protected_symlinks", "1", |v| v == 1),
            ("fs.protected_fifos", "1 or more", |v| v >= 1),
            ("fs.protected_regular", "2", |v| v == 2),
        ],
    )
}

fn bpf_kexec(ctx: &Ctx) -> Check {
    expect(
        ctx,
        &[
            ("kernel.unprivileged_bpf_disabled", "1", |v| v == 1),
            ("net.core.bpf_jit_harden", "2", |v| v == 2),
            ("kernel.perf_event_paranoid", "2 or more", |v| v >= 2),
            ("kernel.kexec_load_disabled", "1", |v| v == 1),
        ],
    )
}

/// Each line of kiln's files whose key ends up with another value (or
/// none), reported at the line in effect, which names the file that won.
fn kiln_effective(ctx: &Ctx) -> Check {
    let present: Vec<&str> = KILN_FILES
        .iter()
        .copied()
        .filter(|f| ctx.img.exists(f))
        .collect();
    if present.is_empty() {
        return not_applicable(format!(
            "none of kiln's sysctl files ({})",
            KILN_FILES.join(", ")
        ));
    }
    let sysctl = ctx.sysctl();
    let mut out = Vec::new();
    for file in present {
        if sysctl.masked.iter().any(|m| m == file) {
            out.push(Finding::new(
                file,
                "masked",
                "linked to /dev/null, a device, or empty: none of kiln's values in it apply",
            ));
            continue;
        }
        for own in sysctl.all.iter().filter(|a| a.path == file && !a.exclude) {
            let wanted = format!("kiln's {} = {} ({file}:{})", own.key, own.value, own.line);
            let in_effect = if own.key.contains(['*', '?', '[']) {
                sysctl.entry(&own.key)
            } else {
                sysctl.get(&own.key).or_else(|| sysctl.entry(&own.key))
            };
            match in_effect {
                Some(a) if !a.exclude && a.value == own.value => {}
                Some(a) if a.exclude => out.push(
                    Finding::new(
                        a.path.clone(),
                        format!("-{}", a.key),
                        format!("drops {wanted}"),
                    )
                    .at_line(a.line),
                ),
                Some(a) => out.push(
                    Finding::new(
                        a.path.clone(),
                        format!("{} = {}", a.key, a.value),
                        format!("overrides {wanted}"),
                    )
                    .at_line(a.line),
                ),
                None => out.push(
                    Finding::new(
                        file,
                        format!("{} = {}", own.key, own.value),
                        "not in effect",
                    )
                    .at_line(own.line),
                ),
            }
        }
    }
    findings(out)
}
