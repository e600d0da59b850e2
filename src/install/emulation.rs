//! Maintainer scripts of another architecture (an arm64 image built on
//! amd64) run through qemu-user, which the kernel starts for foreign ELF
//! files through a binfmt_misc registration.
//!
//! The registration must have the `F` flag: the kernel opens the
//! interpreter when it is registered, so it is found from inside the
//! sandbox's chroot, where no host file is. kiln checks for it before
//! configuring; as root it mounts binfmt_misc and registers what Debian's
//! qemu-user-static ships in /usr/lib/binfmt.d (the same lines
//! systemd-binfmt would), and says so. A registration is the kernel's,
//! for every process until reboot: kiln never changes or removes one.

use crate::ui::Ui;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// The Debian architecture this kiln runs on.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

/// Whether this host runs `arch`'s binaries without an emulator.
pub fn is_native(arch: &str) -> bool {
    arch == "all" || arch == host_arch() || (host_arch() == "amd64" && arch == "i386")
}

/// qemu's name of a Debian architecture, as in qemu-<name>-static.
fn qemu_name(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "arm64" => "aarch64",
        "armhf" | "armel" => "arm",
        "amd64" => "x86_64",
        "i386" => "i386",
        "ppc64el" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "mips64el" => "mips64el",
        _ => return None,
    })
}

/// Makes sure `arch`'s programs can run here, or says what is missing.
pub fn ensure(arch: &str, ui: &Ui) -> Result<()> {
    if is_native(arch) {
        return Ok(());
    }
    let Some(qemu) = qemu_name(arch) else {
        bail!(
            "kiln cannot run {arch} maintainer scripts on {}: qemu-user has no emulator for it",
            host_arch()
        );
    };
    let root = is_root();
    let register = Path::new(BINFMT).join("register");
    if !register.exists() {
        if !root {
            bail!(
                "{arch} packages need their maintainer scripts run under qemu-user, and binfmt_misc is not mounted: as root, run `mount -t binfmt_misc binfmt_misc {BINFMT}` (or build as root, and kiln does)"
            );
        }
        mount_binfmt_misc()?;
        ui.step(format!("mounted binfmt_misc on {BINFMT}"));
    }
    let entry = Path::new(BINFMT).join(format!("qemu-{qemu}"));
    match std::fs::read_to_string(&entry) {
        Ok(state) => return check_entry(&entry, &state, arch),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", entry.display())),
    }
    let conf = registration_file(qemu).with_context(|| {
        format!(
            "{arch} packages need their maintainer scripts run under qemu-user, and {} is not registered: install qemu-user-static (apt-get install qemu-user-static), which ships its binfmt_misc registration",
            entry.display()
        )
    })?;
    if !root {
        bail!(
            "{arch} packages need qemu-{qemu} registered with binfmt_misc: as root, run `systemctl restart systemd-binfmt` or `cat {} > {}` (or build as root, and kiln does)",
            conf.display(),
            register.display()
        );
    }
    let line = std::fs::read_to_string(&conf)
        .with_context(|| format!("cannot read {}", conf.display()))?;
    let line = line
        .lines()
        .find(|l| l.starts_with(':'))
        .with_context(|| format!("{} holds no binfmt_misc registration", conf.display()))?;
    let flags = line.rsplit(':').next().unwrap_or_default();
    if !flags.contains('F') {
        bail!(
            "{} registers qemu-{qemu} without the F flag, so the sandbox's chroot cannot find the emulator: register it with F (qemu-user-static's own file has it)",
            conf.display()
        );
    }
    std::fs::write(&register, line).with_context(|| {
        format!(
            "cannot register qemu-{qemu} with binfmt_misc ({})",
            register.display()
        )
    })?;
    ui.step(format!(
        "registered qemu-{qemu} with binfmt_misc for {arch} maintainer scripts ({})",
        conf.display()
    ));
    let state = std::fs::read_to_string(&entry)
        .with_context(|| format!("cannot read {}", entry.display()))?;
    check_entry(&entry, &state, arch)
}

/// An existing registration must be enabled and carry the F flag.
fn check_entry(entry: &Path, state: &str, arch: &str) -> Result<()> {
    if !state.lines().any(|l| l == "enabled") {
        bail!(
            "{} is disabled, so {arch} maintainer scripts cannot run: enable it (echo 1 > {})",
            entry.display(),
            entry.display()
        );
    }
    let flags = state
        .lines()
        .find_map(|l| l.strip_prefix("flags: "))
        .unwrap_or_default();
    if !flags.contains('F') {
        bail!(
            "{} is registered without the F flag (flags: {flags}), so the emulator cannot be found inside kiln's sandbox: re-register it with F, as qemu-user-static's /usr/lib/binfmt.d file does",
            entry.display()
        );
    }
    let interpreter = state
        .lines()
        .find_map(|l| l.strip_prefix("interpreter "))
        .unwrap_or_default();
    if !interpreter.is_empty() && !Path::new(interpreter).exists() {
        bail!(
            "{} names {interpreter}, which does not exist: reinstall qemu-user-static",
            entry.display()
        );
    }
    Ok(())
}

/// Where distributions keep binfmt_misc registrations.
fn registration_file(qemu: &str) -> Option<PathBuf> {
    ["/usr/lib/binfmt.d", "/etc/binfmt.d", "/run/binfmt.d"]
        .iter()
        .map(|dir| Path::new(dir).join(format!("qemu-{qemu}.conf")))
        .find(|p| p.is_file())
}

fn mount_binfmt_misc() -> Result<()> {
    let target = std::ffi::CString::new(BINFMT).expect("a constant path has no NUL");
    let kind = std::ffi::CString::new("binfmt_misc").expect("a constant has no NUL");
    // SAFETY: the strings are NUL-terminated and outlive the call; no data.
    let rc = unsafe {
        libc::mount(
            kind.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        bail!("cannot mount binfmt_misc on {BINFMT}: {e}");
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_and_foreign() {
        assert!(is_native(host_arch()));
        assert!(is_native("all"));
        if host_arch() == "amd64" {
            assert!(is_native("i386"));
            assert!(!is_native("arm64"));
        }
        assert_eq!(qemu_name("arm64"), Some("aarch64"));
        assert_eq!(qemu_name("hurd-i386"), None);
    }

    #[test]
    fn registrations_are_checked_for_the_f_flag() {
        let entry = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64");
        let good = "enabled\ninterpreter /bin/sh\nflags: POF\noffset 0\n";
        assert!(check_entry(entry, good, "arm64").is_ok());
        let e = check_entry(entry, "enabled\ninterpreter /bin/sh\nflags: P\n", "arm64")
            .expect_err("no F");
        assert!(e.to_string().contains("without the F flag"), "{e}");
        let e = check_entry(entry, "disabled\nflags: F\n", "arm64").expect_err("disabled");
        assert!(e.to_string().contains("is disabled"), "{e}");
        let e = check_entry(
            entry,
            "enabled\ninterpreter /nonexistent/qemu\nflags: F\n",
            "arm64",
        )
        .expect_err("missing");
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
