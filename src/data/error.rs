//! The one error type of the data layer.
//!
//! Every message names the file it is about (for a member of an archive,
//! `ARCHIVE:MEMBER`), and, for a malformed file, the field and what was expected, so
//! that a user can fix the file without reading the code.

use std::io;
use std::path::Path;

/// Anything that can go wrong while finding, fetching, checking or reading a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read.
    #[error("cannot read {file}")]
    Read {
        file: String,
        #[source]
        source: io::Error,
    },
    /// A file or folder could not be written.
    #[error("cannot write {file}")]
    Write {
        file: String,
        #[source]
        source: io::Error,
    },
    /// A file is readable but its contents are not what its format requires.
    #[error("{file}: {field}: expected {expected}, found {found}")]
    Format {
        file: String,
        field: String,
        expected: String,
        found: String,
    },
    /// An image could not be decoded.
    #[error("{file}: cannot decode the image (expected a JPEG or PNG file): {reason}")]
    Image { file: String, reason: String },
    /// An archive member whose path could escape the destination folder.
    #[error("{archive}: member `{member}`: expected a relative path without `..`, found {reason}")]
    UnsafeMember {
        archive: String,
        member: String,
        reason: String,
    },
    /// A data set file is absent and may not be downloaded.
    #[error("{dataset}: {file} not found (looked in {looked}); {hint}")]
    Missing {
        dataset: String,
        file: String,
        looked: String,
        hint: String,
    },
    /// A download failed; the message says which file to place where by hand.
    #[error(
        "could not download {file} ({reasons}); without a network, download it from {url} \
         yourself (md5 {md5}) and place it at {destination}"
    )]
    Download {
        file: String,
        url: String,
        md5: String,
        destination: String,
        reasons: String,
    },
    /// A file's digest differs from the official one.
    #[error("{file}: md5 checksum: expected {expected}, found {found}")]
    Checksum {
        file: String,
        expected: String,
        found: String,
    },
    /// A data set name that is not one of the accepted forms.
    #[error(
        "unknown data set `{input}`: expected one of cifar10, mnist, fashion-mnist, \
         tiny-imagenet, folder:PATH"
    )]
    Spec { input: String },
    /// An argument outside its valid range (a split fraction, a batch size...).
    #[error("{what}: expected {expected}, found {found}")]
    Invalid {
        what: String,
        expected: String,
        found: String,
    },
}

impl DataError {
    /// A read error for `path`.
    pub(crate) fn read(path: &Path, source: io::Error) -> Self {
        DataError::Read {
            file: shown(&path.display().to_string()),
            source,
        }
    }

    /// A write error for `path`.
    pub(crate) fn write(path: &Path, source: io::Error) -> Self {
        DataError::Write {
            file: shown(&path.display().to_string()),
            source,
        }
    }

    /// A format error: `file`'s `field` should be `expected` but is `found`.
    pub(crate) fn format(
        file: impl Into<String>,
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl ToString,
    ) -> Self {
        DataError::Format {
            file: shown(&file.into()),
            field: shown(&field.into()),
            expected: expected.into(),
            found: shown(&found.to_string()),
        }
    }

    /// An argument error.
    pub(crate) fn invalid(what: &str, expected: &str, found: impl ToString) -> Self {
        DataError::Invalid {
            what: what.to_string(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    /// An image that cannot be decoded: `reason` comes from a decoder and may quote the
    /// file's bytes.
    pub(crate) fn image(file: &str, reason: impl ToString) -> Self {
        DataError::Image {
            file: shown(file),
            reason: shown(&reason.to_string()),
        }
    }

    /// A declared or actual size above one of the [`limits`](super::limits): `what`
    /// says which size, `limit` the largest accepted and why.
    pub(crate) fn too_large(file: &str, what: &str, limit: &str, found: impl ToString) -> Self {
        DataError::format(file, what, format!("at most {limit}"), found)
    }
}

/// The longest text quoted from a file in a message.
const SHOWN_CHARS: usize = 200;

/// Text taken from a file, made safe to print: control characters are escaped (a
/// garbage archive must not write binary to a terminal) and long text is cut.
pub(crate) fn shown(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl DataError {
    /// An archive member whose name is unsafe.
    pub(crate) fn unsafe_member(archive: &Path, member: &str, reason: &str) -> Self {
        DataError::UnsafeMember {
            archive: shown(&archive.display().to_string()),
            member: shown(member),
            reason: reason.to_string(),
        }
    }
}

/// How a member of an archive is named in messages: `ARCHIVE:MEMBER`.
pub(crate) fn member_location(archive: &Path, member: &str) -> String {
    format!("{}:{member}", archive.display())
}
