//! The `kiln` command line.

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use kiln::build::{BuildOptions, build};
use kiln::recipe::RecipeError;
use kiln::signing::Untrusted;
use kiln::ui::{BrokenPipe, Ui, eprint, print};
use kiln_diag::{MAX_LINE_CHARS, clip_line};
use kiln_tree::pack::ArchiveCompression;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, documented in README.md. Usage errors exit 2 (clap's).
mod exit {
    pub const SUCCESS: u8 = 0;
    pub const FAILURE: u8 = 1;
    /// A command line clap refuses (clap exits with 2 itself).
    pub const USAGE: u8 = 2;
    pub const INVALID_RECIPE: u8 = 3;
    /// Not what was signed: a bad signature, a tampered artifact, drift.
    pub const NOT_VERIFIED: u8 = 4;
    /// Audit findings at or above the threshold (`kiln audit`, the build gate).
    pub const AUDIT_FAILED: u8 = 5;
    // 128+N: killed by signal N. Interruptions exit with it after removing
    // partial outputs (cleanup.rs); a closed stdout or stderr ends kiln by
    // SIGPIPE itself, as coreutils end (ui.rs).
}

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Builds immutable, hardened, reproducible and signed OS images for K3s agent nodes",
    after_help = "Examples:\n  \
        kiln build recipes/minimal.toml -o dist --key signing/release.key\n  \
        kiln verify --key signing/release.pub dist/minimal-0.1.0.manifest.json\n  \
        kiln check --manifest minimal-0.1.0.manifest.json --key release.pub --root /\n  \
        kiln inspect dist/minimal-0.1.0.rootfs.tar.zst\n\n\
        Exit codes: 0 success, 1 failure, 2 usage error, 3 invalid recipe, \
        4 verification failed or drift found, 5 audit findings at or above the threshold, \
        128+N killed by signal N (partial outputs removed); a closed stdout or stderr \
        (kiln ... | head) ends kiln by SIGPIPE, 141 in a shell."
)]
struct Cli {
    /// Print only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print more: where each stage's time went (the configure stage's
    /// slowest maintainer scripts and triggers).
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

// Parsed once per run: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Build a recipe into a rootfs archive and a manifest, optionally signed.
    #[command(after_help = "Examples:\n  kiln build recipes/minimal.toml\n  \
        kiln build recipes/minimal.toml --key signing/release.key --password-file /run/secrets/pw\n  \
        SOURCE_DATE_EPOCH=1700000000 kiln build recipes/minimal.toml -o out --compression gzip\n\n\
        Writes NAME-VERSION.rootfs.tar.zst (or .tar.gz, .tar), NAME-VERSION.manifest.json and, with --key, \
        NAME-VERSION.manifest.json.minisig into the output directory; they appear only when complete.\n\n\
        Recipes with [debian] packages need root, or a user namespace with subordinate ids (uidmap, \
        /etc/subuid), to configure them in an isolated chroot; not when the same lock was installed \
        before and is in the install cache.")]
    Build {
        /// The recipe file (TOML).
        recipe: PathBuf,
        /// Output directory.
        #[arg(short, long, default_value = "dist")]
        output: PathBuf,
        /// Compression of the rootfs archive.
        #[arg(long, value_enum, default_value_t = ArchiveCompression::Zstd)]
        compression: ArchiveCompression,
        /// Outputs to write (repeatable; default: the recipe's [boot]
        /// formats, else rootfs).
        #[arg(long = "format", value_enum, value_name = "FORMAT")]
        formats: Vec<kiln::recipe::boot::Format>,
        #[command(flatten)]
        signing: SigningArgs,
        /// Fail instead of updating a lockfile that does not match the recipe.
        #[arg(long)]
        locked: bool,
        /// Supply an [[artifact]] from a local file (air-gapped builds); its
        /// sha256 must still match the recipe's pin. NAME:ARCH=PATH supplies
        /// it to the build of that architecture only (--arch amd64,arm64).
        #[arg(long, value_name = "NAME=PATH")]
        artifact: Vec<String>,
        /// Sign the disk's unified kernel image for UEFI Secure Boot with
        /// this PEM private key (RSA, unencrypted); needs --secure-boot-cert.
        #[arg(long, value_name = "KEY.pem", requires = "secure_boot_cert")]
        secure_boot_key: Option<PathBuf>,
        /// The PEM certificate of --secure-boot-key (enrolled in the firmware's db).
        #[arg(long, value_name = "CERT.pem", requires = "secure_boot_key")]
        secure_boot_cert: Option<PathBuf>,
        /// Build without [[artifact]] NAME when it cannot be downloaded,
        /// saying so in one line; content that does not match its pin
        /// still fails the build.
        #[arg(long, value_name = "NAME")]
        optional_artifact: Vec<String>,
        /// Install and configure the Debian packages afresh, even when the
        /// same installed tree is in the cache, and decompress every package
        /// (no contents kept by a build before).
        #[arg(long)]
        no_install_cache: bool,
        /// Print what was written as JSON (paths, formats, sizes, sha256)
        /// instead of one path per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        archive: ArchiveArgs,
        /// Take packages and installed trees the local cache lacks from
        /// this registry repository (REGISTRY/REPOSITORY), shared by builders.
        #[arg(long, value_name = "REPOSITORY")]
        cache_from: Option<String>,
        /// Push this build's packages and installed tree to this registry
        /// repository, for other builders' --cache-from.
        #[arg(long, value_name = "REPOSITORY")]
        cache_to: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Resolve the recipe's Debian packages and pin them in RECIPE.lock.
    #[command(after_help = "Examples:\n  kiln lock recipes/k3s-agent.toml\n  \
        kiln lock recipes/k3s-agent.toml --update              (refresh every package: the patch run)\n  \
        kiln lock recipes/k3s-agent.toml --update openssh-server\n\n\
        Reads the suites' signed indexes (InRelease verified with gpgv against the archive keyring), \
        resolves the package set and writes recipes/k3s-agent.lock, printing what changed.")]
    Lock {
        recipe: PathBuf,
        /// Refresh all locked packages, or only those named.
        #[arg(long, num_args = 0.., value_name = "PACKAGE")]
        update: Option<Vec<String>>,
        /// Print the change as JSON (added, removed, changed packages).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        archive: ArchiveArgs,
    },
    /// Download and verify every locked package and artifact into the cache.
    #[command(
        after_help = "Example:\n  kiln fetch recipes/k3s-agent.toml --locked --cache-dir /var/cache/kiln\n\n\
        Fills the cache for a later offline build; what is cached intact is not downloaded again."
    )]
    Fetch {
        recipe: PathBuf,
        /// Fail instead of updating a lockfile that does not match the recipe.
        #[arg(long)]
        locked: bool,
        /// Supply an [[artifact]] from a local file.
        #[arg(long, value_name = "NAME=PATH")]
        artifact: Vec<String>,
        /// Go on without [[artifact]] NAME when it cannot be downloaded,
        /// as `kiln build --optional-artifact` does.
        #[arg(long, value_name = "NAME")]
        optional_artifact: Vec<String>,
        /// Print what is in the cache as JSON (name, version, sha256 and
        /// cached path of every package and artifact).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        archive: ArchiveArgs,
    },
    /// Summarise a manifest or a rootfs archive.
    #[command(
        after_help = "Examples:\n  kiln inspect dist/k3s-agent-1.0.0.manifest.json\n  \
        kiln inspect dist/k3s-agent-1.0.0.rootfs.tar.zst --json"
    )]
    Inspect {
        /// A NAME-VERSION.manifest.json or a rootfs tar (plain, gzip or zstd).
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Audit an image or a live node against the hardening rules.
    #[command(
        after_help = "Examples:\n  kiln audit dist/k3s-agent-1.0.0.rootfs.tar.zst\n  \
        kiln audit / --format sarif -o audit.sarif\n  \
        kiln audit rootfs/ --recipe recipes/k3s-agent.toml --format junit -o audit.xml\n  \
        kiln audit --list-rules\n\n\
        PATH is a rootfs archive (tar, gzip or zstd), a directory, or / for the running node \
        (read-only; /proc, /sys, /dev, /run and container state are skipped, and the rules about \
        what an image must not carry do not apply). Waivers come from --recipe's [audit] and expire \
        by today's date. Exits 0 when no failed rule is at or above --fail-on (default high), 5 otherwise."
    )]
    Audit {
        /// A rootfs archive, a directory, or / for this node.
        #[arg(required_unless_present = "list_rules")]
        path: Option<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = kiln_policy::audit::report::Format::Text)]
        format: kiln_policy::audit::report::Format,
        /// Fail on rules at or above this severity: critical, high, medium, low or none
        /// [default: the recipe's fail_on, else high].
        #[arg(long, value_name = "SEVERITY")]
        fail_on: Option<kiln_policy::audit::FailOn>,
        /// Take fail_on and the waivers from this recipe's [audit].
        #[arg(long, value_name = "RECIPE")]
        recipe: Option<PathBuf>,
        /// Write the report to FILE (the summary line still goes to stderr).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// List the rules (id, severity, title) and exit.
        #[arg(long, conflicts_with_all = ["path", "format", "fail_on", "recipe", "output"])]
        list_rules: bool,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Show what changed between two images: packages, paths, /etc contents.
    #[command(after_help = "Examples:\n  \
        kiln diff dist/k3s-agent-1.0.0.manifest.json dist/k3s-agent-1.1.0.manifest.json\n  \
        kiln diff old.rootfs.tar.zst new.rootfs.tar.zst --json\n\n\
        Each side is a NAME-VERSION.manifest.json or a rootfs tar (plain, gzip or zstd). \
        A manifest's rootfs archive is read too when it sits beside it (its sha256 must match); \
        without it, /etc text diffs and packages cannot be compared for that side.")]
    Diff {
        /// The image being replaced: a manifest or a rootfs archive.
        old: PathBuf,
        /// The image to promote: a manifest or a rootfs archive.
        new: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Generate a minisign-compatible Ed25519 key pair.
    #[command(
        after_help = "Examples:\n  kiln keygen -o signing/release            (asks for a password)\n  \
        KILN_KEY_PASSWORD=... kiln keygen -o ci/release\n  \
        kiln keygen -o /tmp/throwaway --no-password\n\n\
        Writes STEM.pub (public: commit it, e.g. under signing/) and STEM.key (secret, mode 0600: never commit it). \
        The secret key is encrypted with the password from --password-file, KILN_KEY_PASSWORD or a prompt."
    )]
    Keygen {
        /// Path stem of the key files: STEM.pub and STEM.key.
        #[arg(short, long)]
        output: PathBuf,
        /// Leave the secret key unencrypted (for CI secrets stores).
        #[arg(long, conflicts_with = "password_file")]
        no_password: bool,
        /// Read the password from the first line of FILE.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
        /// Print the key id and the two paths as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the public key of a secret key, in minisign's .pub format.
    #[command(
        after_help = "Example:\n  kiln pubkey --key \"$KILN_SIGNING_KEY\" > release.pub\n\n\
        Lets a pipeline that holds only the secret key verify what it signed; commit the \
        public key (e.g. under signing/) so that others can."
    )]
    Pubkey {
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Print a shell completion script for kiln.
    #[command(
        after_help = "Examples:\n  kiln completions bash > /etc/bash_completion.d/kiln\n  \
        kiln completions zsh > \"${fpath[1]}/_kiln\"\n  \
        kiln completions fish > ~/.config/fish/completions/kiln.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print a manual page (roff): kiln's, or a command's (kiln-build(1)),
    /// made from the same definitions as --help.
    #[command(after_help = "Examples:\n  kiln man > kiln.1 && man -l kiln.1\n  \
        for c in build verify check; do kiln man $c > kiln-$c.1; done")]
    Man {
        /// The command whose page to print.
        command: Option<String>,
    },
    /// Sign a manifest (writes MANIFEST.minisig).
    #[command(
        after_help = "Example:\n  kiln sign --key signing/release.key dist/minimal-0.1.0.manifest.json\n\n\
        Signatures are deterministic and verifiable with `minisign -Vm MANIFEST -p KEY.pub`."
    )]
    Sign {
        manifest: PathBuf,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Verify a signed manifest and the artifacts beside it.
    #[command(
        after_help = "Examples:\n  kiln verify --key signing/release.pub dist/minimal-0.1.0.manifest.json\n  \
        kiln verify --key old.pub --key new.pub dist/minimal-0.1.0.rootfs.tar.zst --contents\n  \
        kiln verify --key release.pub m.manifest.json --min-version 1.4.0 --json\n  \
        kiln verify --key release.pub registry.example:5000/nodes/k3s-agent:1.4.0 --contents\n\n\
        Exits 0 only when the signature, every artifact present (size and sha256) and, with \
        --contents, every file of the rootfs match; 4 otherwise."
    )]
    Verify {
        /// A manifest, an artifact listed by a manifest in the same
        /// directory, or a registry reference (REGISTRY/REPOSITORY:TAG).
        path: PathBuf,
        /// Trusted public key; repeat to trust several (key rotation).
        #[arg(long = "key", required = true, value_name = "PUBLIC_KEY")]
        keys: Vec<PathBuf>,
        /// Also check every file inside the rootfs archive against the manifest.
        #[arg(long)]
        contents: bool,
        /// Refuse an image older than this version (rollback protection).
        #[arg(long, value_name = "VERSION")]
        min_version: Option<String>,
        /// Also check the signed provenance beside the manifest and that
        /// its subjects are these files.
        #[arg(long)]
        provenance: bool,
        /// Of a registry index (a multi-architecture push), the image of
        /// this architecture (default: this host's).
        #[arg(long, value_name = "ARCH")]
        arch: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Publish a signed image to an OCI registry.
    #[command(
        after_help = "Examples:\n  kiln push dist registry.example:5000/nodes/k3s-agent:1.4.0\n  \
        kiln push dist 127.0.0.1:5000/nodes/k3s-agent --plain-http --json\n\n\
        One OCI artifact (artifactType application/vnd.kiln.image.v1): a layer per file the signed \
        manifest lists, and the manifest; its signature, SBOMs and provenance attached as referrers \
        (the referrers API, or the sha256-DIGEST tag on registries without it). Without a tag, the \
        image's version is the tag. Prints REGISTRY/REPOSITORY:TAG@sha256:DIGEST. Credentials come \
        from the docker config file and its credential helpers."
    )]
    Push {
        /// The output directory of a signed build, or its manifest.
        path: PathBuf,
        /// REGISTRY/REPOSITORY[:TAG].
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Print what was pushed as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch an image from an OCI registry, verified before it is written.
    #[command(
        after_help = "Examples:\n  kiln pull registry.example:5000/nodes/k3s-agent:1.4.0 -o /srv/pxe/k3s --key release.pub\n  \
        kiln pull 127.0.0.1:5000/nodes/k3s-agent@sha256:... -o out --key release.pub --plain-http\n\n\
        Checks the signature of the image's manifest with the keys, then the digest and size of \
        every file against it, in a staging directory beside the output directory; the files \
        appear in the output directory only when all of it verified. Exits 4 when it does not."
    )]
    Pull {
        /// REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST.
        reference: String,
        /// Output directory.
        #[arg(short, long)]
        output: PathBuf,
        /// Trusted public key; repeat to trust several (key rotation).
        #[arg(long = "key", required = true, value_name = "PUBLIC_KEY")]
        keys: Vec<PathBuf>,
        /// Refuse an image older than this version (rollback protection).
        #[arg(long, value_name = "VERSION")]
        min_version: Option<String>,
        /// Of an index (a multi-architecture push), the image of this
        /// architecture (default: this host's).
        #[arg(long, value_name = "ARCH")]
        arch: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Print what was pulled as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a live root for drift from a signed manifest (host intrusion detection).
    #[command(
        after_help = "Examples:\n  kiln check --manifest /boot/image.manifest.json --key /etc/kiln/release.pub\n  \
        kiln check --manifest m.json --key release.pub --root /mnt/node --json-lines\n  \
        kiln check --manifest m.json --key /etc/kiln/keys --textfile-dir /var/lib/prometheus/node-exporter --journal\n\n\
        Reports modified content, changed mode/owner/type/target, removed and unexpected files; \
        skips the manifest's mutable paths. Exits 4 on drift."
    )]
    Check {
        /// The signed manifest (its signature is MANIFEST.minisig).
        #[arg(long)]
        manifest: PathBuf,
        /// Trusted public key; repeat to trust several.
        #[arg(long = "key", required = true, value_name = "PUBLIC_KEY")]
        keys: Vec<PathBuf>,
        /// The root to check.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Skip hashing files whose size and mtime are unchanged.
        #[arg(long)]
        fast: bool,
        /// One JSON object per event and line, for a SIEM.
        #[arg(long)]
        json_lines: bool,
        /// Write the Node patch that shows the verified image to Kubernetes
        /// (JSON merge patch; docs/fleet.md).
        #[arg(long, value_name = "FILE")]
        node_patch: Option<PathBuf>,
        #[command(flatten)]
        fleet: FleetArgs,
    },
}

#[derive(clap::Args)]
struct ArchiveArgs {
    /// Debian mirror (default: KILN_DEBIAN_MIRROR, the recipe's mirror, the build host's apt sources).
    #[arg(long, value_name = "URL")]
    mirror: Option<String>,
    /// Debian security mirror (default: KILN_DEBIAN_SECURITY_MIRROR, the recipe's, the host's apt sources).
    #[arg(long, value_name = "URL")]
    security_mirror: Option<String>,
    /// Download cache, keyed by sha256 (default: $XDG_CACHE_HOME/kiln, else ~/.cache/kiln).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Parallel downloads.
    #[arg(long, value_name = "N", default_value_t = 4)]
    jobs: usize,
    /// The apt configuration that names the build host's mirror.
    #[arg(long, value_name = "DIR", default_value = "/etc/apt")]
    apt_dir: PathBuf,
    /// Architectures to build for instead of the recipe's (repeat or
    /// separate with commas: amd64,arm64). One the recipe does not name
    /// is locked in RECIPE.ARCH.lock; with several, each builds into
    /// OUTPUT/ARCH.
    #[arg(long, value_name = "ARCH", value_delimiter = ',')]
    arch: Vec<String>,
}

impl ArchiveArgs {
    /// `--arch`, each once in the order given; `[None]` (the recipe's
    /// own) without it.
    fn arches(&self) -> Vec<Option<String>> {
        let mut arches: Vec<Option<String>> = Vec::new();
        for arch in &self.arch {
            if !arches.iter().flatten().any(|a| a == arch) {
                arches.push(Some(arch.clone()));
            }
        }
        if arches.is_empty() {
            arches.push(None);
        }
        arches
    }

    fn options(self, artifacts: &[String]) -> Result<kiln::packages::ArchiveOptions> {
        let mut overrides = std::collections::BTreeMap::new();
        for spec in artifacts {
            let Some((name, path)) = spec.split_once('=') else {
                anyhow::bail!("--artifact {spec}: expected NAME=PATH, like --artifact k3s=./k3s");
            };
            overrides.insert(name.to_owned(), PathBuf::from(path));
        }
        Ok(kiln::packages::ArchiveOptions {
            mirror: self.mirror,
            security_mirror: self.security_mirror,
            etc_apt: self.apt_dir,
            cache_dir: match self.cache_dir {
                Some(dir) => dir,
                None => kiln_debian::fetch::Cache::default_dir()?,
            },
            workers: self.jobs.max(1),
            artifact_overrides: overrides,
            optional_artifacts: Default::default(),
        })
    }
}

/// Where a check or an audit reports for the fleet (docs/fleet.md).
#[derive(clap::Args)]
struct FleetArgs {
    /// Write Prometheus metrics into node-exporter's textfile directory
    /// (kiln_check.prom or kiln_audit.prom, replaced atomically).
    #[arg(long, value_name = "DIR")]
    textfile_dir: Option<PathBuf>,
    /// Send structured entries to the journal (native protocol; stderr
    /// lines when SOCKET is absent).
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, require_equals = true,
          default_missing_value = kiln_check::fleet::journal::SOCKET)]
    journal: Option<PathBuf>,
}

impl FleetArgs {
    fn outputs(self, node_patch: Option<PathBuf>) -> kiln_check::fleet::Outputs {
        kiln_check::fleet::Outputs {
            textfile_dir: self.textfile_dir,
            journal: self
                .journal
                .map(|socket| kiln_check::fleet::journal::Journal::open(&socket)),
            node_patch,
        }
    }
}

/// Reports a run for the fleet; a report that cannot be written turns a
/// success into a failure (a node that stops reporting must not look
/// healthy), and leaves drift's and the audit gate's codes as they are.
fn reported(code: u8, report: Result<()>) -> u8 {
    match report {
        Ok(()) => code,
        Err(e) => {
            eprint(&clip_line(
                &format!("error: cannot report for the fleet: {e:#}\n"),
                MAX_LINE_CHARS,
            ));
            if code == exit::SUCCESS {
                exit::FAILURE
            } else {
                code
            }
        }
    }
}

/// How to reach a registry (push, pull, verify of a reference).
#[derive(clap::Args)]
struct RegistryArgs {
    /// Speak plain HTTP to the registry instead of TLS (a registry on
    /// loopback or a lab network).
    #[arg(long)]
    plain_http: bool,
    /// Trust only this PEM CA bundle for the registry's TLS certificate
    /// (default: the system's roots).
    #[arg(long, value_name = "CA.pem", conflicts_with = "plain_http")]
    ca_cert: Option<PathBuf>,
    /// The docker config file holding registry credentials (default:
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    registry_config: Option<PathBuf>,
    /// Upload files larger than this many MiB in chunks of that size
    /// (for registries or proxies that limit a request's size).
    #[arg(long, value_name = "MiB", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    chunk_mib: u64,
}

impl RegistryArgs {
    fn options(&self) -> kiln_oci::ClientOptions {
        kiln_oci::ClientOptions {
            plain_http: self.plain_http,
            ca_cert: self.ca_cert.clone(),
            config: self.registry_config.clone(),
            chunk_size: self.chunk_mib << 20,
            ..Default::default()
        }
    }
}

/// A `kiln verify` argument that is not a file but names a registry image.
fn registry_reference(path: &std::path::Path) -> Result<Option<kiln_oci::Reference>> {
    if path.exists() {
        return Ok(None);
    }
    let text = path.to_string_lossy();
    match kiln_oci::Reference::parse(&text) {
        Ok(reference) => Ok(Some(reference)),
        // Not a reference either: let verify say the file does not exist.
        Err(_) if !text.contains(':') && !text.contains('@') => Ok(None),
        Err(e) => Err(e.context(format!(
            "{} is neither a file nor a registry reference",
            path.display()
        ))),
    }
}

#[derive(clap::Args)]
struct SigningArgs {
    /// Secret key (minisign format) to sign the manifest with.
    #[arg(long, value_name = "SECRET_KEY")]
    key: Option<PathBuf>,
    /// Read the key's password from the first line of FILE (else
    /// KILN_KEY_PASSWORD, else a prompt on a terminal).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

impl SigningArgs {
    fn load(&self) -> Result<Option<kiln_minisign::SecretKey>> {
        self.key
            .as_deref()
            .map(|k| kiln::signing::load_secret_key(k, self.password_file.as_deref()))
            .transpose()
    }
}

fn main() -> ExitCode {
    // kiln's configure helper (a user namespace for maintainer scripts)
    // must start before any thread does, so before anything else.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == kiln::install::HELPER_COMMAND {
        return match kiln::install::helper_work_dir(std::path::Path::new(&args[2])) {
            Ok(work) => ExitCode::from(kiln::install::helper_main(&work)),
            Err(e) => {
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr(), "error: {e}");
                ExitCode::from(exit::USAGE)
            }
        };
    }
    // clap prints --help and usage errors itself, ignoring a closed pipe.
    let cli = Cli::parse();
    quiet_broken_pipe_panics();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Err(e) = kiln::cleanup::install_signal_handlers() {
            eprint(&format!(
                "kiln: warning: cannot install signal handlers: {e}\n"
            ));
        }
        let ui = Ui::new(cli.quiet).verbose(cli.verbose);
        match run(cli.command, &ui) {
            Ok(code) => code,
            Err(error) => report(&error),
        }
    }));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(payload) if kiln::ui::pipe_closed() || is_broken_pipe(payload.as_ref()) => {
            die_of_sigpipe()
        }
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Prints an error (a bounded amount of it) and returns its exit code.
fn report(error: &anyhow::Error) -> u8 {
    if let Some(recipe_error) = error.downcast_ref::<RecipeError>() {
        eprint(&format!(
            "error: {}\n",
            clip_line(&recipe_error.render(), MAX_LINE_CHARS)
        ));
        return exit::INVALID_RECIPE;
    }
    let mut text = format!("error: {error}\n");
    for cause in error.chain().skip(1) {
        text.push_str(&format!("  caused by: {cause}\n"));
    }
    eprint(&clip_line(&text, MAX_LINE_CHARS));
    if error.downcast_ref::<Untrusted>().is_some() {
        exit::NOT_VERIFIED
    } else if error
        .downcast_ref::<kiln_policy::audit::GateFailed>()
        .is_some()
    {
        exit::AUDIT_FAILED
    } else {
        exit::FAILURE
    }
}

/// Whether a panic is the end of kiln's output: kiln's own [`BrokenPipe`],
/// or the standard library's print macros (in code that still uses them)
/// failing on a closed pipe.
fn is_broken_pipe(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    payload.is::<BrokenPipe>()
        || message
            .is_some_and(|m| m.starts_with("failed printing to std") && m.contains("Broken pipe"))
}

/// Keeps the panic hook from printing (or tracing back) the unwinding that
/// ends kiln on a closed pipe; other panics are reported as before.
fn quiet_broken_pipe_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if kiln::ui::pipe_closed() || is_broken_pipe(info.payload()) {
            return;
        }
        default(info);
    }));
}

/// Ends kiln as a write to a closed pipe ends coreutils: killed by
/// SIGPIPE (status 141 in a shell). Partial outputs are gone already: the
/// unwinding that led here dropped them.
fn die_of_sigpipe() -> ! {
    // SAFETY: restoring a signal's default action and raising it have no
    // preconditions; the default action of SIGPIPE ends the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE)
}

fn run(command: Command, ui: &Ui) -> Result<u8> {
    match command {
        Command::Completions { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut script);
            print(&String::from_utf8_lossy(&script))?;
        }
        Command::Man { command } => {
            let top = Cli::command();
            let page_of = match &command {
                None => top,
                Some(name) => {
                    let Some(sub) = top.find_subcommand(name).filter(|c| !c.is_hide_set()) else {
                        anyhow::bail!(
                            "kiln has no command {}: see kiln --help",
                            kiln_diag::quote(name)
                        )
                    };
                    let full = format!("kiln-{}", sub.get_name());
                    sub.clone()
                        .name(full)
                        .bin_name(format!("kiln {}", sub.get_name()))
                }
            };
            let mut page = Vec::new();
            clap_mangen::Man::new(page_of)
                .date("")
                .render(&mut page)
                .map_err(|e| anyhow::anyhow!("cannot render the manual page: {e}"))?;
            print(&String::from_utf8_lossy(&page))?;
        }
        Command::Build {
            recipe,
            output,
            compression,
            formats,
            signing,
            locked,
            artifact,
            optional_artifact,
            secure_boot_key,
            secure_boot_cert,
            no_install_cache,
            json,
            archive,
            cache_from,
            cache_to,
            registry,
        } => {
            // Unlock the key first: a wrong password should not cost a build.
            let key = signing.load()?;
            let arches = archive.arches();
            let mut archive = archive.options(&artifact)?;
            archive.optional_artifacts = optional_artifact.into_iter().collect();
            let mut options = BuildOptions {
                recipe,
                arch: None,
                out_dir: output.clone(),
                compression,
                formats,
                key,
                archive,
                locked,
                install_cache: !no_install_cache,
                secure_boot: secure_boot_key.zip(secure_boot_cert),
                registry_cache: kiln::publish::cache::CacheOptions {
                    from: cache_from
                        .map(|r| kiln::publish::cache::RegistryCache::open(&r, &registry.options()))
                        .transpose()?,
                    to: cache_to
                        .map(|r| kiln::publish::cache::RegistryCache::open(&r, &registry.options()))
                        .transpose()?,
                },
            };
            let mut reports = Vec::new();
            for arch in &arches {
                if arches.len() > 1 {
                    let arch = arch.as_deref().unwrap_or_default();
                    ui.step(format!("building for {arch}"));
                    options.out_dir = output.join(arch);
                }
                options.arch = arch.clone();
                let out = build(&options, ui)?;
                if json {
                    reports.push(out.report());
                    continue;
                }
                for path in out
                    .artifact_paths
                    .iter()
                    .chain([&out.manifest_path])
                    .chain(&out.signature_path)
                    .chain(&out.provenance_path)
                {
                    print(&format!("{}\n", path.display()))?;
                }
            }
            if json {
                // One build prints its report; several, a list of them.
                let report = match <[_; 1]>::try_from(reports) {
                    Ok([one]) => one,
                    Err(many) => serde_json::Value::Array(many),
                };
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            }
        }
        Command::Lock {
            recipe,
            update,
            json,
            archive,
        } => {
            let arches = archive.arches();
            let options = archive.options(&[])?;
            let mut reports = Vec::new();
            for arch in &arches {
                let plan = kiln::recipe::load_for_arch(&recipe, arch.as_deref())?;
                let update = match &update {
                    None => kiln::packages::LockUpdate::Keep,
                    Some(names) if names.is_empty() => kiln::packages::LockUpdate::All,
                    Some(names) => kiln::packages::LockUpdate::Only(names.clone()),
                };
                let (lock, diff) = kiln::packages::lock(&plan, &recipe, &options, update, ui)?;
                let path = kiln::packages::lock_file(&recipe, &plan);
                if json {
                    let pair = |(name, version): &(String, String)| serde_json::json!({"name": name, "version": version});
                    reports.push(serde_json::json!({
                        "lock": path,
                        "arch": plan.image.arch,
                        "packages": lock.packages.len(),
                        "added": diff.added.iter().map(pair).collect::<Vec<_>>(),
                        "removed": diff.removed.iter().map(pair).collect::<Vec<_>>(),
                        "changed": diff.changed.iter().map(|(name, from, to)| {
                            serde_json::json!({"name": name, "from": from, "to": to})
                        }).collect::<Vec<_>>(),
                    }));
                } else if diff.is_empty() {
                    ui.step(format!(
                        "{} is up to date ({} packages)",
                        path.display(),
                        lock.packages.len()
                    ));
                } else {
                    ui.step(format!(
                        "wrote {} ({} packages):",
                        path.display(),
                        lock.packages.len()
                    ));
                    print(&diff.to_text())?;
                }
            }
            if json {
                let report = match <[_; 1]>::try_from(reports) {
                    Ok([one]) => one,
                    Err(many) => serde_json::Value::Array(many),
                };
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            }
        }
        Command::Fetch {
            recipe,
            locked,
            artifact,
            optional_artifact,
            json,
            archive,
        } => {
            let arches = archive.arches();
            let mut options = archive.options(&artifact)?;
            options.optional_artifacts = optional_artifact.into_iter().collect();
            let mut reports = Vec::new();
            for arch in &arches {
                let plan = kiln::recipe::load_for_arch(&recipe, arch.as_deref())?;
                let artifacts = kiln::packages::fetch_artifacts(&plan, &options, ui)?;
                let packages = match plan.debian.section {
                    Some(_) => {
                        let lock =
                            kiln::packages::lock_for_build(&plan, &recipe, &options, locked, ui)?;
                        kiln::packages::fetch_packages(&plan, &lock, &options, ui)?
                    }
                    None => Vec::new(),
                };
                if json {
                    reports.push(serde_json::json!({
                        "arch": plan.image.arch,
                        "packages": packages.iter().map(|(p, path)| serde_json::json!({
                            "name": p.name, "version": p.version, "arch": p.arch,
                            "size": p.size, "sha256": p.sha256, "path": path,
                        })).collect::<Vec<_>>(),
                        "artifacts": artifacts.iter().map(|(a, path)| serde_json::json!({
                            "name": a.name, "sha256": a.sha256.hex(), "path": path,
                        })).collect::<Vec<_>>(),
                    }));
                }
            }
            if json {
                let report = match <[_; 1]>::try_from(reports) {
                    Ok([one]) => one,
                    Err(many) => serde_json::Value::Array(many),
                };
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            }
        }
        Command::Audit {
            path,
            format,
            fail_on,
            recipe,
            output,
            list_rules,
            fleet,
        } => {
            if list_rules {
                for rule in kiln_policy::audit::catalogue() {
                    print(&format!(
                        "{:<28} {:<9} {}\n",
                        rule.id,
                        rule.severity.name(),
                        rule.title
                    ))?;
                }
                return Ok(exit::SUCCESS);
            }
            let Some(path) = path else {
                anyhow::bail!("give PATH, or --list-rules")
            };
            let mut config = kiln_policy::audit::AuditConfig::default();
            if let Some(recipe) = &recipe {
                let plan = kiln::recipe::load(recipe)?;
                config.fail_on = plan.audit.fail_on;
                config.waivers = plan.audit.waivers();
            }
            if let Some(fail_on) = fail_on {
                config.fail_on = fail_on;
            }
            if let Some(file) = &output
                && file.is_dir()
            {
                anyhow::bail!("-o {}: is a directory, not a file", file.display());
            }
            let fleet = fleet.outputs(None);
            let ran = kiln_check::run::audit(&path, &config, &fleet);
            let fleet_report = ran.report;
            let report = match ran.outcome {
                Ok(report) => report,
                Err(e) => {
                    let _ = reported(exit::FAILURE, fleet_report);
                    return Err(e);
                }
            };
            let rendered = report.render(format);
            match &output {
                Some(file) => {
                    kiln_tree::write_atomic(file, rendered.as_bytes(), kiln_tree::PUBLIC_FILE)?
                }
                None => print(&rendered)?,
            }
            if output.is_some() || format != kiln_policy::audit::report::Format::Text {
                ui.step(report.summary_line());
            }
            return Ok(reported(report.exit_code(exit::AUDIT_FAILED), fleet_report));
        }
        Command::Diff { old, new, json } => {
            let report = kiln::cmd::diff::diff(&old, &new)?;
            if json {
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            } else {
                print(&report.to_text())?;
            }
        }
        Command::Inspect { path, json } => {
            let summary = kiln::cmd::inspect::inspect(&path)?;
            if json {
                print(&format!("{}\n", serde_json::to_string_pretty(&summary)?))?;
            } else {
                print(&summary.to_text())?;
            }
        }
        Command::Keygen {
            output,
            no_password,
            password_file,
            force,
            json,
        } => {
            let password = if no_password {
                None
            } else {
                let password = kiln::signing::password(
                    password_file.as_deref(),
                    "Password for the new key: ",
                    true,
                )?;
                if password.is_none() {
                    anyhow::bail!(
                        "no password: give --password-file FILE, set {}, run on a terminal, or pass --no-password",
                        kiln::signing::PASSWORD_ENV
                    );
                }
                password
            };
            let (public, secret, id) = kiln::signing::keygen(&output, password.as_deref(), force)?;
            ui.step(format!("generated key {id}"));
            if json {
                let report = serde_json::json!({
                    "key_id": id.to_string(), "public": public, "secret": secret,
                });
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            } else {
                print(&format!("{}\n{}\n", public.display(), secret.display()))?;
            }
        }
        Command::Pubkey { signing } => {
            let Some(key) = signing.load()? else {
                anyhow::bail!("give --key SECRET_KEY")
            };
            print(&key.public_key().to_file_string(None)?)?;
        }
        Command::Sign { manifest, signing } => {
            let Some(key) = signing.load()? else {
                anyhow::bail!("give --key SECRET_KEY")
            };
            let bytes = kiln::signing::read_manifest(&manifest)?;
            let parsed = kiln::signing::parse_manifest(&manifest, &bytes)?;
            let signature = kiln::signing::sign_manifest(&key, &parsed, &bytes)?;
            let path = kiln::signing::signature_path(&manifest);
            kiln_tree::write_atomic(
                &path,
                signature.to_file_string().as_bytes(),
                kiln_tree::PUBLIC_FILE,
            )?;
            print(&format!("{}\n", path.display()))?;
        }
        Command::Push {
            path,
            reference,
            registry,
            json,
        } => {
            let reference = kiln_oci::Reference::parse(&reference)?;
            let report = kiln::publish::push::push(&path, &reference, &registry.options(), ui)?;
            if json {
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            } else {
                print(&format!("{}\n", report.reference))?;
                for image in &report.images {
                    print(&format!("  {}: {}\n", image.arch, image.reference))?;
                }
            }
        }
        Command::Pull {
            reference,
            output,
            keys,
            min_version,
            arch,
            registry,
            json,
        } => {
            let reference = kiln_oci::Reference::parse(&reference)?;
            kiln::build::check_output_dir("--output", &output)?;
            let keys = kiln::signing::load_public_keys(&keys)?;
            let options = kiln::publish::pull::PullOptions {
                keys: &keys,
                min_version: min_version.as_deref(),
                registry: &registry.options(),
                arch: arch.as_deref(),
            };
            let report = kiln::publish::pull::pull(&reference, &output, &options, ui)?;
            if json {
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            } else {
                for name in &report.files {
                    print(&format!("{}\n", output.join(name).display()))?;
                }
                ui.step(format!("pulled and verified {}", report.reference));
            }
        }
        Command::Verify {
            path,
            keys,
            contents,
            min_version,
            provenance,
            arch,
            registry,
            json,
        } => {
            let keys = kiln::signing::load_public_keys(&keys)?;
            let options = kiln::cmd::verify::VerifyOptions {
                keys: &keys,
                contents,
                min_version: min_version.as_deref(),
                provenance,
            };
            let report = match registry_reference(&path)? {
                Some(reference) => kiln::publish::pull::verify_reference(
                    &reference,
                    &options,
                    &registry.options(),
                    arch.as_deref(),
                    ui,
                )?,
                None => kiln::cmd::verify::verify(&path, &options)?,
            };
            if json {
                print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            } else {
                print(&report.to_text())?;
            }
            return Ok(if report.ok {
                exit::SUCCESS
            } else {
                exit::NOT_VERIFIED
            });
        }
        Command::Check {
            manifest,
            keys,
            root,
            fast,
            json_lines,
            node_patch,
            fleet,
        } => {
            let fleet = fleet.outputs(node_patch);
            let ran = kiln_check::run::check(
                &manifest,
                &keys,
                &kiln_check::drift::CheckOptions { root: &root, fast },
                &fleet,
                &mut |verified| {
                    ui.step(format!(
                        "manifest of {} {} signed by key {}; checking {}",
                        verified.manifest.image.name,
                        verified.manifest.image.version,
                        verified.key_id,
                        root.display()
                    ))
                },
            );
            let fleet_report = ran.report;
            let (_, drift) = match ran.outcome {
                Ok(found) => found,
                Err(e) => {
                    let _ = reported(exit::FAILURE, fleet_report);
                    return Err(e);
                }
            };
            for event in &drift {
                if json_lines {
                    print(&format!("{}\n", serde_json::to_string(event)?))?;
                } else {
                    print(&format!("{event}\n"))?;
                }
            }
            if !json_lines {
                ui.step(if drift.is_empty() {
                    "no drift".to_owned()
                } else {
                    format!("{} drift event(s)", drift.len())
                });
            }
            let code = if drift.is_empty() {
                exit::SUCCESS
            } else {
                exit::NOT_VERIFIED
            };
            return Ok(reported(code, fleet_report));
        }
    }
    Ok(exit::SUCCESS)
}
