//! Who owns a run folder. A study writes `owner.json` in each trial's run folder before the
//! trial trains: the store's identity, the study, the trial and the attempt. Several stores
//! (or several studies of one store) may be given the same `runs_dir`; a folder is only ever
//! continued, cleared or replaced by the trial that owns it, so one study never deletes
//! another's runs.
//!
//! A folder without `owner.json` was written by `regstudy train` or by a study run before
//! owners were recorded. It is adopted only when it holds nothing, or when its `config.toml`
//! is exactly this trial's settings (apart from threads and where the data is read from): a
//! run with the same settings, seed included, trains to the same result, so continuing it
//! loses nothing. Any other folder is left alone and the trial stops with a message.

use crate::fsio::write_atomic;
use crate::train::folder::OWNER_FILE;
use crate::train::RunConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The contents of `owner.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The identity kept in the store (`metadata.store_id`).
    pub store_id: String,
    /// Where the store was opened from, for messages only: a store may be moved.
    pub store: String,
    pub study: String,
    /// The trial's number in the study.
    pub trial: usize,
    /// The attempt at the trial: 0, then 1, 2... for each retry of a failed attempt.
    pub retry: u32,
}

impl Owner {
    /// Whether `self` is the same trial of the same study in the same store as `other`,
    /// whatever the attempt.
    fn same_trial(&self, other: &Owner) -> bool {
        self.store_id == other.store_id && self.study == other.study && self.trial == other.trial
    }
}

/// Where a run folder stands for a trial about to use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Absent or empty, or a folder without an owner whose run has this trial's settings:
    /// the trial takes it (and records itself as owner).
    Free,
    /// The trial's own folder, written by this attempt: continued.
    ThisAttempt,
    /// The trial's own folder, written by an earlier attempt that failed: a retry starts
    /// afresh, since whatever made that attempt fail may have left its files wrong.
    EarlierAttempt,
}

/// Why a trial cannot use its run folder.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error(
        "run folder {} belongs to trial {} (attempt {}) of study `{}` in {}; regstudy \
         never deletes or overwrites a run it does not own: give this study another \
         `runs_dir`, or move that folder away by hand",
        folder.display(), owner.trial, owner.retry, owner.study, describe_store(owner, *same_store)
    )]
    Taken {
        folder: PathBuf,
        owner: Box<Owner>,
        /// Whether the owner is in the store that asked.
        same_store: bool,
    },
    #[error(
        "run folder {} holds a run with other settings and no owner record (written by \
         `regstudy train`, or by a study before run folders recorded their owner); \
         regstudy does not delete it: give this study another `runs_dir`, or move that \
         folder away by hand",
        folder.display()
    )]
    Unowned { folder: PathBuf },
    #[error("cannot read {}: {cause}", path.display())]
    Unreadable { path: PathBuf, cause: String },
    #[error("cannot write {}: {cause}", path.display())]
    Unwritable {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// Which store the owner is in, as seen from the store that asked.
fn describe_store(owner: &Owner, same_store: bool) -> String {
    if same_store {
        "this store".into()
    } else {
        format!("another store ({}, id {})", owner.store, owner.store_id)
    }
}

/// Where `folder` stands for the trial `me` whose settings are `config`.
pub fn standing(folder: &Path, me: &Owner, config: &RunConfig) -> Result<Standing, OwnerError> {
    let Some(owner) = read(folder)? else {
        return unowned(folder, config);
    };
    match owner.same_trial(me) {
        true if owner.retry == me.retry => Ok(Standing::ThisAttempt),
        true if owner.retry < me.retry => Ok(Standing::EarlierAttempt),
        _ => Err(OwnerError::Taken {
            folder: folder.to_path_buf(),
            same_store: owner.store_id == me.store_id,
            owner: Box::new(owner),
        }),
    }
}

/// The standing of a folder without `owner.json` (see the module's documentation).
fn unowned(folder: &Path, config: &RunConfig) -> Result<Standing, OwnerError> {
    let empty = match std::fs::read_dir(folder) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            return Err(OwnerError::Unreadable {
                path: folder.to_path_buf(),
                cause: e.to_string(),
            })
        }
        // A worker killed while writing the owner record leaves only its temporary file.
        Ok(mut entries) => entries.all(|entry| {
            entry.is_ok_and(|e| crate::fsio::is_atomic_write_leftover(&e.file_name()))
        }),
    };
    if empty || same_settings(folder, config) {
        Ok(Standing::Free)
    } else {
        Err(OwnerError::Unowned {
            folder: folder.to_path_buf(),
        })
    }
}

/// Whether the run in `folder` was started with `config` (apart from threads, which change
/// with `--workers`, and where the data is read from).
pub fn same_settings(folder: &Path, config: &RunConfig) -> bool {
    let Ok(recorded) = RunConfig::from_run_folder(folder) else {
        return false;
    };
    let comparable = |c: &RunConfig| RunConfig {
        threads: 0,
        data_dir: None,
        out: None,
        ..c.clone()
    };
    comparable(&recorded) == comparable(config)
}

/// The owner recorded in `folder`, if any.
fn read(folder: &Path) -> Result<Option<Owner>, OwnerError> {
    let path = folder.join(OWNER_FILE);
    let unreadable = |cause: String| OwnerError::Unreadable {
        path: path.clone(),
        cause,
    };
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e.to_string())),
        Ok(bytes) => bytes,
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| unreadable(format!("it is not a run folder's owner record ({e})")))
}

/// Creates `folder` if needed and records `owner` in it, atomically.
pub fn write(folder: &Path, owner: &Owner) -> Result<(), OwnerError> {
    let path = folder.join(OWNER_FILE);
    let json = serde_json::to_vec_pretty(owner).expect("an owner serializes");
    std::fs::create_dir_all(folder)
        .and_then(|()| write_atomic(&path, &json))
        .map_err(|cause| OwnerError::Unwritable { path, cause })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("regstudy-owner-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn me() -> Owner {
        Owner {
            store_id: "a1".into(),
            store: "one.db".into(),
            study: "s".into(),
            trial: 3,
            retry: 1,
        }
    }

    fn config() -> RunConfig {
        RunConfig {
            dataset: "mnist".into(),
            model: "simple-cnn".into(),
            epochs: 3,
            ..RunConfig::default()
        }
    }

    #[test]
    fn a_folder_is_this_attempts_an_earlier_attempts_or_taken() {
        let dir = scratch("owned");
        assert_eq!(standing(&dir, &me(), &config()).unwrap(), Standing::Free);
        write(&dir, &me()).unwrap();
        assert_eq!(
            standing(&dir, &me(), &config()).unwrap(),
            Standing::ThisAttempt
        );
        let retry = Owner { retry: 2, ..me() };
        assert_eq!(
            standing(&dir, &retry, &config()).unwrap(),
            Standing::EarlierAttempt
        );
        let other_store = Owner {
            store_id: "b2".into(),
            store: "two.db".into(),
            ..me()
        };
        let e = standing(&dir, &other_store, &config())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("run folder {}", dir.display()))
                && e.contains("trial 3 (attempt 1) of study `s` in another store (one.db, id a1)")
                && e.contains("another `runs_dir`"),
            "{e}"
        );
        let other_trial = Owner { trial: 4, ..me() };
        let e = standing(&dir, &other_trial, &config())
            .unwrap_err()
            .to_string();
        assert!(e.contains("of study `s` in this store"), "{e}");
        let earlier = Owner { retry: 0, ..me() };
        assert!(
            standing(&dir, &earlier, &config()).is_err(),
            "a later attempt's folder"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_folder_left_by_a_worker_killed_while_writing_its_owner_record_is_free() {
        let dir = scratch("killed-writing-owner");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".owner.json.4242.tmp"), b"{\"store_id\": \"ab").unwrap();
        assert_eq!(standing(&dir, &me(), &config()).unwrap(), Standing::Free);
        std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
        assert!(standing(&dir, &me(), &config()).is_err(), "a user's file");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_folder_without_an_owner_is_adopted_only_when_empty_or_with_the_same_settings() {
        let dir = scratch("legacy");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            standing(&dir, &me(), &config()).unwrap(),
            Standing::Free,
            "empty"
        );
        let recorded = RunConfig {
            threads: 7,
            out: Some(dir.clone()),
            ..config()
        };
        std::fs::write(dir.join("config.toml"), recorded.to_toml()).unwrap();
        assert_eq!(
            standing(&dir, &me(), &config()).unwrap(),
            Standing::Free,
            "threads and out do not count"
        );
        let longer = RunConfig {
            epochs: 20,
            ..config()
        };
        let e = standing(&dir, &me(), &longer).unwrap_err().to_string();
        assert!(
            e.contains("holds a run with other settings and no owner record"),
            "{e}"
        );
        std::fs::remove_file(dir.join("config.toml")).unwrap();
        std::fs::write(dir.join("weights.safetensors"), b"w").unwrap();
        assert!(
            standing(&dir, &me(), &config()).is_err(),
            "files without a config"
        );
        std::fs::write(dir.join(OWNER_FILE), b"{").unwrap();
        let e = standing(&dir, &me(), &config()).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read") && e.contains("owner.json"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
