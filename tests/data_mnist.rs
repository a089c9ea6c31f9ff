//! MNIST and Fashion-MNIST loaded from the official idx files in `../shared/data`.
//!
//! Expected pixels and labels were read independently with Python's `gzip` and `struct`
//! modules, e.g. for the first training image of MNIST:
//!
//! ```python
//! img = gzip.open("mnist/train-images-idx3-ubyte.gz").read()
//! px = img[16 + i * 784 : 16 + (i + 1) * 784]   # row-major 28x28
//! sum(px); [(k, px[k]) for k in range(784) if px[k]][:3]; list(px[14 * 28 + 10 : 14 * 28 + 15])
//! ```
//!
//! Class counts come from the shared data's SOURCE.md files.

use regstudy::data::{self, DatasetSpec, LoadOptions, Normalization};
use std::path::Path;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

fn load(spec: DatasetSpec, data_dir: &Path) -> data::Dataset {
    let options = LoadOptions {
        data_dir: Some(data_dir),
        download: false,
        progress: &data::Unobserved,
    };
    data::load_with(&spec, &options).unwrap()
}

/// Image `i` of a set: its pixel sum, its first three non-zero pixels (index, value) and
/// row 14, columns 10..15.
fn fingerprint(set: &data::ImageSet, i: usize) -> (u64, Vec<(usize, u8)>, Vec<u8>) {
    let px = set.image(i);
    let sum = px.iter().map(|&v| u64::from(v)).sum();
    let nonzero = px
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, v)| v > 0)
        .take(3)
        .collect();
    (sum, nonzero, px[14 * 28 + 10..14 * 28 + 15].to_vec())
}

#[test]
fn mnist_from_the_data_root_has_the_official_counts_and_pixels() {
    let mnist = load(DatasetSpec::Mnist, Path::new(SHARED));
    assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
    assert_eq!(
        (mnist.train.height, mnist.train.width, mnist.train.channels),
        (28, 28, 1)
    );
    let train_counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    assert_eq!(mnist.train.class_counts(10), train_counts);
    let test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
    assert_eq!(mnist.test.class_counts(10), test_counts);
    assert_eq!(mnist.train.labels[..5], [5, 0, 4, 1, 9]);
    assert_eq!(mnist.test.labels[..5], [7, 2, 1, 0, 4]);
    let first = fingerprint(&mnist.train, 0);
    assert_eq!(
        first,
        (
            27525,
            vec![(152, 3), (153, 18), (154, 18)],
            vec![0, 0, 0, 81, 240]
        )
    );
    let last = fingerprint(&mnist.train, 59_999);
    assert_eq!(
        last,
        (
            20920,
            vec![(184, 38), (185, 48), (186, 48)],
            vec![190, 196, 14, 2, 97]
        )
    );
    let test_last = fingerprint(&mnist.test, 9_999);
    assert_eq!(
        test_last,
        (
            41833,
            vec![(73, 8), (74, 117), (75, 254)],
            vec![132, 64, 0, 0, 18]
        )
    );
    assert_eq!(mnist.test.labels[9_999], 6);
}

#[test]
fn mnist_identity_records_the_official_files() {
    let mnist = load(DatasetSpec::Mnist, &Path::new(SHARED).join("mnist"));
    let sources = &mnist.identity.sources;
    assert_eq!(sources.len(), 4);
    assert!(
        sources.iter().all(|s| s.official == Some(true)),
        "{sources:?}"
    );
    assert_eq!(
        sources[0].md5.as_deref(),
        Some("f68b3c2dcbeaaa9fbdd348bbdeb94873")
    );
    assert_eq!(
        sources[0].sha256,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    );
    assert_eq!(sources[0].bytes, 9_912_422);
    let json = serde_json::to_string(&mnist.identity).unwrap();
    assert!(json.contains("\"spec\":\"mnist\""), "{json}");
}

#[test]
fn mnist_standardization_gives_the_well_known_statistics() {
    let mnist = load(DatasetSpec::Mnist, Path::new(SHARED));
    let Normalization::Standardize { mean, std } = Normalization::standardize_from(&mnist.train)
    else {
        panic!("standardize_from returns Standardize");
    };
    assert!((mean[0] - 0.1307).abs() < 1e-4, "{mean:?}");
    assert!((std[0] - 0.3081).abs() < 1e-4, "{std:?}");
}

#[test]
fn fashion_mnist_has_6000_training_images_per_class() {
    let fashion = load(DatasetSpec::FashionMnist, Path::new(SHARED));
    assert_eq!(fashion.train.class_counts(10), vec![6000; 10]);
    assert_eq!(fashion.test.class_counts(10), vec![1000; 10]);
    assert_eq!(fashion.classes[0], "T-shirt/top");
    assert_eq!(fashion.train.labels[..5], [9, 0, 0, 3, 0]);
    assert_eq!(fashion.test.labels[..5], [9, 2, 1, 1, 6]);
    let first = fingerprint(&fashion.train, 0);
    assert_eq!(
        first,
        (
            76247,
            vec![(96, 1), (99, 13), (100, 73)],
            vec![0, 0, 237, 226, 217]
        )
    );
    let test_first = fingerprint(&fashion.test, 1);
    assert_eq!(
        test_first,
        (
            100994,
            vec![(10, 13), (11, 67), (16, 50)],
            vec![233, 233, 235, 236, 234]
        )
    );
    assert!(fashion
        .identity
        .sources
        .iter()
        .all(|s| s.official == Some(true)));
}

#[test]
fn verify_confirms_the_official_md5s() {
    let checks = data::verify(&DatasetSpec::FashionMnist, Some(Path::new(SHARED))).unwrap();
    assert_eq!(checks.len(), 4);
    assert!(checks.iter().all(|c| c.ok()), "{checks:?}");
}
