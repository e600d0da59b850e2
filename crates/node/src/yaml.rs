//! A strict reader of the YAML that provisioning data is written in
//! (cloud-init's user-data and meta-data): one document of mappings,
//! sequences and plain strings. Anchors, aliases and tags are refused, so
//! no input can expand beyond its size ("billion laughs"), and nesting and
//! node counts are bounded.

use yaml_rust2::parser::{Event, Parser};

/// A YAML value, every scalar kept as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

const MAX_DEPTH: usize = 16;
const MAX_NODES: usize = 10_000;

enum Open {
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>, Option<String>),
}

/// Parses one YAML document; errors name the line.
pub fn parse(text: &str) -> Result<Node, String> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut done: Option<Node> = None;
    let mut nodes = 0usize;
    let mut documents = 0usize;
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| format!("not valid YAML: {e}"))?;
        let at = |what: &str| format!("line {}: {what}", mark.line());
        let value = match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => continue,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(at("more than one YAML document; write one"));
                }
                continue;
            }
            Event::Alias(_) => return Err(at("YAML aliases (*name) are not accepted")),
            Event::Scalar(text, _, anchor, tag) => {
                refuse_anchor_and_tag(anchor, tag.is_some()).map_err(|e| at(&e))?;
                Node::Scalar(text)
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag)
                if anchor != 0 || tag.is_some() =>
            {
                refuse_anchor_and_tag(anchor, tag.is_some()).map_err(|e| at(&e))?;
                continue;
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(at(&format!("nested deeper than {MAX_DEPTH} levels")));
                }
                if let Some(Open::Map(_, None)) = stack.last() {
                    return Err(at("a mapping key must be a plain string"));
                }
                stack.push(match event {
                    Event::SequenceStart(..) => Open::Seq(Vec::new()),
                    _ => Open::Map(Vec::new(), None),
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Open::Seq(items)) => Node::Seq(items),
                Some(Open::Map(entries, None)) => Node::Map(entries),
                Some(Open::Map(_, Some(key))) => {
                    return Err(at(&format!("key {key:?} has no value")));
                }
                None => return Err(at("unbalanced YAML")),
            },
        };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(at(&format!("more than {MAX_NODES} values")));
        }
        match stack.last_mut() {
            None => {
                if done.is_some() {
                    return Err(at("more than one YAML document; write one"));
                }
                done = Some(value);
            }
            Some(Open::Seq(items)) => items.push(value),
            Some(Open::Map(entries, pending)) => match pending.take() {
                None => {
                    let Node::Scalar(key) = value else {
                        return Err(at("a mapping key must be a plain string"));
                    };
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(at(&format!("key {key:?} appears twice")));
                    }
                    *pending = Some(key);
                }
                Some(key) => entries.push((key, value)),
            },
        }
    }
    Ok(done.unwrap_or(Node::Map(Vec::new())))
}

fn refuse_anchor_and_tag(anchor: usize, tagged: bool) -> Result<(), String> {
    if anchor != 0 {
        return Err("YAML anchors (&name) are not accepted".into());
    }
    if tagged {
        return Err("YAML tags (!tag) are not accepted; write plain values".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Node {
        Node::Scalar(text.into())
    }

    #[test]
    fn reads_mappings_sequences_and_strings() {
        let doc =
            parse("#cloud-config\nhostname: node-7\nkeys:\n  - a\n  - \"b c\"\nnested: {x: 1}\n")
                .unwrap();
        assert_eq!(
            doc,
            Node::Map(vec![
                ("hostname".into(), s("node-7")),
                ("keys".into(), Node::Seq(vec![s("a"), s("b c")])),
                ("nested".into(), Node::Map(vec![("x".into(), s("1"))])),
            ])
        );
        assert_eq!(parse("").unwrap(), Node::Map(Vec::new()));
    }

    #[test]
    fn refuses_what_could_expand_or_hide() {
        for (text, says) in [
            ("a: &x [1]\nb: *x\n", "anchors"),
            ("a: [1]\nb: *x\n", "not valid YAML"),
            ("a: !!binary aGk=\n", "tags"),
            ("a: 1\na: 2\n", "appears twice"),
            ("? [a]\n: 1\n", "plain string"),
            ("a: 1\n---\nb: 2\n", "more than one"),
            ("a: [1, 2\n", "not valid YAML"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert!(parse(&deep).unwrap_err().contains("nested deeper"));
        let many = format!("[{}]", vec!["1"; MAX_NODES + 1].join(","));
        assert!(parse(&many).unwrap_err().contains("more than"));
    }
}
