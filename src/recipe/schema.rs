//! The TOML schema of one recipe file, as written: every table refuses
//! unknown keys, and values that need checking keep their span so errors
//! can point at them. Validation into a [`super::Plan`] happens in mod.rs.

use super::value::RawValue;
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecipe {
    pub extends: Option<Spanned<String>>,
    pub image: Option<Spanned<RawImage>>,
    pub base: Option<Spanned<RawBase>>,
    #[serde(default)]
    pub overlay: Vec<Spanned<RawOverlay>>,
    #[serde(default)]
    pub file: Vec<Spanned<RawFile>>,
    #[serde(default)]
    pub symlink: Vec<Spanned<RawSymlink>>,
    #[serde(default)]
    pub remove: Vec<Spanned<RawRemove>>,
    pub check: Option<RawCheck>,
    pub debian: Option<Spanned<super::debian::RawDebian>>,
    #[serde(default)]
    pub artifact: Vec<Spanned<super::debian::RawArtifact>>,
    pub audit: Option<Spanned<super::audit::RawAudit>>,
    #[serde(default)]
    pub user: Vec<Spanned<super::hardening::RawUser>>,
    #[serde(default)]
    pub group: Vec<Spanned<super::hardening::RawGroup>>,
    pub ssh: Option<Spanned<super::hardening::RawSsh>>,
    pub firewall: Option<Spanned<super::hardening::RawFirewall>>,
    pub k3s: Option<Spanned<super::hardening::RawK3s>>,
    pub sysctl: Option<Spanned<super::hardening::RawSysctl>>,
    pub minimize: Option<Spanned<super::hardening::RawMinimize>>,
    pub kernel: Option<Spanned<super::hardening::RawKernel>>,
    pub boot: Option<Spanned<super::boot::RawBoot>>,
    pub network: Option<Spanned<super::network::RawNetwork>>,
    pub fleet: Option<Spanned<super::fleet::RawFleet>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    #[serde(default)]
    pub mutable_paths: Vec<Spanned<String>>,
    /// systemd OnCalendar= value of a kiln-check timer in the image.
    pub timer: Option<Spanned<String>>,
    /// Public keys baked into the image for the timer to trust.
    #[serde(default)]
    pub keys: Vec<Spanned<String>>,
    /// Where the kiln binary is in the image.
    pub binary: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    pub name: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
    pub arch: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub supplier: Option<Spanned<String>>,
    pub source_date_epoch: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBase {
    pub path: Spanned<String>,
    pub sha256: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverlay {
    pub source: Spanned<String>,
    pub dest: Option<Spanned<String>>,
    pub owner: Option<RawValue>,
    pub group: Option<RawValue>,
    pub file_mode: Option<RawValue>,
    pub exec_mode: Option<RawValue>,
    pub dir_mode: Option<RawValue>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawOverlayRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverlayRule {
    pub path: Spanned<String>,
    pub mode: Option<RawValue>,
    pub owner: Option<RawValue>,
    pub group: Option<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub dest: Spanned<String>,
    pub content: Option<Spanned<String>>,
    pub source: Option<Spanned<String>>,
    pub mode: Option<RawValue>,
    pub owner: Option<RawValue>,
    pub group: Option<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSymlink {
    pub path: Spanned<String>,
    pub target: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemove {
    pub paths: Spanned<Vec<Spanned<String>>>,
    #[allow(dead_code)] // documentation for the reader of the recipe
    pub reason: Option<String>,
}
