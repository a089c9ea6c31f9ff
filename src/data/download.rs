//! Fetching official files into the data folder.
//!
//! A download is written to a temporary file next to its destination, its md5 is
//! computed while it streams, and only a file whose md5 is the official one is renamed
//! into place: an interrupted or corrupted download never leaves a file under the final
//! name, and the temporary file is removed on every error path.

use super::digest::Hasher;
use super::DataError;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An official file: its name, where to get it (first address first; later ones are
/// mirrors tried in turn), and its published md5.
#[derive(Debug, Clone, Copy)]
pub struct Remote {
    pub file: &'static str,
    pub urls: &'static [&'static str],
    pub md5: &'static str,
}

/// Told how each download goes (the command line draws a bar from it; the library does not
/// print). One download at a time: `download_started`, `download_progressed` as bytes
/// arrive, `download_ended` whether it succeeded or not.
pub trait DownloadObserver: Sync {
    /// A download from `url` starts; `bytes` is its length when the server says it.
    fn download_started(&self, _url: &str, _bytes: Option<u64>) {}

    /// `bytes` more bytes arrived.
    fn download_progressed(&self, _bytes: u64) {}

    fn download_ended(&self) {}
}

/// Watches no download.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unobserved;

impl DownloadObserver for Unobserved {}

/// Downloads `remote` to `destination`, checking its md5 before it takes that name.
pub fn fetch(
    remote: &Remote,
    destination: &Path,
    progress: &dyn DownloadObserver,
) -> Result<(), DataError> {
    let dir = destination.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| DataError::write(dir, e))?;
    let mut reasons = Vec::new();
    for url in remote.urls {
        match fetch_one(url, remote.md5, destination, progress) {
            Ok(()) => return Ok(()),
            Err(reason) => reasons.push(format!("{url}: {reason}")),
        }
    }
    Err(DataError::Download {
        file: remote.file.to_string(),
        url: remote.urls[0].to_string(),
        md5: remote.md5.to_string(),
        destination: destination.display().to_string(),
        reasons: reasons.join("; "),
    })
}

/// One attempt from one address; the error is a reason for the final message.
fn fetch_one(
    url: &str,
    md5: &str,
    destination: &Path,
    progress: &dyn DownloadObserver,
) -> Result<(), String> {
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let length = response.body().content_length();
    let mut body = response.into_body().into_reader();
    let mut temp = TempFile::create(destination).map_err(|e| e.to_string())?;
    progress.download_started(url, length);
    let found = copy_hashing(&mut body, temp.file(), progress);
    progress.download_ended();
    let found = found.map_err(|e| e.to_string())?;
    if found != md5 {
        return Err(format!("md5 checksum: expected {md5}, found {found}"));
    }
    temp.persist(destination).map_err(|e| e.to_string())
}

/// Copies `reader` into `file`, returning the md5 of what was copied.
fn copy_hashing(
    reader: &mut impl Read,
    file: &mut File,
    progress: &dyn DownloadObserver,
) -> io::Result<String> {
    let mut hasher = Hasher::default();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n])?;
        progress.download_progressed(n as u64);
    }
    file.sync_all()?;
    Ok(hasher.finish().md5)
}

/// A file being written under a temporary name in its destination's folder (so that the
/// final rename stays on one file system), removed unless [`TempFile::persist`] is called.
pub struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    /// Creates `.<name>.<pid>.tmp` beside `destination`.
    pub fn create(destination: &Path) -> io::Result<Self> {
        let name = destination
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let path = destination.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let file = File::create(&path)?;
        Ok(TempFile {
            path,
            file,
            persisted: false,
        })
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Flushes to disk and renames to `destination` atomically.
    pub fn persist(mut self, destination: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.path, destination)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_file_disappears_unless_persisted() {
        let dir = std::env::temp_dir().join(format!("regstudy-temp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let destination = dir.join("kept.bin");
        let mut dropped = TempFile::create(&dir.join("dropped.bin")).unwrap();
        dropped.file().write_all(b"partial").unwrap();
        drop(dropped);
        let mut kept = TempFile::create(&destination).unwrap();
        kept.file().write_all(b"whole").unwrap();
        kept.persist(&destination).unwrap();
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("kept.bin")]);
        assert_eq!(fs::read(&destination).unwrap(), b"whole");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreachable_address_names_the_file_and_where_to_place_it() {
        let dir = std::env::temp_dir().join(format!("regstudy-fetch-{}", std::process::id()));
        let remote = Remote {
            file: "x.gz",
            urls: &["http://127.0.0.1:9/x.gz"],
            md5: "0123",
        };
        let destination = dir.join("x.gz");
        let err = fetch(&remote, &destination, &Unobserved)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.gz") && err.contains("md5 0123"), "{err}");
        assert!(err.contains(&destination.display().to_string()), "{err}");
        assert!(!destination.exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
