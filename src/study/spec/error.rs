//! Located errors: a mistake in a study spec with its file, line, column and field.

use super::StudySpec;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A mistake in a study spec, located: the file, the line and column where the value is
/// (when known), the field (as a path such as `method[2].grid.l1`) and what was expected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct StudySpecError {
    pub file: PathBuf,
    /// 1-based line and column.
    pub position: Option<(usize, usize)>,
    pub field: String,
    pub problem: String,
}

impl fmt::Display for StudySpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": field `{}`: {}", self.field, self.problem)
    }
}

/// Where a value sits in the file: its byte range, to turn into a line and column.
pub(super) type Span = Option<Range<usize>>;

/// Turns byte offsets into line and column numbers and builds located errors.
pub(super) struct Locator<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
}

impl Locator<'_> {
    pub(super) fn error(
        &self,
        span: Span,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> StudySpecError {
        StudySpecError {
            file: self.file.to_path_buf(),
            position: span.map(|s| self.position(s.start)),
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// A TOML error located at the key it is about.
    pub(super) fn toml_error(&self, e: &toml::de::Error) -> StudySpecError {
        let span = e.span();
        let field = span
            .clone()
            .map_or_else(String::new, |s| self.key_at(s.start));
        self.error(span, field, e.message().trim().to_string())
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// The key an error at `offset` is about: the key of `key = value` when the offset is
    /// in the value, else the word at the offset (an "unknown field" error points at the key).
    pub(super) fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let before = &self.text[line_start..offset];
        if let Some((key, _)) = before.split_once('=') {
            return key.trim().trim_matches('"').to_string();
        }
        self.word_at(offset)
    }

    /// The bare key (letters, digits, `_`, `-`) that starts at byte `offset`.
    pub(super) fn word_at(&self, offset: usize) -> String {
        self.text[offset.min(self.text.len())..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .collect()
    }
}

impl StudySpec {
    /// An error about `option` in the trials of group `g`, method `m`, point `p`, located at
    /// the most specific place that set the option (point, method, group, base); at the
    /// method when none did.
    pub fn error_at(
        &self,
        g: usize,
        m: usize,
        p: usize,
        option: &str,
        problem: impl Into<String>,
    ) -> StudySpecError {
        let candidates = [
            format!("method[{m}].points[{p}].{option}"),
            format!("method[{m}].grid.{option}"),
            format!("method[{m}].set.{option}"),
            format!("group[{g}].set.{option}"),
            format!("base.{option}"),
        ];
        let found = candidates
            .iter()
            .find_map(|path| self.origins.get(path).map(|at| (path.clone(), *at)));
        let (field, position) = match found {
            Some((path, at)) => (path, Some(at)),
            None => {
                let method = format!("method[{m}]");
                let field = if option.is_empty() {
                    method.clone()
                } else {
                    format!("base.{option}")
                };
                (field, self.origins.get(&method).copied())
            }
        };
        StudySpecError {
            file: self.file.clone(),
            position,
            field,
            problem: problem.into(),
        }
    }
}

/// The `RunConfig` field a `regstudy train` option sets (`--l1-mode` sets `l1_mode`,
/// `--layer-penalty` sets `layer_penalties`).
pub(super) fn field_of_option(option: &str) -> String {
    match option {
        "layer-penalty" => "layer_penalties".into(),
        other => other.replace('-', "_"),
    }
}
