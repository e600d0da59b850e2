//! The dpkg database as dpkg leaves it after unpacking: `status` with one
//! paragraph per package, and `info/` with each package's file list,
//! md5sums, conffiles and maintainer scripts. `dpkg --configure` in the
//! image then takes the packages from "unpacked" to "installed" and
//! rewrites `status` itself.

use anyhow::{Context, Result, anyhow};
use kiln_debian::deb::Unpacked;
use kiln_debian::deb822::{self, Paragraph};
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const ADMIN_DIR: &str = "/var/lib/dpkg";

/// The fields of a status paragraph in the order dpkg writes them
/// (lib/dpkg/parse.c); any other field follows, in the package's order.
const FIELD_ORDER: &[&str] = &[
    "Package",
    "Essential",
    "Protected",
    "Status",
    "Priority",
    "Section",
    "Installed-Size",
    "Origin",
    "Maintainer",
    "Bugs",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Config-Version",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
    "Conffiles",
    "Description",
    "Triggers-Pending",
    "Triggers-Awaited",
];

/// Control members dpkg keeps only while unpacking.
const NOT_KEPT: &[&str] = &["control"];

/// One unpacked package, as the database needs it.
pub struct Package {
    pub name: String,
    pub arch: String,
    /// `name` or, for `Multi-Arch: same`, `name:arch`: how info files are named.
    pub info_name: String,
    pub control_text: String,
    pub unpacked: Unpacked,
}

impl Package {
    pub fn new(unpacked: Unpacked) -> Result<Package> {
        let control_text = unpacked.control.control()?.to_owned();
        let paragraph = deb822::paragraphs(&control_text)
            .next()
            .ok_or_else(|| anyhow!("the control file is empty"))?
            .map_err(|e| anyhow!("the control file: {e}"))?;
        let name = paragraph
            .get("Package")
            .ok_or_else(|| anyhow!("the control file has no Package field"))?
            .to_owned();
        let arch = paragraph.get("Architecture").unwrap_or("all").to_owned();
        let same = paragraph
            .get("Multi-Arch")
            .is_some_and(|m| m.eq_ignore_ascii_case("same"));
        let info_name = if same {
            format!("{name}:{arch}")
        } else {
            name.clone()
        };
        Ok(Package {
            name,
            arch,
            info_name,
            control_text,
            unpacked,
        })
    }

    /// The control file's paragraph (checked to parse in [`Package::new`]).
    pub fn control(&self) -> Paragraph<'_> {
        deb822::paragraphs(&self.control_text)
            .next()
            .and_then(|r| r.ok())
            .unwrap_or_default()
    }

    pub fn has_member(&self, member: &str) -> bool {
        self.unpacked.control.files.contains_key(member)
    }

    /// Whether anything must run in the image to configure this package.
    pub fn needs_configure(&self) -> bool {
        ["preinst", "postinst", "config", "triggers"]
            .iter()
            .any(|m| self.has_member(m))
    }
}

/// Writes `info/*` for every package and `status` with each in `state`
/// (`unpacked` before configuring, `installed` when nothing needs to run).
pub fn write(
    tree: &mut Tree,
    store: &Store,
    packages: &[Package],
    arch: &str,
    state: &str,
) -> Result<()> {
    let admin = ImagePath::new(ADMIN_DIR).expect("a valid path");
    let dir_meta = Meta::root(0o755);
    // What dpkg makes on first use; the dpkg package ships the rest.
    for sub in ["", "info", "updates", "triggers"] {
        let dir = if sub.is_empty() {
            admin.clone()
        } else {
            admin.join(sub)?
        };
        tree.create_dir_all(&dir, &dir_meta)?;
    }
    // The layout of info/: 1 is "NAME:ARCH.*" for Multi-Arch: same packages.
    put(tree, store, &admin.join("info/format")?, b"1\n", 0o644)?;
    let status_path = admin.join("status")?;
    // Packages a [base] tarball already has stay; ours replace same names.
    let mut paragraphs = existing_status(tree, store, &status_path)?;
    for package in packages {
        write_info(tree, store, &admin.join("info")?, package)
            .with_context(|| format!("dpkg database of {}", package.name))?;
        paragraphs.insert(
            (package.name.clone(), package.arch.clone()),
            status_paragraph(tree, store, package, state)?,
        );
    }
    // Sorted by name, as dpkg writes it; every paragraph, the last one
    // too, ends with an empty line.
    let status: String = paragraphs.values().map(|p| format!("{p}\n")).collect();
    put(tree, store, &status_path, status.as_bytes(), 0o644)?;
    // The native architecture first, as dpkg --add-architecture would list it.
    put(
        tree,
        store,
        &admin.join("arch")?,
        format!("{arch}\n").as_bytes(),
        0o644,
    )?;
    Ok(())
}

/// The paragraphs of a status file already in the tree, by package and
/// architecture.
fn existing_status(
    tree: &Tree,
    store: &Store,
    path: &ImagePath,
) -> Result<BTreeMap<(String, String), String>> {
    let mut out = BTreeMap::new();
    let Some(Entry {
        kind: Kind::File { digest, .. },
        ..
    }) = tree.get(path)
    else {
        return Ok(out);
    };
    let text = String::from_utf8(store.read_to_vec(digest)?)
        .map_err(|_| anyhow!("{path} is not UTF-8"))?;
    for paragraph in deb822::paragraphs(&text) {
        let paragraph = paragraph.map_err(|e| anyhow!("{path}: {e}"))?;
        let (Some(name), arch) = (paragraph.get("Package"), paragraph.get("Architecture")) else {
            continue;
        };
        out.insert(
            (name.to_owned(), arch.unwrap_or("all").to_owned()),
            paragraph.to_string(),
        );
    }
    Ok(out)
}

fn write_info(tree: &mut Tree, store: &Store, info: &ImagePath, package: &Package) -> Result<()> {
    let mut list = String::new();
    for path in &package.unpacked.paths {
        // dpkg lists the root as "/." and directories without a slash.
        let shown = if path.is_root() { "/." } else { path.as_str() };
        list.push_str(shown);
        list.push('\n');
    }
    let name = &package.info_name;
    put(
        tree,
        store,
        &info.join(&format!("{name}.list"))?,
        list.as_bytes(),
        0o644,
    )?;
    let control = &package.unpacked.control;
    for (member, bytes) in &control.files {
        if NOT_KEPT.contains(&member.as_str()) {
            continue;
        }
        let mode = control.modes.get(member).copied().unwrap_or(0o644);
        put(
            tree,
            store,
            &info.join(&format!("{name}.{member}"))?,
            bytes,
            mode,
        )?;
    }
    if !control.files.contains_key("md5sums") {
        let md5sums = generated_md5sums(tree, store, package)?;
        if !md5sums.is_empty() {
            put(
                tree,
                store,
                &info.join(&format!("{name}.md5sums"))?,
                md5sums.as_bytes(),
                0o644,
            )?;
        }
    }
    Ok(())
}

/// What dpkg writes for a package that ships no md5sums: every regular
/// file except conffiles, in archive order.
fn generated_md5sums(tree: &Tree, store: &Store, package: &Package) -> Result<String> {
    let conffiles = package
        .unpacked
        .control
        .files
        .get("conffiles")
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default();
    let conffiles: Vec<&str> = conffiles
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut out = String::new();
    for path in &package.unpacked.paths {
        if conffiles.contains(&path.as_str()) {
            continue;
        }
        let Some(Entry {
            kind: Kind::File { digest, .. },
            ..
        }) = tree.resolve(path, false).ok().and_then(|p| tree.get(&p))
        else {
            continue;
        };
        let sum = hex::encode(md5(&store.read_to_vec(digest)?));
        writeln!(out, "{sum}  {}", path.as_str().trim_start_matches('/'))
            .expect("writing to a String");
    }
    Ok(out)
}

/// The package's control paragraph with Status and Conffiles, fields in
/// dpkg's order.
fn status_paragraph(tree: &Tree, store: &Store, package: &Package, state: &str) -> Result<String> {
    let control = package.control();
    let mut fields: BTreeMap<String, String> = control
        .fields()
        .iter()
        .map(|f| (f.name().to_owned(), f.value().to_owned()))
        .collect();
    fields.insert("Status".into(), format!("install ok {state}"));
    if let Some(conffiles) = package.unpacked.control.files.get("conffiles") {
        let mut value = String::new();
        for line in String::from_utf8_lossy(conffiles).lines() {
            let path = line.split_whitespace().next().unwrap_or("");
            if path.is_empty() {
                continue;
            }
            let hash = conffile_md5(tree, store, path)?;
            write!(value, "\n {path} {hash}").expect("writing to a String");
        }
        if !value.is_empty() {
            fields.insert("Conffiles".into(), value);
        }
    }
    let mut out = String::new();
    let mut emit = |name: &str, value: &str| {
        let sep = if value.starts_with('\n') { "" } else { " " };
        writeln!(out, "{name}:{sep}{value}").expect("writing to a String");
    };
    for name in FIELD_ORDER {
        if let Some(value) = fields.get(*name) {
            emit(name, value);
        }
    }
    for field in control.fields() {
        if !FIELD_ORDER.contains(&field.name()) {
            emit(field.name(), field.value());
        }
    }
    Ok(out)
}

/// The md5 of a conffile as shipped, which dpkg records (or "newconffile"
/// when the package does not ship it).
fn conffile_md5(tree: &Tree, store: &Store, path: &str) -> Result<String> {
    let Ok(path) = ImagePath::new(path) else {
        return Ok("newconffile".into());
    };
    let resolved = tree.resolve(&path, true).ok();
    match resolved.as_ref().and_then(|p| tree.get(p)) {
        Some(Entry {
            kind: Kind::File { digest, .. },
            ..
        }) => {
            let bytes = store.read_to_vec(digest)?;
            Ok(hex::encode(md5(&bytes)))
        }
        _ => Ok("newconffile".into()),
    }
}

/// Adds a root-owned file with `bytes` to the tree.
pub(super) fn put(
    tree: &mut Tree,
    store: &Store,
    path: &ImagePath,
    bytes: &[u8],
    mode: u32,
) -> Result<()> {
    tree.insert(path.clone(), Entry::file(store, bytes, Meta::root(mode))?)?;
    Ok(())
}

/// MD5, which dpkg uses for conffiles (RFC 1321). Not for security.
pub fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(data).into()
}
