//! Reading a tree of files from a folder, a `.tar`, a `.tar.gz` or a `.zip`, without
//! extracting it.
//!
//! Archives are read directly: the members a loader needs are held in memory (still
//! compressed, for a zip, so that decompression runs in parallel with decoding). Member
//! paths are checked before anything else: an archive with an absolute path or a `..`
//! component is refused as a whole, as an extractor would have to.
//!
//! Member names are relative paths with `/` separators, without a leading `./`. A name
//! that is not UTF-8 is kept apart from every other: its valid text is kept, each other
//! byte is written `\xNN` and a backslash is doubled.
//!
//! What a member may expand to is bounded (see [`limits`]): a member's declared size is
//! checked before it is read, a compressed archive may not expand beyond its
//! [`limits::expansion_allowance`], and images are decoded against a budget set by the
//! tree's size on disk.

use super::decode::DecodeBudget;
use super::digest::{self, FileDigest, HashingReader};
use super::error::member_location;
use super::limits::{self, MAX_MEMBER_BYTES};
use super::DataError;
use super::Source;
use flate2::read::{DeflateDecoder, MultiGzDecoder};
use rayon::prelude::*;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Mutex;

/// One file of a tree.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    content: Content,
}

#[derive(Debug)]
enum Content {
    /// A file of a folder tree, read when needed.
    Disk(PathBuf),
    /// The bytes of an archive member.
    Bytes(Vec<u8>),
    /// A deflated zip member: compressed bytes, uncompressed size and CRC-32.
    Deflated { data: Vec<u8>, size: u64, crc: u32 },
}

/// A folder or archive and the members of it that a loader asked for, sorted by name.
#[derive(Debug)]
pub struct Tree {
    pub path: PathBuf,
    pub members: Vec<Member>,
    /// The archive's own digests; `None` for a folder.
    archive_digest: Option<FileDigest>,
    /// For a folder: `(name, bytes, sha256)` of every member read so far.
    read_log: Mutex<Vec<(String, u64, String)>>,
    /// Bytes on disk: the archive's size, or the sum of the kept files' sizes.
    stored_bytes: u64,
}

impl Tree {
    /// Opens `path` (a folder, `.tar`, `.tar.gz`/`.tgz` or `.zip`, told apart by content)
    /// and keeps the regular files whose name satisfies `keep`.
    pub fn open(path: &Path, keep: &(dyn Fn(&str) -> bool + Sync)) -> Result<Tree, DataError> {
        let metadata = fs::metadata(path).map_err(|e| DataError::read(path, e))?;
        let stored = metadata.len();
        let (mut members, archive_digest, stored_bytes) = if metadata.is_dir() {
            let (members, stored) = walk_folder(path, keep)?;
            (members, None, stored)
        } else if is_zip(path)? {
            let (members, digest) = read_zip(path, stored, keep)?;
            (members, Some(digest), stored)
        } else {
            let (members, digest) = read_tar(path, stored, keep)?;
            (members, Some(digest), stored)
        };
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Tree {
            path: path.to_path_buf(),
            members,
            archive_digest,
            read_log: Mutex::new(Vec::new()),
            stored_bytes,
        })
    }

    /// The budget for decoding this tree's images (see [`limits::decode_allowance`]).
    pub fn decode_budget(&self) -> DecodeBudget {
        DecodeBudget::for_stored(self.stored_bytes)
    }

    /// How a member is named in messages.
    pub fn location(&self, member: &str) -> String {
        match self.archive_digest {
            Some(_) => member_location(&self.path, member),
            None => self.path.join(member).display().to_string(),
        }
    }

    /// The member called `name`, if the tree has it.
    pub fn get(&self, name: &str) -> Option<&Member> {
        let index = self.members.binary_search_by(|m| m.name.as_str().cmp(name));
        index.ok().map(|i| &self.members[i])
    }

    /// The bytes of a member (decompressed, CRC checked).
    pub fn read<'a>(&self, member: &'a Member) -> Result<Cow<'a, [u8]>, DataError> {
        let location = || self.location(&member.name);
        match &member.content {
            Content::Bytes(bytes) => Ok(Cow::Borrowed(bytes)),
            Content::Disk(path) => {
                let bytes = read_limited(path, &location())?;
                self.log_read(&member.name, &bytes);
                Ok(Cow::Owned(bytes))
            }
            Content::Deflated { data, size, crc } => {
                inflate(data, *size, *crc, &location()).map(Cow::Owned)
            }
        }
    }

    /// The text of a member, as UTF-8.
    pub fn read_text(&self, member: &Member) -> Result<String, DataError> {
        let bytes = self.read(member)?;
        String::from_utf8(bytes.into_owned()).map_err(|_| {
            DataError::format(
                self.location(&member.name),
                "text",
                "UTF-8",
                "invalid bytes",
            )
        })
    }

    /// Reads `members` in parallel and maps each with `f`, keeping their order.
    pub fn map<T: Send>(
        &self,
        members: &[&Member],
        f: impl Fn(&Member, &[u8]) -> Result<T, DataError> + Sync,
    ) -> Result<Vec<T>, DataError> {
        members
            .par_iter()
            .map(|member| f(member, &self.read(member)?))
            .collect()
    }

    /// What was read: the archive with its digests, or for a folder the digest of the
    /// manifest of the files read (see [`Source::sha256`]).
    pub fn source(&self, official_md5: Option<&str>) -> Source {
        if let Some(digest) = &self.archive_digest {
            return Source::file(&self.path, digest.clone(), official_md5);
        }
        let mut log = self
            .read_log
            .lock()
            .map(|log| log.clone())
            .unwrap_or_default();
        log.sort();
        log.dedup();
        let manifest: String = log
            .iter()
            .map(|(name, bytes, sha)| format!("{name} {bytes} {sha}\n"))
            .collect();
        Source {
            path: self.path.display().to_string(),
            bytes: log.iter().map(|(_, bytes, _)| bytes).sum(),
            files: log.len() as u64,
            sha256: digest::sha256_hex(manifest.as_bytes()),
            md5: None,
            official: None,
        }
    }

    fn log_read(&self, name: &str, bytes: &[u8]) {
        let entry = (
            name.to_string(),
            bytes.len() as u64,
            digest::sha256_hex(bytes),
        );
        if let Ok(mut log) = self.read_log.lock() {
            log.push(entry);
        }
    }
}

/// Checks an archive member's path (raw bytes, as the archive stores it) and returns it
/// normalized (`/` separators, no `./`, see the module's note on names that are not
/// UTF-8). Refuses absolute paths, drive prefixes and `..` components.
pub fn check_member_name(archive: &Path, raw: &[u8]) -> Result<String, DataError> {
    let refuse =
        |reason: &str| DataError::unsafe_member(archive, &String::from_utf8_lossy(raw), reason);
    let unified: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect();
    let drive = unified.len() >= 2 && unified[0].is_ascii_alphabetic() && unified[1] == b':';
    if unified.starts_with(b"/") || drive {
        return Err(refuse("an absolute path"));
    }
    let mut parts = Vec::new();
    for part in unified.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(refuse("a `..` component")),
            part => parts.push(component_text(part)),
        }
    }
    Ok(parts.join("/"))
}

/// One component of a path as text, distinct for distinct bytes: UTF-8 text as it is, a
/// backslash doubled, any other byte as `\xNN`.
fn component_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                c => text.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(text, "\\x{byte:02x}");
        }
    }
    text
}

/// Reads a file of a folder tree, refusing one above [`MAX_MEMBER_BYTES`].
fn read_limited(path: &Path, location: &str) -> Result<Vec<u8>, DataError> {
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let size = file.metadata().map_err(|e| DataError::read(path, e))?.len();
    check_member_size(size, location)?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_MEMBER_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::read(path, e))?;
    check_member_size(bytes.len() as u64, location)?;
    Ok(bytes)
}

/// Refuses a member larger than [`MAX_MEMBER_BYTES`].
fn check_member_size(size: u64, location: &str) -> Result<(), DataError> {
    if size <= MAX_MEMBER_BYTES {
        return Ok(());
    }
    let limit = format!("{MAX_MEMBER_BYTES} bytes, the limit for one file of a data set");
    Err(DataError::too_large(
        location,
        "size",
        &limit,
        format!("{size} bytes"),
    ))
}

/// Whether a file starts with the zip local-header signature.
fn is_zip(path: &Path) -> Result<bool, DataError> {
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let n = file
        .read(&mut magic)
        .map_err(|e| DataError::read(path, e))?;
    Ok(n == 4 && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06"))
}

/// Lists a folder recursively (symbolic links to files are followed, to folders not),
/// with the total size of the files kept.
fn walk_folder(
    root: &Path,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(Vec<Member>, u64), DataError> {
    let mut members = Vec::new();
    let mut stored = 0u64;
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| DataError::read(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::read(&dir, e))?;
            let path = entry.path();
            let file_name = component_text(entry.file_name().as_encoded_bytes());
            let name = format!("{prefix}{file_name}");
            let kind = entry.file_type().map_err(|e| DataError::read(&path, e))?;
            if kind.is_dir() {
                pending.push((path, format!("{name}/")));
            } else if keep(&name) {
                let size = fs::metadata(&path).map_or(0, |m| m.len());
                stored = stored.saturating_add(size);
                members.push(Member {
                    name,
                    content: Content::Disk(path),
                });
            }
        }
    }
    Ok((members, stored))
}

/// A reader that fails once more than `left` bytes have come through it, and says so in
/// `exceeded` (the tar reader reports read errors in its own words).
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 && !buf.is_empty() {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded.set(true);
            return Err(io::Error::other("decompressed size limit reached"));
        }
        let n = buf.len().min(self.left.try_into().unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..n])?;
        self.left -= read as u64;
        Ok(read)
    }
}

/// Reads a `.tar` or `.tar.gz` (gzip told by its magic bytes; concatenated gzip members
/// are read as one stream) in one pass, hashing the archive on the way. A compressed
/// archive may expand to its [`limits::expansion_allowance`].
fn read_tar(
    path: &Path,
    stored: u64,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(Vec<Member>, FileDigest), DataError> {
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let mut reader = HashingReader::new(BufReader::with_capacity(1 << 20, file));
    let mut magic = [0u8; 2];
    reader
        .read_exact(&mut magic)
        .map_err(|e| DataError::read(path, e))?;
    let stream = magic.as_slice().chain(reader);
    let (members, reader) = if magic == [0x1f, 0x8b] {
        let allowance = limits::expansion_allowance(stored);
        let exceeded = Rc::new(Cell::new(false));
        let capped = Capped {
            inner: MultiGzDecoder::new(stream),
            left: allowance,
            exceeded: exceeded.clone(),
        };
        let mut archive = tar::Archive::new(capped);
        let members = tar_members(path, &mut archive, keep);
        if exceeded.get() {
            return Err(expansion_error(path, stored, allowance));
        }
        let members = members?;
        let capped = archive.into_inner();
        (members, capped.inner.into_inner().into_inner().1)
    } else {
        let mut archive = tar::Archive::new(stream);
        let members = tar_members(path, &mut archive, keep)?;
        (members, archive.into_inner().into_inner().1)
    };
    let digest = reader
        .finish_stream()
        .map_err(|e| DataError::read(path, e))?;
    Ok((members, digest))
}

/// The error for an archive that expands beyond its allowance.
fn expansion_error(path: &Path, stored: u64, allowance: u64) -> DataError {
    let limit = format!(
        "{allowance} bytes for an archive of {stored} bytes ({} MiB plus {} times its size)",
        limits::EXPANSION_SLACK >> 20,
        limits::EXPANSION_RATIO
    );
    DataError::too_large(
        &path.display().to_string(),
        "decompressed size",
        &limit,
        "more",
    )
}

/// The regular-file members of a tar stream that `keep` selects.
fn tar_members<R: Read>(
    path: &Path,
    archive: &mut tar::Archive<R>,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<Member>, DataError> {
    let not_tar = |e: std::io::Error| {
        DataError::format(
            path.display().to_string(),
            "archive",
            "a tar or tar.gz archive",
            e,
        )
    };
    let mut members = Vec::new();
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        let name = check_member_name(path, &entry.path_bytes())?;
        if !entry.header().entry_type().is_file() || !keep(&name) {
            continue;
        }
        let location = member_location(path, &name);
        check_member_size(entry.size(), &location)?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::format(&location, "data", "a complete member", e))?;
        members.push(Member {
            name,
            content: Content::Bytes(bytes),
        });
    }
    Ok(members)
}

/// Reads the selected members of a zip (stored or deflated), hashing the archive in
/// parallel.
fn read_zip(
    path: &Path,
    stored: u64,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(Vec<Member>, FileDigest), DataError> {
    let (members, digest) =
        rayon::join(|| zip_members(path, stored, keep), || digest::of_file(path));
    Ok((members?, digest?))
}

/// The selected members of a zip, still compressed. Each member's declared size is
/// checked, and so is their sum against the archive's
/// [`limits::expansion_allowance`], before anything is read.
fn zip_members(
    path: &Path,
    stored: u64,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<Member>, DataError> {
    let not_zip = |e: zip::result::ZipError| {
        DataError::format(path.display().to_string(), "archive", "a zip archive", e)
    };
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(not_zip)?;
    let allowance = limits::expansion_allowance(stored);
    let mut declared = 0u64;
    let mut members = Vec::new();
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(not_zip)?;
        let name = check_member_name(path, entry.name_raw())?;
        if entry.is_dir() || !keep(&name) {
            continue;
        }
        let location = member_location(path, &name);
        check_member_size(entry.size().max(entry.compressed_size()), &location)?;
        declared = declared.saturating_add(entry.size());
        if declared > allowance {
            return Err(expansion_error(path, stored, allowance));
        }
        let mut data = Vec::with_capacity(entry.compressed_size().min(stored) as usize);
        let (size, crc, compression) = (entry.size(), entry.crc32(), entry.compression());
        entry
            .take(stored)
            .read_to_end(&mut data)
            .map_err(|e| DataError::format(&location, "data", "a complete member", e))?;
        let content = match compression {
            zip::CompressionMethod::Stored => Content::Bytes(data),
            zip::CompressionMethod::Deflated => Content::Deflated { data, size, crc },
            other => {
                return Err(DataError::format(
                    location,
                    "compression method",
                    "stored or deflate",
                    format!("{other:?}"),
                ));
            }
        };
        members.push(Member { name, content });
    }
    Ok(members)
}

/// Decompresses a deflated zip member and checks its size and CRC-32.
/// The size was checked against [`MAX_MEMBER_BYTES`] when the archive was opened, and
/// the stream is cut off one byte after it.
fn inflate(data: &[u8], size: u64, crc: u32, location: &str) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::with_capacity(size.min(MAX_MEMBER_BYTES) as usize);
    DeflateDecoder::new(data)
        .take(size.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| DataError::format(location, "deflate data", "a complete deflate stream", e))?;
    if out.len() as u64 != size {
        let found = match out.len() as u64 > size {
            true => "more bytes (the member inflates beyond its declared size)".to_string(),
            false => format!("{} bytes", out.len()),
        };
        return Err(DataError::format(
            location,
            "size",
            format!("{size} bytes, the size the archive declares"),
            found,
        ));
    }
    let mut check = flate2::Crc::new();
    check.update(&out);
    if check.sum() != crc {
        return Err(DataError::format(
            location,
            "CRC-32",
            format!("{crc:08x}"),
            format!("{:08x}", check.sum()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_normalized() {
        let archive = Path::new("a.tar");
        assert_eq!(
            check_member_name(archive, b"./train/cat/1.png").unwrap(),
            "train/cat/1.png"
        );
        assert_eq!(
            check_member_name(archive, b"train\\dog\\2.png").unwrap(),
            "train/dog/2.png"
        );
    }

    #[test]
    fn absolute_and_parent_member_paths_are_refused_with_the_archive_name() {
        let archive = Path::new("/data/a.tar");
        for raw in [
            "/etc/passwd",
            "../evil.png",
            "train/../../x.png",
            "\\windows\\x",
        ] {
            let err = check_member_name(archive, raw.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains("/data/a.tar") && err.contains(raw), "{err}");
        }
    }

    #[test]
    fn a_corrupt_deflated_member_is_reported_with_its_location() {
        let err = inflate(b"\xff\xff\xff", 3, 0, "z.zip:a.png")
            .unwrap_err()
            .to_string();
        assert!(err.contains("z.zip:a.png"), "{err}");
    }
}
