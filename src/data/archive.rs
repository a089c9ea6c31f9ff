//! Reading a tree of files from a folder, a `.tar`, a `.tar.gz` or a `.zip`, without
//! extracting it.
//!
//! Archives are read directly: the members a loader needs are held in memory (still
//! compressed, for a zip, so that decompression runs in parallel with decoding). Member
//! paths are checked before anything else: an archive with an absolute path or a `..`
//! component is refused as a whole, as an extractor would have to.
//!
//! Member names are relative paths with `/` separators, without a leading `./`.

use super::digest::{self, FileDigest, HashingReader};
use super::error::member_location;
use super::DataError;
use super::Source;
use flate2::read::{DeflateDecoder, GzDecoder};
use rayon::prelude::*;
use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};
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
}

impl Tree {
    /// Opens `path` (a folder, `.tar`, `.tar.gz`/`.tgz` or `.zip`, told apart by content)
    /// and keeps the regular files whose name satisfies `keep`.
    pub fn open(path: &Path, keep: &(dyn Fn(&str) -> bool + Sync)) -> Result<Tree, DataError> {
        let metadata = fs::metadata(path).map_err(|e| DataError::read(path, e))?;
        let (members, archive_digest) = if metadata.is_dir() {
            (walk_folder(path, keep)?, None)
        } else if is_zip(path)? {
            let (members, digest) = read_zip(path, keep)?;
            (members, Some(digest))
        } else {
            let (members, digest) = read_tar(path, keep)?;
            (members, Some(digest))
        };
        let mut members = members;
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Tree {
            path: path.to_path_buf(),
            members,
            archive_digest,
            read_log: Mutex::new(Vec::new()),
        })
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
                let bytes = fs::read(path).map_err(|e| DataError::read(path, e))?;
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

/// Checks an archive member's path and returns it normalized (`/` separators, no `./`).
/// Refuses absolute paths, drive prefixes and `..` components.
pub fn check_member_name(archive: &Path, raw: &str) -> Result<String, DataError> {
    let refuse = |reason: &str| DataError::UnsafeMember {
        archive: archive.display().to_string(),
        member: raw.to_string(),
        reason: reason.to_string(),
    };
    let unified = raw.replace('\\', "/");
    if unified.starts_with('/') || Path::new(raw).is_absolute() {
        return Err(refuse("an absolute path"));
    }
    let mut parts = Vec::new();
    for component in Path::new(&unified).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("a `..` component")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("an absolute path")),
        }
    }
    Ok(parts.join("/"))
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

/// Lists a folder recursively (symbolic links to files are followed, to folders not).
fn walk_folder(
    root: &Path,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<Member>, DataError> {
    let mut members = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| DataError::read(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::read(&dir, e))?;
            let path = entry.path();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type().map_err(|e| DataError::read(&path, e))?;
            if kind.is_dir() {
                pending.push((path, format!("{name}/")));
            } else if keep(&name) {
                members.push(Member {
                    name,
                    content: Content::Disk(path),
                });
            }
        }
    }
    Ok(members)
}

/// Reads a `.tar` or `.tar.gz` (gzip told by its magic bytes) in one pass, hashing the
/// archive on the way.
fn read_tar(
    path: &Path,
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
        let mut archive = tar::Archive::new(GzDecoder::new(stream));
        let members = tar_members(path, &mut archive, keep)?;
        (members, archive.into_inner().into_inner().into_inner().1)
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
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = check_member_name(path, &raw)?;
        if !entry.header().entry_type().is_file() || !keep(&name) {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(|e| {
            DataError::format(member_location(path, &name), "data", "a complete member", e)
        })?;
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
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(Vec<Member>, FileDigest), DataError> {
    let (members, digest) = rayon::join(|| zip_members(path, keep), || digest::of_file(path));
    Ok((members?, digest?))
}

fn zip_members(
    path: &Path,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<Member>, DataError> {
    let not_zip = |e: zip::result::ZipError| {
        DataError::format(path.display().to_string(), "archive", "a zip archive", e)
    };
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(not_zip)?;
    let mut members = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index_raw(index).map_err(not_zip)?;
        let name = check_member_name(path, &String::from_utf8_lossy(entry.name_raw()))?;
        if entry.is_dir() || !keep(&name) {
            continue;
        }
        let mut data = Vec::with_capacity(entry.compressed_size() as usize);
        let location = member_location(path, &name);
        entry
            .read_to_end(&mut data)
            .map_err(|e| DataError::format(&location, "data", "a complete member", e))?;
        let content = match entry.compression() {
            zip::CompressionMethod::Stored => Content::Bytes(data),
            zip::CompressionMethod::Deflated => Content::Deflated {
                data,
                size: entry.size(),
                crc: entry.crc32(),
            },
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
fn inflate(data: &[u8], size: u64, crc: u32, location: &str) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::with_capacity(size.min(1 << 30) as usize);
    DeflateDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| DataError::format(location, "deflate data", "a complete deflate stream", e))?;
    if out.len() as u64 != size {
        return Err(DataError::format(
            location,
            "size",
            format!("{size} bytes"),
            format!("{} bytes", out.len()),
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
            check_member_name(archive, "./train/cat/1.png").unwrap(),
            "train/cat/1.png"
        );
        assert_eq!(
            check_member_name(archive, "train\\dog\\2.png").unwrap(),
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
            let err = check_member_name(archive, raw).unwrap_err().to_string();
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
