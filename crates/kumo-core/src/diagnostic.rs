//! Errors that point into a source file: file, line, column, the offending
//! line with a caret, and an optional hint such as a did-you-mean.
//!
//! Rendering follows rustc's layout because Kumo's users already read that
//! format in their terminals and editors:
//!
//! ```text
//! error: unknown key `max_lenght` in attribute `name`
//!   --> resources/avatar.toml:8:27
//!    |
//!  8 | name = { type = "string", max_lenght = 64 }
//!    |                           ^^^^^^^^^^
//!    = help: did you mean `max_length`?
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::resource::{FileId, Span};

/// The text of every file a diagnostic may point into.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: Vec<SourceFile>,
}

#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as shown to the user (relative to the project when possible).
    pub path: PathBuf,
    pub text: String,
}

impl Sources {
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile { path, text });
        self.files.len() - 1
    }

    /// The file behind `id`. Ids only come from [`Sources::add`], so an
    /// unknown id is a programming error.
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id]
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: FileId,
    pub span: Span,
    pub message: String,
    /// e.g. "did you mean `max_length`?"
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(file: FileId, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            file,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Renders the diagnostic in rustc's style (see the module docs). A file
    /// with no text (an I/O error) shows only the message and the path.
    pub fn render(&self, sources: &Sources) -> String {
        let mut out = format!("error: {}\n", self.message);
        let Some(file) = sources.files.get(self.file) else {
            // Only reachable when a diagnostic is rendered against the wrong
            // `Sources`; still print the message rather than panic.
            if let Some(help) = &self.help {
                let _ = writeln!(out, "  = help: {help}");
            }
            return out;
        };
        if file.text.is_empty() {
            let _ = writeln!(out, "  --> {}", file.path.display());
            if let Some(help) = &self.help {
                let _ = writeln!(out, "  = help: {help}");
            }
            return out;
        }

        let loc = locate(&file.text, self.span.start);
        let line_text = &file.text[loc.line_start..loc.line_end];
        let number = loc.line.to_string();
        // The arrow sits one column left of the gutter bar, like rustc's.
        let arrow = " ".repeat(number.len() + 1);
        let pad = " ".repeat(number.len() + 2);
        let _ = writeln!(
            out,
            "{arrow}--> {}:{}:{}",
            file.path.display(),
            loc.line,
            loc.column
        );
        let _ = writeln!(out, "{pad}|");
        let _ = writeln!(out, " {number} | {line_text}");

        // The caret line copies tabs from the source line so the carets stay
        // under the right characters whatever the terminal's tab width.
        let start = loc.byte_in_line();
        let prefix: String = line_text[..start]
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let end = self.span.end.clamp(self.span.start, loc.line_end);
        let width = file
            .text
            .get(self.span.start.min(loc.line_end)..end)
            .map_or(0, |s| s.chars().count())
            .max(1);
        let _ = writeln!(out, "{pad}| {prefix}{}", "^".repeat(width));
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad}= help: {help}");
        }
        out
    }

    /// 1-based line and column (in characters) of the diagnostic's start,
    /// for tools that want a location without the rendered snippet.
    pub fn line_column(&self, sources: &Sources) -> Option<(usize, usize)> {
        let file = sources.files.get(self.file)?;
        let loc = locate(&file.text, self.span.start);
        Some((loc.line, loc.column))
    }
}

/// Where a byte offset falls in a text.
struct Location {
    line: usize,
    column: usize,
    line_start: usize,
    line_end: usize,
    offset: usize,
}

impl Location {
    fn byte_in_line(&self) -> usize {
        self.offset - self.line_start
    }
}

/// Finds the line and column of `offset`, clamped into the text and onto a
/// character boundary so a stray span can never make rendering panic.
fn locate(text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    // A CRLF file would otherwise print the `\r` into the snippet.
    let line_end = if text[line_start..line_end].ends_with('\r') {
        line_end - 1
    } else {
        line_end
    };
    let offset = offset.min(line_end);
    let line = text[..line_start].matches('\n').count() + 1;
    let column = text[line_start..offset].chars().count() + 1;
    Location {
        line,
        column,
        line_start,
        line_end,
        offset,
    }
}
