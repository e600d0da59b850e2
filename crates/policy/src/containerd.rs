//! K3s's embedded containerd (2.x, configuration version 3, K3s ≥ 1.31):
//! the CRI streaming server that serves exec, attach and port-forward, and
//! its idle timeout, which since kubelet 1.34 is the only one that applies
//! (`stream_idle_timeout`, containerd's default 4h).
//!
//! K3s renders config.toml from its base template, or from
//! `config-v3.toml.tmpl` in its containerd directory when that exists. Its
//! base declares `[plugins.'io.containerd.grpc.v1.cri']` (the streaming
//! server on 127.0.0.1:10010) and ends its top-level keys with
//! `imports = [".../config-v3.toml.d/*.toml"]`. A template that extends
//! the base (`{{ template "base" . }}` then more TOML) cannot add a key to
//! that table: TOML refuses a table declared twice, and containerd then
//! refuses the whole file, so K3s does not start. The imports are the way
//! in: containerd merges each imported file over the main one, a plugin's
//! table replacing the main file's table of that plugin whole. kiln's
//! import therefore restates K3s's two settings of the table and adds the
//! timeout; the rest of K3s's configuration is untouched.
//!
//! The import directory is under /var (K3s's state, made once at first
//! boot), so kiln keeps the file in /etc and the unit installs it there at
//! every start.

use super::image::Image;

/// K3s's containerd directory.
pub const K3S_DIR: &str = "/var/lib/rancher/k3s/agent/etc/containerd";
/// The user template K3s reads for containerd 2.x.
pub const TEMPLATE: &str = "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl";
/// The directory K3s's base configuration imports.
pub const IMPORTS: &str = "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.d";
/// kiln's import, as the image holds it.
pub const DROPIN: &str = "/etc/rancher/k3s/containerd/50-kiln-cri.toml";
/// Where the unit installs it.
pub const DROPIN_DEST: &str =
    "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.d/50-kiln-cri.toml";

/// The CRI plugin whose table holds the streaming server.
pub const CRI: &str = "io.containerd.grpc.v1.cri";
/// kiln's idle timeout of exec/attach/port-forward streams (K3s CIS
/// hardening guide: 5m).
pub const STREAM_IDLE_TIMEOUT: &str = "5m";
/// containerd's default.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: &str = "4h";
/// K3s's streaming server address and port (its base template).
pub const K3S_STREAM_ADDRESS: &str = "127.0.0.1";
pub const K3S_STREAM_PORT: &str = "10010";

/// kiln's import: K3s's streaming settings, and the timeout.
pub fn render_dropin() -> String {
    format!(
        "# Written by kiln: the idle timeout of exec/attach/port-forward streams, which\n\
         # since kubelet 1.34 only the runtime enforces. k3s-agent.service installs this\n\
         # file into {IMPORTS} at every start;\n\
         # containerd replaces K3s's table of the plugin with this one, so it restates\n\
         # K3s's streaming server settings.\n\
         version = 3\n\n\
         [plugins.'{CRI}']\n\
         \x20 stream_server_address = \"{K3S_STREAM_ADDRESS}\"\n\
         \x20 stream_server_port = \"{K3S_STREAM_PORT}\"\n\
         \x20 stream_idle_timeout = \"{STREAM_IDLE_TIMEOUT}\"\n"
    )
}

/// One setting and the file that gives it (`None`: K3s's base or
/// containerd's default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub path: Option<String>,
}

/// containerd's effective streaming server settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streaming {
    pub idle_timeout: Setting,
    pub address: Setting,
}

/// The streaming settings containerd ends up with on the image: K3s's base
/// (or a template replacing it), then the imports in name order, those in
/// the image and those the k3s unit installs.
pub fn streaming(image: &Image) -> Result<Streaming, (String, String)> {
    let mut s = Streaming {
        idle_timeout: Setting {
            value: DEFAULT_STREAM_IDLE_TIMEOUT.into(),
            path: None,
        },
        address: Setting {
            value: K3S_STREAM_ADDRESS.into(),
            path: None,
        },
    };
    if let Some(text) = image.read_text(TEMPLATE) {
        // a template: what it says outside Go directives about the table
        let plain: String = text
            .lines()
            .filter(|l| !l.contains("{{"))
            .collect::<Vec<_>>()
            .join("\n");
        if let Ok(table) = plain.parse::<toml::Table>() {
            apply(
                &table,
                TEMPLATE,
                &mut s,
                !text.contains("template \"base\""),
            );
        } else {
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=')
                    && k.trim() == "stream_idle_timeout"
                {
                    s.idle_timeout = Setting {
                        value: v.trim().trim_matches(['"', '\'']).to_owned(),
                        path: Some(TEMPLATE.into()),
                    };
                }
            }
        }
    }
    // (name, path read from)
    let mut files: Vec<(String, String)> = image
        .list_dir(IMPORTS)
        .into_iter()
        .filter(|(n, p)| n.ends_with(".toml") && image.is_file(p.as_str()))
        .map(|(n, p)| (n, p.as_str().to_owned()))
        .collect();
    for (src, dest) in super::k3s::unit_installs(image) {
        if let Some(name) = dest.strip_prefix(&format!("{IMPORTS}/"))
            && name.ends_with(".toml")
            && !name.contains('/')
            && image.is_file(&src)
        {
            files.retain(|(n, _)| n != name);
            files.push((name.to_owned(), src));
        }
    }
    files.sort();
    for (_, path) in files {
        let text = image.read_text(&path).unwrap_or_default();
        let table = text
            .parse::<toml::Table>()
            .map_err(|e| (path.clone(), e.message().to_owned()))?;
        apply(&table, &path, &mut s, true);
    }
    Ok(s)
}

/// A file's CRI table replaces the one before it.
fn apply(table: &toml::Table, path: &str, s: &mut Streaming, replaces: bool) {
    let Some(cri) = table
        .get("plugins")
        .and_then(|p| p.get(CRI))
        .and_then(|c| c.as_table())
    else {
        return;
    };
    let text = |key: &str| cri.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    match text("stream_idle_timeout") {
        Some(v) => {
            s.idle_timeout = Setting {
                value: v,
                path: Some(path.into()),
            }
        }
        None if replaces => {
            s.idle_timeout = Setting {
                value: DEFAULT_STREAM_IDLE_TIMEOUT.into(),
                path: Some(path.into()),
            }
        }
        None => {}
    }
    match text("stream_server_address") {
        Some(v) => {
            s.address = Setting {
                value: v,
                path: Some(path.into()),
            }
        }
        // containerd's own default is loopback too
        None if replaces => {
            s.address = Setting {
                value: K3S_STREAM_ADDRESS.into(),
                path: Some(path.into()),
            }
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dropin_is_toml_with_the_timeout() {
        let t: toml::Table = render_dropin().parse().unwrap();
        assert_eq!(t["version"].as_integer(), Some(3));
        let cri = &t["plugins"][CRI];
        assert_eq!(cri["stream_idle_timeout"].as_str(), Some("5m"));
        assert_eq!(cri["stream_server_address"].as_str(), Some("127.0.0.1"));
        assert_eq!(cri["stream_server_port"].as_str(), Some("10010"));
    }
}
