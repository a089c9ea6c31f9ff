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
            file: path.display().to_string(),
            source,
        }
    }

    /// A write error for `path`.
    pub(crate) fn write(path: &Path, source: io::Error) -> Self {
        DataError::Write {
            file: path.display().to_string(),
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
            file: file.into(),
            field: field.into(),
            expected: expected.into(),
            found: found.to_string(),
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
}

/// How a member of an archive is named in messages: `ARCHIVE:MEMBER`.
pub(crate) fn member_location(archive: &Path, member: &str) -> String {
    format!("{}:{member}", archive.display())
}
