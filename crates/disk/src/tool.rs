//! The external programs kiln-disk runs, with errors that name the
//! missing package and repeat what the program said.

use anyhow::{Result, anyhow, bail};
use std::io;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

#[derive(Clone, Copy, Debug)]
pub struct Tool {
    pub program: &'static str,
    /// The Debian package that ships it, for the error message.
    pub package: &'static str,
}

pub const SQFSTAR: Tool = Tool {
    program: "sqfstar",
    package: "squashfs-tools",
};
pub const MKFS_FAT: Tool = Tool {
    program: "mkfs.fat",
    package: "dosfstools",
};
pub const MMD: Tool = Tool {
    program: "mmd",
    package: "mtools",
};
pub const MCOPY: Tool = Tool {
    program: "mcopy",
    package: "mtools",
};
pub const OBJCOPY: Tool = Tool {
    program: "objcopy",
    package: "binutils",
};
/// The cross binutils' objcopy: the build host's own knows only its own
/// architecture's PE format (binutils 2.40 on amd64: pei-x86-64).
pub const OBJCOPY_AARCH64: Tool = Tool {
    program: "aarch64-linux-gnu-objcopy",
    package: "binutils-aarch64-linux-gnu",
};
pub const OBJCOPY_X86_64: Tool = Tool {
    program: "x86_64-linux-gnu-objcopy",
    package: "binutils-x86-64-linux-gnu",
};

/// The objcopy that can write a PE image for `machine`.
pub fn objcopy_for(machine: u16) -> Tool {
    match (machine, std::env::consts::ARCH) {
        (crate::pe::MACHINE_ARM64, "aarch64") | (crate::pe::MACHINE_X86_64, "x86_64") => OBJCOPY,
        (crate::pe::MACHINE_ARM64, _) => OBJCOPY_AARCH64,
        (crate::pe::MACHINE_X86_64, _) => OBJCOPY_X86_64,
        _ => OBJCOPY,
    }
}

impl Tool {
    /// A command with a fixed locale and time zone: FAT timestamps are
    /// local time, and messages are parsed in tests.
    pub fn command(self) -> Command {
        let mut cmd = Command::new(self.path());
        cmd.env("LC_ALL", "C").env("TZ", "UTC");
        cmd
    }

    /// The program found on PATH or in the sbin directories, which are
    /// not on a Debian user's PATH (mkfs.fat lives there); the bare name
    /// if it is nowhere, so that spawning fails as "not installed".
    pub fn path(self) -> PathBuf {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|dir| dir.join(self.program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| self.program.into())
    }

    /// The program's path, or the "not installed" error.
    pub fn require(self) -> Result<PathBuf> {
        let path = self.path();
        if path.is_absolute() {
            Ok(path)
        } else {
            Err(self.spawn_error(io::ErrorKind::NotFound.into()))
        }
    }

    /// Maps a failure to start the program to an error that says which
    /// package to install.
    pub fn spawn_error(self, e: io::Error) -> anyhow::Error {
        if e.kind() == io::ErrorKind::NotFound {
            anyhow!(
                "{} is not installed (Debian package {})",
                self.program,
                self.package
            )
        } else {
            anyhow!("cannot run {}: {e}", self.program)
        }
    }

    /// Runs `cmd` to completion with no input; fails unless it exits 0.
    pub fn run(self, cmd: &mut Command) -> Result<Output> {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        self.check(&out.status, &out.stderr)?;
        Ok(out)
    }

    pub fn check(self, status: &std::process::ExitStatus, stderr: &[u8]) -> Result<()> {
        if !status.success() {
            bail!(
                "{} failed ({status}): {}",
                self.program,
                String::from_utf8_lossy(stderr).trim()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_package() {
        let tool = Tool {
            program: "kiln-no-such-program",
            package: "kiln-test",
        };
        let e = tool.run(&mut tool.command()).unwrap_err().to_string();
        assert_eq!(
            e,
            "kiln-no-such-program is not installed (Debian package kiln-test)"
        );
    }

    #[test]
    fn a_failing_program_repeats_its_message() {
        let tool = Tool {
            program: "sh",
            package: "dash",
        };
        let e = tool
            .run(tool.command().args(["-c", "echo oops >&2; exit 3"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("sh failed (exit status: 3): oops"), "{e}");
    }
}
