//! The CIFAR-10 JPEG copy in `../shared/data/cifar-10-jpeg`, read with `folder:` straight
//! from its `.tar.gz`.
//!
//! Expected pixels were decoded independently with Pillow 13.0 (libjpeg-turbo):
//!
//! ```python
//! t = tarfile.open("cifar-10-jpeg.tar.gz")
//! im = Image.open(io.BytesIO(t.extractfile(name).read()))
//! [im.getpixel((x, 0)) for x in range(3)], im.getpixel((31, 31)), sum(sum(p) for p in im.getdata())
//! ```
//!
//! JPEG decoders may round the inverse DCT and chroma upsampling differently, so pixels
//! are compared within a tolerance and the image sums within 0.5 %.

use regstudy::data::{self, Dataset, DatasetSpec};
use std::path::PathBuf;

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/cifar-10-jpeg/cifar-10-jpeg.tar.gz"
);

/// (split, class index, index within the class, first three pixels of row 0, pixel
/// (31, 31), sum of all samples), from Pillow.
type Expected = (&'static str, usize, usize, [[u8; 3]; 3], [u8; 3], u64);

const EXPECTED: [Expected; 4] = [
    (
        "train",
        0,
        0,
        [[200, 202, 197], [202, 204, 199], [203, 205, 200]],
        [236, 236, 238],
        456_420,
    ),
    (
        "train",
        9,
        4999,
        [[41, 175, 236], [36, 172, 232], [42, 178, 240]],
        [7, 29, 43],
        322_105,
    ),
    (
        "test",
        3,
        0,
        [[167, 107, 47], [166, 106, 44], [168, 110, 46]],
        [27, 79, 129],
        332_902,
    ),
    (
        "test",
        9,
        999,
        [[255, 255, 246], [253, 249, 240], [244, 241, 234]],
        [113, 94, 90],
        384_887,
    ),
];

fn close(got: &[u8], want: &[u8], tolerance: u8) -> bool {
    got.iter()
        .zip(want)
        .all(|(g, w)| g.abs_diff(*w) <= tolerance)
}

fn check_image(data: &Dataset, (split, class, within, row0, corner, sum): Expected) {
    let (set, per_class) = if split == "train" {
        (&data.train, 5000)
    } else {
        (&data.test, 1000)
    };
    let index = class * per_class + within;
    assert_eq!(set.labels[index] as usize, class);
    let image = set.image(index);
    for (x, want) in row0.iter().enumerate() {
        assert!(
            close(&image[3 * x..3 * x + 3], want, 4),
            "{split} {class} {within} x={x}: {:?}",
            &image[..9]
        );
    }
    let last = 3 * (32 * 32 - 1);
    assert!(
        close(&image[last..], &corner, 4),
        "{:?} vs {corner:?}",
        &image[last..]
    );
    let total: u64 = image.iter().map(|&v| u64::from(v)).sum();
    assert!(total.abs_diff(sum) * 200 <= sum, "sum {total} vs {sum}");
}

#[test]
fn the_cifar10_jpeg_tarball_loads_as_a_folder_with_5000_and_1000_per_class() {
    let spec = DatasetSpec::Folder(PathBuf::from(ARCHIVE));
    let data = data::load(&spec, None).unwrap();
    let classes = [
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
    assert_eq!(data.classes, classes);
    assert_eq!(
        (data.train.height, data.train.width, data.train.channels),
        (32, 32, 3)
    );
    assert_eq!(data.train.class_counts(10), vec![5000; 10]);
    assert_eq!(data.test.class_counts(10), vec![1000; 10]);
    for expected in EXPECTED {
        check_image(&data, expected);
    }
    let source = &data.identity.sources[0];
    assert_eq!(source.bytes, 19_433_766);
    assert_eq!(
        source.sha256,
        "097287809041e0a666355dfce11470ba1b3f2631fe910d8793c716253f10b297"
    );
}
