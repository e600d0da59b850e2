//! Values quoted in messages: short, escaped, never the whole of an input
//! that may be megabytes long or carry terminal escape sequences.

/// How many characters of a value a message shows.
pub const QUOTE_CHARS: usize = 60;

/// `value` in double quotes as a message shows it: quotes, backslashes and
/// control characters escaped, at most [`QUOTE_CHARS`] characters of it,
/// then `…` when there is more.
pub fn quote(value: &str) -> String {
    quote_max(value, QUOTE_CHARS)
}

/// [`quote`] with room for `max` characters.
pub fn quote_max(value: &str, max: usize) -> String {
    format!("\"{}\"", escape_max(value, max))
}

/// The inside of [`quote_max`]: escaped, cut after `max` characters.
fn escape_max(value: &str, max: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for c in value.chars() {
        let piece: String = match c {
            '"' | '\\' => format!("\\{c}"),
            c if needs_escape(c) => c.escape_debug().collect(),
            c => c.to_string(),
        };
        let width = piece.chars().count();
        if shown + width > max {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        shown += width;
    }
    out
}

/// Characters a terminal would act on or hide rather than show: controls,
/// and the format characters that reorder or hide text.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Shortens every quoted part (`"…"` or `` `…` ``) of a message written by
/// a parser (serde, toml) to [`QUOTE_CHARS`] characters: such messages
/// repeat the offending value whole.
pub fn clip_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(4096));
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let close = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        let Some(len) = quoted_len(after, close) else {
            // Not a quotation after all (a lone '"' or '`'): keep it as is.
            rest = after;
            continue;
        };
        let inner = &after[..len];
        // serde writes strings with {:?}: a value is already escaped, so
        // only cut it, never inside an escape.
        let mut shown = 0;
        let mut chars = inner.chars();
        let mut clipped = false;
        while let Some(c) = chars.next() {
            if shown == QUOTE_CHARS {
                clipped = true;
                break;
            }
            out.push(c);
            if c == '\\'
                && close == '"'
                && let Some(next) = chars.next()
            {
                out.push(next);
            }
            shown += 1;
        }
        if clipped {
            out.push('…');
        }
        out.push(close);
        rest = &after[len + close.len_utf8()..];
    }
    out.push_str(rest);
    clip_line(&out, MAX_LINE_CHARS)
}

/// The length of a quotation's inside, up to its closing `close` (a `"`
/// may be escaped with a backslash); `None` when it does not close.
fn quoted_len(text: &str, close: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if close == '"' => escaped = true,
            c if c == close => return Some(i),
            _ => {}
        }
    }
    None
}

/// The longest line kiln prints in an error: a backstop for messages that
/// carry more of an input than they should.
pub const MAX_LINE_CHARS: usize = 4096;

/// Each line of `text` cut after `max` characters, with `…`.
pub fn clip_line(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match line.char_indices().nth(max) {
            Some((end, _)) => {
                out.push_str(&line[..end]);
                out.push('…');
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quote("bookworm"), "\"bookworm\"");
        assert_eq!(quote(""), "\"\"");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "a".repeat(10_000_000);
        let quoted = quote(&long);
        assert_eq!(quoted, format!("\"{}…\"", "a".repeat(QUOTE_CHARS)));
        assert_eq!(quote(&"a".repeat(QUOTE_CHARS)).len(), QUOTE_CHARS + 2);
    }

    #[test]
    fn control_characters_and_quotes_are_escaped() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny\t\u{1b}[31m"), r#""x\ny\t\u{1b}[31m""#);
        assert_eq!(quote("\u{202e}evil"), r#""\u{202e}evil""#);
        // an escape is never cut in half
        let quoted = quote(&format!("{}\n", "b".repeat(QUOTE_CHARS - 1)));
        assert_eq!(quoted, format!("\"{}…\"", "b".repeat(QUOTE_CHARS - 1)));
        assert_eq!(quote("é"), "\"é\"");
    }

    #[test]
    fn parser_messages_lose_the_bulk_of_their_values() {
        let value = "v".repeat(100_000);
        let message = format!("invalid type: string \"{value}\", expected u64 at line 1");
        assert_eq!(
            clip_quoted(&message),
            format!(
                "invalid type: string \"{}…\", expected u64 at line 1",
                "v".repeat(QUOTE_CHARS)
            )
        );
        assert_eq!(
            clip_quoted("unknown field `pakages`, expected `packages`"),
            "unknown field `pakages`, expected `packages`"
        );
        assert_eq!(
            clip_quoted(r#"string "a\"b" here"#),
            r#"string "a\"b" here"#
        );
        assert_eq!(
            clip_quoted(r#"expected '"' after `x"#),
            r#"expected '"' after `x"#
        );
    }

    #[test]
    fn lines_are_bounded() {
        let text = format!("short\n{}", "x".repeat(5000));
        assert_eq!(clip_line(&text, 10), format!("short\n{}…", "x".repeat(10)));
        assert_eq!(clip_line("ok", 10), "ok");
    }
}
