//! The install stage: locked Debian packages into the image tree, as a
//! reproducible system dpkg would recognise as its own.
//!
//! 1. The merged-/usr skeleton (`/bin → usr/bin` …) for suites that use it.
//! 2. Every `.deb` read in parallel (decompression and hashing), then its
//!    members placed in lock order as dpkg unpacks them (`debian::deb`).
//! 3. The dpkg database for the unpacked state (`dpkg_db`).
//! 4. Configuration: the preinst scripts and `dpkg --configure --pending`
//!    run on the image in a sandbox (`sandbox`, `userns`, `isolate`): a
//!    user namespace whose root is not the host's, the image in a tmpfs
//!    as the root of its own mount namespace, handed over and back as a
//!    tar.
//! 5. Normalisation for reproducibility and golden-image hygiene
//!    (`normalise`).

pub mod cache;
mod dpkg_db;
pub mod emulation;
mod ids;
mod isolate;
pub mod normalise;
mod order;
mod profile;
mod userns;

pub use isolate::run_shell;
pub use userns::{HELPER_COMMAND, helper_main, helper_work_dir};

use crate::ui::{Ui, human_bytes};
use anyhow::{Context, Result, anyhow, bail};
use dpkg_db::Package;
use kiln_debian::lock::LockedPackage;
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct InstallOptions<'a> {
    pub suite: &'a str,
    pub arch: &'a str,
    pub epoch: u64,
    /// A private directory, for the exchange with the sandbox.
    pub work_dir: &'a Path,
    /// Where installed trees are cached (`None`: always install afresh).
    pub cache_dir: Option<&'a Path>,
    /// The `[base]` tarball's digest, when packages go onto a base.
    pub base: Option<kiln_tree::Digest>,
}

/// Suites from before merged /usr was the default.
const SPLIT_USR_SUITES: &[&str] = &["jessie", "stretch", "buster", "bullseye"];

/// The install cache and the key `install` looks its tree up by, when
/// the cache is on.
pub fn cache_entry(
    packages: &[LockedPackage],
    options: &InstallOptions,
) -> Result<Option<(cache::InstallCache, String)>> {
    let Some(dir) = options.cache_dir else {
        return Ok(None);
    };
    let key = cache::InstallCache::key(&cache::Inputs {
        packages,
        arch: options.arch,
        merged_usr: !SPLIT_USR_SUITES.contains(&options.suite),
        epoch: options.epoch,
        base: options.base,
    })?;
    Ok(Some((cache::InstallCache::open(dir)?, key)))
}

/// Installs `packages` (locked, fetched and verified) into `tree`. A tree
/// installed afresh goes into the install cache while the build goes on:
/// the returned [`CacheWrite`] finishes it.
pub fn install(
    tree: &mut Tree,
    store: &Arc<Store>,
    packages: &[(LockedPackage, PathBuf)],
    options: &InstallOptions,
    ui: &Ui,
) -> Result<CacheWrite> {
    let merged_usr = !SPLIT_USR_SUITES.contains(&options.suite);
    let locked: Vec<LockedPackage> = packages.iter().map(|(p, _)| p.clone()).collect();
    let cached = match cache_entry(&locked, options)? {
        Some((cache, key)) => {
            if let Some(installed) = cache.load(&key, store)? {
                *tree = installed;
                ui.step(format!(
                    "installed {} packages from the install cache (key {})",
                    packages.len(),
                    &key[..16]
                ));
                return Ok(CacheWrite(None));
            }
            Some((cache, key))
        }
        None => None,
    };
    install_afresh(tree, store, packages, merged_usr, options, ui)?;
    let Some((cache, key)) = cached else {
        return Ok(CacheWrite(None));
    };
    // Packing a few hundred MiB into the cache takes as long as packing the
    // rootfs: a second core does it meanwhile.
    let (tree, store) = (tree.clone(), Arc::clone(store));
    Ok(CacheWrite(Some(std::thread::spawn(move || {
        cache.save(&key, &tree, &store)
    }))))
}

/// An installed tree being written into the install cache.
#[must_use = "the write is finished (and a failure reported) by `finish`"]
pub struct CacheWrite(Option<std::thread::JoinHandle<Result<()>>>);

impl CacheWrite {
    /// Waits for the write; a cache that cannot be written costs the next
    /// build time, not this one, so a failure is a warning.
    pub fn finish(mut self, ui: &Ui) {
        let Some(handle) = self.0.take() else {
            return;
        };
        let outcome = handle
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the writing thread panicked")));
        if let Err(e) = outcome {
            ui.warn(format!(
                "cannot save the installed tree in the cache: {e:#}"
            ));
        }
    }
}

impl Drop for CacheWrite {
    /// A build that fails meanwhile still waits: the tree's contents are in
    /// its work directory, which goes away with it.
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

/// Unpacks, configures and normalises: what the cache saves a rebuild.
fn install_afresh(
    tree: &mut Tree,
    store: &Store,
    packages: &[(LockedPackage, PathBuf)],
    merged_usr: bool,
    options: &InstallOptions,
    ui: &Ui,
) -> Result<()> {
    if merged_usr {
        merged_usr_skeleton(tree, options.arch)?;
    }
    let total: u64 = packages.iter().map(|(p, _)| p.size).sum();
    let progress = ui.bytes(total, "unpacking");
    // With the caches on, a package decompressed before is read plain.
    let unpack_cache = options
        .cache_dir
        .map(kiln_debian::unpack_cache::UnpackCache::open)
        .transpose()?;
    let debs = packages
        .par_iter()
        .map(|(locked, path)| {
            let label = format!("{} {}", locked.name, locked.version);
            let deb = match &unpack_cache {
                Some(cache) => {
                    let digest = locked.sha256.parse().map_err(|e: String| anyhow!(e))?;
                    kiln_debian::deb::read_cached(path, &digest, &label, store, cache)
                }
                None => kiln_debian::deb::read(path, &label, store),
            };
            progress.inc(locked.size);
            deb
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(why) = unpack_cache.as_ref().and_then(|c| c.unsaved()) {
        // A cache that cannot be written costs the next build time, not this one.
        ui.warn(format!(
            "cannot keep the packages' contents in the cache: {why}"
        ));
    }
    let mut unpacked = Vec::with_capacity(debs.len());
    for deb in debs {
        let label = deb.label.clone();
        let package = Package::new(deb.place(tree)?).with_context(|| format!("package {label}"))?;
        unpacked.push(package);
    }
    let seconds = progress.finish();
    let cached = match unpack_cache.as_ref().map(|c| c.hits()) {
        Some(hits) if hits > 0 => format!(", {hits} of them decompressed before"),
        _ => String::new(),
    };
    ui.step(format!(
        "unpacked {} packages ({}{cached}) in {seconds:.1}s",
        unpacked.len(),
        human_bytes(total)
    ));

    if crate::boot::initrd::uses_dracut(unpacked.iter().map(|p| p.name.as_str())) {
        // Before the kernel's postinst runs dracut.
        crate::boot::initrd::place(tree, store, options.arch)?;
    }
    let to_configure: Vec<&str> = unpacked
        .iter()
        .filter(|p| p.needs_configure())
        .map(|p| p.name.as_str())
        .collect();
    if to_configure.is_empty() {
        dpkg_db::write(tree, store, &unpacked, options.arch, "installed")?;
    } else {
        if !has_dpkg(tree) {
            // Name a few: an image without dpkg may have a hundred such packages.
            let named = match to_configure.len() {
                n if n > 5 => format!("{} and {} more", to_configure[..5].join(", "), n - 5),
                _ => to_configure.join(", "),
            };
            bail!(
                "packages {named} have maintainer scripts, which need dpkg in the image to run: add dpkg to [debian] packages (or use variant = \"essential\" or more)"
            );
        }
        dpkg_db::write(tree, store, &unpacked, options.arch, "unpacked")?;
        configure(tree, store, &unpacked, options, ui)?;
    }
    let removed = normalise::apply(tree, store)?;
    if !removed.is_empty() {
        ui.step(format!(
            "normalised: removed {} paths of build-time state ({})",
            removed.len(),
            normalise::summary(&removed)
        ));
    }
    Ok(())
}

/// `/bin → usr/bin`, `/sbin → usr/sbin`, `/lib → usr/lib` (and `/lib64`
/// where the architecture's loader lives there), as debootstrap and
/// mmdebstrap set up merged /usr.
fn merged_usr_skeleton(tree: &mut Tree, arch: &str) -> Result<()> {
    let mut dirs = vec!["bin", "sbin", "lib"];
    if matches!(arch, "amd64" | "ppc64el" | "s390x" | "loong64") {
        dirs.push("lib64");
    }
    for dir in dirs {
        let link = ImagePath::new(&format!("/{dir}"))?;
        if tree.contains(&link) {
            continue;
        }
        tree.create_dir_all(&ImagePath::new(&format!("/usr/{dir}"))?, &Meta::root(0o755))?;
        tree.insert(
            link,
            Entry {
                kind: Kind::Symlink {
                    target: format!("usr/{dir}"),
                },
                meta: Meta::root(0o777),
            },
        )?;
    }
    Ok(())
}

fn has_dpkg(tree: &Tree) -> bool {
    let dpkg = ImagePath::new("/usr/bin/dpkg").expect("a valid path");
    tree.resolve(&dpkg, true)
        .ok()
        .and_then(|p| tree.get(&p))
        .is_some_and(|e| matches!(e.kind, Kind::File { .. }))
}

/// What keeps services from starting while packages are configured
/// (invoke-rc.d asks it; 101 means "action forbidden").
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// Runs preinst scripts and `dpkg --configure --pending` in the image, in
/// the sandbox (a user namespace, `sandbox`), and takes the result as the
/// new `tree`.
fn configure(
    tree: &mut Tree,
    store: &Store,
    packages: &[Package],
    options: &InstallOptions,
    ui: &Ui,
) -> Result<()> {
    emulation::ensure(options.arch, ui)?;
    let ids = ids::Ids::detect()?;
    let timeout = configure_timeout()?;
    let started = std::time::Instant::now();
    let policy = ImagePath::new(POLICY_RC_D)?;
    let had_policy = tree.contains(&policy);
    if !had_policy {
        dpkg_db::put(tree, store, &policy, b"#!/bin/sh\nexit 101\n", 0o755)?;
    }
    stage_preinst_controls(tree, store, packages)?;
    normalise::place_placeholders(tree, store)?;
    // dpkg sets up every unpacked package, scripts or not: that is the
    // count the bar shows.
    let with_scripts = packages.iter().filter(|p| p.needs_configure()).count();
    ui.step(format!(
        "configuring {} packages ({with_scripts} with maintainer scripts) in a sandbox ({ids})",
        packages.len()
    ));
    let job = isolate::Job {
        work_dir: options.work_dir,
        script: configure_script(packages),
        env: configure_env(options.epoch),
        timeout,
    };
    let log = userns::log_path(options.work_dir);
    let progress = ui.count(packages.len() as u64, "configuring");
    let done = std::sync::atomic::AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        // dpkg's "Setting up" lines tell how far it is.
        scope.spawn(|| {
            // Without a bar (CI logs, pipes) there is nothing to count for.
            while progress.is_visible() && !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&log) {
                    let n = text
                        .lines()
                        .filter(|l| l.starts_with("Setting up "))
                        .count();
                    progress.set(n as u64);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        let outcome = userns::run(&ids, tree, store, &job);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        outcome
    })?;
    progress.finish();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let phases = match outcome {
        isolate::Outcome::Configured(configured, phases) => {
            *tree = configured;
            phases
        }
        isolate::Outcome::Failed(status) => {
            let text = text();
            // The last lines, each cut short: one line may be megabytes.
            let tail: Vec<String> = text
                .lines()
                .rev()
                .take(40)
                .map(|l| match l.char_indices().nth(500) {
                    Some((cut, _)) => format!("{}…", &l[..cut]),
                    None => l.to_owned(),
                })
                .collect();
            let tail: Vec<String> = tail.into_iter().rev().collect();
            bail!(
                "configuring the packages failed ({status}){}; the end of the output:\n{}",
                culprit(&text),
                tail.join("\n")
            );
        }
        isolate::Outcome::TimedOut => {
            let culprit = match culprit(&text()) {
                none if none.is_empty() => " (before any package's script started)".to_owned(),
                some => some,
            };
            bail!(
                "configuring the packages did not finish within {}{culprit}, and everything the \
                 scripts started was killed; set {TIMEOUT_VAR} (seconds, or a number with s, m or h) \
                 to allow more",
                human_duration(timeout),
            )
        }
    };
    if !had_policy {
        tree.remove(&policy)?;
    }
    ui.step(format!(
        "configured in {:.1}s ({phases})",
        started.elapsed().as_secs_f64()
    ));
    if ui.is_verbose() {
        let timeline = std::fs::read_to_string(userns::times_path(options.work_dir));
        let profile = profile::from_timeline(&timeline.unwrap_or_default());
        ui.detail(format!("scripts ran {:.1}s; slowest steps:", profile.total));
        for line in profile.lines(PROFILE_LINES) {
            ui.detail(format!("  {line}"));
        }
    }
    Ok(())
}

/// How many of the slowest configure steps `kiln build -v` names.
const PROFILE_LINES: usize = 15;

/// The variable that sets the wall-clock limit of configuring.
const TIMEOUT_VAR: &str = "KILN_CONFIGURE_TIMEOUT";

/// Generous: the NODE set takes seconds, a kernel's initramfs a minute.
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

fn configure_timeout() -> Result<std::time::Duration> {
    match std::env::var(TIMEOUT_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_TIMEOUT),
        Ok(value) => parse_duration(&value).ok_or_else(|| {
            anyhow::anyhow!(
                "{TIMEOUT_VAR}={value:?} is not a duration: give seconds (1800) or a number with s, m or h (30m)"
            )
        }),
        Err(e) => bail!("{TIMEOUT_VAR}: {e}"),
    }
}

/// "90", "90s", "30m", "2h"; more than zero.
fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last()? {
        (i, 's') => (&text[..i], 1),
        (i, 'm') => (&text[..i], 60),
        (i, 'h') => (&text[..i], 3600),
        _ => (text, 1),
    };
    let seconds = number.parse::<u64>().ok()?.checked_mul(unit)?;
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}

fn human_duration(d: std::time::Duration) -> String {
    match d.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Which package the scripts' output blames: those dpkg reports as failed,
/// else what ran last (kiln's line before each preinst, dpkg's before each
/// package and trigger). Empty when the output names none.
fn culprit(log: &str) -> String {
    let mut failed: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("dpkg: error processing package "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    failed.dedup();
    if !failed.is_empty() {
        return format!(": the maintainer scripts of {} failed", failed.join(", "));
    }
    let last = log.lines().rev().find_map(|l| {
        let word = |rest: &str| rest.split_whitespace().next().map(str::to_owned);
        if let Some(rest) = l.strip_prefix("kiln: preinst install ") {
            Some(format!("the preinst of {}", word(rest)?))
        } else if let Some(rest) = l.strip_prefix("Setting up ") {
            Some(format!("the postinst of {}", word(rest)?))
        } else {
            l.strip_prefix("Processing triggers for ")
                .and_then(|rest| Some(format!("the triggers of {}", word(rest)?)))
        }
    });
    match last {
        Some(what) => format!(" while {what} ran"),
        None => String::new(),
    }
}

/// The environment maintainer scripts run with: fixed, nothing of the
/// build host's.
fn configure_env(epoch: u64) -> Vec<(String, String)> {
    [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("LC_ALL", "C.UTF-8"),
        ("LANG", "C.UTF-8"),
        ("HOME", "/root"),
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("DEBCONF_NONINTERACTIVE_SEEN", "true"),
        ("SOURCE_DATE_EPOCH", &epoch.to_string()),
        ("KERNEL_INSTALL_BYPASS", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Where each preinst waits with its package's control members.
const PREINST_STAGING: &str = "/var/lib/dpkg/kiln-preinst";

/// dpkg runs a preinst from `/var/lib/dpkg/tmp.ci/`, beside the package's
/// control file; debconf reads the package's name there. Each package's
/// control members are staged in the tree so the script can move them
/// into place (and removes what is left).
fn stage_preinst_controls(tree: &mut Tree, store: &Store, packages: &[Package]) -> Result<()> {
    for p in packages.iter().filter(|p| p.has_member("preinst")) {
        let dir = ImagePath::new(PREINST_STAGING)?.join(&p.info_name)?;
        tree.create_dir_all(&dir, &Meta::root(0o755))?;
        let control = &p.unpacked.control;
        for (member, bytes) in &control.files {
            let mode = control.modes.get(member).copied().unwrap_or(0o644);
            dpkg_db::put(tree, store, &dir.join(member)?, bytes, mode)?;
        }
    }
    Ok(())
}

/// dracut's kernel hook, whose run at a kernel's setup its trigger repeats.
const DEFERRED_HOOK: &str = "/etc/kernel/postinst.d/dracut";

/// The shell script run in the image: each preinst (`install`) in
/// dependency order, as dpkg runs them before unpacking, then dpkg
/// configures everything and runs the triggers.
fn configure_script(packages: &[Package]) -> String {
    let mut script = String::from("set -e\nci=/var/lib/dpkg/tmp.ci\n");
    for index in order::dependency_order(packages) {
        let p = &packages[index];
        if !p.has_member("preinst") {
            continue;
        }
        script.push_str(&format!(
            "echo 'kiln: preinst install {name}'\n\
             rm -rf $ci && mv {PREINST_STAGING}/{info} $ci\n\
             DPKG_MAINTSCRIPT_PACKAGE={name} DPKG_MAINTSCRIPT_ARCH={arch} DPKG_MAINTSCRIPT_NAME=preinst \
             DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1 DPKG_ADMINDIR=/var/lib/dpkg DPKG_ROOT= \
             $ci/preinst install\n",
            name = p.name,
            arch = p.arch,
            info = p.info_name,
        ));
    }
    script.push_str(&format!("rm -rf $ci {PREINST_STAGING}\n"));
    if packages.iter().any(|p| p.name == "dracut") {
        // dracut's postinst defers the initramfs to its trigger, but its
        // kernel hook builds one at once when a kernel is set up: twice
        // the work (half a minute for a cloud kernel), and the trigger's
        // initramfs is the one that stays. The hook is diverted aside
        // (run-parts skips a name with a dot) while packages are set up,
        // with the triggers held back; then it is back, and the triggers
        // run once.
        script.push_str(&format!(
            "dpkg-divert --quiet --local --rename --divert {DEFERRED_HOOK}.kiln --add {DEFERRED_HOOK}\n\
             dpkg --force-unsafe-io --no-triggers --configure --pending\n\
             dpkg-divert --quiet --local --rename --remove {DEFERRED_HOOK}\n\
             dpkg --force-unsafe-io --triggers-only --pending\n",
        ));
    } else {
        script.push_str("dpkg --force-unsafe-io --configure --pending\n");
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn package(name: &str) -> Package {
        let mut files = kiln_debian::deb::ControlFiles::default();
        files.files.insert(
            "control".into(),
            format!("Package: {name}\nArchitecture: amd64\n").into_bytes(),
        );
        Package::new(kiln_debian::deb::Unpacked {
            control: files,
            paths: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn dracut_builds_the_initramfs_once_from_its_trigger() {
        let plain = configure_script(&[package("libc6")]);
        assert!(
            plain.ends_with("dpkg --force-unsafe-io --configure --pending\n"),
            "{plain}"
        );
        assert!(!plain.contains("dpkg-divert"), "{plain}");
        let with_dracut = configure_script(&[package("linux-image-amd64"), package("dracut")]);
        let steps: Vec<&str> = with_dracut
            .lines()
            .skip_while(|l| !l.starts_with("rm -rf"))
            .collect();
        assert_eq!(
            steps[1..],
            [
                "dpkg-divert --quiet --local --rename --divert /etc/kernel/postinst.d/dracut.kiln --add /etc/kernel/postinst.d/dracut",
                "dpkg --force-unsafe-io --no-triggers --configure --pending",
                "dpkg-divert --quiet --local --rename --remove /etc/kernel/postinst.d/dracut",
                "dpkg --force-unsafe-io --triggers-only --pending",
            ],
            "{with_dracut}"
        );
    }

    #[test]
    fn timeouts_are_seconds_or_have_a_unit() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "0", "m", "-5", "1.5m", "5d", "30 m"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(human_duration(DEFAULT_TIMEOUT), "30m");
        assert_eq!(human_duration(Duration::from_secs(5)), "5s");
    }

    #[test]
    fn the_log_names_the_package_to_blame() {
        let preinst = "kiln: preinst install base-files\nkiln: preinst install evil\nboom\n";
        assert_eq!(culprit(preinst), " while the preinst of evil ran");
        let setting_up = "Setting up libc6 (2.36) ...\nSetting up evil (1) ...\nspinning\n";
        assert_eq!(culprit(setting_up), " while the postinst of evil ran");
        let triggers = "Setting up a (1) ...\nProcessing triggers for man-db (2) ...\n";
        assert_eq!(culprit(triggers), " while the triggers of man-db ran");
        let failed = "Setting up evil (1) ...\ndpkg: error processing package evil (--configure):\n \
                      installed evil package post-installation script subprocess returned error exit status 1\n\
                      Setting up other (1) ...\nErrors were encountered while processing:\n evil\n";
        assert_eq!(culprit(failed), ": the maintainer scripts of evil failed");
        assert_eq!(culprit("nothing to see\n"), "");
    }
}
