//! nftables rulesets as `nft -f /etc/nftables.conf` would load them, read
//! well enough to answer the firewall rules' questions: which base chains
//! hook input and forward with which policy, and whether a new packet to
//! a port, from an arbitrary or a given source, is accepted.
//!
//! The reader follows `include` (globs, sorted; relative names from /etc),
//! `define`/`$var`, `table { chain { … } set { … } }` blocks and the
//! `add|insert table|chain|rule|set|element` commands, `flush ruleset`,
//! `flush table|chain` and `delete table`. In rules it understands
//! interface, ct state, layer-4 protocol, destination port, address and
//! nfproto matches, anonymous and named sets, verdict maps on those, and
//! the verdicts; any other expression is kept as "unknown", which the
//! packet walk treats as "may or may not match" — in the direction that
//! makes the audit fail rather than pass.

use super::image::Image;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

pub const MAIN: &str = "/etc/nftables.conf";
/// nft's default include path on Debian.
const INCLUDE_DIR: &str = "/etc";
const MAX_INCLUDE_DEPTH: usize = 16;
const MAX_JUMP_DEPTH: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    LBrace,
    RBrace,
    Semi,
    Comma,
    Newline,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    file: usize,
    line: u32,
}

/// A set of values in a match: literal items, or a named set resolved
/// after parsing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values {
    pub items: Vec<String>,
    /// A named set (`@name`) not found in the table: unknown contents.
    pub unresolved: bool,
    pub named: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    Iif {
        names: Values,
        neg: bool,
    },
    CtState {
        states: Values,
        neg: bool,
    },
    L4Proto {
        protos: Values,
        neg: bool,
    },
    /// `tcp dport`, `udp dport` (proto set) or `th dport` (any).
    DPort {
        proto: Option<String>,
        ports: Values,
        neg: bool,
    },
    SAddr {
        v6: bool,
        addrs: Values,
        neg: bool,
    },
    DAddr {
        v6: bool,
        addrs: Values,
        neg: bool,
    },
    NfProto {
        v6: bool,
        neg: bool,
    },
    Unknown(String),
}

/// What a verdict map keys on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    CtState,
    DPort(Option<String>),
    L4Proto,
    Iif,
    SAddr(bool),
    DAddr(bool),
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// `drop` and `reject`.
    Drop,
    Queue,
    Jump(String),
    Goto(String),
    Return,
    Continue,
    VMap {
        selector: Selector,
        entries: Vec<(Values, Verdict)>,
    },
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub conds: Vec<Cond>,
    pub verdict: Option<Verdict>,
    pub path: String,
    pub line: u32,
}

#[derive(Clone, Debug)]
pub struct Chain {
    pub family: String,
    pub table: String,
    pub name: String,
    /// `type` of a base chain: filter, nat, route.
    pub kind: Option<String>,
    pub hook: Option<String>,
    pub policy: Option<String>,
    pub rules: Vec<Rule>,
    pub path: String,
    pub line: u32,
}

impl Chain {
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.family, self.table, self.name)
    }

    /// The policy a base chain has when none is written: accept.
    pub fn effective_policy(&self) -> &str {
        self.policy.as_deref().unwrap_or("accept")
    }

    fn sees(&self, v6: bool) -> bool {
        match self.family.as_str() {
            "inet" => true,
            "ip" => !v6,
            "ip6" => v6,
            _ => false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Ruleset {
    pub files: Vec<String>,
    pub chains: Vec<Chain>,
    /// (family, table, name) → elements.
    pub sets: BTreeMap<(String, String, String), Vec<String>>,
    /// Every `flush ruleset`: (path, line).
    pub flushes: Vec<(String, u32)>,
    /// What the reader could not make sense of: (path, line, message).
    pub problems: Vec<(String, u32, String)>,
}

impl Ruleset {
    /// Reads /etc/nftables.conf and what it includes; `None` when absent.
    pub fn load(image: &Image) -> Option<Ruleset> {
        if !image.is_file(MAIN) {
            return None;
        }
        let mut reader = Reader {
            image: Some(image),
            files: Vec::new(),
            vars: BTreeMap::new(),
            problems: Vec::new(),
        };
        let tokens = reader.tokens_of(MAIN, 0);
        Some(reader.finish(tokens))
    }

    /// Parses one ruleset text with no includes (tests).
    pub fn parse_text(path: &str, text: &str) -> Ruleset {
        let mut reader = Reader {
            image: None,
            files: vec![path.to_owned()],
            vars: BTreeMap::new(),
            problems: Vec::new(),
        };
        let raw = tokenize(text, 0);
        let tokens = reader.expand(raw, 0);
        reader.finish(tokens)
    }

    pub fn chain(&self, family: &str, table: &str, name: &str) -> Option<&Chain> {
        self.chains
            .iter()
            .find(|c| c.family == family && c.table == table && c.name == name)
    }

    /// Base filter chains on `hook` that see packets of this family.
    pub fn base_chains<'a>(&'a self, hook: &'a str, v6: bool) -> impl Iterator<Item = &'a Chain> {
        self.chains.iter().filter(move |c| {
            c.hook.as_deref() == Some(hook)
                && c.kind.as_deref().is_none_or(|k| k == "filter")
                && c.sees(v6)
        })
    }
}

struct Reader<'i, 'a> {
    image: Option<&'i Image<'a>>,
    files: Vec<String>,
    vars: BTreeMap<String, Vec<Token>>,
    problems: Vec<(String, u32, String)>,
}

impl Reader<'_, '_> {
    fn tokens_of(&mut self, path: &str, depth: usize) -> Vec<Token> {
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
    fn expand(&mut self, raw: Vec<Token>, depth: usize) -> Vec<Token> {
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

    fn finish(mut self, tokens: Vec<Token>) -> Ruleset {
        let mut parser = Parser {
            tokens,
            pos: 0,
            files: &self.files,
            ruleset: Ruleset::default(),
        };
        parser.top_level();
        let mut ruleset = parser.ruleset;
        ruleset.files = self.files.clone();
        ruleset.problems.append(&mut self.problems);
        resolve_sets(&mut ruleset);
        ruleset
    }
}

fn tokenize(text: &str, file: usize) -> Vec<Token> {
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

const FAMILIES: &[&str] = &["ip", "ip6", "inet", "arp", "bridge", "netdev"];

struct Parser<'f> {
    tokens: Vec<Token>,
    pos: usize,
    files: &'f [String],
    ruleset: Ruleset,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn peek_word(&self) -> Option<&str> {
        match self.peek() {
            Some(Tok::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn here(&self) -> (String, u32) {
        let t = self
            .tokens
            .get(self.pos.min(self.tokens.len().saturating_sub(1)));
        match t {
            Some(t) => (self.files[t.file].clone(), t.line),
            None => (MAIN.to_owned(), 0),
        }
    }

    fn problem(&mut self, message: impl Into<String>) {
        let (path, line) = self.here();
        self.ruleset.problems.push((path, line, message.into()));
    }

    fn word(&mut self) -> Option<String> {
        match self.peek() {
            Some(Tok::Word(w)) | Some(Tok::Str(w)) => {
                let w = w.clone();
                self.pos += 1;
                Some(w)
            }
            _ => None,
        }
    }

    /// Skips to the end of the statement (a newline or `;` outside braces),
    /// or just before a `}` closing the enclosing block.
    fn skip_statement(&mut self) {
        let mut depth = 0usize;
        while let Some(tok) = self.peek() {
            match tok {
                Tok::LBrace => depth += 1,
                Tok::RBrace if depth == 0 => return,
                Tok::RBrace => depth -= 1,
                Tok::Newline | Tok::Semi if depth == 0 => {
                    self.pos += 1;
                    return;
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    /// Skips a `{ … }` block at the cursor.
    fn skip_block(&mut self) {
        if self.peek() != Some(&Tok::LBrace) {
            return;
        }
        let mut depth = 0usize;
        while let Some(tok) = self.next().map(|t| t.tok) {
            match tok {
                Tok::LBrace => depth += 1,
                Tok::RBrace => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    fn family_and_name(&mut self) -> Option<(String, String)> {
        let first = self.word()?;
        if FAMILIES.contains(&first.as_str())
            && matches!(self.peek(), Some(Tok::Word(_)) | Some(Tok::Str(_)))
        {
            let name = self.word()?;
            Some((first, name))
        } else {
            Some(("ip".to_owned(), first))
        }
    }

    fn top_level(&mut self) {
        while let Some(tok) = self.peek().cloned() {
            match tok {
                Tok::Newline | Tok::Semi => {
                    self.pos += 1;
                }
                Tok::Word(w) => {
                    self.pos += 1;
                    self.command(&w);
                }
                Tok::RBrace => {
                    self.problem("unbalanced '}'");
                    self.pos += 1;
                }
                _ => {
                    self.problem("unexpected token at the top level");
                    self.skip_statement();
                }
            }
        }
    }

    fn command(&mut self, verb: &str) {
        match verb {
            "table" => self.table_command(),
            "add" | "create" | "insert" => {
                let what = self.word().unwrap_or_default();
                match what.as_str() {
                    "table" => self.table_command(),
                    "chain" => {
                        let Some((family, table)) = self.family_and_name() else {
                            return self.skip_statement();
                        };
                        let Some(name) = self.word() else {
                            return self.skip_statement();
                        };
                        self.chain_header(&family, &table, &name);
                        if self.peek() == Some(&Tok::LBrace) {
                            self.pos += 1;
                            self.chain_body(&family, &table, &name);
                        }
                    }
                    "rule" => {
                        let Some((family, table)) = self.family_and_name() else {
                            return self.skip_statement();
                        };
                        let Some(chain) = self.word() else {
                            return self.skip_statement();
                        };
                        if self.peek_word() == Some("position")
                            || self.peek_word() == Some("handle")
                            || self.peek_word() == Some("index")
                        {
                            self.pos += 2;
                        }
                        let rule = self.rule();
                        let index = self.chain_index(&family, &table, &chain);
                        if verb == "insert" {
                            self.ruleset.chains[index].rules.insert(0, rule);
                        } else {
                            self.ruleset.chains[index].rules.push(rule);
                        }
                    }
                    "set" | "map" => {
                        let Some((family, table)) = self.family_and_name() else {
                            return self.skip_statement();
                        };
                        let Some(name) = self.word() else {
                            return self.skip_statement();
                        };
                        if self.peek() == Some(&Tok::LBrace) {
                            self.pos += 1;
                            let elements = self.set_body();
                            if what == "set" {
                                self.set_elements(&family, &table, &name, elements);
                            }
                        }
                    }
                    "element" => {
                        let Some((family, table)) = self.family_and_name() else {
                            return self.skip_statement();
                        };
                        let Some(name) = self.word() else {
                            return self.skip_statement();
                        };
                        if self.peek() == Some(&Tok::LBrace) {
                            let elements = self.anonymous_set();
                            self.set_elements(&family, &table, &name, elements);
                        }
                    }
                    _ => self.skip_statement(),
                }
            }
            "flush" => {
                let what = self.word().unwrap_or_default();
                match what.as_str() {
                    "ruleset" => {
                        let (path, line) = self.previous_location();
                        self.ruleset.flushes.push((path, line));
                        self.ruleset.chains.clear();
                        self.ruleset.sets.clear();
                    }
                    "table" => {
                        if let Some((family, table)) = self.family_and_name() {
                            for c in &mut self.ruleset.chains {
                                if c.family == family && c.table == table {
                                    c.rules.clear();
                                }
                            }
                        }
                    }
                    "chain" => {
                        if let Some((family, table)) = self.family_and_name()
                            && let Some(name) = self.word()
                        {
                            for c in &mut self.ruleset.chains {
                                if c.family == family && c.table == table && c.name == name {
                                    c.rules.clear();
                                }
                            }
                        }
                    }
                    _ => {}
                }
                self.skip_statement();
            }
            "delete" | "destroy" => {
                if self.peek_word() == Some("table") {
                    self.pos += 1;
                    if let Some((family, table)) = self.family_and_name() {
                        self.ruleset
                            .chains
                            .retain(|c| !(c.family == family && c.table == table));
                    }
                }
                self.skip_statement();
            }
            "list" | "reset" | "monitor" | "describe" | "export" | "import" | "rename" => {
                self.skip_statement()
            }
            other => {
                self.problem(format!("unknown command \"{other}\""));
                self.skip_statement();
            }
        }
    }

    fn previous_location(&self) -> (String, u32) {
        let t = &self.tokens[self.pos.saturating_sub(1)];
        (self.files[t.file].clone(), t.line)
    }

    fn table_command(&mut self) {
        let Some((family, table)) = self.family_and_name() else {
            return self.skip_statement();
        };
        if self.peek() != Some(&Tok::LBrace) {
            return self.skip_statement();
        }
        self.pos += 1;
        self.table_body(&family, &table);
    }

    fn table_body(&mut self, family: &str, table: &str) {
        loop {
            let Some(tok) = self.peek().cloned() else {
                self.problem(format!("table {family} {table}: missing '}}'"));
                return;
            };
            match tok {
                Tok::RBrace => {
                    self.pos += 1;
                    return;
                }
                Tok::Newline | Tok::Semi => self.pos += 1,
                Tok::Word(w) if w == "chain" => {
                    self.pos += 1;
                    let Some(name) = self.word() else {
                        self.skip_statement();
                        continue;
                    };
                    self.chain_header(family, table, &name);
                    if self.peek() == Some(&Tok::LBrace) {
                        self.pos += 1;
                        self.chain_body(family, table, &name);
                    }
                }
                Tok::Word(w) if w == "set" => {
                    self.pos += 1;
                    let Some(name) = self.word() else {
                        self.skip_statement();
                        continue;
                    };
                    if self.peek() == Some(&Tok::LBrace) {
                        self.pos += 1;
                        let elements = self.set_body();
                        self.set_elements(family, table, &name, elements);
                    }
                }
                Tok::Word(_) => {
                    // map, flowtable, counter, quota, ct helper, flags, comment…
                    self.pos += 1;
                    while let Some(t) = self.peek() {
                        match t {
                            Tok::LBrace => {
                                self.skip_block();
                                break;
                            }
                            Tok::Newline | Tok::Semi => break,
                            Tok::RBrace => break,
                            _ => self.pos += 1,
                        }
                    }
                }
                _ => self.skip_statement(),
            }
        }
    }

    fn chain_index(&mut self, family: &str, table: &str, name: &str) -> usize {
        if let Some(i) = self
            .ruleset
            .chains
            .iter()
            .position(|c| c.family == family && c.table == table && c.name == name)
        {
            return i;
        }
        let (path, line) = self.here();
        self.ruleset.chains.push(Chain {
            family: family.to_owned(),
            table: table.to_owned(),
            name: name.to_owned(),
            kind: None,
            hook: None,
            policy: None,
            rules: Vec::new(),
            path,
            line,
        });
        self.ruleset.chains.len() - 1
    }

    fn chain_header(&mut self, family: &str, table: &str, name: &str) {
        self.chain_index(family, table, name);
    }

    fn chain_body(&mut self, family: &str, table: &str, name: &str) {
        let index = self.chain_index(family, table, name);
        loop {
            let Some(tok) = self.peek().cloned() else {
                self.problem(format!("chain {name}: missing '}}'"));
                return;
            };
            match tok {
                Tok::RBrace => {
                    self.pos += 1;
                    return;
                }
                Tok::Newline | Tok::Semi => self.pos += 1,
                Tok::Word(w) if w == "type" => {
                    self.pos += 1;
                    let kind = self.word();
                    let mut hook = None;
                    while let Some(w) = self.peek_word().map(str::to_owned) {
                        self.pos += 1;
                        if w == "hook" {
                            hook = self.word();
                        }
                    }
                    let chain = &mut self.ruleset.chains[index];
                    chain.kind = kind;
                    chain.hook = hook;
                }
                Tok::Word(w) if w == "policy" => {
                    self.pos += 1;
                    let policy = self.word();
                    self.ruleset.chains[index].policy = policy;
                }
                Tok::Word(w) if w == "comment" || w == "devices" || w == "device" => {
                    self.skip_statement()
                }
                _ => {
                    let rule = self.rule();
                    if !rule.conds.is_empty() || rule.verdict.is_some() {
                        self.ruleset.chains[index].rules.push(rule);
                    }
                }
            }
        }
    }

    /// A set's body after `{`: returns its elements.
    fn set_body(&mut self) -> Vec<String> {
        let mut elements = Vec::new();
        loop {
            let Some(tok) = self.peek().cloned() else {
                return elements;
            };
            match tok {
                Tok::RBrace => {
                    self.pos += 1;
                    return elements;
                }
                Tok::Word(w) if w == "elements" => {
                    self.pos += 1;
                    if self.peek_word() == Some("=") {
                        self.pos += 1;
                    }
                    elements.extend(self.anonymous_set());
                }
                Tok::Newline | Tok::Semi => self.pos += 1,
                _ => self.skip_statement(),
            }
        }
    }

    fn set_elements(&mut self, family: &str, table: &str, name: &str, elements: Vec<String>) {
        self.ruleset
            .sets
            .entry((family.to_owned(), table.to_owned(), name.to_owned()))
            .or_default()
            .extend(elements);
    }

    /// `{ a, b, c }` at the cursor: the elements, each a string (words of
    /// one element joined by spaces).
    fn anonymous_set(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if self.peek() != Some(&Tok::LBrace) {
            return out;
        }
        self.pos += 1;
        let mut current: Vec<String> = Vec::new();
        let mut depth = 0usize;
        while let Some(tok) = self.next().map(|t| t.tok) {
            match tok {
                Tok::RBrace if depth == 0 => break,
                Tok::RBrace => depth -= 1,
                Tok::LBrace => depth += 1,
                Tok::Comma | Tok::Newline if depth == 0 && !current.is_empty() => {
                    out.push(current.join(" "));
                    current.clear();
                }
                Tok::Comma | Tok::Newline if depth == 0 => {}
                Tok::Word(w) | Tok::Str(w) if depth == 0 => current.push(w),
                _ => {}
            }
        }
        if !current.is_empty() {
            out.push(current.join(" "));
        }
        out
    }

    /// A value after a selector: `{ set }`, `@name`, or one word (which
    /// may hold a comma list: `established,related`).
    fn values(&mut self) -> Values {
        match self.peek().cloned() {
            Some(Tok::LBrace) => Values {
                items: self.anonymous_set(),
                ..Values::default()
            },
            Some(Tok::Word(w)) if w.starts_with('@') => {
                self.pos += 1;
                Values {
                    named: Some(w[1..].to_owned()),
                    ..Values::default()
                }
            }
            Some(Tok::Word(w)) | Some(Tok::Str(w)) => {
                self.pos += 1;
                let mut items: Vec<String> = w.split(',').map(str::to_owned).collect();
                // `established, related` written with a comma token
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    if let Some(next) = self.word() {
                        items.push(next);
                    }
                }
                items.retain(|i| !i.is_empty());
                Values {
                    items,
                    ..Values::default()
                }
            }
            _ => Values {
                unresolved: true,
                ..Values::default()
            },
        }
    }

    /// An optional comparison operator: `Some(true)` for a negation,
    /// `None` for an ordering operator the model does not handle.
    fn operator(&mut self) -> Option<bool> {
        match self.peek_word() {
            Some("==") | Some("eq") => {
                self.pos += 1;
                Some(false)
            }
            Some("!=") | Some("ne") => {
                self.pos += 1;
                Some(true)
            }
            Some("<") | Some(">") | Some("<=") | Some(">=") | Some("lt") | Some("gt")
            | Some("le") | Some("ge") => {
                self.pos += 1;
                None
            }
            _ => Some(false),
        }
    }

    /// A match on `selector`: an operator and values, or a verdict map.
    fn selector_match(&mut self, selector: Selector, conds: &mut Vec<Cond>) -> Option<Verdict> {
        if self.peek_word() == Some("vmap") {
            self.pos += 1;
            let entries = self.vmap_entries();
            return Some(Verdict::VMap { selector, entries });
        }
        let Some(neg) = self.operator() else {
            let v = self.values();
            conds.push(Cond::Unknown(format!("ordering comparison {v:?}")));
            return None;
        };
        let values = self.values();
        if self.peek_word() == Some("vmap") {
            // `ip saddr . tcp dport vmap …` and similar: unknown key
            self.pos += 1;
            let entries = self.vmap_entries();
            return Some(Verdict::VMap {
                selector: Selector::Unknown,
                entries,
            });
        }
        conds.push(match selector {
            Selector::CtState => Cond::CtState {
                states: values,
                neg,
            },
            Selector::DPort(proto) => Cond::DPort {
                proto,
                ports: values,
                neg,
            },
            Selector::L4Proto => Cond::L4Proto {
                protos: values,
                neg,
            },
            Selector::Iif => Cond::Iif { names: values, neg },
            Selector::SAddr(v6) => Cond::SAddr {
                v6,
                addrs: values,
                neg,
            },
            Selector::DAddr(v6) => Cond::DAddr {
                v6,
                addrs: values,
                neg,
            },
            Selector::Unknown => Cond::Unknown(format!("{values:?}")),
        });
        None
    }

    fn vmap_entries(&mut self) -> Vec<(Values, Verdict)> {
        let mut out = Vec::new();
        for element in self.anonymous_set() {
            // "key : verdict" or "key:verdict", the verdict possibly "jump x"
            let Some((key, verdict)) = element.rsplit_once(':').and_then(|(k, v)| {
                let v = v.trim();
                let verdict = simple_verdict(v)?;
                Some((k.trim().to_owned(), verdict))
            }) else {
                continue;
            };
            out.push((
                Values {
                    items: vec![key],
                    ..Values::default()
                },
                verdict,
            ));
        }
        out
    }

    /// One rule: expressions until the end of the statement.
    fn rule(&mut self) -> Rule {
        let (path, line) = self.here();
        let mut conds = Vec::new();
        let mut verdict = None;
        while let Some(tok) = self.peek().cloned() {
            let w = match tok {
                Tok::Newline | Tok::Semi => {
                    self.pos += 1;
                    break;
                }
                Tok::RBrace => break,
                Tok::LBrace => {
                    self.skip_block();
                    conds.push(Cond::Unknown("{…}".into()));
                    continue;
                }
                Tok::Comma => {
                    self.pos += 1;
                    continue;
                }
                Tok::Str(s) => {
                    self.pos += 1;
                    conds.push(Cond::Unknown(s));
                    continue;
                }
                Tok::Word(w) => {
                    self.pos += 1;
                    w
                }
            };
            let found = match w.as_str() {
                "iif" | "iifname" => self.selector_match(Selector::Iif, &mut conds),
                "oif" | "oifname" => self.selector_match(Selector::Unknown, &mut conds),
                "ct" => match self.word().as_deref() {
                    Some("state") if self.peek_word() != Some("set") => {
                        self.selector_match(Selector::CtState, &mut conds)
                    }
                    _ => self.selector_match(Selector::Unknown, &mut conds),
                },
                "tcp" | "udp" | "sctp" | "dccp" | "udplite" | "th" => {
                    let field = self.word().unwrap_or_default();
                    let proto = (w != "th").then(|| w.clone());
                    if field == "dport" {
                        self.selector_match(Selector::DPort(proto), &mut conds)
                    } else {
                        if let Some(p) = proto {
                            conds.push(Cond::L4Proto {
                                protos: Values {
                                    items: vec![p],
                                    ..Values::default()
                                },
                                neg: false,
                            });
                        }
                        self.selector_match(Selector::Unknown, &mut conds)
                    }
                }
                "meta" => match self.word().as_deref() {
                    Some("l4proto") => self.selector_match(Selector::L4Proto, &mut conds),
                    Some("nfproto") => {
                        let neg = self.operator().unwrap_or(false);
                        let v = self.values();
                        conds.push(nfproto(&v, neg));
                        None
                    }
                    Some("iif") | Some("iifname") => self.selector_match(Selector::Iif, &mut conds),
                    _ if self.peek_word() == Some("set") => {
                        self.pos += 1;
                        self.values();
                        None
                    }
                    _ => self.selector_match(Selector::Unknown, &mut conds),
                },
                "l4proto" => self.selector_match(Selector::L4Proto, &mut conds),
                "ip" | "ip6" => {
                    let v6 = w == "ip6";
                    let field = self.word().unwrap_or_default();
                    match field.as_str() {
                        "saddr" => self.selector_match(Selector::SAddr(v6), &mut conds),
                        "daddr" => self.selector_match(Selector::DAddr(v6), &mut conds),
                        "protocol" | "nexthdr" => {
                            conds.push(Cond::NfProto { v6, neg: false });
                            self.selector_match(Selector::L4Proto, &mut conds)
                        }
                        _ => {
                            conds.push(Cond::NfProto { v6, neg: false });
                            self.selector_match(Selector::Unknown, &mut conds)
                        }
                    }
                }
                "icmp" | "icmpv6" => {
                    let v6 = w == "icmpv6";
                    conds.push(Cond::NfProto { v6, neg: false });
                    conds.push(Cond::L4Proto {
                        protos: Values {
                            items: vec![if v6 { "ipv6-icmp" } else { "icmp" }.to_owned()],
                            ..Values::default()
                        },
                        neg: false,
                    });
                    self.word();
                    self.selector_match(Selector::Unknown, &mut conds)
                }
                "counter" => {
                    while matches!(self.peek_word(), Some("packets") | Some("bytes")) {
                        self.pos += 2;
                    }
                    None
                }
                "log" => {
                    while let Some(option) = self.peek_word() {
                        match option {
                            "prefix" | "level" | "group" | "snaplen" | "queue-threshold" => {
                                self.pos += 2
                            }
                            "flags" => {
                                self.pos += 1;
                                self.values();
                            }
                            _ => break,
                        }
                    }
                    None
                }
                "limit" => {
                    conds.push(Cond::Unknown("limit".into()));
                    while let Some(option) = self.peek_word() {
                        match option {
                            "rate" | "over" => self.pos += 1,
                            "burst" => self.pos += 3,
                            _ if option.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                                self.pos += 1
                            }
                            "/" | "second" | "minute" | "hour" | "day" | "week" | "packets"
                            | "bytes" => self.pos += 1,
                            _ => break,
                        }
                    }
                    None
                }
                "comment" => {
                    self.word();
                    None
                }
                "accept" => Some(Verdict::Accept),
                "drop" => Some(Verdict::Drop),
                "reject" => {
                    if self.peek_word() == Some("with") {
                        self.pos += 1;
                        while let Some(x) = self.peek_word() {
                            if matches!(x, "icmp" | "icmpv6" | "icmpx" | "tcp" | "type" | "reset")
                                || x.contains('-')
                                || x.chars().all(|c| c.is_ascii_alphanumeric())
                                    && !matches!(x, "accept" | "drop" | "counter" | "log")
                            {
                                self.pos += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    Some(Verdict::Drop)
                }
                "queue" => {
                    while matches!(
                        self.peek_word(),
                        Some("num") | Some("bypass") | Some("fanout") | Some("flags") | Some("to")
                    ) {
                        let option = self.peek_word().unwrap_or_default().to_owned();
                        self.pos += 1;
                        if option == "num" || option == "flags" || option == "to" {
                            self.pos += 1;
                        }
                    }
                    Some(Verdict::Queue)
                }
                "jump" => self.word().map(Verdict::Jump),
                "goto" => self.word().map(Verdict::Goto),
                "return" => Some(Verdict::Return),
                "continue" => Some(Verdict::Continue),
                "notrack" | "masquerade" | "snat" | "dnat" | "redirect" | "tproxy" | "dup"
                | "fwd" | "synproxy" => {
                    // nat and similar statements: the rest of the rule is
                    // their arguments
                    while !matches!(
                        self.peek(),
                        None | Some(Tok::Newline) | Some(Tok::Semi) | Some(Tok::RBrace)
                    ) {
                        if self.peek() == Some(&Tok::LBrace) {
                            self.skip_block();
                        } else {
                            self.pos += 1;
                        }
                    }
                    None
                }
                "add" | "update" | "delete" | "set"
                    if self.peek_word().is_some_and(|n| n.starts_with('@')) =>
                {
                    self.pos += 1;
                    if self.peek() == Some(&Tok::LBrace) {
                        self.skip_block();
                    }
                    None
                }
                other => {
                    conds.push(Cond::Unknown(other.to_owned()));
                    None
                }
            };
            if let Some(v) = found {
                verdict = Some(v);
            }
        }
        Rule {
            conds,
            verdict,
            path,
            line,
        }
    }
}

fn simple_verdict(text: &str) -> Option<Verdict> {
    let mut words = text.split_whitespace();
    match (words.next()?, words.next()) {
        ("accept", None) => Some(Verdict::Accept),
        ("drop", None) | ("reject", _) => Some(Verdict::Drop),
        ("return", None) => Some(Verdict::Return),
        ("continue", None) => Some(Verdict::Continue),
        ("queue", _) => Some(Verdict::Queue),
        ("jump", Some(c)) => Some(Verdict::Jump(c.to_owned())),
        ("goto", Some(c)) => Some(Verdict::Goto(c.to_owned())),
        _ => None,
    }
}

fn nfproto(values: &Values, neg: bool) -> Cond {
    match values.items.as_slice() {
        [one] if one == "ipv4" => Cond::NfProto { v6: false, neg },
        [one] if one == "ipv6" => Cond::NfProto { v6: true, neg },
        _ => Cond::Unknown("meta nfproto".into()),
    }
}

/// Replaces `@name` references with the named set's elements.
fn resolve_sets(ruleset: &mut Ruleset) {
    let sets = ruleset.sets.clone();
    for chain in &mut ruleset.chains {
        let key = |name: &str| (chain.family.clone(), chain.table.clone(), name.to_owned());
        let resolve = |values: &mut Values| {
            if let Some(name) = values.named.clone() {
                match sets.get(&key(&name)) {
                    Some(elements) => values.items = elements.clone(),
                    None => values.unresolved = true,
                }
            }
        };
        for rule in &mut chain.rules {
            for cond in &mut rule.conds {
                match cond {
                    Cond::Iif { names: v, .. }
                    | Cond::CtState { states: v, .. }
                    | Cond::L4Proto { protos: v, .. }
                    | Cond::DPort { ports: v, .. }
                    | Cond::SAddr { addrs: v, .. }
                    | Cond::DAddr { addrs: v, .. } => resolve(v),
                    Cond::NfProto { .. } | Cond::Unknown(_) => {}
                }
            }
        }
    }
}

// ---------------------------------------------------------------------
// Values

/// Service names nft resolves through /etc/services, for the common ones.
const SERVICES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("http", 80),
    ("ntp", 123),
    ("snmp", 161),
    ("https", 443),
    ("kubernetes", 6443),
];

/// A port or port range item; `None` when it cannot be read.
pub fn port_range(item: &str) -> Option<(u16, u16)> {
    let one = |s: &str| -> Option<u16> {
        let s = s.trim();
        s.parse()
            .ok()
            .or_else(|| SERVICES.iter().find(|(n, _)| *n == s).map(|(_, p)| *p))
    };
    match item.split_once('-') {
        Some((a, b)) => Some((one(a)?, one(b)?)),
        None => {
            let p = one(item)?;
            Some((p, p))
        }
    }
}

/// Port ranges of a value set; `None` when some item is unreadable.
pub fn port_ranges(values: &Values) -> Option<Vec<(u16, u16)>> {
    if values.unresolved {
        return None;
    }
    values.items.iter().map(|i| port_range(i)).collect()
}

/// An address item as an inclusive range of 128-bit numbers, with its
/// family; `None` when unreadable.
pub fn addr_range(item: &str) -> Option<(bool, u128, u128)> {
    let item = item.trim();
    let parse = |s: &str| -> Option<(bool, u128)> {
        match s.trim().parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => Some((false, u32::from(a) as u128)),
            IpAddr::V6(a) => Some((true, u128::from(a))),
        }
    };
    if let Some((addr, len)) = item.split_once('/') {
        let (v6, base) = parse(addr)?;
        let bits = if v6 { 128 } else { 32 };
        let len: u32 = len.parse().ok()?;
        if len > bits {
            return None;
        }
        let host_bits = bits - len;
        let mask: u128 = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        return Some((v6, base & !mask, base | mask));
    }
    if let Some((a, b)) = item.split_once('-') {
        let (v6a, a) = parse(a)?;
        let (v6b, b) = parse(b)?;
        return (v6a == v6b).then_some((v6a, a, b));
    }
    let (v6, a) = parse(item)?;
    Some((v6, a, a))
}

fn ip_number(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

// ---------------------------------------------------------------------
// The packet walk

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Maybe,
}

impl Tri {
    fn from(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }

    fn negate(self, neg: bool) -> Tri {
        match (self, neg) {
            (Tri::Yes, true) => Tri::No,
            (Tri::No, true) => Tri::Yes,
            (t, _) => t,
        }
    }

    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Maybe,
        }
    }
}

/// Where a packet comes from (or goes to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// An address of the attacker's choosing that no rule lists.
    Untrusted,
    /// Some address, possibly one a rule lists.
    Any,
    Addr(IpAddr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub v6: bool,
    /// "tcp" or "udp".
    pub proto: &'static str,
    pub dport: u16,
    pub saddr: Peer,
    pub daddr: Peer,
    /// Arrives on the loopback interface.
    pub loopback: bool,
    /// Conntrack state: "new" or "established".
    pub state: &'static str,
}

impl Packet {
    pub fn new(v6: bool, proto: &'static str, dport: u16) -> Packet {
        Packet {
            v6,
            proto,
            dport,
            saddr: Peer::Untrusted,
            daddr: Peer::Any,
            loopback: false,
            state: "new",
        }
    }
}

/// How to read a "may match": `May` asks whether the packet can be
/// accepted (unknown matches count for accept rules and against drop
/// rules), `Must` whether it is certainly accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    May,
    Must,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Accept,
    Drop,
    Return,
}

const PROTO_NUMBERS: &[(&str, &str)] = &[
    ("tcp", "6"),
    ("udp", "17"),
    ("icmp", "1"),
    ("ipv6-icmp", "58"),
    ("icmpv6", "58"),
    ("sctp", "132"),
];

fn proto_is(item: &str, proto: &str) -> bool {
    item == proto
        || PROTO_NUMBERS
            .iter()
            .any(|(name, number)| item == *number && *name == proto)
}

impl Ruleset {
    /// True when every base filter chain on `hook` that sees the packet
    /// accepts it (in `mode`'s reading of unknown matches). No chain at
    /// all accepts everything.
    pub fn accepts(&self, hook: &str, packet: &Packet, mode: Mode) -> bool {
        self.base_chains(hook, packet.v6)
            .all(|chain| match self.run(chain, packet, mode, 0) {
                Flow::Accept => true,
                Flow::Drop => false,
                Flow::Return => chain.effective_policy() != "drop",
            })
    }

    fn run(&self, chain: &Chain, packet: &Packet, mode: Mode, depth: usize) -> Flow {
        if depth > MAX_JUMP_DEPTH {
            return if mode == Mode::May {
                Flow::Accept
            } else {
                Flow::Drop
            };
        }
        for rule in &chain.rules {
            let t = rule
                .conds
                .iter()
                .fold(Tri::Yes, |t, c| t.and(self.eval(c, packet)));
            if t == Tri::No {
                continue;
            }
            let Some(verdict) = &rule.verdict else {
                continue;
            };
            if let Some(flow) = self.apply(chain, verdict, t, packet, mode, depth) {
                return flow;
            }
        }
        Flow::Return
    }

    /// The flow a verdict leads to when its rule matched with `t`;
    /// `None` to go on with the next rule.
    fn apply(
        &self,
        chain: &Chain,
        verdict: &Verdict,
        t: Tri,
        packet: &Packet,
        mode: Mode,
        depth: usize,
    ) -> Option<Flow> {
        let sure = t == Tri::Yes;
        match verdict {
            Verdict::Accept => (sure || mode == Mode::May).then_some(Flow::Accept),
            Verdict::Drop => (sure || mode == Mode::Must).then_some(Flow::Drop),
            Verdict::Queue => Some(if mode == Mode::May {
                Flow::Accept
            } else {
                Flow::Drop
            }),
            Verdict::Return => sure.then_some(Flow::Return),
            Verdict::Continue => None,
            Verdict::Jump(target) | Verdict::Goto(target) => {
                let is_goto = matches!(verdict, Verdict::Goto(_));
                let Some(next) = self.chain(&chain.family, &chain.table, target) else {
                    // nft refuses a jump to a missing chain; be pessimistic
                    return Some(if mode == Mode::May {
                        Flow::Accept
                    } else {
                        Flow::Drop
                    });
                };
                let flow = self.run(next, packet, mode, depth + 1);
                match (flow, sure) {
                    (Flow::Return, true) if is_goto => Some(Flow::Return),
                    (Flow::Return, _) => None,
                    (flow, true) => Some(flow),
                    (Flow::Accept, false) if mode == Mode::May => Some(Flow::Accept),
                    (Flow::Drop, false) if mode == Mode::Must => Some(Flow::Drop),
                    _ => None,
                }
            }
            Verdict::VMap { selector, entries } => {
                for (key, verdict) in entries {
                    let m = self.eval_selector(selector, key, packet);
                    if m == Tri::No {
                        continue;
                    }
                    if let Some(flow) = self.apply(chain, verdict, t.and(m), packet, mode, depth) {
                        return Some(flow);
                    }
                    if m == Tri::Yes {
                        return None;
                    }
                }
                None
            }
        }
    }

    fn eval_selector(&self, selector: &Selector, key: &Values, packet: &Packet) -> Tri {
        let cond = match selector {
            Selector::CtState => Cond::CtState {
                states: key.clone(),
                neg: false,
            },
            Selector::DPort(proto) => Cond::DPort {
                proto: proto.clone(),
                ports: key.clone(),
                neg: false,
            },
            Selector::L4Proto => Cond::L4Proto {
                protos: key.clone(),
                neg: false,
            },
            Selector::Iif => Cond::Iif {
                names: key.clone(),
                neg: false,
            },
            Selector::SAddr(v6) => Cond::SAddr {
                v6: *v6,
                addrs: key.clone(),
                neg: false,
            },
            Selector::DAddr(v6) => Cond::DAddr {
                v6: *v6,
                addrs: key.clone(),
                neg: false,
            },
            Selector::Unknown => return Tri::Maybe,
        };
        self.eval(&cond, packet)
    }

    fn eval(&self, cond: &Cond, packet: &Packet) -> Tri {
        match cond {
            Cond::Iif { names, neg } => {
                if names.unresolved {
                    return Tri::Maybe;
                }
                let matches_lo = names
                    .items
                    .iter()
                    .any(|n| super::sshd::wildcard_match(n, "lo"));
                let t = if packet.loopback {
                    Tri::from(matches_lo)
                } else if names.items.iter().all(|n| n == "lo") {
                    Tri::No
                } else if names.items.iter().any(|n| n == "*") {
                    Tri::Yes
                } else {
                    Tri::Maybe
                };
                t.negate(*neg)
            }
            Cond::CtState { states, neg } => {
                if states.unresolved {
                    return Tri::Maybe;
                }
                Tri::from(states.items.iter().any(|s| s == packet.state)).negate(*neg)
            }
            Cond::L4Proto { protos, neg } => {
                if protos.unresolved {
                    return Tri::Maybe;
                }
                Tri::from(protos.items.iter().any(|p| proto_is(p, packet.proto))).negate(*neg)
            }
            Cond::DPort { proto, ports, neg } => {
                if proto.as_deref().is_some_and(|p| p != packet.proto) {
                    return Tri::No;
                }
                match port_ranges(ports) {
                    Some(ranges) => Tri::from(
                        ranges
                            .iter()
                            .any(|(a, b)| (*a..=*b).contains(&packet.dport)),
                    )
                    .negate(*neg),
                    None => Tri::Maybe,
                }
            }
            Cond::SAddr { v6, addrs, neg } => addr_match(*v6, addrs, *neg, packet.saddr, packet),
            Cond::DAddr { v6, addrs, neg } => addr_match(*v6, addrs, *neg, packet.daddr, packet),
            Cond::NfProto { v6, neg } => Tri::from(*v6 == packet.v6).negate(*neg),
            Cond::Unknown(_) => Tri::Maybe,
        }
    }

    /// Every port number where what a rule matches may change, so that
    /// the verdict is constant between two consecutive boundaries.
    fn port_boundaries(&self) -> BTreeSet<u32> {
        let mut out: BTreeSet<u32> = [1u32, 65536].into_iter().collect();
        let mut add = |values: &Values| {
            if let Some(ranges) = port_ranges(values) {
                for (a, b) in ranges {
                    out.insert(a as u32);
                    out.insert(b as u32 + 1);
                }
            }
        };
        for chain in &self.chains {
            for rule in &chain.rules {
                for cond in &rule.conds {
                    if let Cond::DPort { ports, .. } = cond {
                        add(ports);
                    }
                }
                if let Some(Verdict::VMap {
                    selector: Selector::DPort(_),
                    entries,
                }) = &rule.verdict
                {
                    for (key, _) in entries {
                        add(key);
                    }
                }
            }
        }
        out
    }

    /// The destination ports of `proto` that a new packet from `saddr` may
    /// reach on input, as merged inclusive ranges.
    pub fn open_ports(&self, v6: bool, proto: &'static str, saddr: Peer) -> Vec<(u16, u16)> {
        let bounds: Vec<u32> = self.port_boundaries().into_iter().collect();
        let mut out: Vec<(u16, u16)> = Vec::new();
        for pair in bounds.windows(2) {
            let (lo, hi) = (pair[0], pair[1] - 1);
            if lo > 65535 {
                break;
            }
            let packet = Packet {
                saddr,
                ..Packet::new(v6, proto, lo as u16)
            };
            if !self.accepts("input", &packet, Mode::May) {
                continue;
            }
            let (lo, hi) = (lo as u16, hi.min(65535) as u16);
            match out.last_mut() {
                Some(last) if last.1 as u32 + 1 == lo as u32 => last.1 = hi,
                _ => out.push((lo, hi)),
            }
        }
        out
    }
}

fn addr_match(v6: bool, addrs: &Values, neg: bool, peer: Peer, packet: &Packet) -> Tri {
    if v6 != packet.v6 {
        return Tri::No;
    }
    if addrs.unresolved {
        return Tri::Maybe;
    }
    let ranges: Option<Vec<(bool, u128, u128)>> =
        addrs.items.iter().map(|i| addr_range(i)).collect();
    let Some(ranges) = ranges else {
        return Tri::Maybe;
    };
    let ranges: Vec<(u128, u128)> = ranges
        .into_iter()
        .filter(|(f, _, _)| *f == v6)
        .map(|(_, a, b)| (a, b))
        .collect();
    let everything = ranges
        .iter()
        .any(|(a, b)| *a == 0 && *b == if v6 { u128::MAX } else { u32::MAX as u128 });
    match peer {
        Peer::Addr(ip) => {
            let (family, n) = ip_number(ip);
            if family != v6 {
                return Tri::No;
            }
            Tri::from(ranges.iter().any(|(a, b)| (*a..=*b).contains(&n))).negate(neg)
        }
        Peer::Untrusted => {
            if everything {
                Tri::Yes.negate(neg)
            } else {
                Tri::No.negate(neg)
            }
        }
        Peer::Any => {
            if everything {
                Tri::Yes.negate(neg)
            } else if ranges.is_empty() {
                Tri::No.negate(neg)
            } else {
                Tri::Maybe
            }
        }
    }
}

/// Formats port ranges: `22, 30000-32767`.
pub fn format_ranges(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Subtracts `remove` from `ranges` (both inclusive, sorted or not).
pub fn subtract(ranges: &[(u16, u16)], remove: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(a, b) in ranges {
        let mut pieces = vec![(a as u32, b as u32)];
        for &(ra, rb) in remove {
            let (ra, rb) = (ra as u32, rb as u32);
            pieces = pieces
                .into_iter()
                .flat_map(|(x, y)| {
                    let mut keep = Vec::new();
                    if rb < x || ra > y {
                        keep.push((x, y));
                    } else {
                        if ra > x {
                            keep.push((x, ra - 1));
                        }
                        if rb < y {
                            keep.push((rb + 1, y));
                        }
                    }
                    keep
                })
                .collect();
        }
        out.extend(pieces.into_iter().map(|(x, y)| (x as u16, y as u16)));
    }
    out
}

/// The parts of `ranges` inside `keep`.
pub fn intersect(ranges: &[(u16, u16)], keep: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(a, b) in ranges {
        for &(ka, kb) in keep {
            let (lo, hi) = (a.max(ka), b.min(kb));
            if lo <= hi {
                out.push((lo, hi));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREWALL: &str = r#"#!/usr/sbin/nft -f
define SERVERS = { 10.0.0.10, 10.0.0.11 }
table inet kiln {
  set cluster { type ipv4_addr; flags interval; elements = { 10.0.0.0/24 } }
  chain input {
    type filter hook input priority filter; policy drop;
    iif lo accept
    ct state vmap { established : accept, related : accept, invalid : drop }
    tcp dport 22 ip saddr $SERVERS accept
    udp dport 8472 ip saddr @cluster accept
    tcp dport { 10250, 30000-32767 } jump k8s
    meta l4proto ipv6-icmp accept
  }
  chain k8s {
    ip saddr 10.0.0.0/24 accept
    tcp dport 10250 drop
    accept
  }
  chain forward { type filter hook forward priority 0; policy drop; }
}
"#;

    #[test]
    fn parses_chains_policies_and_sets() {
        let r = Ruleset::parse_text(MAIN, FIREWALL);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let input = r.chain("inet", "kiln", "input").unwrap();
        assert_eq!(input.hook.as_deref(), Some("input"));
        assert_eq!(input.policy.as_deref(), Some("drop"));
        assert_eq!(input.rules.len(), 6);
        assert_eq!(
            input.rules[2].conds[1],
            Cond::SAddr {
                v6: false,
                addrs: Values {
                    items: vec!["10.0.0.10".into(), "10.0.0.11".into()],
                    ..Values::default()
                },
                neg: false
            }
        );
        let Cond::SAddr { addrs, .. } = &input.rules[3].conds[1] else {
            panic!()
        };
        assert_eq!(addrs.items, ["10.0.0.0/24"]);
    }

    #[test]
    fn walks_packets_through_chains() {
        let r = Ruleset::parse_text(MAIN, FIREWALL);
        // from anywhere: only the NodePorts (through k8s's final accept)
        assert_eq!(
            r.open_ports(false, "tcp", Peer::Untrusted),
            [(30000, 32767)]
        );
        assert_eq!(
            r.open_ports(false, "tcp", Peer::Any),
            [(22, 22), (10250, 10250), (30000, 32767)]
        );
        assert_eq!(r.open_ports(false, "udp", Peer::Untrusted), []);
        assert_eq!(r.open_ports(false, "udp", Peer::Any), [(8472, 8472)]);
        let lo = Packet {
            loopback: true,
            ..Packet::new(false, "tcp", 10248)
        };
        assert!(r.accepts("input", &lo, Mode::Must));
        let established = Packet {
            state: "established",
            ..Packet::new(true, "tcp", 40000)
        };
        assert!(r.accepts("input", &established, Mode::Must));
        assert!(!r.accepts("forward", &Packet::new(false, "tcp", 80), Mode::May));
    }

    #[test]
    fn no_chain_accepts_everything_and_flush_is_recorded() {
        let r = Ruleset::parse_text(MAIN, "flush ruleset\ntable ip t {\n}\n");
        assert_eq!(r.flushes, [(MAIN.to_owned(), 1)]);
        assert_eq!(r.open_ports(true, "tcp", Peer::Untrusted), [(1, 65535)]);
    }

    #[test]
    fn add_commands_and_negations() {
        let r = Ruleset::parse_text(
            MAIN,
            "add table ip f\nadd chain ip f in { type filter hook input priority 0 ; policy drop ; }\nadd rule ip f in tcp dport != 22 accept\ninsert rule ip f in tcp dport 80 drop\n",
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(
            r.open_ports(false, "tcp", Peer::Untrusted),
            [(1, 21), (23, 79), (81, 65535)]
        );
    }

    #[test]
    fn range_arithmetic() {
        assert_eq!(
            subtract(&[(1, 100)], &[(10, 20), (50, 50)]),
            [(1, 9), (21, 49), (51, 100)]
        );
        assert_eq!(intersect(&[(1, 100)], &[(50, 200)]), [(50, 100)]);
        assert_eq!(
            addr_range("10.0.0.0/8"),
            Some((false, 0x0a000000, 0x0affffff))
        );
        assert_eq!(port_range("ssh"), Some((22, 22)));
    }
}
