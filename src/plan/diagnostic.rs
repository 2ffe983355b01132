//! Findings about a plan, each tied to `file:line:col`, rendered for people (with a
//! source snippet) or as JSON for CI annotations.

use std::fmt::Write as _;

use serde::Serialize;

use crate::plan::source::Position;

/// One problem found in a plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: &str, at: Position, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: at.line,
            column: at.column,
            message: message.into(),
        }
    }

    /// A problem with the file as a whole (missing, unreadable, not text).
    pub fn whole_file(file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// `file:line:col: message`, then the source line and a caret when the source is known.
    pub fn render(&self, source: Option<&str>) -> String {
        if self.line == 0 {
            return format!("{}: {}", self.file, self.message);
        }
        let mut out = format!(
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        );
        if let Some(text) = source.and_then(|s| s.lines().nth(self.line - 1)) {
            let gutter = self.line.to_string().len();
            let caret_pad: String = text
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = write!(
                out,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {}^",
                "", self.line, text, "", caret_pad
            );
        }
        out
    }
}

/// Orders findings by place, as editors and people read them.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| (a.line, a.column, &a.message).cmp(&(b.line, b.column, &b.message)));
}

/// The closest name by Jaro–Winkler similarity, if it is close enough to be a typo.
pub fn suggest(given: &str, names: &[String]) -> Option<String> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(given, n), n))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_and_snippet() {
        let d = Diagnostic::new("p.yaml", Position { line: 2, column: 3 }, "bad");
        assert_eq!(
            d.render(Some("a: 1\nb: zz\n")),
            "p.yaml:2:3: bad\n  |\n2 | b: zz\n  |   ^"
        );
        assert_eq!(
            Diagnostic::whole_file("x.yaml", "no such file").render(None),
            "x.yaml: no such file"
        );
    }
}
