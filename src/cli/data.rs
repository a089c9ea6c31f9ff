//! `regstudy data ...`: inspect and verify data sets.

use super::progress::DownloadBar;
use super::CommandResult;
use clap::Subcommand;
use regstudy::data::{self, Dataset, DatasetSpec, ImageSet, LoadOptions};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Load a data set and show, per split, its image count, image shape and images per
    /// class, and the files it was read from with their checksums.
    Info {
        /// The data set: cifar10, mnist, fashion-mnist, tiny-imagenet, or folder:PATH
        /// (PATH/{train,test}/<class>/*.{jpg,jpeg,png}, as a folder, .tar or .tar.gz).
        dataset: DatasetSpec,
        /// Folder holding the data sets [default: $REGSTUDY_DATA, else the user's cache
        /// folder]. A named data set is looked for in DIR/<name>/, then in DIR itself;
        /// missing official files are downloaded into DIR/<name>/.
        #[arg(long, value_name = "DIR", env = super::DATA_ENV)]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Never download: if files are missing, say which ones to place where.
        #[arg(long)]
        offline: bool,
    },
    /// Compare the md5 of a data set's official files with the published checksums
    /// (files that are absent are reported, not downloaded).
    Verify {
        /// The data set to check [default: every named data set].
        dataset: Option<DatasetSpec>,
        /// Folder holding the data sets [default: $REGSTUDY_DATA, else the user's cache
        /// folder].
        #[arg(long, value_name = "DIR", env = super::DATA_ENV)]
        data_dir: Option<PathBuf>,
    },
}

impl DataCommand {
    /// The command's `--data-dir`.
    pub fn data_dir_mut(&mut self) -> &mut Option<PathBuf> {
        match self {
            DataCommand::Info { data_dir, .. } | DataCommand::Verify { data_dir, .. } => data_dir,
        }
    }
}

pub fn run(command: DataCommand) -> CommandResult {
    match command {
        DataCommand::Info {
            dataset,
            data_dir,
            json,
            offline,
        } => info(&dataset, data_dir, json, offline),
        DataCommand::Verify { dataset, data_dir } => verify(dataset, data_dir),
    }
}

fn info(spec: &DatasetSpec, data_dir: Option<PathBuf>, json: bool, offline: bool) -> CommandResult {
    let options = LoadOptions {
        data_dir: data_dir.as_deref(),
        download: !offline,
        progress: &DownloadBar::default(),
    };
    let dataset = data::load_with(spec, &options)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info_json(&dataset))?);
    } else {
        print_info(&dataset);
    }
    Ok(())
}

/// The JSON form: name, classes, per split count/shape/per-class counts, identity.
fn info_json(dataset: &Dataset) -> serde_json::Value {
    let split = |set: &ImageSet| {
        serde_json::json!({
            "images": set.len(),
            "shape": [set.height, set.width, set.channels],
            "per_class": set.class_counts(dataset.classes.len()),
        })
    };
    serde_json::json!({
        "name": dataset.name,
        "classes": dataset.classes,
        "train": split(&dataset.train),
        "test": split(&dataset.test),
        "identity": dataset.identity,
    })
}

fn print_info(dataset: &Dataset) {
    println!(
        "{} ({}, {} classes)",
        dataset.name,
        dataset.identity.spec,
        dataset.classes.len()
    );
    for source in &dataset.identity.sources {
        let official = match source.official {
            Some(true) => ", official md5",
            Some(false) => ", NOT the official md5",
            None => "",
        };
        let files = if source.files == 1 {
            String::new()
        } else {
            format!(" in {} files", source.files)
        };
        println!(
            "  {} ({} bytes{files}{official})",
            source.path, source.bytes
        );
        println!("    sha256 {}", source.sha256);
    }
    println!();
    println!("{:<6} {:>8}  shape (HxWxC)", "split", "images");
    for (name, set) in [("train", &dataset.train), ("test", &dataset.test)] {
        println!(
            "{name:<6} {:>8}  {}x{}x{}",
            set.len(),
            set.height,
            set.width,
            set.channels
        );
    }
    println!();
    let width = dataset
        .classes
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("{:<width$} {:>8} {:>8}", "class", "train", "test");
    let train = dataset.train.class_counts(dataset.classes.len());
    let test = dataset.test.class_counts(dataset.classes.len());
    for (i, class) in dataset.classes.iter().enumerate() {
        println!("{class:<width$} {:>8} {:>8}", train[i], test[i]);
    }
}

fn verify(spec: Option<DatasetSpec>, data_dir: Option<PathBuf>) -> CommandResult {
    let specs = match &spec {
        Some(DatasetSpec::Folder(path)) => {
            return Err(format!(
                "nothing to verify: {} is a user's folder, which has no official checksums \
                 (verify checks the files of cifar10, mnist, fashion-mnist and tiny-imagenet)",
                path.display()
            )
            .into());
        }
        Some(spec) => vec![spec.clone()],
        None => DatasetSpec::NAMED.to_vec(),
    };
    // Absent files fail the check only when that data set was asked for by name.
    let named = spec.is_some();
    let mut failures = 0;
    let mut found = 0;
    let mut looked = Vec::new();
    for spec in &specs {
        looked.extend(data::candidate_dirs(spec, data_dir.as_deref())?);
        for check in data::verify(spec, data_dir.as_deref())? {
            found += usize::from(check.found_md5.is_some());
            let (status, failed) = match &check.found_md5 {
                None => ("absent", named),
                Some(_) if check.ok() => ("ok", false),
                Some(_) => ("MISMATCH", true),
            };
            failures += usize::from(failed);
            println!("{status:<8} {:<14} {}", spec.name(), check.file);
            if status == "MISMATCH" {
                println!(
                    "         expected md5 {}, found {}",
                    check.expected_md5,
                    check.found_md5.unwrap_or_default()
                );
            }
        }
    }
    if failures > 0 {
        return Err(format!("{failures} file(s) absent or not the official files").into());
    }
    if found == 0 {
        looked.dedup();
        let folders: Vec<String> = looked.iter().map(|d| d.display().to_string()).collect();
        return Err(format!(
            "nothing verified: none of the official files listed above is in {}",
            folders.join(", ")
        )
        .into());
    }
    Ok(())
}
