//! systemd unit files: where systemctl finds them, valid names, and the
//! [Install] section that enabling reads.

/// Where kiln's units and enablement links go.
pub const ETC: &str = "/etc/systemd/system";
/// Where systemctl finds unit files, in its order (Debian's /lib first:
/// links then read /lib/systemd/system/NAME, as systemctl writes them).
/// /run comes second, as for systemd itself: empty in an image, it counts
/// on a live node.
pub const SEARCH: &[&str] = &[
    ETC,
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];
pub const SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".timer",
    ".target",
    ".path",
    ".mount",
    ".automount",
    ".swap",
];

pub fn is_unit_name(name: &str) -> bool {
    SUFFIXES
        .iter()
        .any(|s| name.ends_with(s) && name.len() > s.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c))
}

/// (WantedBy, RequiredBy, Alias) of a unit file's [Install] section.
pub fn install_section(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut wanted, mut required, mut alias) = (Vec::new(), Vec::new(), Vec::new());
    let mut in_install = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install || line.starts_with(['#', ';']) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let target = match key.trim() {
            "WantedBy" => &mut wanted,
            "RequiredBy" => &mut required,
            "Alias" => &mut alias,
            _ => continue,
        };
        let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
        if words.is_empty() {
            target.clear();
        }
        target.extend(words);
    }
    (wanted, required, alias)
}
