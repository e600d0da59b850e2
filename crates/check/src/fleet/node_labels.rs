//! What Kubernetes shows of the node's image: a JSON merge patch of the
//! node's own Node object (labels for `kubectl get nodes -L`, annotations
//! for the exact values). kiln only writes the patch; the
//! kiln-node-labels unit applies it with the kubelet's own credential
//! (`k3s kubectl --kubeconfig kubelet.kubeconfig patch node`), which the
//! NodeRestriction admission plugin lets change its own Node's labels
//! outside the kubernetes.io and k8s.io prefixes. docs/fleet.md says why
//! not `--node-label` (K3s applies it only at registration).

use serde_json::{Map, Value, json};

/// The prefix of every label and annotation kiln sets.
pub const PREFIX: &str = "kiln.dev";

/// What the last check established.
pub struct NodeState<'a> {
    pub image: &'a str,
    pub version: &'a str,
    pub manifest_sha256: &'a str,
    pub drift_events: usize,
}

/// The merge patch: the image when the manifest verified; when it did
/// not, kiln's labels are removed (nothing unverified is shown) and the
/// `verified` annotation says why they are gone.
pub fn patch(state: Option<&NodeState<'_>>) -> Value {
    let key = |name: &str| format!("{PREFIX}/{name}");
    let mut labels = Map::new();
    let mut annotations = Map::new();
    match state {
        Some(s) => {
            labels.insert(key("image"), label_value(s.image).into());
            labels.insert(key("version"), label_value(s.version).into());
            // A label value has at most 63 characters: the digest's first
            // 32 hex digits (128 bits) there, all of it in the annotation.
            let short = s.manifest_sha256.get(..32).unwrap_or(s.manifest_sha256);
            labels.insert(key("manifest"), label_value(short).into());
            labels.insert(
                key("drift"),
                if s.drift_events == 0 { "false" } else { "true" }.into(),
            );
            annotations.insert(key("image"), s.image.into());
            annotations.insert(key("version"), s.version.into());
            annotations.insert(key("manifest-sha256"), s.manifest_sha256.into());
            annotations.insert(key("drift-events"), s.drift_events.to_string().into());
            annotations.insert(key("manifest-verified"), "true".into());
        }
        None => {
            for name in ["image", "version", "manifest", "drift"] {
                labels.insert(key(name), Value::Null);
            }
            for name in ["image", "version", "manifest-sha256", "drift-events"] {
                annotations.insert(key(name), Value::Null);
            }
            annotations.insert(key("manifest-verified"), "false".into());
        }
    }
    json!({ "metadata": { "labels": labels, "annotations": annotations } })
}

/// `value` as a valid label value: at most 63 characters of
/// `[A-Za-z0-9._-]`, beginning and ending with a letter or digit; other
/// characters (a Debian version's `~`, `+`, `:`) become `_`.
pub fn label_value(value: &str) -> String {
    let mapped: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_what_kubernetes_accepts() {
        assert_eq!(label_value("1.4.0~rc1+b2"), "1.4.0_rc1_b2");
        assert_eq!(label_value("+1:2-"), "1_2");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
        assert_eq!(label_value("é"), "");
    }

    #[test]
    fn an_unverified_manifest_removes_the_labels() {
        let p = patch(None);
        assert_eq!(p["metadata"]["labels"]["kiln.dev/version"], Value::Null);
        assert_eq!(
            p["metadata"]["annotations"]["kiln.dev/manifest-verified"],
            "false"
        );
        let sha = "ab".repeat(32);
        let state = NodeState {
            image: "k3s-agent",
            version: "1.0.0+b1",
            manifest_sha256: &sha,
            drift_events: 2,
        };
        let p = patch(Some(&state));
        assert_eq!(p["metadata"]["labels"]["kiln.dev/version"], "1.0.0_b1");
        assert_eq!(
            p["metadata"]["labels"]["kiln.dev/manifest"],
            "ab".repeat(16)
        );
        assert_eq!(p["metadata"]["labels"]["kiln.dev/drift"], "true");
        assert_eq!(p["metadata"]["annotations"]["kiln.dev/version"], "1.0.0+b1");
    }
}
