//! File writing that never leaves a half-written file behind: single files
//! ([`write_atomic`]) and whole folders ([`StagedDir`]).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: to a temporary file in the same folder, flushed to disk,
/// then renamed over `path`. A crash leaves either the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether `name` is the temporary file of a [`write_atomic`] that was interrupted
/// (`.NAME.PID.tmp`): it holds no finished content, so a folder of nothing else is empty.
pub fn is_atomic_write_leftover(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let Some(inner) = name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_suffix(".tmp"))
    else {
        return false;
    };
    inner.rsplit_once('.').is_some_and(|(file, pid)| {
        !file.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A folder written whole beside its target, then swapped in at once, so that the target
/// holds either its old content or the new, whole, at every moment, even if the process is
/// killed.
///
/// The new content is written into `.NAME.tmp-PID` beside the target `NAME`. [`commit`]
/// exchanges the two folders in one step (Linux `renameat2(RENAME_EXCHANGE)`), then removes
/// the old content, now under the temporary name. Where the exchange is not supported, the
/// target is first renamed to `.NAME.old-PID` and the new folder renamed into its place:
/// between those two renames the target is absent, and the old content whole under its
/// `.old` name.
///
/// Leftovers of a killed process (whose PID no longer runs) are repaired when the next
/// [`StagedDir::new`] for the same target starts: an `.old` folder is renamed back when the
/// target is absent, and removed otherwise; a `.tmp` folder (a partial new content, or an
/// old one not yet removed) is removed. Dropping an uncommitted `StagedDir` removes its
/// folder.
///
/// [`commit`]: StagedDir::commit
#[derive(Debug)]
pub struct StagedDir {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Repairs what a killed writer of `target` left, then creates an empty staging folder
    /// beside it (and `target`'s parent folders if needed). `target` must end in a folder
    /// name (not `.`, `..` or `/`).
    pub fn new(target: &Path) -> std::io::Result<Self> {
        let (parent, name) = split(target)?;
        std::fs::create_dir_all(&parent)?;
        repair(&parent, &name, target)?;
        let staging = parent.join(leftover_name(&name, "tmp", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir(&staging)?;
        Ok(StagedDir {
            target: target.to_path_buf(),
            staging,
            committed: false,
        })
    }

    /// The folder to fill.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Swaps the filled folder in for the target, after flushing it to disk.
    pub fn commit(mut self) -> std::io::Result<()> {
        sync_tree(&self.staging)?;
        if !self.target.exists() {
            std::fs::rename(&self.staging, &self.target)?;
        } else if exchange(&self.staging, &self.target).is_ok() {
            // The staging name now holds the old content.
            std::fs::remove_dir_all(&self.staging)?;
        } else {
            let (parent, name) = split(&self.target)?;
            let old = parent.join(leftover_name(&name, "old", std::process::id()));
            std::fs::rename(&self.target, &old)?;
            std::fs::rename(&self.staging, &self.target)?;
            std::fs::remove_dir_all(&old)?;
        }
        self.committed = true;
        if let Some(parent) = self.target.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// `target`'s parent folder (`.` for a bare name) and its last component.
fn split(target: &Path) -> std::io::Result<(PathBuf, OsString)> {
    let name = target.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path does not end in a folder name",
        )
    })?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_os_string()))
}

/// `.NAME.KIND-PID`.
fn leftover_name(name: &std::ffi::OsStr, kind: &str, pid: u32) -> OsString {
    let mut text = OsString::from(".");
    text.push(name);
    text.push(format!(".{kind}-{pid}"));
    text
}

/// The kind (`tmp` or `old`) and PID of a leftover of `name`, if `entry` is one.
fn parse_leftover(entry: &std::ffi::OsStr, name: &std::ffi::OsStr) -> Option<(String, u32)> {
    use std::os::unix::ffi::OsStrExt;
    let rest = entry.as_bytes().strip_prefix(b".")?;
    let rest = rest.strip_prefix(name.as_bytes())?.strip_prefix(b".")?;
    let text = std::str::from_utf8(rest).ok()?;
    let (kind, pid) = text.split_once('-')?;
    matches!(kind, "tmp" | "old").then_some(())?;
    Some((kind.to_string(), pid.parse().ok()?))
}

/// Whether process `pid` runs (or may: a process of another user).
fn running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Restores or removes the leftovers of killed writers of `target` (see [`StagedDir`]).
fn repair(parent: &Path, name: &std::ffi::OsStr, target: &Path) -> std::io::Result<()> {
    let mut leftovers: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(parent)? {
        let entry = entry?;
        if let Some((kind, pid)) = parse_leftover(&entry.file_name(), name) {
            if pid != std::process::id() && !running(pid) {
                leftovers.push((kind, entry.path()));
            }
        }
    }
    // Restore an old content first: the target is absent only between the two renames.
    leftovers.sort();
    for (kind, path) in leftovers {
        if kind == "old" && !target.exists() {
            std::fs::rename(&path, target)?;
        } else {
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(())
}

/// Swaps the folders `a` and `b` in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Flushes every file under `dir`, and the folders themselves, to disk.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        } else {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_temporary_files_of_atomic_writes_are_leftovers() {
        for name in [".owner.json.123.tmp", ".config.toml.9.tmp"] {
            assert!(is_atomic_write_leftover(name.as_ref()), "{name}");
        }
        for name in [
            "owner.json",
            ".owner.json.tmp",
            "..1.tmp",
            ".a.x1.tmp",
            ".report.tmp-12",
        ] {
            assert!(!is_atomic_write_leftover(name.as_ref()), "{name}");
        }
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("regstudy-fsio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.bin");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("regstudy-fsio-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_staged_folder_replaces_the_target_whole_and_leaves_nothing_beside_it() {
        let dir = scratch("staged");
        let target = dir.join("report");
        for content in ["old", "new"] {
            let staged = StagedDir::new(&target).unwrap();
            std::fs::write(staged.path().join(format!("{content}.md")), content).unwrap();
            staged.commit().unwrap();
        }
        assert_eq!(names(&target), ["new.md"]);
        assert_eq!(names(&dir), ["report"]);
        let abandoned = StagedDir::new(&target).unwrap();
        std::fs::write(abandoned.path().join("half.md"), "x").unwrap();
        drop(abandoned);
        assert_eq!(names(&dir), ["report"], "an uncommitted folder is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_leftovers_of_a_killed_writer_are_restored_or_removed() {
        let dir = scratch("leftovers");
        let target = dir.join("report");
        // A writer killed between its two renames: the target is absent, the old content
        // is whole under its `.old` name, the new one under `.tmp`. PID 999999999 is above
        // Linux's largest (2^22), so it names no running process.
        let old = dir.join(".report.old-999999999");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("old.md"), "old").unwrap();
        std::fs::create_dir_all(dir.join(".report.tmp-999999999")).unwrap();
        std::fs::create_dir_all(dir.join(".other.tmp-999999999")).unwrap();
        let staged = StagedDir::new(&target).unwrap();
        assert_eq!(names(&target), ["old.md"], "the old content is back");
        drop(staged);
        assert_eq!(names(&dir), [".other.tmp-999999999", "report"]);
        assert!(StagedDir::new(&dir.join("..")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
