//! Every audit rule against small trees built here: a hardened baseline
//! that passes every rule, and for each rule a change of it that makes
//! that rule fail. Plus applicability (not applicable without sshd, K3s
//! or accounts; fw fails without a ruleset; image-only rules on a live
//! root) and waivers.

use kiln_policy::audit::{
    AuditConfig, Date, FailOn, Mode, Report, Severity, Status, Waiver, audit_tree, rule_ids,
};
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};
use std::collections::BTreeSet;

struct Img {
    tree: Tree,
    store: Store,
    _dir: tempfile::TempDir,
}

fn path(p: &str) -> ImagePath {
    ImagePath::new(p).unwrap()
}

impl Img {
    fn new() -> Img {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        Img {
            tree: Tree::new(),
            store,
            _dir: dir,
        }
    }

    fn file_as(&mut self, p: &str, mode: u32, uid: u32, gid: u32, content: &str) -> &mut Img {
        let (digest, size) = self.store.put(content.as_bytes()).unwrap();
        let meta = Meta {
            mode,
            uid,
            gid,
            ..Meta::default()
        };
        self.tree
            .insert(
                path(p),
                Entry {
                    kind: Kind::File { digest, size },
                    meta,
                },
            )
            .unwrap();
        self
    }

    fn file(&mut self, p: &str, mode: u32, content: &str) -> &mut Img {
        self.file_as(p, mode, 0, 0, content)
    }

    fn dir(&mut self, p: &str, mode: u32) -> &mut Img {
        self.tree
            .insert(path(p), Entry::dir(Meta::root(mode)))
            .unwrap();
        self
    }

    fn symlink(&mut self, p: &str, target: &str) -> &mut Img {
        self.tree
            .insert(
                path(p),
                Entry {
                    kind: Kind::Symlink {
                        target: target.into(),
                    },
                    meta: Meta::root(0o777),
                },
            )
            .unwrap();
        self
    }

    fn chmod(&mut self, p: &str, mode: u32) -> &mut Img {
        let mut meta = self.tree.get(&path(p)).unwrap().meta.clone();
        meta.mode = mode;
        self.tree.set_meta(&path(p), meta);
        self
    }

    fn remove(&mut self, p: &str) -> &mut Img {
        self.tree.remove(&path(p)).unwrap();
        self
    }

    fn audit_with(&self, config: &AuditConfig) -> Report {
        audit_tree(&self.tree, &self.store, config)
    }

    fn audit(&self) -> Report {
        self.audit_with(&AuditConfig::default())
    }
}

fn status(report: &Report, id: &str) -> Status {
    report
        .results
        .iter()
        .find(|r| r.rule.id == id)
        .unwrap_or_else(|| panic!("no rule {id}"))
        .status
}

fn failing(report: &Report) -> BTreeSet<&'static str> {
    report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| r.rule.id)
        .collect()
}

pub const SSHD_CONFIG: &str = "\
Include /etc/ssh/sshd_config.d/*.conf
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
PubkeyAuthentication yes
AuthenticationMethods publickey
MaxAuthTries 3
LoginGraceTime 60
X11Forwarding no
DisableForwarding yes
ClientAliveInterval 300
ClientAliveCountMax 3
LogLevel VERBOSE
Banner /etc/issue.net
AllowGroups sshusers
HostbasedAuthentication no
IgnoreRhosts yes
PermitUserEnvironment no
GSSAPIAuthentication no
StrictModes yes
MaxStartups 10:30:60
MaxSessions 10
KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com
MACs hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com
HostKeyAlgorithms ssh-ed25519,rsa-sha2-512
RequiredRSASize 3072
";

pub const NFTABLES: &str = "\
#!/usr/sbin/nft -f
table inet kiln {}
flush table inet kiln
table inet kiln {
  set cluster4 { type ipv4_addr; flags interval; elements = { 10.0.0.0/24 } }
  set cluster6 { type ipv6_addr; flags interval; elements = { fd00::/64 } }
  chain input {
    type filter hook input priority filter; policy drop;
    iif lo accept
    ct state established,related accept
    ct state invalid drop
    meta l4proto { icmp, ipv6-icmp } accept
    ip saddr @cluster4 tcp dport { 22, 10250 } accept
    ip6 saddr @cluster6 tcp dport { 22, 10250 } accept
    ip saddr @cluster4 udp dport { 8472, 51820-51821 } accept
    ip6 saddr @cluster6 udp dport { 8472, 51820-51821 } accept
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ip saddr { 10.42.0.0/16, 10.43.0.0/16 } accept
    ip daddr { 10.42.0.0/16, 10.43.0.0/16 } accept
  }
}
";

/// What kiln wrote before K3s 1.36 was read closely: every kubelet setting
/// as a (deprecated) flag.
const K3S_CONFIG_FLAGS_ONLY: &str = "\
protect-kernel-defaults: true
kubelet-arg:
  - \"streaming-connection-idle-timeout=5m\"
  - \"make-iptables-util-chains=true\"
  - \"tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305\"
  - \"pod-max-pids=4096\"
  - \"seccomp-default=true\"
kube-proxy-arg: [\"metrics-bind-address=127.0.0.1:10249\"]
";

/// What kiln writes: the kubelet's settings in a drop-in directory.
const K3S_CONFIG: &str = "\
protect-kernel-defaults: true
kubelet-arg:
  - \"config-dir=/etc/rancher/k3s/kubelet.conf.d\"
kube-proxy-arg: [\"metrics-bind-address=127.0.0.1:10249\"]
";

/// A KubeletConfiguration drop-in, in YAML (kiln writes JSON; both are
/// read).
const KUBELET_DROPIN: &str = "\
# hardening
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
authorization:
  mode: Webhook
protectKernelDefaults: true
makeIPTablesUtilChains: true
tlsCipherSuites:
  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305
  - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305
podPidsLimit: 4096
seccompDefault: true
";

const K3S_UNIT: &str = "\
[Service]
ExecStartPre=/usr/bin/install -D -m 0600 /etc/rancher/k3s/containerd/50-kiln-cri.toml /var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.d/50-kiln-cri.toml
ExecStart=/usr/local/bin/k3s agent
";

const SYSCTL_KUBELET: &str = "\
vm.panic_on_oom=0
vm.overcommit_memory=1
kernel.panic=10
kernel.panic_on_oops=1
kernel.keys.root_maxkeys=1000000
kernel.keys.root_maxbytes=25000000
";

const SYSCTL_HARDENING: &str = "\
net.ipv4.conf.all.rp_filter = 1
net.ipv4.conf.default.rp_filter = 1
net/ipv4/conf/all/accept_redirects = 0
net.ipv4.conf.default.accept_redirects = 0
net.ipv6.conf.all.accept_redirects = 0
net.ipv6.conf.default.accept_redirects = 0
net.ipv4.conf.all.secure_redirects = 0
net.ipv4.conf.default.secure_redirects = 0
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.default.send_redirects = 0
net.ipv4.conf.all.accept_source_route = 0
net.ipv4.conf.default.accept_source_route = 0
net.ipv6.conf.all.accept_source_route = 0
net.ipv6.conf.default.accept_source_route = 0
net.ipv4.conf.*.log_martians = 1
net.ipv4.icmp_echo_ignore_broadcasts = 1
net.ipv4.icmp_ignore_bogus_error_responses = 1
net.ipv4.tcp_syncookies = 1
kernel.kptr_restrict = 2
kernel.dmesg_restrict = 1
kernel.yama.ptrace_scope = 1
kernel.randomize_va_space = 2
fs.suid_dumpable = 0
kernel.sysrq = 0
fs.protected_hardlinks = 1
fs.protected_symlinks = 1
fs.protected_fifos = 2
fs.protected_regular = 2
kernel.unprivileged_bpf_disabled = 1
net.core.bpf_jit_harden = 2
kernel.perf_event_paranoid = 3
kernel.kexec_load_disabled = 1
net.ipv4.ip_forward = 1
";

/// A tree that passes every rule.
fn hardened() -> Img {
    let mut img = Img::new();
    img.dir("/tmp", 0o1777)
        .dir("/etc", 0o755)
        .file("/etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nadmin:x:1000:1000:admin:/home/admin:/bin/bash\n")
        .file_as("/etc/shadow", 0o640, 0, 42, "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nadmin:!:19000:0:99999:7:::\n")
        .file("/etc/group", 0o644, "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nsshusers:x:1001:admin\nadmin:x:1000:\n")
        .file_as("/etc/gshadow", 0o640, 0, 42, "root:*::\n")
        .file("/etc/machine-id", 0o444, "")
        .file("/etc/issue.net", 0o644, "Authorised use only.\n")
        .file("/usr/bin/passwd", 0o4755, "ELF")
        // sshd
        .file("/usr/sbin/sshd", 0o755, "ELF")
        .file("/etc/ssh/sshd_config", 0o600, SSHD_CONFIG)
        .dir("/etc/ssh/sshd_config.d", 0o755)
        .file("/etc/ssh/moduli", 0o644, "# Time Type Tests Tries Size Generator Modulus\n20230101000000 2 6 100 3071 2 FFFF\n20230101000000 2 6 100 4095 5 FFFF\n")
        .file("/etc/systemd/system/ssh-host-keys.service", 0o644, "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n")
        // K3s
        .file("/usr/local/bin/k3s", 0o755, "ELF")
        .file("/etc/rancher/k3s/config.yaml", 0o600, K3S_CONFIG)
        .file("/etc/rancher/k3s/kubelet.conf.d/50-kiln-hardening.conf", 0o600, KUBELET_DROPIN)
        .file("/etc/rancher/k3s/containerd/50-kiln-cri.toml", 0o600, &kiln_policy::containerd::render_dropin())
        .file("/etc/systemd/system/k3s-agent.service", 0o644, K3S_UNIT)
        .file("/etc/sysctl.d/90-kubelet.conf", 0o644, SYSCTL_KUBELET)
        .file("/etc/sysctl.d/60-hardening.conf", 0o644, SYSCTL_HARDENING)
        // nftables
        .file("/usr/sbin/nft", 0o755, "ELF")
        .file("/etc/nftables.conf", 0o755, NFTABLES)
        .file("/usr/lib/systemd/system/nftables.service", 0o644, "[Install]\nWantedBy=sysinit.target\n")
        .symlink("/etc/systemd/system/sysinit.target.wants/nftables.service", "/usr/lib/systemd/system/nftables.service")
        // kiln check
        .file("/etc/systemd/system/kiln-check.service", 0o644, "[Service]\n")
        .file("/etc/systemd/system/kiln-check.timer", 0o644, "[Timer]\n")
        .symlink("/etc/systemd/system/timers.target.wants/kiln-check.timer", "/etc/systemd/system/kiln-check.timer")
        .file("/etc/kiln/keys/release.pub", 0o644, "untrusted comment: x\nRWQ\n");
    img
}

#[test]
fn the_hardened_tree_passes_every_rule() {
    let report = hardened().audit();
    let not_passing: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.status != Status::Pass)
        .map(|r| {
            format!(
                "{} {:?}: {:?} {:?}",
                r.rule.id, r.status, r.findings, r.not_applicable
            )
        })
        .collect();
    assert!(not_passing.is_empty(), "{not_passing:#?}");
    assert!(report.passed());
    assert!(report.errors.is_empty());
    assert_eq!(report.results.len(), rule_ids().len());
}

/// How each rule is made to fail, starting from the hardened tree.
/// A rule id and the change to the hardened tree that must fail it.
type Breaker = (&'static str, fn(&mut Img));

fn breakers() -> Vec<Breaker> {
    fn k3s_dropin(img: &mut Img, text: &str) {
        img.file("/etc/rancher/k3s/config.yaml.d/50-bad.yaml", 0o600, text);
    }
    fn sshd_dropin(img: &mut Img, text: &str) {
        img.file("/etc/ssh/sshd_config.d/00-bad.conf", 0o600, text);
    }
    fn sysctl_late(img: &mut Img, text: &str) {
        img.file("/etc/sysctl.d/99-bad.conf", 0o644, text);
    }
    fn nft(img: &mut Img, from: &str, to: &str) {
        assert!(NFTABLES.contains(from), "{from}");
        img.file("/etc/nftables.conf", 0o755, &NFTABLES.replacen(from, to, 1));
    }
    vec![
        ("k3s.protect-kernel-defaults", |i| {
            k3s_dropin(i, "kubelet-arg+: [\"protect-kernel-defaults=false\"]\n")
        }),
        ("k3s.anonymous-auth", |i| {
            k3s_dropin(i, "kubelet-arg+: [\"anonymous-auth=true\"]\n")
        }),
        ("k3s.authorization-mode", |i| {
            k3s_dropin(
                i,
                "kubelet-arg+:\n- authorization-mode=Webhook,AlwaysAllow\n",
            )
        }),
        ("k3s.client-ca", |i| {
            k3s_dropin(i, "kubelet-arg+: [\"client-ca-file=/etc/ca.pem\"]\n")
        }),
        ("k3s.read-only-port", |i| {
            k3s_dropin(i, "kubelet-arg+: [\"read-only-port=10255\"]\n")
        }),
        ("k3s.streaming-timeout", |i| {
            k3s_dropin(
                i,
                "kubelet-arg+: [\"streaming-connection-idle-timeout=0\"]\n",
            )
        }),
        ("k3s.iptables-chains", |i| {
            k3s_dropin(i, "kubelet-arg+: [\"--make-iptables-util-chains=false\"]\n")
        }),
        ("k3s.event-qps", |i| {
            k3s_dropin(i, "kubelet-arg+: [\"event-qps=-1\"]\n")
        }),
        ("k3s.tls-cert", |i| {
            k3s_dropin(i, "kubelet-arg+: [\"tls-cert-file=/etc/kubelet.crt\"]\n")
        }),
        ("k3s.rotate-certs", |i| {
            k3s_dropin(i, "kubelet-arg+: [\"rotate-certificates=false\"]\n")
        }),
        ("k3s.rotate-server-cert", |i| {
            k3s_dropin(
                i,
                "kubelet-arg+: [\"feature-gates=RotateKubeletServerCertificate=false\"]\n",
            )
        }),
        ("k3s.tls-ciphers", |i| {
            k3s_dropin(
                i,
                "kubelet-arg+: [\"tls-cipher-suites=TLS_RSA_WITH_AES_128_CBC_SHA\"]\n",
            )
        }),
        ("k3s.pod-max-pids", |i| {
            k3s_dropin(i, "kubelet-arg+: [\"pod-max-pids=0\"]\n")
        }),
        ("k3s.seccomp-default", |i| {
            k3s_dropin(i, "kubelet-arg+: [\"seccomp-default=false\"]\n")
        }),
        ("k3s.proxy-metrics", |i| {
            k3s_dropin(
                i,
                "kube-proxy-arg: [\"metrics-bind-address=0.0.0.0:10249\"]\n",
            )
        }),
        ("k3s.config-perms", |i| {
            i.chmod("/etc/rancher/k3s/config.yaml", 0o644);
        }),
        ("k3s.no-baked-token", |i| {
            k3s_dropin(i, "token: K10abc::server:secret\n")
        }),
        ("k3s.no-node-identity", |i| {
            i.file("/etc/rancher/node/password", 0o600, "0123456789abcdef\n");
        }),
        ("k3s.sysctl-file", |i| sysctl_late(i, "kernel.panic = 0\n")),
        ("k3s.sysctl-keys", |i| {
            sysctl_late(i, "kernel.keys.root_maxkeys = 200\n")
        }),
        ("k3s.forwarding", |i| {
            sysctl_late(i, "net.ipv4.ip_forward = 0\n")
        }),
        ("k3s.modules", |i| {
            i.file(
                "/etc/modprobe.d/cis.conf",
                0o644,
                "install overlay /bin/false\n",
            );
        }),
        ("fw.input-drop", |i| {
            nft(i, "policy drop;", "policy accept;")
        }),
        ("fw.no-flush", |i| {
            nft(i, "table inet kiln {}\n", "flush ruleset\n")
        }),
        ("fw.k3s-ports", |i| {
            nft(
                i,
                "iif lo accept",
                "iif lo accept\n    tcp dport 8080 ip saddr 10.0.0.0/24 accept",
            )
        }),
        ("fw.forward", |i| {
            nft(i, "ip saddr { 10.42.0.0/16, 10.43.0.0/16 } accept", "")
        }),
        ("fw.vxlan", |i| {
            nft(
                i,
                "iif lo accept",
                "iif lo accept\n    udp dport 8472 accept",
            )
        }),
        ("fw.kubelet", |i| {
            nft(
                i,
                "iif lo accept",
                "iif lo accept\n    tcp dport 10250 counter accept",
            )
        }),
        ("ssh.root-login", |i| {
            sshd_dropin(i, "PermitRootLogin prohibit-password\n")
        }),
        ("ssh.password-auth", |i| {
            sshd_dropin(i, "PasswordAuthentication yes\n")
        }),
        ("ssh.kbd-interactive", |i| {
            sshd_dropin(i, "ChallengeResponseAuthentication yes\n")
        }),
        ("ssh.empty-passwords", |i| {
            sshd_dropin(i, "PermitEmptyPasswords yes\n")
        }),
        ("ssh.pubkey", |i| {
            sshd_dropin(i, "AuthenticationMethods any\n")
        }),
        ("ssh.max-auth-tries", |i| sshd_dropin(i, "MaxAuthTries 6\n")),
        ("ssh.login-grace", |i| sshd_dropin(i, "LoginGraceTime 2m\n")),
        ("ssh.x11", |i| sshd_dropin(i, "X11Forwarding yes\n")),
        ("ssh.forwarding", |i| {
            sshd_dropin(i, "DisableForwarding no\n")
        }),
        ("ssh.client-alive", |i| {
            sshd_dropin(i, "ClientAliveInterval 0\n")
        }),
        ("ssh.log-level", |i| sshd_dropin(i, "LogLevel QUIET\n")),
        ("ssh.banner", |i| sshd_dropin(i, "Banner none\n")),
        ("ssh.allow-list", |i| {
            i.file(
                "/etc/ssh/sshd_config",
                0o600,
                &SSHD_CONFIG.replace("AllowGroups sshusers\n", ""),
            );
        }),
        ("ssh.misc", |i| sshd_dropin(i, "MaxStartups 100\n")),
        ("ssh.kex", |i| {
            sshd_dropin(i, "KexAlgorithms +diffie-hellman-group14-sha1\n")
        }),
        ("ssh.ciphers", |i| sshd_dropin(i, "Ciphers aes128-cbc\n")),
        ("ssh.macs", |i| sshd_dropin(i, "MACs hmac-sha1\n")),
        ("ssh.host-key-algorithms", |i| {
            sshd_dropin(i, "RequiredRSASize 2048\n")
        }),
        ("ssh.moduli", |i| {
            i.file(
                "/etc/ssh/moduli",
                0o644,
                "20230101000000 2 6 100 2047 2 FFFF\n20230101000000 2 6 100 4095 5 FFFF\n",
            );
        }),
        ("ssh.no-host-keys", |i| {
            i.file("/etc/ssh/ssh_host_ed25519_key", 0o600, "KEY");
        }),
        ("ssh.perms", |i| {
            i.chmod("/etc/ssh/sshd_config", 0o666);
        }),
        ("ssh.match", |i| {
            i.file(
                "/etc/ssh/sshd_config",
                0o600,
                &format!("{SSHD_CONFIG}Match User admin\n  MaxSessions 2\n"),
            );
        }),
        ("sys.rp-filter", |i| {
            sysctl_late(i, "net.ipv4.conf.all.rp_filter = 2\n")
        }),
        ("sys.redirects", |i| {
            sysctl_late(i, "net.ipv6.conf.default.accept_redirects = 1\n")
        }),
        ("sys.source-route", |i| {
            sysctl_late(i, "net.ipv4.conf.all.accept_source_route = 1\n")
        }),
        ("sys.icmp-syn", |i| {
            sysctl_late(i, "net.ipv4.tcp_syncookies = 0\n")
        }),
        ("sys.kernel-leaks", |i| {
            sysctl_late(i, "kernel.kptr_restrict = 1\n")
        }),
        ("sys.ptrace", |i| {
            sysctl_late(i, "kernel.yama.ptrace_scope = 0\n")
        }),
        ("sys.aslr-dump", |i| {
            // /etc/sysctl.conf counts through the link Debian's systemd
            // ships, at the place of its name
            i.file("/etc/sysctl.conf", 0o644, "kernel.sysrq = 438\n")
                .symlink("/etc/sysctl.d/99-sysctl.conf", "../sysctl.conf");
        }),
        ("sys.fs-protected", |i| {
            sysctl_late(i, "fs.protected_regular = 1\n")
        }),
        ("sys.bpf-kexec", |i| {
            sysctl_late(i, "kernel.unprivileged_bpf_disabled = 0\n")
        }),
        ("sys.kiln-effective", |i| {
            // the bug it was written for: procps's file, read after kiln's
            // old 91- name, set fs.protected_fifos back to 1
            i.file(
                "/etc/sysctl.d/91-kiln-hardening.conf",
                0o644,
                "fs.protected_fifos = 2\n",
            )
            .file(
                "/usr/lib/sysctl.d/99-protect-links.conf",
                0o644,
                "fs.protected_fifos = 1\n",
            );
        }),
        ("fs.setuid", |i| {
            i.file("/usr/bin/ping", 0o4755, "ELF");
        }),
        ("fs.world-writable", |i| {
            i.dir("/srv/drop", 0o777);
        }),
        ("fs.devices", |i| {
            let fifo = Entry {
                kind: Kind::Fifo,
                meta: Meta::root(0o644),
            };
            i.tree.insert(path("/var/tmp/pipe"), fifo).unwrap();
        }),
        ("fs.unowned", |i| {
            i.file_as("/opt/tool", 0o755, 4242, 0, "x");
        }),
        ("acct.shadow", |i| {
            i.chmod("/etc/shadow", 0o644);
        }),
        ("acct.empty-password", |i| {
            i.file_as("/etc/shadow", 0o640, 0, 42, "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nadmin::19000:0:99999:7:::\n");
        }),
        ("acct.uid0", |i| {
            i.file("/etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nadmin:x:1000:1000:admin:/home/admin:/bin/bash\ntoor:x:0:0::/root:/bin/sh\n");
        }),
        ("acct.system-shell", |i| {
            i.file("/etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/bin/bash\nadmin:x:1000:1000:admin:/home/admin:/bin/bash\n");
        }),
        ("acct.trust-files", |i| {
            i.file("/root/.rhosts", 0o600, "+ +\n");
        }),
        ("pkg.insecure", |i| {
            i.file("/usr/sbin/in.telnetd", 0o755, "ELF");
        }),
        ("pkg.compilers", |i| {
            i.symlink("/usr/bin/x86_64-linux-gnu-gcc-12", "gcc-12");
        }),
        ("pkg.mutators", |i| {
            i.file("/usr/bin/python3.11", 0o755, "ELF")
                .symlink("/usr/bin/python3", "python3.11");
        }),
        ("img.machine-id", |i| {
            i.file(
                "/etc/machine-id",
                0o444,
                "4f1c0ad2e7a84a0fa4b8c3e1f2d5a6b7\n",
            );
        }),
        ("fim.baseline", |i| {
            i.remove("/etc/systemd/system/timers.target.wants/kiln-check.timer");
        }),
    ]
}

#[test]
fn every_rule_has_a_change_that_fails_it() {
    let cases = breakers();
    let covered: BTreeSet<&str> = cases.iter().map(|(id, _)| *id).collect();
    let all: BTreeSet<&str> = rule_ids().into_iter().collect();
    assert_eq!(
        covered, all,
        "every rule needs a failing case, and only known rules"
    );
    let mut wrong = Vec::new();
    for (id, breaker) in cases {
        let mut img = hardened();
        breaker(&mut img);
        let report = img.audit();
        let failed = failing(&report);
        if !failed.contains(id) {
            wrong.push(format!("{id}: did not fail (failed: {failed:?})"));
        }
        let result = report.results.iter().find(|r| r.rule.id == id).unwrap();
        if result
            .findings
            .iter()
            .any(|f| f.value.is_empty() || f.message.is_empty() || !f.path.starts_with('/'))
        {
            wrong.push(format!(
                "{id}: a finding without path, value or message: {:?}",
                result.findings
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn findings_point_at_the_offending_line() {
    let mut img = hardened();
    img.file(
        "/etc/ssh/sshd_config.d/00-bad.conf",
        0o600,
        "# first\nX11Forwarding yes\n",
    );
    let report = img.audit();
    let x11 = report
        .results
        .iter()
        .find(|r| r.rule.id == "ssh.x11")
        .unwrap();
    assert_eq!(x11.findings[0].path, "/etc/ssh/sshd_config.d/00-bad.conf");
    assert_eq!(x11.findings[0].line, Some(2));
    assert_eq!(x11.findings[0].value, "X11Forwarding yes");

    let mut img = hardened();
    img.file(
        "/etc/rancher/k3s/config.yaml.d/10-token.yaml",
        0o600,
        "agent-token: \"s3cr3t-value\"\n",
    );
    let report = img.audit();
    let token = report
        .results
        .iter()
        .find(|r| r.rule.id == "k3s.no-baked-token")
        .unwrap();
    assert_eq!(token.findings[0].line, Some(1));
    assert!(
        !token.findings[0].value.contains("s3cr3t"),
        "tokens are redacted: {:?}",
        token.findings
    );
}

#[test]
fn kilns_sysctl_values_must_be_the_ones_in_effect() {
    let findings = |img: &Img| {
        let report = img.audit();
        let r = report
            .results
            .iter()
            .find(|r| r.rule.id == "sys.kiln-effective")
            .unwrap();
        (r.status, r.findings.clone())
    };
    // procps's file sorts after the old name and wins, though
    // sys.fs-protected is content with 1
    let mut img = hardened();
    img.file(
        "/etc/sysctl.d/91-kiln-hardening.conf",
        0o644,
        "# kiln\nfs.protected_fifos = 2\n",
    )
    .file(
        "/usr/lib/sysctl.d/99-protect-links.conf",
        0o644,
        "fs.protected_fifos = 1\nfs.protected_regular = 2\n",
    );
    let (status, found) = findings(&img);
    assert_eq!(status, Status::Fail);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "/usr/lib/sysctl.d/99-protect-links.conf");
    assert_eq!(found[0].line, Some(1));
    assert_eq!(found[0].value, "fs.protected_fifos = 1");
    assert_eq!(
        found[0].message,
        "overrides kiln's fs.protected_fifos = 2 (/etc/sysctl.d/91-kiln-hardening.conf:2)"
    );
    assert_eq!(status_of(&img.audit(), "sys.fs-protected"), Status::Pass);

    // kiln's name now sorts after it: the recipe's value is in effect
    let mut img = hardened();
    img.file(
        "/etc/sysctl.d/99-zz-kiln-hardening.conf",
        0o644,
        "fs.protected_fifos = 2\n",
    )
    .file(
        "/usr/lib/sysctl.d/99-protect-links.conf",
        0o644,
        "fs.protected_fifos = 1\n",
    );
    assert_eq!(findings(&img), (Status::Pass, vec![]));

    // an exclusion later on drops a value; a masked kiln file drops all
    let mut img = hardened();
    img.file("/etc/sysctl.d/99-zzz.conf", 0o644, "-kernel.panic\n");
    let (status, found) = findings(&img);
    assert_eq!(status, Status::Fail);
    assert_eq!(found[0].value, "-kernel.panic");
    assert!(
        found[0]
            .message
            .starts_with("drops kiln's kernel.panic = 10")
    );
    let mut img = hardened();
    img.symlink("/etc/sysctl.d/90-kubelet.conf", "/dev/null");
    let (status, found) = findings(&img);
    assert_eq!(status, Status::Fail);
    assert_eq!(found[0].path, "/etc/sysctl.d/90-kubelet.conf");
    assert_eq!(found[0].value, "masked");

    // without kiln's files there is nothing of kiln's to hold
    let mut img = hardened();
    img.remove("/etc/sysctl.d/90-kubelet.conf");
    assert_eq!(findings(&img).0, Status::NotApplicable);
}

#[test]
fn a_later_k3s_dropin_replaces_a_list_unless_it_appends() {
    let mut img = hardened();
    // replaces kubelet-arg wholesale: the hardening guide's args are gone
    img.file(
        "/etc/rancher/k3s/config.yaml.d/50-x.yml",
        0o600,
        "kubelet-arg: [\"max-pods=50\"]\n",
    );
    let failed = failing(&img.audit()).into_iter().collect::<Vec<_>>();
    for id in ["k3s.tls-ciphers", "k3s.pod-max-pids", "k3s.seccomp-default"] {
        assert!(failed.contains(&id), "{id} in {failed:?}");
    }
    let mut img = hardened();
    img.file(
        "/etc/rancher/k3s/config.yaml.d/50-x.yml",
        0o600,
        "kubelet-arg+: [\"max-pods=50\"]\n",
    )
    // not a drop-in: K3s reads only .yaml and .yml
    .file(
        "/etc/rancher/k3s/config.yaml.d/60-x.yaml.disabled",
        0o600,
        "protect-kernel-defaults: false\n",
    );
    assert!(failing(&img.audit()).is_empty());
}

#[test]
fn an_unreadable_k3s_config_fails_rather_than_passes() {
    let mut img = hardened();
    img.file(
        "/etc/rancher/k3s/config.yaml.d/50-x.yaml",
        0o600,
        "kubelet-arg:\n  nested: map\n",
    );
    let report = img.audit();
    assert_eq!(status(&report, "k3s.anonymous-auth"), Status::Fail);
    assert_eq!(status(&report, "k3s.config-perms"), Status::Pass);
}

#[test]
fn subjects_absent_make_groups_not_applicable() {
    let report = Img::new().audit();
    for r in &report.results {
        let expected = match r.rule.group() {
            "k3s" | "ssh" => Status::NotApplicable,
            "acct" if r.rule.id != "acct.trust-files" => Status::NotApplicable,
            "fs" if r.rule.id == "fs.unowned" => Status::NotApplicable,
            // default-deny is required: no ruleset fails every fw rule
            "fw" => Status::Fail,
            _ => r.status,
        };
        assert_eq!(r.status, expected, "{}", r.rule.id);
    }
    assert_eq!(status(&report, "img.machine-id"), Status::Fail);
    assert_eq!(status(&report, "fs.setuid"), Status::Pass);
    let sshd = report
        .results
        .iter()
        .find(|r| r.rule.id == "ssh.x11")
        .unwrap();
    assert!(
        sshd.not_applicable
            .as_deref()
            .unwrap()
            .contains("/usr/sbin/sshd")
    );
}

#[test]
fn sshd_present_without_a_config_is_judged_on_openssh_defaults() {
    let mut img = hardened();
    img.remove("/etc/ssh/sshd_config");
    let report = img.audit();
    // compiled-in defaults: prohibit-password, passwords on, no X11
    assert_eq!(status(&report, "ssh.root-login"), Status::Fail);
    assert_eq!(status(&report, "ssh.password-auth"), Status::Fail);
    assert_eq!(status(&report, "ssh.x11"), Status::Pass);
    assert_eq!(status(&report, "ssh.ciphers"), Status::Pass);
    assert_eq!(status(&report, "ssh.macs"), Status::Fail);
}

#[test]
fn live_roots_skip_the_image_only_rules() {
    let mut img = hardened();
    img.file("/etc/ssh/ssh_host_ed25519_key", 0o600, "KEY")
        .file(
            "/etc/machine-id",
            0o444,
            "4f1c0ad2e7a84a0fa4b8c3e1f2d5a6b7\n",
        )
        .file("/etc/rancher/node/password", 0o600, "x");
    let config = AuditConfig {
        mode: Mode::Live,
        ..AuditConfig::default()
    };
    let report = img.audit_with(&config);
    for id in [
        "ssh.no-host-keys",
        "img.machine-id",
        "k3s.no-node-identity",
        "k3s.no-baked-token",
    ] {
        assert_eq!(status(&report, id), Status::NotApplicable, "{id}");
    }
    // on a node, the signed manifest must have been provisioned
    assert_eq!(status(&report, "fim.baseline"), Status::Fail);
}

#[test]
fn waivers_apply_by_rule_and_path_until_they_expire() {
    let mut img = hardened();
    img.file("/usr/bin/ping", 0o4755, "ELF")
        .file("/usr/bin/at", 0o6755, "ELF");
    let waiver = |paths: Vec<String>, expires: Option<&str>| Waiver {
        rule: "fs.setuid".into(),
        reason: "ping needs raw sockets".into(),
        expires: expires.map(|d| Date::parse(d).unwrap()),
        paths,
        origin: None,
    };
    let config = |w: Waiver, today: &str| AuditConfig {
        waivers: vec![w],
        today: Date::parse(today).unwrap(),
        ..AuditConfig::default()
    };
    // a path-limited waiver leaves the other finding open
    let report = img.audit_with(&config(
        waiver(vec!["/usr/bin/ping".into()], None),
        "2026-01-01",
    ));
    assert_eq!(status(&report, "fs.setuid"), Status::Fail);
    let setuid = report
        .results
        .iter()
        .find(|r| r.rule.id == "fs.setuid")
        .unwrap();
    assert_eq!(setuid.open_findings().count(), 1);
    // a rule-wide waiver, on its last day
    let report = img.audit_with(&config(waiver(vec![], Some("2027-01-31")), "2027-01-31"));
    assert_eq!(status(&report, "fs.setuid"), Status::Waived);
    assert!(report.passed());
    let summary = report.summary();
    assert_eq!(summary.waived, 1);
    assert_eq!(summary.waivers[0].reason, "ping needs raw sockets");
    assert_eq!(summary.waivers[0].findings, 2);
    // the day after, it no longer applies
    let report = img.audit_with(&config(waiver(vec![], Some("2027-01-31")), "2027-02-01"));
    assert_eq!(status(&report, "fs.setuid"), Status::Fail);
    assert!(!report.passed());
    assert_eq!(report.expired_waivers.len(), 1);
    assert_eq!(
        report.summary().expired_waivers[0].expires.as_deref(),
        Some("2027-01-31")
    );
}

#[test]
fn the_gate_follows_fail_on() {
    let mut img = hardened();
    img.file(
        "/etc/ssh/sshd_config.d/00-bad.conf",
        0o600,
        "MaxAuthTries 6\n",
    );
    let with = |fail_on: &str| {
        img.audit_with(&AuditConfig {
            fail_on: fail_on.parse::<FailOn>().unwrap(),
            ..AuditConfig::default()
        })
    };
    assert!(with("high").passed(), "a medium finding passes a high gate");
    assert!(!with("medium").passed());
    assert!(!with("low").passed());
    assert!(with("none").passed());
    let report = with("medium");
    assert_eq!(
        report.blocking().map(|r| r.rule.id).collect::<Vec<_>>(),
        ["ssh.max-auth-tries"]
    );
    assert_eq!(report.exit_code(5), 5);
    assert_eq!(with("high").exit_code(5), 0);
    assert_eq!(
        report
            .results
            .iter()
            .find(|r| r.rule.id == "ssh.max-auth-tries")
            .unwrap()
            .rule
            .severity,
        Severity::Medium
    );
}

#[test]
fn summary_is_canonical_json_material() {
    let mut img = hardened();
    img.file("/usr/bin/ping", 0o4755, "ELF")
        .file("/etc/ssh/ssh_host_rsa_key", 0o600, "K");
    let summary = img.audit().summary();
    let value = serde_json::to_value(&summary).unwrap();
    fn only_ints_and_strings(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) => n.is_u64(),
            serde_json::Value::String(_) => true,
            serde_json::Value::Array(a) => a.iter().all(only_ints_and_strings),
            serde_json::Value::Object(o) => o.values().all(only_ints_and_strings),
            _ => false,
        }
    }
    assert!(only_ints_and_strings(&value), "{value}");
    assert_eq!(
        summary
            .failed_rules
            .iter()
            .map(|f| f.rule.as_str())
            .collect::<Vec<_>>(),
        ["fs.setuid", "ssh.no-host-keys"]
    );
    assert_eq!(summary.rules_run as usize, rule_ids().len());
    assert_eq!(
        summary.passed + summary.failed + summary.not_applicable + summary.waived,
        summary.rules_run
    );
    assert_eq!(summary.result, "fail");
    let back: kiln_policy::audit::AuditSummary = serde_json::from_value(value).unwrap();
    assert_eq!(back, summary);
}

#[test]
fn packages_count_from_the_dpkg_database_too() {
    let status = |packages: &[&str]| -> String {
        packages
            .iter()
            .map(|p| format!("Package: {p}\nStatus: install ok installed\nVersion: 1\n"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut img = hardened();
    img.file(
        "/var/lib/dpkg/status",
        0o644,
        &status(&["gcc-12-base", "libc6", "openssh-server"]),
    );
    assert_eq!(status_of(&img.audit(), "pkg.compilers"), Status::Pass);
    img.file(
        "/var/lib/dpkg/status",
        0o644,
        &status(&["gcc-12", "libc6", "telnetd"]),
    );
    let report = img.audit();
    assert_eq!(status_of(&report, "pkg.compilers"), Status::Fail);
    assert_eq!(status_of(&report, "pkg.insecure"), Status::Fail);
}

fn status_of(report: &Report, id: &str) -> Status {
    status(report, id)
}

#[test]
fn flags_in_the_k3s_unit_override_the_config_files() {
    // the unit as K3s's install script writes it
    let unit = "[Service]\nType=notify\nExecStart=/usr/local/bin/k3s \\\n    agent \\\n\t'--kubelet-arg=anonymous-auth=true' \\\n\t'--protect-kernel-defaults' \\\n";
    let mut img = hardened();
    img.file("/etc/systemd/system/k3s-agent.service", 0o644, unit);
    let report = img.audit();
    assert_eq!(status(&report, "k3s.anonymous-auth"), Status::Fail);
    let finding = &report
        .results
        .iter()
        .find(|r| r.rule.id == "k3s.anonymous-auth")
        .unwrap()
        .findings[0];
    assert_eq!(finding.path, "/etc/systemd/system/k3s-agent.service");
    assert_eq!(finding.line, Some(3));
    assert_eq!(status(&report, "k3s.protect-kernel-defaults"), Status::Pass);
    // a drop-in that resets ExecStart drops those flags
    img.file(
        "/etc/systemd/system/k3s-agent.service.d/override.conf",
        0o644,
        "[Service]\nExecStart=\nExecStart=/usr/local/bin/k3s agent\n",
    );
    assert_eq!(status(&img.audit(), "k3s.anonymous-auth"), Status::Pass);
}

/// The rule's findings, for its messages.
fn rule_findings(report: &Report, id: &str) -> Vec<kiln_policy::audit::Finding> {
    report
        .results
        .iter()
        .find(|r| r.rule.id == id)
        .map(|r| r.findings.clone())
        .unwrap_or_default()
}

/// The configuration kiln wrote before: every setting a kubelet flag. The
/// flags still take effect (deprecated, not removed), but the streaming
/// timeout's has none since kubelet 1.34, and containerd's is unset: the
/// rule fails saying so. On a K3s 1.33 image the flag still works.
#[test]
fn the_deprecated_flag_only_kubelet_fails_and_the_dropin_passes() {
    let mut img = hardened();
    img.remove("/etc/rancher/k3s/kubelet.conf.d/50-kiln-hardening.conf")
        .remove("/etc/rancher/k3s/containerd/50-kiln-cri.toml")
        .remove("/etc/systemd/system/k3s-agent.service")
        .file("/etc/rancher/k3s/config.yaml", 0o600, K3S_CONFIG_FLAGS_ONLY)
        .file("/usr/lib/kiln/k3s-version", 0o644, "v1.36.4+k3s1\n");
    let report = img.audit();
    assert_eq!(
        failing(&report).into_iter().collect::<Vec<_>>(),
        vec!["k3s.streaming-timeout"]
    );
    let messages: Vec<String> = rule_findings(&report, "k3s.streaming-timeout")
        .iter()
        .map(|f| format!("{}:{:?} {} — {}", f.path, f.line, f.value, f.message))
        .collect();
    assert!(
        messages[0].contains("/etc/rancher/k3s/config.yaml:Some(")
            && messages[0].contains("has no effect since kubelet 1.34 (K3s v1.36.4+k3s1)")
            && messages[0].contains("stream_idle_timeout"),
        "{messages:#?}"
    );
    assert!(
        messages[1].contains("containerd: longer than 5m (its default; K3s sets none)"),
        "{messages:#?}"
    );
    // an unknown release: the newest behaviour is assumed
    img.remove("/usr/lib/kiln/k3s-version");
    assert_eq!(
        failing(&img.audit()).into_iter().collect::<Vec<_>>(),
        vec!["k3s.streaming-timeout"]
    );
    // K3s 1.33: the kubelet still closes idle streams itself
    img.file("/usr/lib/kiln/k3s-version", 0o644, "v1.33.5+k3s1\n");
    assert!(failing(&img.audit()).is_empty());
    // the drop-in configuration passes on 1.36 (the hardened tree has it)
    let mut img = hardened();
    img.file("/usr/lib/kiln/k3s-version", 0o644, "v1.36.4+k3s1\n");
    assert!(failing(&img.audit()).is_empty());
}

/// Flags beat drop-ins, later drop-ins beat earlier ones, K3s's own
/// directory counts, and K3s's defaults hold where nothing is set.
#[test]
fn the_kubelet_is_judged_by_its_effective_settings() {
    // a later drop-in in K3s's own directory turns seccomp off
    let mut img = hardened();
    img.file(
        "/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/90-late.conf",
        0o600,
        "{\"seccompDefault\": false, \"authentication\": {\"anonymous\": {\"enabled\": true}}}\n",
    );
    let failed = failing(&img.audit());
    assert_eq!(
        failed.into_iter().collect::<Vec<_>>(),
        vec!["k3s.anonymous-auth", "k3s.seccomp-default"]
    );
    // a flag turns it back on: flags win over every file
    img.file(
        "/etc/rancher/k3s/config.yaml.d/50-x.yaml",
        0o600,
        "kubelet-arg+: [\"seccomp-default=true\", \"anonymous-auth=false\"]\n",
    );
    assert!(failing(&img.audit()).is_empty());
    // without the drop-in, the settings it held are gone
    let mut img = hardened();
    img.remove("/etc/rancher/k3s/kubelet.conf.d/50-kiln-hardening.conf");
    let failed = failing(&img.audit());
    for id in ["k3s.tls-ciphers", "k3s.pod-max-pids", "k3s.seccomp-default"] {
        assert!(failed.contains(&id), "{id} in {failed:?}");
    }
    // K3s's defaults: anonymous off, Webhook, read-only port 0
    for id in [
        "k3s.anonymous-auth",
        "k3s.authorization-mode",
        "k3s.read-only-port",
    ] {
        assert!(!failed.contains(&id), "{id} in {failed:?}");
    }
    // a drop-in this reader cannot parse fails the kubelet rules
    let mut img = hardened();
    img.file(
        "/etc/rancher/k3s/kubelet.conf.d/60-x.conf",
        0o600,
        "authentication:\n  anonymous: &a\n    enabled: true\n",
    );
    assert!(failing(&img.audit()).contains(&"k3s.anonymous-auth"));
}

/// containerd: an import that replaces the CRI table without the timeout
/// brings back the 4h default; one that opens the streaming server beyond
/// loopback fails too.
#[test]
fn containerd_streaming_is_judged_by_its_imports() {
    let mut img = hardened();
    img.file(
        "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.d/60-other.toml",
        0o600,
        "version = 3\n[plugins.'io.containerd.grpc.v1.cri']\n  stream_server_address = \"0.0.0.0\"\n",
    );
    let report = img.audit();
    assert_eq!(
        failing(&report).into_iter().collect::<Vec<_>>(),
        vec!["k3s.streaming-timeout"]
    );
    let findings = rule_findings(&report, "k3s.streaming-timeout");
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert!(findings.iter().all(|f| f.path.ends_with("60-other.toml")));
    // a broken import fails rather than passes
    let mut img = hardened();
    img.file(
        "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.d/60-other.toml",
        0o600,
        "version = 3\n[plugins\n",
    );
    assert_eq!(
        failing(&img.audit()).into_iter().collect::<Vec<_>>(),
        vec!["k3s.streaming-timeout"]
    );
    // without the unit's install, kiln's file in /etc is not used
    let mut img = hardened();
    img.remove("/etc/systemd/system/k3s-agent.service");
    assert_eq!(
        failing(&img.audit()).into_iter().collect::<Vec<_>>(),
        vec!["k3s.streaming-timeout"]
    );
}
