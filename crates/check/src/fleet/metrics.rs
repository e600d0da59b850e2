//! Prometheus text exposition format (0.0.4) for node-exporter's textfile
//! collector: kiln writes a `*.prom` file, node-exporter serves it with the
//! node's own metrics, so no agent of kiln's runs on the node.
//!
//! The file is replaced atomically (a temporary file in the same
//! directory, then a rename): the collector reads `*.prom` only, and never
//! sees half a file.

use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// One metric family: its samples share a name, a HELP and a TYPE.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, String)>,
}

/// Gauges to render, in the order they were added.
#[derive(Default)]
pub struct Metrics {
    families: Vec<Family>,
}

impl Metrics {
    /// A sample of `name` (a new family the first time `name` is used).
    pub fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: impl Into<Value>,
    ) {
        let index = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name,
                    help,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.families[index].samples.push((labels, value.into().0));
    }

    /// The text format: `# HELP`, `# TYPE`, then one line per sample.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in &self.families {
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
            let _ = writeln!(out, "# TYPE {} gauge", family.name);
            for (labels, value) in &family.samples {
                out.push_str(family.name);
                if !labels.is_empty() {
                    let pairs: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                        .collect();
                    let _ = write!(out, "{{{}}}", pairs.join(","));
                }
                let _ = writeln!(out, " {value}");
            }
        }
        out
    }
}

/// A sample's value as the text format writes it.
pub struct Value(String);

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value(v.to_string())
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value(v.to_string())
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value(u8::from(v).to_string())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        // Rust's Display never uses an exponent, which the format allows
        // but humans reading the file do not expect.
        Value(if v.is_finite() {
            format!("{v}")
        } else {
            "NaN".to_owned()
        })
    }
}

/// Label values: backslash, double quote and line feed escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: backslash and line feed escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Writes `metrics` to `dir/name` atomically, readable by node-exporter.
pub fn write_textfile(dir: &Path, name: &str, metrics: &Metrics) -> Result<()> {
    kiln_tree::write_atomic(
        &dir.join(name),
        metrics.render().as_bytes(),
        kiln_tree::PUBLIC_FILE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_group_their_samples_and_values_are_escaped() {
        let mut m = Metrics::default();
        m.gauge("a_total", "first\\line\nsecond", &[("k", "x")], 1u64);
        m.gauge("b", "b", &[], 0.25);
        m.gauge("a_total", "ignored", &[("k", "q\"\\\n")], true);
        assert_eq!(
            m.render(),
            "# HELP a_total first\\\\line\\nsecond\n# TYPE a_total gauge\n\
             a_total{k=\"x\"} 1\na_total{k=\"q\\\"\\\\\\n\"} 1\n\
             # HELP b b\n# TYPE b gauge\nb 0.25\n"
        );
    }

    #[test]
    fn large_and_odd_values_stay_plain() {
        let mut m = Metrics::default();
        m.gauge("t", "t", &[], 1.7e9);
        m.gauge("t", "t", &[], f64::NAN);
        assert!(
            m.render().ends_with("t 1700000000\nt NaN\n"),
            "{}",
            m.render()
        );
    }
}
