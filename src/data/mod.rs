//! Data sets: finding, fetching, checking, decoding, splitting and batching images.
//!
//! Five sources are read, each from its official distribution:
//!
//! | spec | files | images |
//! |---|---|---|
//! | `cifar10` | `cifar-10-binary.tar.gz` or its `.bin` files | 50,000 + 10,000, 32x32x3 |
//! | `mnist` | the four idx `.gz` files | 60,000 + 10,000, 28x28x1 |
//! | `fashion-mnist` | the four idx `.gz` files | 60,000 + 10,000, 28x28x1 |
//! | `tiny-imagenet` | `tiny-imagenet-200.zip` or its folder | 100,000 + 10,000 (val), 64x64x3 |
//! | `folder:PATH` | `PATH/{train,test}/<class>/*.{jpg,jpeg,png}`, a folder, `.tar` or `.tar.gz` | any |
//!
//! **Where files are looked for.** The data folder is `--data-dir`, else the
//! `REGSTUDY_DATA` environment variable, else the platform cache folder
//! (`$XDG_CACHE_HOME/regstudy` or `~/.cache/regstudy` on Linux,
//! `~/Library/Caches/regstudy` on macOS, `%LOCALAPPDATA%\regstudy` on Windows). A named
//! data set lives in `DATA/<name>/` (e.g. `DATA/mnist/train-images-idx3-ubyte.gz`);
//! a data folder that holds the files itself is accepted too, so `--data-dir` may point
//! straight at a folder of MNIST files. Downloads go to `DATA/<name>/`.
//!
//! Images are kept in memory as `u8` in HWC (channels-last) order and converted to `f32`
//! per batch by the [`BatchLoader`], on a background thread.

mod archive;
mod augment;
mod cifar10;
mod decode;
mod digest;
mod download;
mod error;
mod folder;
mod idx;
pub mod limits;
mod loader;
mod split;
mod tiny_imagenet;

pub use archive::check_member_name;
pub use augment::Augmentation;
pub use decode::{decode_image, DecodeBudget, Decoded};
pub use digest::FileDigest;
pub use download::{DownloadObserver, Remote, Unobserved};
pub use error::DataError;
pub use loader::{Batch, BatchLoader, LoaderConfig, Normalization};
pub use split::{split_validation, stratified_subset};

use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Which data set to load, as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetSpec {
    Cifar10,
    Mnist,
    FashionMnist,
    TinyImageNet,
    /// A user's images: `PATH/{train,test}/<class>/*.{jpg,jpeg,png}`.
    Folder(PathBuf),
}

impl DatasetSpec {
    /// The named data sets, in the order `data verify` checks them.
    pub const NAMED: [DatasetSpec; 4] = [
        DatasetSpec::Cifar10,
        DatasetSpec::Mnist,
        DatasetSpec::FashionMnist,
        DatasetSpec::TinyImageNet,
    ];

    /// The name of a named data set, which is also its folder under the data folder.
    pub fn name(&self) -> &str {
        match self {
            DatasetSpec::Cifar10 => "cifar10",
            DatasetSpec::Mnist => "mnist",
            DatasetSpec::FashionMnist => "fashion-mnist",
            DatasetSpec::TinyImageNet => "tiny-imagenet",
            DatasetSpec::Folder(_) => "folder",
        }
    }

    /// The files the official distribution consists of, with their md5 and addresses.
    pub fn official_files(&self) -> &'static [Remote] {
        match self {
            DatasetSpec::Cifar10 => &cifar10::REMOTES,
            DatasetSpec::Mnist => &idx::MNIST_REMOTES,
            DatasetSpec::FashionMnist => &idx::FASHION_REMOTES,
            DatasetSpec::TinyImageNet => &tiny_imagenet::REMOTES,
            DatasetSpec::Folder(_) => &[],
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::Folder(path) => write!(f, "folder:{}", path.display()),
            named => f.write_str(named.name()),
        }
    }
}

impl FromStr for DatasetSpec {
    type Err = DataError;

    /// Accepts `cifar10`, `mnist`, `fashion-mnist`, `tiny-imagenet` (any case) and
    /// `folder:PATH`.
    fn from_str(input: &str) -> Result<Self, DataError> {
        if let Some(path) = input.strip_prefix("folder:") {
            if path.is_empty() {
                return Err(DataError::Spec {
                    input: input.to_string(),
                });
            }
            return Ok(DatasetSpec::Folder(PathBuf::from(path)));
        }
        let named = DatasetSpec::NAMED
            .into_iter()
            .find(|spec| spec.name().eq_ignore_ascii_case(input));
        named.ok_or_else(|| DataError::Spec {
            input: input.to_string(),
        })
    }
}

/// A set of images of one shape with their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// `len() * height * width * channels` bytes, image after image, each in HWC
    /// (channels-last) order.
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
}

impl ImageSet {
    /// An empty set of images of the given shape.
    pub fn empty(height: usize, width: usize, channels: usize) -> Self {
        ImageSet {
            height,
            width,
            channels,
            images: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image: `height * width * channels`.
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// The pixels of image `i`, HWC.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// How many images each class `0..n_classes` has (labels outside are not counted).
    pub fn class_counts(&self, n_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; n_classes];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(label as usize) {
                *count += 1;
            }
        }
        counts
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        ImageSet {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..ImageSet::empty(self.height, self.width, self.channels)
        }
    }
}

/// A loaded data set. For Tiny-ImageNet, whose test labels are not public, `test` is the
/// official validation set.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub train: ImageSet,
    pub test: ImageSet,
    pub classes: Vec<String>,
    pub identity: DataIdentity,
}

/// What a run needs to record to be repeated on the same data: the files read, with
/// their sizes and digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataIdentity {
    /// The data set as written on the command line (`mnist`, `folder:PATH`...).
    pub spec: String,
    pub sources: Vec<Source>,
}

/// One source of a data set: a file, or a folder tree of images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub path: String,
    /// Total bytes read.
    pub bytes: u64,
    /// 1 for a file; for a folder tree, the number of files read from it.
    pub files: u64,
    /// For a file, the sha256 of its bytes. For a folder tree, the sha256 of its
    /// manifest: one line `<relative path> <bytes> <sha256>\n` per file, sorted by path.
    pub sha256: String,
    /// For a file, the md5 of its bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Whether the md5 is that of the official distribution, where one is published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub official: Option<bool>,
}

impl Source {
    /// A single file with its digests, compared with the official md5 when there is one.
    pub(crate) fn file(path: &Path, digest: FileDigest, official_md5: Option<&str>) -> Self {
        Source {
            path: path.display().to_string(),
            bytes: digest.bytes,
            files: 1,
            official: official_md5.map(|md5| md5 == digest.md5),
            sha256: digest.sha256,
            md5: Some(digest.md5),
        }
    }
}

/// How [`load_with`] finds its files.
#[derive(Clone, Copy)]
pub struct LoadOptions<'a> {
    /// The data folder; `None` means `REGSTUDY_DATA`, else the platform cache folder.
    pub data_dir: Option<&'a Path>,
    /// Fetch missing official files from their addresses.
    pub download: bool,
    /// Told how downloads go (the command line draws a bar).
    pub progress: &'a dyn download::DownloadObserver,
}

impl std::fmt::Debug for LoadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("data_dir", &self.data_dir)
            .field("download", &self.download)
            .finish_non_exhaustive()
    }
}

/// Loads a data set, downloading missing official files unless the environment variable
/// `REGSTUDY_OFFLINE` is set to a value other than `0`.
pub fn load(spec: &DatasetSpec, data_dir: Option<&Path>) -> Result<Dataset, DataError> {
    load_observed(spec, data_dir, &download::Unobserved)
}

/// [`load`], telling `progress` how downloads go.
pub fn load_observed(
    spec: &DatasetSpec,
    data_dir: Option<&Path>,
    progress: &dyn download::DownloadObserver,
) -> Result<Dataset, DataError> {
    let offline = std::env::var("REGSTUDY_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0");
    load_with(
        spec,
        &LoadOptions {
            data_dir,
            download: !offline,
            progress,
        },
    )
}

/// Loads a data set with explicit options.
pub fn load_with(spec: &DatasetSpec, options: &LoadOptions) -> Result<Dataset, DataError> {
    let mut dataset = match spec {
        DatasetSpec::Folder(path) => folder::load(path)?,
        DatasetSpec::Cifar10 => cifar10::load(&locate(spec, options)?)?,
        DatasetSpec::Mnist | DatasetSpec::FashionMnist => idx::load(&locate(spec, options)?, spec)?,
        DatasetSpec::TinyImageNet => tiny_imagenet::load(&locate(spec, options)?)?,
    };
    dataset.identity.spec = spec.to_string();
    Ok(dataset)
}

/// The data folder: the argument, else `REGSTUDY_DATA`, else the platform cache folder.
pub fn data_root(data_dir: Option<&Path>) -> Result<PathBuf, DataError> {
    if let Some(dir) = data_dir {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("REGSTUDY_DATA").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    platform_cache_dir()
        .map(|dir| dir.join("regstudy"))
        .ok_or_else(|| {
            DataError::invalid(
                "data folder",
                "--data-dir or the REGSTUDY_DATA environment variable (no cache folder is known \
             on this system)",
                "neither",
            )
        })
}

/// The user's cache folder, following each platform's convention.
fn platform_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if cfg!(windows) {
        var("LOCALAPPDATA")
    } else if cfg!(target_os = "macos") {
        var("HOME").map(|home| home.join("Library/Caches"))
    } else {
        var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|home| home.join(".cache")))
    }
}

/// The folders where a named data set's files may be: `DATA/<name>` first, then `DATA`.
pub fn candidate_dirs(
    spec: &DatasetSpec,
    data_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, DataError> {
    let root = data_root(data_dir)?;
    Ok(vec![root.join(spec.name()), root])
}

/// Finds a named data set on disk (see each module's `find`), downloading it into
/// `DATA/<name>/` when it is absent and downloads are allowed.
fn locate(spec: &DatasetSpec, options: &LoadOptions) -> Result<PathBuf, DataError> {
    let dirs = candidate_dirs(spec, options.data_dir)?;
    if let Some(found) = dirs.iter().find_map(|dir| find_in(spec, dir)) {
        return Ok(found);
    }
    let target = &dirs[0];
    if !options.download {
        return Err(missing_error(spec, &dirs));
    }
    for remote in spec.official_files() {
        let destination = target.join(remote.file);
        if !destination.is_file() {
            download::fetch(remote, &destination, options.progress)?;
        }
    }
    find_in(spec, target).ok_or_else(|| missing_error(spec, &dirs))
}

/// Where a named data set's loader should start in `dir`, if its files are there.
fn find_in(spec: &DatasetSpec, dir: &Path) -> Option<PathBuf> {
    match spec {
        DatasetSpec::Cifar10 => cifar10::find(dir),
        DatasetSpec::Mnist | DatasetSpec::FashionMnist => idx::find(dir),
        DatasetSpec::TinyImageNet => tiny_imagenet::find(dir),
        DatasetSpec::Folder(_) => None,
    }
}

/// The error for a data set that is absent and may not be downloaded.
fn missing_error(spec: &DatasetSpec, dirs: &[PathBuf]) -> DataError {
    let files: Vec<&str> = spec.official_files().iter().map(|r| r.file).collect();
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let urls: Vec<String> = spec
        .official_files()
        .iter()
        .map(|r| r.urls[0].to_string())
        .collect();
    DataError::Missing {
        dataset: spec.name().to_string(),
        file: files.join(", "),
        looked: looked.join(" and "),
        hint: format!(
            "download {} and place it in {}, or allow downloads",
            urls.join(", "),
            dirs[0].display()
        ),
    }
}

/// The result of checking one official file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub file: String,
    pub expected_md5: String,
    /// `None` when the file is absent.
    pub found_md5: Option<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.found_md5.as_deref() == Some(self.expected_md5.as_str())
    }
}

/// Compares the md5 of each official file of `spec` found under the data folder with the
/// published one. Absent files are reported, not fetched.
pub fn verify(spec: &DatasetSpec, data_dir: Option<&Path>) -> Result<Vec<Verification>, DataError> {
    let dirs = candidate_dirs(spec, data_dir)?;
    let mut results = Vec::new();
    for remote in spec.official_files() {
        let path = dirs
            .iter()
            .map(|d| d.join(remote.file))
            .find(|p| p.is_file());
        let found_md5 = match &path {
            Some(path) => Some(digest::of_file(path)?.md5),
            None => None,
        };
        let shown = path.unwrap_or_else(|| dirs[0].join(remote.file));
        results.push(Verification {
            file: shown.display().to_string(),
            expected_md5: remote.md5.to_string(),
            found_md5,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for text in [
            "cifar10",
            "mnist",
            "fashion-mnist",
            "tiny-imagenet",
            "folder:/x/y.tar",
        ] {
            let spec: DatasetSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!("MNIST".parse::<DatasetSpec>().unwrap(), DatasetSpec::Mnist);
    }

    #[test]
    fn an_unknown_spec_lists_the_accepted_forms() {
        let err = "cifar100".parse::<DatasetSpec>().unwrap_err().to_string();
        assert!(
            err.contains("cifar100") && err.contains("folder:PATH"),
            "{err}"
        );
        assert!("folder:".parse::<DatasetSpec>().is_err());
    }

    #[test]
    fn class_counts_and_subsets_follow_the_labels() {
        let set = ImageSet {
            images: (0..8).collect(),
            labels: vec![1, 0, 1, 1],
            ..ImageSet::empty(1, 2, 1)
        };
        assert_eq!(set.class_counts(3), vec![1, 3, 0]);
        let sub = set.subset(&[2, 0]);
        assert_eq!(sub.images, vec![4, 5, 0, 1]);
        assert_eq!(sub.labels, vec![1, 1]);
        assert_eq!(sub.image(1), &[0, 1]);
    }

    #[test]
    fn a_missing_data_set_names_its_files_and_folder() {
        let dir = std::env::temp_dir().join("regstudy-no-such-data-folder");
        let options = LoadOptions {
            data_dir: Some(&dir),
            download: false,
            progress: &download::Unobserved,
        };
        let err = load_with(&DatasetSpec::Mnist, &options)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
        assert!(err.contains("regstudy-no-such-data-folder"), "{err}");
    }
}
