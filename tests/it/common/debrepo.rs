//! A real Debian repository for tests, made with the real tools: packages
//! by `dpkg-deb`, indexes by `apt-ftparchive`, `InRelease` clearsigned by
//! `gpg` with a throwaway key. Served over file:// or the loopback HTTP
//! server in `http.rs`; tampering is a matter of editing its files.

use super::run_ok;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One package to build.
#[derive(Clone, Default)]
pub struct Deb {
    pub name: &'static str,
    pub version: &'static str,
    /// "amd64" when empty.
    pub arch: &'static str,
    pub depends: &'static str,
    pub pre_depends: &'static str,
    pub provides: &'static str,
    pub conflicts: &'static str,
    pub breaks: &'static str,
    /// "optional" when empty.
    pub priority: &'static str,
    pub essential: bool,
    /// Files in the package: (absolute path, content).
    pub files: Vec<(&'static str, &'static str)>,
    /// Extra control members: (name, content); scripts (`preinst`,
    /// `postinst`, …) get mode 0755.
    pub control: Vec<(&'static str, &'static str)>,
    /// Extra lines for the control file, e.g. "Multi-Arch: same\n".
    pub fields: &'static str,
}

pub struct TestRepo {
    pub root: PathBuf,
    /// The public key that signs the repository, as a binary keyring.
    pub keyring: PathBuf,
    gnupghome: PathBuf,
}

impl TestRepo {
    /// An empty repository in `dir/repo`, with a fresh signing key.
    pub fn new(dir: &Path) -> TestRepo {
        let root = dir.join("repo");
        let gnupghome = dir.join("gnupg");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&gnupghome).unwrap();
        set_mode(&gnupghome, 0o700);
        let repo = TestRepo {
            keyring: dir.join("archive-keyring.gpg"),
            root,
            gnupghome,
        };
        repo.gpg(&[
            "--quick-gen-key",
            "kiln test archive <archive@kiln.invalid>",
            "ed25519",
            "sign",
            "never",
        ]);
        let exported = repo.gpg(&["--export"]);
        std::fs::write(&repo.keyring, exported).unwrap();
        repo
    }

    fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let out = run_ok(
            Command::new("gpg")
                .args([
                    "--batch",
                    "--quiet",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    "",
                ])
                .args(args)
                .env("GNUPGHOME", &self.gnupghome),
        );
        out.stdout
    }

    /// Another key, not trusted by `keyring`: for "wrong key" tests.
    pub fn foreign_keyring(dir: &Path) -> PathBuf {
        TestRepo::new(&dir.join("foreign")).keyring
    }

    /// Builds `deb` with dpkg-deb into the pool of `suite`.
    pub fn add(&self, suite: &str, deb: &Deb) -> PathBuf {
        let arch = if deb.arch.is_empty() {
            "amd64"
        } else {
            deb.arch
        };
        let work = tempfile::tempdir().unwrap();
        let pkg = work.path().join("pkg");
        std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {arch}\nMaintainer: kiln tests <tests@kiln.invalid>\nPriority: {}\nDescription: test package {}\n",
            deb.name,
            deb.version,
            if deb.priority.is_empty() {
                "optional"
            } else {
                deb.priority
            },
            deb.name
        );
        for (field, value) in [
            ("Depends", deb.depends),
            ("Pre-Depends", deb.pre_depends),
            ("Provides", deb.provides),
            ("Conflicts", deb.conflicts),
            ("Breaks", deb.breaks),
        ] {
            if !value.is_empty() {
                control.push_str(&format!("{field}: {value}\n"));
            }
        }
        if deb.essential {
            control.push_str("Essential: yes\n");
        }
        control.push_str(deb.fields);
        std::fs::write(pkg.join("DEBIAN/control"), control).unwrap();
        for (name, content) in &deb.control {
            let path = pkg.join("DEBIAN").join(name);
            std::fs::write(&path, content).unwrap();
            let script = ["preinst", "postinst", "prerm", "postrm", "config"].contains(name);
            set_mode(&path, if script { 0o755 } else { 0o644 });
        }
        for (path, content) in &deb.files {
            let dest = pkg.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::write(dest, content).unwrap();
        }
        let pool = self.root.join("pool").join(suite);
        std::fs::create_dir_all(&pool).unwrap();
        let file = pool.join(format!(
            "{}_{}_{arch}.deb",
            deb.name,
            deb.version.replace(':', "%3a")
        ));
        run_ok(
            Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Zgzip", "--build"])
                .arg(&pkg)
                .arg(&file),
        );
        file
    }

    /// Writes Packages(.xz), Release and the clearsigned InRelease of
    /// `suite`. `extra_release_fields` go into the Release before signing
    /// (e.g. "Valid-Until: …\n").
    pub fn publish(&self, suite: &str, extra_release_fields: &str) {
        let dists = self.root.join("dists").join(suite);
        let binary = dists.join("main/binary-amd64");
        std::fs::create_dir_all(&binary).unwrap();
        let packages = run_ok(
            Command::new("apt-ftparchive")
                .arg("packages")
                .arg(format!("pool/{suite}"))
                .current_dir(&self.root),
        );
        std::fs::write(binary.join("Packages"), &packages.stdout).unwrap();
        run_ok(
            Command::new("xz")
                .args(["-k", "-f"])
                .arg(binary.join("Packages")),
        );
        let release = run_ok(
            Command::new("apt-ftparchive")
                .args([
                    "-o",
                    &format!("APT::FTPArchive::Release::Suite={suite}"),
                    "-o",
                    &format!("APT::FTPArchive::Release::Codename={suite}"),
                    "-o",
                    "APT::FTPArchive::Release::Architectures=amd64",
                    "-o",
                    "APT::FTPArchive::Release::Components=main",
                    "release",
                    ".",
                ])
                .current_dir(&dists),
        );
        let text = String::from_utf8(release.stdout).unwrap();
        // extra fields go before the checksum lists, as in Debian's files
        let at = text.find("MD5Sum:").unwrap_or(text.len());
        let text = format!("{}{extra_release_fields}{}", &text[..at], &text[at..]);
        std::fs::write(dists.join("Release"), &text).unwrap();
        let _ = std::fs::remove_file(dists.join("InRelease"));
        self.gpg(&[
            "--clearsign",
            "--output",
            dists.join("InRelease").to_str().unwrap(),
            dists.join("Release").to_str().unwrap(),
        ]);
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    /// The InRelease of `suite`.
    pub fn inrelease(&self, suite: &str) -> PathBuf {
        self.root.join("dists").join(suite).join("InRelease")
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
