//! The ruleset's statements: commands, tables, chains and sets; the
//! expressions of one rule are in `rule`.

mod rule;

use super::lex::{Reader, Tok, Token};
use super::{Chain, Cond, MAIN, Ruleset, Values};

const FAMILIES: &[&str] = &["ip", "ip6", "inet", "arp", "bridge", "netdev"];

impl Reader<'_, '_> {
    /// Parses the expanded tokens, then resolves named sets.
    pub(super) fn finish(mut self, tokens: Vec<Token>) -> Ruleset {
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
