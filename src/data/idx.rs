//! MNIST and Fashion-MNIST: the four official idx files.
//!
//! The idx format is a big-endian header followed by unsigned bytes:
//!
//! ```text
//! images: 0x00000803  count  rows  cols  | count*rows*cols pixels, row-major
//! labels: 0x00000801  count              | count labels, 0..=9
//! ```
//!
//! Each file may be gzip-compressed (as distributed, `NAME.gz`) or not (`NAME`); gzip is
//! recognized by its magic bytes. Both data sets are 28x28 grey images in ten classes,
//! 60,000 for training and 10,000 for testing.

use super::digest::HashingReader;
use super::download::Remote;
use super::limits::MAX_IDX_ITEMS;
use super::{DataError, DataIdentity, Dataset, DatasetSpec, ImageSet, Source};
use flate2::read::MultiGzDecoder;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// The four files, in the order train images, train labels, test images, test labels.
const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

const IMAGES_MAGIC: u32 = 0x0803;
const LABELS_MAGIC: u32 = 0x0801;
const SIDE: usize = 28;
const CLASSES: usize = 10;

/// An official file served from one or more base addresses.
macro_rules! remote {
    ($file:literal, $md5:literal, $($base:literal),+) => {
        Remote { file: $file, md5: $md5, urls: &[$(concat!($base, $file)),+] }
    };
}

/// The official MNIST files (yann.lecun.com; the second address is the mirror that
/// torchvision uses, since the first one often refuses downloads).
pub const MNIST_REMOTES: [Remote; 4] = [
    remote!(
        "train-images-idx3-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "http://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/"
    ),
    remote!(
        "train-labels-idx1-ubyte.gz",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "http://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/"
    ),
    remote!(
        "t10k-images-idx3-ubyte.gz",
        "9fb629c4189551a2d022fa330f9573f3",
        "http://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/"
    ),
    remote!(
        "t10k-labels-idx1-ubyte.gz",
        "ec29112dd5afa0611ce80d1b7f02629c",
        "http://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/"
    ),
];

/// The official Fashion-MNIST files.
pub const FASHION_REMOTES: [Remote; 4] = [
    remote!(
        "train-images-idx3-ubyte.gz",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    ),
    remote!(
        "train-labels-idx1-ubyte.gz",
        "25c81989df183df01b3e8a0aad5dffbe",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    ),
    remote!(
        "t10k-images-idx3-ubyte.gz",
        "bef4ecab320f06d8554ea6380940ec79",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    ),
    remote!(
        "t10k-labels-idx1-ubyte.gz",
        "bb300cfdad3c16e7a12a480ee83cd310",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    ),
];

/// `dir` if it holds all four files (compressed or not).
pub fn find(dir: &Path) -> Option<PathBuf> {
    NAMES
        .iter()
        .all(|name| file_path(dir, name).is_some())
        .then(|| dir.to_path_buf())
}

/// `dir/NAME.gz`, else `dir/NAME`.
fn file_path(dir: &Path, name: &str) -> Option<PathBuf> {
    let gz = dir.join(format!("{name}.gz"));
    let raw = dir.join(name);
    [gz, raw].into_iter().find(|p| p.is_file())
}

/// Loads MNIST or Fashion-MNIST (`spec` picks the class names and official md5s) from
/// the four files in `dir`.
pub fn load(dir: &Path, spec: &DatasetSpec) -> Result<Dataset, DataError> {
    let paths = NAMES
        .iter()
        .map(|name| {
            file_path(dir, name).ok_or_else(|| DataError::Missing {
                dataset: spec.name().to_string(),
                file: format!("{name}.gz"),
                looked: dir.display().to_string(),
                hint: "the four idx files must be in the same folder".to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let contents: Vec<(Vec<u8>, Source)> = paths
        .par_iter()
        .zip(spec.official_files())
        .enumerate()
        .map(|(i, (path, remote))| read_file(path, remote.md5, Kind::of(i)))
        .collect::<Result<_, _>>()?;
    let name = |i: usize| paths[i].display().to_string();
    let (data, sources): (Vec<Vec<u8>>, Vec<Source>) = contents.into_iter().unzip();
    let mut data = data.into_iter();
    let mut next = || data.next().unwrap_or_default();
    let train = parse_pair(next(), &name(0), &next(), &name(1))?;
    let test = parse_pair(next(), &name(2), &next(), &name(3))?;
    Ok(Dataset {
        name: spec.name().to_string(),
        train,
        test,
        classes: class_names(spec),
        identity: DataIdentity {
            spec: spec.to_string(),
            sources,
        },
    })
}

fn class_names(spec: &DatasetSpec) -> Vec<String> {
    const FASHION: [&str; 10] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];
    match spec {
        DatasetSpec::FashionMnist => FASHION.iter().map(|s| s.to_string()).collect(),
        _ => (0..CLASSES).map(|d| d.to_string()).collect(),
    }
}

/// What an idx file holds: the images or the labels.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    /// The kind of `NAMES[i]`.
    fn of(index: usize) -> Kind {
        if index.is_multiple_of(2) {
            Kind::Images
        } else {
            Kind::Labels
        }
    }

    fn header_len(self) -> usize {
        match self {
            Kind::Images => 16,
            Kind::Labels => 8,
        }
    }
}

/// Reads a file, records its digests (the official md5 applies to the `.gz` only), and
/// decompresses it if it is gzip. The file is streamed: its header is checked first (see
/// [`declared_len`]), then exactly the bytes it declares are read, so a file that claims
/// or inflates to more than [`MAX_IDX_ITEMS`] items costs no more memory than a valid one.
fn read_file(path: &Path, official_md5: &str, kind: Kind) -> Result<(Vec<u8>, Source), DataError> {
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let mut hashing = HashingReader::new(BufReader::with_capacity(1 << 20, file));
    let mut magic = Vec::with_capacity(2);
    (&mut hashing)
        .take(2)
        .read_to_end(&mut magic)
        .map_err(|e| DataError::read(path, e))?;
    let compressed = magic == [0x1f, 0x8b];
    let stream = magic.as_slice().chain(hashing);
    let (data, hashing) = if compressed {
        let mut decoder = MultiGzDecoder::new(stream);
        let data = read_declared(&mut decoder, path, kind)?;
        (data, decoder.into_inner().into_inner().1)
    } else {
        let mut stream = stream;
        let data = read_declared(&mut stream, path, kind)?;
        (data, stream.into_inner().1)
    };
    let digest = hashing
        .finish_stream()
        .map_err(|e| DataError::read(path, e))?;
    let source = Source::file(path, digest, compressed.then_some(official_md5));
    Ok((data, source))
}

/// The header and data of an idx stream, up to one byte past what the header declares
/// (so that extra data is seen and refused by the parser).
fn read_declared(reader: &mut impl Read, path: &Path, kind: Kind) -> Result<Vec<u8>, DataError> {
    let file = path.display().to_string();
    let broken = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::UnexpectedEof => {
            DataError::format(&file, "gzip stream", "a complete gzip stream", e)
        }
        _ => DataError::read(path, e),
    };
    let mut data = Vec::with_capacity(kind.header_len());
    reader
        .take(kind.header_len() as u64)
        .read_to_end(&mut data)
        .map_err(broken)?;
    let total = declared_len(&data, &file, kind)?;
    data.reserve(total.min(READ_AHEAD));
    reader
        .take((total - data.len()) as u64 + 1)
        .read_to_end(&mut data)
        .map_err(broken)?;
    Ok(data)
}

/// How much of a file's declared size is reserved at once; the rest grows as it is read,
/// so that a header's claim alone allocates nothing large.
const READ_AHEAD: usize = 8 << 20;

/// The length of the whole file its header declares, once the header is checked and the
/// item count is within [`MAX_IDX_ITEMS`].
fn declared_len(header: &[u8], file: &str, kind: Kind) -> Result<usize, DataError> {
    let (count, item_len) = match kind {
        Kind::Images => {
            check_header(header, file, 16, IMAGES_MAGIC, "idx3 unsigned-byte images")?;
            check_side(header, file)?;
            (be32(header, 4), SIDE * SIDE)
        }
        Kind::Labels => {
            check_header(header, file, 8, LABELS_MAGIC, "idx1 unsigned-byte labels")?;
            (be32(header, 4), 1)
        }
    };
    if u64::from(count) > MAX_IDX_ITEMS {
        let limit = format!("{MAX_IDX_ITEMS} items (more than any data set in this format)");
        return Err(DataError::too_large(file, "item count", &limit, count));
    }
    Ok(kind.header_len() + count as usize * item_len)
}

/// Parses an images file and its labels file into one set (the images file's bytes
/// become the set's pixels, without a copy).
fn parse_pair(
    images: Vec<u8>,
    images_file: &str,
    labels: &[u8],
    labels_file: &str,
) -> Result<ImageSet, DataError> {
    let (count, _) = parse_images(&images, images_file)?;
    let labels = parse_labels(labels, labels_file)?;
    if labels.len() != count {
        return Err(DataError::format(
            labels_file,
            "item count",
            format!("{count} labels, one per image of {images_file}"),
            labels.len(),
        ));
    }
    let mut pixels = images;
    pixels.drain(..16);
    Ok(ImageSet {
        images: pixels,
        labels,
        ..ImageSet::empty(SIDE, SIDE, 1)
    })
}

/// The big-endian u32 at `at` (the caller has checked the length).
fn be32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Checks an idx header's length and magic number.
fn check_header(
    data: &[u8],
    file: &str,
    header_len: usize,
    magic: u32,
    kind: &str,
) -> Result<(), DataError> {
    if data.len() < header_len {
        let expected = format!("a {header_len}-byte idx header");
        return Err(DataError::format(
            file,
            "header",
            expected,
            format!("{} bytes", data.len()),
        ));
    }
    let found = be32(data, 0);
    if found != magic {
        let expected = format!("0x{magic:08x} ({kind})");
        return Err(DataError::format(
            file,
            "magic number",
            expected,
            format!("0x{found:08x}"),
        ));
    }
    Ok(())
}

/// Checks that the data after the header has exactly the size the header announces.
fn check_length(
    data: &[u8],
    file: &str,
    expected: Option<usize>,
    what: &str,
) -> Result<(), DataError> {
    if expected == Some(data.len()) {
        return Ok(());
    }
    let found = match expected {
        Some(n) if data.len() < n => format!("{} bytes (truncated)", data.len()),
        _ => format!("{} bytes (extra data)", data.len()),
    };
    let expected = expected.map_or_else(
        || "a size that fits in memory".to_string(),
        |n| format!("{n} bytes"),
    );
    Err(DataError::format(
        file,
        "length",
        format!("{expected} for {what}"),
        found,
    ))
}

/// The image count and the pixels of an idx3 file of 28x28 images.
fn parse_images<'a>(data: &'a [u8], file: &str) -> Result<(usize, &'a [u8]), DataError> {
    check_header(data, file, 16, IMAGES_MAGIC, "idx3 unsigned-byte images")?;
    check_side(data, file)?;
    let count = be32(data, 4) as usize;
    let expected = count
        .checked_mul(SIDE * SIDE)
        .and_then(|n| n.checked_add(16));
    check_length(data, file, expected, &format!("{count} images of 28x28"))?;
    Ok((count, &data[16..]))
}

/// Checks that an images header declares 28x28 images.
fn check_side(header: &[u8], file: &str) -> Result<(), DataError> {
    let (rows, cols) = (be32(header, 8) as usize, be32(header, 12) as usize);
    if (rows, cols) != (SIDE, SIDE) {
        return Err(DataError::format(
            file,
            "image size",
            "28x28",
            format!("{rows}x{cols}"),
        ));
    }
    Ok(())
}

/// The labels of an idx1 file, each checked to be a class `0..=9`.
fn parse_labels(data: &[u8], file: &str) -> Result<Vec<u32>, DataError> {
    check_header(data, file, 8, LABELS_MAGIC, "idx1 unsigned-byte labels")?;
    let count = be32(data, 4) as usize;
    check_length(data, file, count.checked_add(8), &format!("{count} labels"))?;
    let labels = &data[8..];
    if let Some(i) = labels.iter().position(|&l| usize::from(l) >= CLASSES) {
        return Err(DataError::format(
            file,
            format!("label of item {i}"),
            "a class 0..=9",
            labels[i],
        ));
    }
    Ok(labels.iter().map(|&l| u32::from(l)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [IMAGES_MAGIC, count, rows, cols] {
            out.extend(v.to_be_bytes());
        }
        out.extend(pixels);
        out
    }

    fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut out = LABELS_MAGIC.to_be_bytes().to_vec();
        out.extend((labels.len() as u32).to_be_bytes());
        out.extend(labels);
        out
    }

    #[test]
    fn a_valid_pair_gives_images_and_labels() {
        let pixels: Vec<u8> = (0..2 * 784).map(|i| (i % 251) as u8).collect();
        let set = parse_pair(
            idx_images(2, 28, 28, &pixels),
            "i",
            &idx_labels(&[3, 9]),
            "l",
        )
        .unwrap();
        assert_eq!(
            (set.len(), set.height, set.width, set.channels),
            (2, 28, 28, 1)
        );
        assert_eq!(set.image(1), &pixels[784..]);
        assert_eq!(set.labels, vec![3, 9]);
    }

    #[test]
    fn truncated_image_file_is_rejected_with_its_path() {
        let data = idx_images(2, 28, 28, &[0; 784 + 5]);
        let err = parse_images(&data, "/d/train-images-idx3-ubyte")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/d/train-images-idx3-ubyte") && err.contains("truncated"),
            "{err}"
        );
        assert!(err.contains("1584 bytes"), "{err}");
    }

    #[test]
    fn wrong_magic_is_rejected_with_the_expected_value() {
        let mut data = idx_labels(&[1]);
        data[3] = 0x03;
        let err = parse_labels(&data, "labels").unwrap_err().to_string();
        assert!(
            err.contains("magic number")
                && err.contains("0x00000801")
                && err.contains("0x00000803"),
            "{err}"
        );
    }

    #[test]
    fn wrong_dimensions_are_rejected() {
        let err = parse_images(&idx_images(1, 32, 32, &[0; 1024]), "imgs")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("imgs: image size: expected 28x28, found 32x32"),
            "{err}"
        );
    }

    #[test]
    fn label_out_of_range_is_rejected_with_its_index() {
        let err = parse_labels(&idx_labels(&[0, 9, 10]), "labels")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("label of item 2") && err.contains("0..=9") && err.contains("found 10"),
            "{err}"
        );
    }

    #[test]
    fn a_short_header_or_huge_count_does_not_panic() {
        assert!(parse_images(&[0, 0, 8], "x").is_err());
        let huge = idx_images(u32::MAX, 28, 28, &[]);
        assert!(parse_images(&huge, "x").is_err());
    }

    #[test]
    fn a_header_claiming_more_items_than_the_limit_is_refused_before_reading_on() {
        let header = idx_images(MAX_IDX_ITEMS as u32 + 1, 28, 28, &[]);
        let err = declared_len(&header, "imgs", Kind::Images)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("imgs: item count: expected at most 250000 items")
                && err.contains("250001"),
            "{err}"
        );
        let labels = idx_labels(&[1; 3]);
        assert_eq!(declared_len(&labels, "l", Kind::Labels).unwrap(), 11);
    }

    #[test]
    fn counts_must_agree_between_images_and_labels() {
        let err = parse_pair(
            idx_images(1, 28, 28, &[0; 784]),
            "imgs",
            &idx_labels(&[1, 2]),
            "labs",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("labs: item count: expected 1 labels"),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_gzip_file_is_rejected_with_its_path() {
        let mut stream = MultiGzDecoder::new(&[0x1f, 0x8b, 8, 0, 0, 0][..]);
        let err = read_declared(&mut stream, Path::new("/d/x.gz"), Kind::Images)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/d/x.gz") && err.contains("gzip"), "{err}");
    }
}
