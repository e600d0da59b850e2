//! Tokens, and what nft does to them before parsing: `include`,
//! `define`/`redefine`/`undefine` and `$var`.

use crate::image::Image;
use std::collections::BTreeMap;

/// nft's default include path on Debian.
const INCLUDE_DIR: &str = "/etc";
const MAX_INCLUDE_DEPTH: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Tok {
    Word(String),
    Str(String),
    LBrace,
    RBrace,
    Semi,
    Comma,
    Newline,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) file: usize,
    pub(super) line: u32,
}

pub(super) struct Reader<'i, 'a> {
    pub(super) image: Option<&'i Image<'a>>,
    pub(super) files: Vec<String>,
    pub(super) vars: BTreeMap<String, Vec<Token>>,
    pub(super) problems: Vec<(String, u32, String)>,
}

impl Reader<'_, '_> {
    pub(super) fn tokens_of(&mut self, path: &str, depth: usize) -> Vec<Token> {
        let Some(image) = self.image else {
            return Vec::new();
        };
        let text = image.read_text(path).unwrap_or_default();
        self.files.push(path.to_owned());
        let raw = tokenize(&text, self.files.len() - 1);
        self.expand(raw, depth)
    }

    fn problem(&mut self, token: &Token, message: impl Into<String>) {
        self.problems
            .push((self.files[token.file].clone(), token.line, message.into()));
    }

    /// Applies `include`, `define` and `$var` in statement order.
    pub(super) fn expand(&mut self, raw: Vec<Token>, depth: usize) -> Vec<Token> {
        let mut out: Vec<Token> = Vec::new();
        let mut i = 0;
        let at_start = |out: &Vec<Token>| {
            out.last().is_none_or(|t| {
                matches!(t.tok, Tok::Newline | Tok::Semi | Tok::LBrace | Tok::RBrace)
            })
        };
        while i < raw.len() {
            let token = raw[i].clone();
            match &token.tok {
                Tok::Word(w) if (w == "define" || w == "redefine") && at_start(&out) => {
                    let name = match raw.get(i + 1).map(|t| &t.tok) {
                        Some(Tok::Word(n)) => n.clone(),
                        _ => {
                            self.problem(&token, "define without a name");
                            i += 1;
                            continue;
                        }
                    };
                    let mut j = i + 2;
                    if matches!(raw.get(j).map(|t| &t.tok), Some(Tok::Word(e)) if e == "=") {
                        j += 1;
                    }
                    let mut value = Vec::new();
                    let mut depth_braces = 0usize;
                    while j < raw.len() {
                        match &raw[j].tok {
                            Tok::LBrace => depth_braces += 1,
                            Tok::RBrace if depth_braces == 0 => break,
                            Tok::RBrace => depth_braces -= 1,
                            Tok::Newline | Tok::Semi if depth_braces == 0 => break,
                            _ => {}
                        }
                        value.push(raw[j].clone());
                        j += 1;
                    }
                    let value = self.substitute(value);
                    self.vars.insert(name, value);
                    i = j;
                }
                Tok::Word(w) if w == "undefine" && at_start(&out) => {
                    if let Some(Tok::Word(n)) = raw.get(i + 1).map(|t| &t.tok) {
                        self.vars.remove(n);
                    }
                    i += 2;
                }
                Tok::Word(w) if w == "include" && at_start(&out) => {
                    let pattern = match raw.get(i + 1).map(|t| &t.tok) {
                        Some(Tok::Str(s)) | Some(Tok::Word(s)) => s.clone(),
                        _ => {
                            self.problem(&token, "include without a file name");
                            i += 1;
                            continue;
                        }
                    };
                    i += 2;
                    if depth + 1 > MAX_INCLUDE_DEPTH {
                        self.problem(&token, "includes nested too deep");
                        continue;
                    }
                    let absolute = if pattern.starts_with('/') {
                        pattern.clone()
                    } else {
                        format!("{INCLUDE_DIR}/{pattern}")
                    };
                    let files = match self.image {
                        Some(image) => image.glob(&absolute),
                        None => Vec::new(),
                    };
                    let files: Vec<String> = files
                        .into_iter()
                        .filter(|f| self.image.is_some_and(|img| img.is_file(f)))
                        .collect();
                    if files.is_empty() && !pattern.contains(['*', '?', '[']) {
                        self.problem(
                            &token,
                            format!("include \"{pattern}\": no such file in the image; nft would refuse the ruleset"),
                        );
                    }
                    for file in files {
                        let included = self.tokens_of(&file, depth + 1);
                        out.push(Token {
                            tok: Tok::Newline,
                            ..token.clone()
                        });
                        out.extend(included);
                        out.push(Token {
                            tok: Tok::Newline,
                            ..token.clone()
                        });
                    }
                }
                Tok::Word(w) if w.starts_with('$') => {
                    let expanded = self.substitute(vec![token.clone()]);
                    out.extend(expanded);
                    i += 1;
                }
                _ => {
                    out.push(token);
                    i += 1;
                }
            }
        }
        out
    }

    fn substitute(&mut self, tokens: Vec<Token>) -> Vec<Token> {
        let mut out = Vec::new();
        for token in tokens {
            match &token.tok {
                Tok::Word(w) if w.starts_with('$') => match self.vars.get(&w[1..]) {
                    Some(value) => out.extend(value.iter().cloned()),
                    None => {
                        self.problem(&token, format!("undefined variable {w}"));
                        out.push(token);
                    }
                },
                _ => out.push(token),
            }
        }
        out
    }
}

pub(super) fn tokenize(text: &str, file: usize) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 1u32;
    let mut chars = text.chars().peekable();
    let push = |out: &mut Vec<Token>, tok, line| out.push(Token { tok, file, line });
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                push(&mut out, Tok::Newline, line);
                line += 1;
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                line += 1;
            }
            ' ' | '\t' | '\r' => {}
            '#' => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            '{' => push(&mut out, Tok::LBrace, line),
            '}' => push(&mut out, Tok::RBrace, line),
            ';' => push(&mut out, Tok::Semi, line),
            ',' => push(&mut out, Tok::Comma, line),
            '"' => {
                let mut s = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    if c == '\n' {
                        line += 1;
                    }
                    s.push(c);
                }
                push(&mut out, Tok::Str(s), line);
            }
            _ => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "{};,\"#".contains(n) {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                push(&mut out, Tok::Word(s), line);
            }
        }
    }
    out
}
