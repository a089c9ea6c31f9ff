//! Names that become folder and file names: a study's, a method's, a group's.

use std::fmt;
use std::str::FromStr;

/// The longest name accepted, in bytes: a folder name must fit the file system's limit of
/// 255 bytes with room for suffixes such as `.toml` or `-trial-0001`.
pub const MAX_NAME_LEN: usize = 100;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a name of letters, digits, `-`, `_`, `.` or `+`, 1 to {MAX_NAME_LEN} characters and not only dots, got `{shown}`")]
pub struct NameError {
    /// The refused name, with control characters escaped so a terminal shows it safely.
    shown: String,
}

/// Checks that `name` is safe as one path component on every platform: ASCII letters,
/// digits, `-`, `_`, `.`, `+`; not empty; at most [`MAX_NAME_LEN`] bytes; not only dots
/// (`.` and `..` name the current and the parent folder). Separators and control characters
/// can therefore never reach a path.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.chars().all(|c| c == '.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NameError {
            shown: name.escape_debug().to_string(),
        })
    }
}

/// A study's name, checked by [`check_name`]: it names the study's run folder and its report
/// folder, so it can be joined to a path without escaping it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StudyName(String);

impl StudyName {
    pub fn new(name: &str) -> Result<StudyName, NameError> {
        check_name(name)?;
        Ok(StudyName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for StudyName {
    type Err = NameError;

    fn from_str(text: &str) -> Result<StudyName, NameError> {
        StudyName::new(text)
    }
}

impl fmt::Display for StudyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StudyName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for StudyName {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_accepted() {
        for name in ["deepa2025", "l2-dropout_bn", "v1.2+fix", "a", "..a", "a.."] {
            assert!(StudyName::new(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn names_that_could_leave_their_folder_are_refused() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for name in [
            "", ".", "..", "...", "a/b", "/abs", "a\\b", "a\nb", "a\u{7}", "é", "a b", &long,
        ] {
            assert!(StudyName::new(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn a_refused_name_is_shown_with_control_characters_escaped() {
        let err = StudyName::new("a\u{1b}[2Jb").unwrap_err().to_string();
        assert!(err.contains("a\\u{1b}[2Jb"), "{err}");
    }
}
