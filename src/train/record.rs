//! `run.json`, the record of what a run was trained on: the data's identity (every source
//! file's size and sha256) and the resolved settings. A resumed run must train on what the
//! record says, and the record is brought up to date (data paths that moved, more epochs),
//! so that it never describes something the weights were not trained on.

use super::folder::RunFolder;
use super::{RunConfig, TrainError};
use crate::data::DataIdentity;
use serde_json::Value;

/// Settings a resumed run may change: how long it trains, where the data and the folder
/// are, and the thread count (a study divides its threads among its workers).
pub const MAY_CHANGE_ON_RESUME: [&str; 4] = ["epochs", "data_dir", "out", "threads"];

/// A setting that differs between a run's record and the settings it would continue with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingChange {
    /// The setting's name in `config.toml` (`batch_size`).
    pub key: String,
    /// The recorded value, as TOML (`unset` when absent).
    pub recorded: String,
    /// The value it would continue with, as TOML (`unset` when absent).
    pub wanted: String,
}

/// The one rule for continuing a run: a run recorded with `recorded` may continue with
/// `wanted` when they differ in [`MAY_CHANGE_ON_RESUME`] only. Returns the first other
/// setting that differs (in the order of `config.toml`'s keys, sorted).
pub fn resume_conflict(recorded: &RunConfig, wanted: &RunConfig) -> Option<SettingChange> {
    let table = |c: &RunConfig| -> toml::Table {
        toml::from_str(&c.to_toml()).expect("a run config's TOML reads back")
    };
    let (before, after) = (table(recorded), table(wanted));
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let shown = |v: Option<&toml::Value>| v.map_or_else(|| "unset".to_string(), |v| v.to_string());
    let changed = keys
        .into_iter()
        .filter(|key| !MAY_CHANGE_ON_RESUME.contains(&key.as_str()))
        .find(|key| before.get(*key) != after.get(*key))?;
    Some(SettingChange {
        key: changed.clone(),
        recorded: shown(before.get(changed)),
        wanted: shown(after.get(changed)),
    })
}

/// Refuses to resume the run in `folder` with `config` on the data `identity` when they
/// differ from what its `run.json` records; the message names the file or setting that
/// changed, with the recorded and the new value.
pub fn check_resume(
    folder: &RunFolder,
    config: &RunConfig,
    identity: &DataIdentity,
) -> Result<(), TrainError> {
    let record = folder.read_run_record()?;
    let mismatch = |problem: String| TrainError::Mismatch {
        dir: folder.path().to_path_buf(),
        problem,
    };
    if let Some(recorded) = record.get("data") {
        data_difference(recorded, identity).map_err(mismatch)?;
    }
    // Runs recorded before the settings were kept in run.json are checked on their data only.
    if let Some(recorded) = record.get("config") {
        let recorded: RunConfig = serde_json::from_value(recorded.clone()).map_err(|e| {
            TrainError::Resume(format!(
                "{}: config: {e}",
                folder.run_record_file().display()
            ))
        })?;
        settings_difference(&recorded, config).map_err(mismatch)?;
    }
    Ok(())
}

/// Rewrites `run.json` with the settings and data identity the run now continues with.
pub fn update(
    folder: &RunFolder,
    config: &RunConfig,
    identity: &DataIdentity,
) -> Result<(), TrainError> {
    let mut record = folder.read_run_record()?;
    let config = RunConfig {
        out: Some(folder.path().to_path_buf()),
        ..config.clone()
    };
    let value = |v: serde_json::Result<Value>| v.expect("settings and data identity serialize");
    record.insert("data".into(), value(serde_json::to_value(identity)));
    record.insert("config".into(), value(serde_json::to_value(&config)));
    folder.write_run_record(&Value::Object(record))
}

/// The first difference between the recorded data identity and `identity`, in words.
fn data_difference(recorded: &Value, identity: &DataIdentity) -> Result<(), String> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let recorded_spec = text(recorded, "spec");
    if recorded_spec != identity.spec {
        return Err(format!(
            "the data set is `{}`, but the run was trained on `{recorded_spec}` (run.json)",
            identity.spec
        ));
    }
    let empty = Vec::new();
    let sources = recorded
        .get("sources")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    if sources.len() != identity.sources.len() {
        return Err(format!(
            "the data set `{}` is read from {} sources, but the run was trained on {} (run.json)",
            identity.spec,
            identity.sources.len(),
            sources.len()
        ));
    }
    for (old, new) in sources.iter().zip(&identity.sources) {
        let number = |key: &str| old.get(key).and_then(Value::as_u64).unwrap_or(0);
        let same = text(old, "sha256") == new.sha256
            && number("bytes") == new.bytes
            && number("files") == new.files;
        if !same {
            return Err(format!(
                "the data differ from those the run was trained on: {} has {} bytes with \
                 sha256 {}, but run.json records {} with {} bytes and sha256 {}; resume with \
                 the data the run started with",
                new.path,
                new.bytes,
                new.sha256,
                text(old, "path"),
                number("bytes"),
                text(old, "sha256")
            ));
        }
    }
    Ok(())
}

/// The first setting that [`resume_conflict`] forbids to change, in words.
fn settings_difference(recorded: &RunConfig, config: &RunConfig) -> Result<(), String> {
    match resume_conflict(recorded, config) {
        Some(change) => Err(format!(
            "setting `{}` is {} (config.toml), but the run was trained with {} (run.json); \
             restore it, or start a new run",
            change.key, change.wanted, change.recorded
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Source;

    fn identity(sha: &str) -> DataIdentity {
        DataIdentity {
            spec: "mnist".into(),
            sources: vec![Source {
                path: "a/train-images.gz".into(),
                bytes: 10,
                files: 1,
                sha256: sha.into(),
                md5: None,
                official: None,
            }],
        }
    }

    #[test]
    fn a_changed_file_is_named_with_both_checksums() {
        let recorded = serde_json::to_value(identity("aaaa")).unwrap();
        assert_eq!(data_difference(&recorded, &identity("aaaa")), Ok(()));
        let e = data_difference(&recorded, &identity("bbbb")).unwrap_err();
        assert!(
            e.contains("a/train-images.gz") && e.contains("aaaa") && e.contains("bbbb"),
            "{e}"
        );
    }

    #[test]
    fn a_changed_setting_is_named_with_both_values_and_epochs_may_grow() {
        let recorded = RunConfig {
            dataset: "mnist".into(),
            model: "simple-cnn".into(),
            ..RunConfig::default()
        };
        let longer = RunConfig {
            epochs: 20,
            threads: 3,
            ..recorded.clone()
        };
        assert_eq!(settings_difference(&recorded, &longer), Ok(()));
        let faster = RunConfig {
            lr: 0.5,
            ..recorded.clone()
        };
        let e = settings_difference(&recorded, &faster).unwrap_err();
        assert!(
            e.contains("`lr` is 0.5") && e.contains("trained with 0.001"),
            "{e}"
        );
    }

    #[test]
    fn only_epochs_threads_and_where_things_are_may_change_on_resume() {
        let recorded = RunConfig {
            dataset: "mnist".into(),
            model: "simple-cnn".into(),
            out: Some("runs/a".into()),
            ..RunConfig::default()
        };
        let moved = RunConfig {
            epochs: 30,
            threads: 4,
            data_dir: Some("/elsewhere".into()),
            out: Some("runs/b".into()),
            ..recorded.clone()
        };
        assert_eq!(resume_conflict(&recorded, &moved), None);
        let smaller = RunConfig {
            batch_size: 32,
            ..moved.clone()
        };
        assert_eq!(
            resume_conflict(&recorded, &smaller),
            Some(SettingChange {
                key: "batch_size".into(),
                recorded: "64".into(),
                wanted: "32".into(),
            })
        );
        let subset = RunConfig {
            train_subset: Some(100),
            ..recorded.clone()
        };
        let change = resume_conflict(&recorded, &subset).unwrap();
        assert_eq!(
            (change.key.as_str(), change.recorded.as_str()),
            ("train_subset", "unset")
        );
    }

    #[test]
    fn a_run_folder_is_resumable_under_the_same_rule() {
        let dir = std::env::temp_dir().join(format!("regstudy-resumable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let folder = RunFolder::new(&dir);
        let config = RunConfig {
            dataset: "mnist".into(),
            model: "simple-cnn".into(),
            ..RunConfig::default()
        };
        assert!(folder.resumable_with(&config), "no run was started");
        folder.create().unwrap();
        folder.write_config(&config).unwrap();
        let longer = RunConfig {
            epochs: 20,
            threads: 2,
            ..config.clone()
        };
        assert!(folder.resumable_with(&longer));
        let faster = RunConfig {
            lr: 0.5,
            ..config.clone()
        };
        assert!(!folder.resumable_with(&faster));
        std::fs::write(folder.config_file(), "lr = ").unwrap();
        assert!(!folder.resumable_with(&config), "an unreadable config.toml");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
