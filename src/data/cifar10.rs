//! CIFAR-10, binary version: `cifar-10-binary.tar.gz` or the `.bin` files it holds.
//!
//! Each of `data_batch_1.bin` .. `data_batch_5.bin` (training) and `test_batch.bin`
//! (test) is a sequence of 3,073-byte records (10,000 in the official files):
//!
//! ```text
//! 1 label byte (0..=9) | 1024 red | 1024 green | 1024 blue   (32x32 planes, row-major)
//! ```
//!
//! The planes are interleaved here into HWC order. The archive is read directly, without
//! extraction; its members may sit under any folder (officially `cifar-10-batches-bin/`).

use super::archive::Tree;
use super::download::Remote;
use super::limits::MAX_CIFAR_RECORDS;
use super::{digest, DataError, DataIdentity, Dataset, ImageSet, Source};
use rayon::prelude::*;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The official archive.
pub const ARCHIVE: &str = "cifar-10-binary.tar.gz";

pub const REMOTES: [Remote; 1] = [Remote {
    file: ARCHIVE,
    urls: &["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"],
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
}];

const TRAIN: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
const TEST: &str = "test_batch.bin";
const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 1 + 3 * PLANE;

/// The class names, in label order (as in the official `batches.meta.txt`).
const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Where CIFAR-10 is in `dir`: the archive, else a folder of `.bin` files (`dir` itself or
/// `dir/cifar-10-batches-bin`).
pub fn find(dir: &Path) -> Option<PathBuf> {
    let archive = dir.join(ARCHIVE);
    if archive.is_file() {
        return Some(archive);
    }
    [dir.join("cifar-10-batches-bin"), dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join(TEST).is_file() && TRAIN.iter().all(|f| d.join(f).is_file()))
}

/// Loads CIFAR-10 from the archive or a folder of `.bin` files.
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    let (batches, sources) = if path.is_dir() {
        read_folder(path)?
    } else {
        read_archive(path)?
    };
    let mut parts = batches
        .par_iter()
        .map(|(location, bytes)| parse_batch(bytes, location))
        .collect::<Result<Vec<_>, _>>()?;
    let test = parts
        .pop()
        .unwrap_or_else(|| ImageSet::empty(SIDE, SIDE, 3));
    let mut train = ImageSet::empty(SIDE, SIDE, 3);
    for part in parts {
        train.images.extend(part.images);
        train.labels.extend(part.labels);
    }
    Ok(Dataset {
        name: "cifar10".to_string(),
        train,
        test,
        classes: CLASSES.iter().map(|c| c.to_string()).collect(),
        identity: DataIdentity {
            spec: "cifar10".to_string(),
            sources,
        },
    })
}

/// A batch's location (for messages) and bytes; the five training batches come first.
type Batches = Vec<(String, Vec<u8>)>;

/// The six `.bin` files of a folder, each recorded with its digests.
fn read_folder(dir: &Path) -> Result<(Batches, Vec<Source>), DataError> {
    let mut batches = Vec::new();
    let mut sources = Vec::new();
    for name in TRAIN.iter().chain([&TEST]) {
        let path = dir.join(name);
        let bytes = read_batch_file(&path)?;
        sources.push(Source::file(&path, digest::of_bytes(&bytes), None));
        batches.push((path.display().to_string(), bytes));
    }
    Ok((batches, sources))
}

/// A batch file, refused unread if it is larger than [`MAX_BATCH_BYTES`].
fn read_batch_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let size = file.metadata().map_err(|e| DataError::read(path, e))?.len();
    check_batch_size(size, &path.display().to_string())?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_BATCH_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::read(path, e))?;
    check_batch_size(bytes.len() as u64, &path.display().to_string())?;
    Ok(bytes)
}

/// The largest batch accepted: [`MAX_CIFAR_RECORDS`] records.
const MAX_BATCH_BYTES: u64 = MAX_CIFAR_RECORDS * RECORD as u64;

fn check_batch_size(size: u64, file: &str) -> Result<(), DataError> {
    if size <= MAX_BATCH_BYTES {
        return Ok(());
    }
    let limit = format!(
        "{MAX_BATCH_BYTES} bytes ({MAX_CIFAR_RECORDS} records, as in every official batch)"
    );
    Err(DataError::too_large(
        file,
        "length",
        &limit,
        format!("{size} bytes"),
    ))
}

/// The six batches of the archive (found under any folder), recorded by the archive's
/// digests.
fn read_archive(path: &Path) -> Result<(Batches, Vec<Source>), DataError> {
    let file_name = |name: &str| name.rsplit('/').next().unwrap_or(name).to_string();
    let is_batch = |name: &str| {
        let file = file_name(name);
        file == TEST || TRAIN.contains(&file.as_str())
    };
    let tree = Tree::open(path, &is_batch)?;
    let mut batches = Vec::new();
    for name in TRAIN.iter().chain([&TEST]) {
        let member = tree.members.iter().find(|m| file_name(&m.name) == *name);
        let member = member.ok_or_else(|| {
            DataError::format(
                path.display().to_string(),
                "contents",
                format!("a member {name}"),
                "none",
            )
        })?;
        batches.push((tree.location(&member.name), tree.read(member)?.into_owned()));
    }
    Ok((batches, vec![tree.source(Some(REMOTES[0].md5))]))
}

/// Parses one batch file of 3,073-byte records.
fn parse_batch(data: &[u8], file: &str) -> Result<ImageSet, DataError> {
    check_batch_size(data.len() as u64, file)?;
    if data.is_empty() || !data.len().is_multiple_of(RECORD) {
        return Err(DataError::format(
            file,
            "length",
            "a non-zero multiple of 3073 bytes (1 label byte + 3072 pixel bytes per record)",
            format!("{} bytes", data.len()),
        ));
    }
    let mut set = ImageSet::empty(SIDE, SIDE, 3);
    set.images.reserve(data.len() / RECORD * 3 * PLANE);
    for (i, record) in data.chunks_exact(RECORD).enumerate() {
        if record[0] >= 10 {
            return Err(DataError::format(
                file,
                format!("label of record {i}"),
                "a class 0..=9",
                record[0],
            ));
        }
        set.labels.push(u32::from(record[0]));
        let (r, g, b) = (
            &record[1..1 + PLANE],
            &record[1 + PLANE..1 + 2 * PLANE],
            &record[1 + 2 * PLANE..],
        );
        for p in 0..PLANE {
            set.images.extend_from_slice(&[r[p], g[p], b[p]]);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose pixel at plane offset p has red p%256, green 1, blue 2.
    fn record(label: u8) -> Vec<u8> {
        let mut out = vec![label];
        out.extend((0..PLANE).map(|p| p as u8));
        out.extend([1u8; PLANE]);
        out.extend([2u8; PLANE]);
        out
    }

    #[test]
    fn records_are_interleaved_into_hwc() {
        let data = [record(7), record(0)].concat();
        let set = parse_batch(&data, "b.bin").unwrap();
        assert_eq!(set.labels, vec![7, 0]);
        assert_eq!(&set.image(0)[..6], &[0, 1, 2, 1, 1, 2]);
        let last = 3 * (PLANE - 1);
        assert_eq!(&set.image(1)[last..], &[255, 1, 2]);
    }

    #[test]
    fn truncated_batch_is_rejected_with_its_name_and_the_record_size() {
        let data = record(1);
        let err = parse_batch(&data[..3000], "/d/data_batch_1.bin")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/d/data_batch_1.bin")
                && err.contains("3073")
                && err.contains("3000 bytes"),
            "{err}"
        );
    }

    #[test]
    fn label_out_of_range_names_the_record() {
        let data = [record(1), record(10)].concat();
        let err = parse_batch(&data, "t.bin").unwrap_err().to_string();
        assert!(
            err.contains("t.bin: label of record 1: expected a class 0..=9, found 10"),
            "{err}"
        );
    }
}
