//! Recipe errors that point at the exact place in the file and say what
//! to write instead; values quoted short and escaped; size limits on the
//! inputs read whole.

mod limit;
mod quote;

pub use limit::{Limit, ReadError, read_file, read_file_to_string, read_limited};
pub use quote::{MAX_LINE_CHARS, QUOTE_CHARS, clip_line, clip_quoted, quote, quote_max};

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// A recipe file's name (as the user would type it) and its text, kept so
/// that any later stage can point back into it.
#[derive(Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

/// A place in a recipe file.
#[derive(Clone, Debug)]
pub struct Loc {
    pub file: Arc<SourceFile>,
    pub span: Range<usize>,
}

impl Loc {
    pub fn new(file: &Arc<SourceFile>, span: Range<usize>) -> Loc {
        Loc {
            file: file.clone(),
            span,
        }
    }

    /// `file:line:column`, for warnings.
    pub fn position(&self) -> String {
        let e = self.error("");
        format!("{}:{}:{}", e.file, e.line, e.column)
    }

    /// An error at this place.
    pub fn error(&self, message: impl Into<String>) -> RecipeError {
        RecipeError::at(&self.file, self.span.clone(), message)
    }
}

/// An invalid recipe: where, and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeError {
    pub file: String,
    /// 1-based line and column (in characters); 0 when the error concerns
    /// the file as a whole (it cannot be read, say).
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The offending line (or the part of it around the column) and its
    /// underline.
    snippet: Option<Snippet>,
}

/// A long line is shown from a little before the column, this wide.
const SNIPPET_CHARS: usize = 160;
/// How much of a long line is shown before the column.
const SNIPPET_BEFORE: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Snippet {
    line: String,
    /// What goes before the carets (tabs kept, so they line up).
    pad: String,
    carets: usize,
}

impl Snippet {
    /// `line` with `width` characters underlined from `column` (1-based);
    /// a long line is cut to a window around the column.
    fn new(line: &str, column: usize, width: usize) -> Snippet {
        let line = line.trim_end_matches('\r');
        let chars: Vec<char> = line.chars().collect();
        let at = (column - 1).min(chars.len());
        let (start, end) = if chars.len() <= SNIPPET_CHARS {
            (0, chars.len())
        } else {
            let start = at.saturating_sub(SNIPPET_BEFORE);
            (start, (start + SNIPPET_CHARS).min(chars.len()))
        };
        let mut shown = String::new();
        let mut pad = String::new();
        if start > 0 {
            shown.push('…');
            pad.push(' ');
        }
        shown.extend(&chars[start..end]);
        if end < chars.len() {
            shown.push('…');
        }
        pad.extend(
            chars[start..at]
                .iter()
                .map(|&c| if c == '\t' { '\t' } else { ' ' }),
        );
        Snippet {
            line: shown,
            pad,
            carets: width.min(end.saturating_sub(at)).max(1),
        }
    }
}

impl RecipeError {
    pub fn at(file: &SourceFile, span: Range<usize>, message: impl Into<String>) -> RecipeError {
        let text = &file.text;
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(text, span.end.clamp(start, line_end));
        let width = text[start..end].chars().count().max(1);
        RecipeError {
            file: file.name.clone(),
            line,
            column,
            message: message.into(),
            snippet: Some(Snippet::new(&text[line_start..line_end], column, width)),
        }
    }

    /// An error about the file as a whole.
    pub fn whole_file(file: impl Into<String>, message: impl Into<String>) -> RecipeError {
        RecipeError {
            file: file.into(),
            line: 0,
            column: 0,
            message: message.into(),
            snippet: None,
        }
    }

    /// The one-line message followed by the offending line, underlined.
    pub fn render(&self) -> String {
        let mut out = self.to_string();
        if let Some(snippet) = &self.snippet {
            let number = self.line.to_string();
            let gutter = " ".repeat(number.len());
            out.push_str(&format!(
                "\n{gutter} |\n{number} | {}\n{gutter} | {}{}",
                snippet.line,
                snippet.pad,
                "^".repeat(snippet.carets)
            ));
        }
        out
    }

    /// Turns a TOML parse or schema error into a recipe error, rewriting
    /// serde's wording into advice ("did you mean …?").
    pub fn from_toml(file: &SourceFile, error: &toml::de::Error) -> RecipeError {
        let message = clip_quoted(&rewrite_serde_message(error.message()));
        match error.span() {
            Some(span) => RecipeError::at(file, span, message),
            None => RecipeError {
                file: file.name.clone(),
                line: 1,
                column: 1,
                message,
                snippet: None,
            },
        }
    }
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for RecipeError {}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The closest candidate to `word`, if one is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, c)| *distance <= (c.len().max(word.len()) / 3).max(1))
        .min()
        .map(|(_, c)| c)
}

/// serde writes "unknown field `pakages`, expected one of `a`, `b`" and
/// "missing field `x`"; say the same with quotes and a suggestion.
fn rewrite_serde_message(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let Some((field, expected)) = rest.split_once('`') else {
            return message;
        };
        let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return match did_you_mean(field, valid.iter().copied()) {
            Some(best) => format!("unknown field {}, did you mean \"{best}\"?", quote(field)),
            None if valid.is_empty() => {
                format!("unknown field {}: this table takes no fields", quote(field))
            }
            None => format!(
                "unknown field {}; valid fields here: {}",
                quote(field),
                valid.join(", ")
            ),
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return format!("missing field \"{field}\" in this table");
    }
    let mut message = message
        .replace("`\"`", "'\"'")
        .replace('`', "\"")
        .replace("expected i64", "expected an integer")
        .replace(" as i128", "");
    if message.starts_with("invalid type: map, expected a sequence") {
        message.push_str(": this is an array of tables; write [[name]] instead of [name]");
    } else if message.starts_with("unexpected leading zero") {
        message.push_str(": quote it if it is a mode, like \"0644\"");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile {
            name: "r.toml".into(),
            text: text.into(),
        }
    }

    #[test]
    fn position_is_one_based_and_counts_characters() {
        let f = file("a = 1\nbé = \"x\"\n");
        let e = RecipeError::at(&f, 12..15, "bad");
        assert_eq!(e.to_string(), "r.toml:2:6: bad");
        assert_eq!(
            e.render(),
            "r.toml:2:6: bad\n  |\n2 | bé = \"x\"\n  |      ^^^"
        );
    }

    #[test]
    fn a_long_line_is_shown_around_the_column() {
        let value = "a".repeat(10_000);
        let f = file(&format!("[image]\nname = \"{value}\"\n"));
        let e = RecipeError::at(&f, 16..16 + value.len(), "bad name");
        let shown = format!("name = \"{}…", "a".repeat(SNIPPET_CHARS - 8));
        assert_eq!(
            e.render(),
            format!(
                "r.toml:2:9: bad name\n  |\n2 | {shown}\n  | {}{}",
                " ".repeat(8),
                "^".repeat(SNIPPET_CHARS - 8)
            )
        );
        // far along the line, the window starts shortly before the column
        let f = file(&format!("x = [{}\"b\"]\n", "\"a\", ".repeat(1000)));
        let at = f.text.rfind("\"b\"").unwrap();
        let e = RecipeError::at(&f, at..at + 3, "bad");
        let rendered = e.render();
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines[2], format!("1 | …{}\"b\"]", "\"a\", ".repeat(8)));
        assert_eq!(
            lines[3],
            format!("  | {}^^^", " ".repeat(SNIPPET_BEFORE + 1))
        );
    }

    #[test]
    fn unknown_field_gets_a_suggestion_or_the_valid_list() {
        assert_eq!(
            rewrite_serde_message("unknown field `pakages`, expected one of `packages`, `suite`"),
            "unknown field \"pakages\", did you mean \"packages\"?"
        );
        assert_eq!(
            rewrite_serde_message("unknown field `zzz`, expected `name` or `version`"),
            "unknown field \"zzz\"; valid fields here: name, version"
        );
    }

    #[test]
    fn suggestions_stay_close() {
        assert_eq!(
            did_you_mean("amd46", ["amd64", "arm64", "i386"]),
            Some("amd64")
        );
        assert_eq!(did_you_mean("sparc", ["amd64", "arm64"]), None);
    }
}
