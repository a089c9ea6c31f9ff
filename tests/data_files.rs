//! Every loader on small files written by the tests, and on broken versions of them:
//! each broken file gives an error that names it and says what was expected.

mod common;

use common::{Scratch, CIFAR_BATCHES};
use flate2::write::GzEncoder;
use flate2::Compression;
use regstudy::data::{self, Dataset, DatasetSpec, LoadOptions};
use std::fs;
use std::io::Write;
use std::path::Path;
use zune_png::zune_core::bit_depth::BitDepth;
use zune_png::zune_core::colorspace::ColorSpace;
use zune_png::zune_core::options::EncoderOptions;

fn load(spec: &DatasetSpec, data_dir: &Path) -> Result<Dataset, data::DataError> {
    let options = LoadOptions {
        data_dir: Some(data_dir),
        download: false,
        progress: &data::Unobserved,
    };
    data::load_with(spec, &options)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn png(height: usize, width: usize, value: u8) -> Vec<u8> {
    let pixels = vec![value; height * width * 3];
    let options = EncoderOptions::new(width, height, ColorSpace::RGB, BitDepth::Eight);
    zune_png::PngEncoder::new(&pixels, options).encode()
}

/// A tar.gz of `(name, bytes)` members; names are written raw, unchecked, so that
/// unsafe ones can be tested.
fn tar_gz(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, &bytes[..]).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A CIFAR-10 record: label, then R, G, B planes (pixel p of the red plane is `label + p`).
fn cifar_record(label: u8) -> Vec<u8> {
    let mut record = vec![label];
    record.extend((0..1024).map(|p| label.wrapping_add(p as u8)));
    record.extend([100u8; 1024]);
    record.extend([200u8; 1024]);
    record
}

#[test]
fn cifar10_bin_files_in_a_folder_load_in_batch_order() {
    let dir = Scratch::new("cifar-folder");
    for (i, name) in CIFAR_BATCHES.iter().enumerate() {
        let batch = [cifar_record(i as u8), cifar_record(9)].concat();
        dir.write(&format!("cifar10/{name}"), &batch);
    }
    let data = load(&DatasetSpec::Cifar10, &dir.0).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (10, 2));
    assert_eq!(data.train.labels, vec![0, 9, 1, 9, 2, 9, 3, 9, 4, 9]);
    assert_eq!(data.test.labels, vec![5, 9]);
    assert_eq!(&data.train.image(2)[..6], &[1, 100, 200, 2, 100, 200]);
    assert_eq!(data.identity.sources.len(), 6);
}

#[test]
fn cifar10_archive_is_read_without_extraction() {
    let dir = Scratch::new("cifar-archive");
    let members: Vec<(String, Vec<u8>)> = CIFAR_BATCHES
        .iter()
        .map(|n| (format!("cifar-10-batches-bin/{n}"), cifar_record(3)))
        .collect();
    let members: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    dir.write("cifar-10-binary.tar.gz", &tar_gz(&members));
    let data = load(&DatasetSpec::Cifar10, &dir.0).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (5, 1));
    assert_eq!(data.identity.sources[0].official, Some(false));
    assert!(
        fs::read_dir(&dir.0).unwrap().count() == 1,
        "nothing is extracted"
    );
}

#[test]
fn truncated_cifar10_batch_is_rejected_with_its_path() {
    let dir = Scratch::new("cifar-truncated");
    for name in CIFAR_BATCHES {
        dir.write(name, &cifar_record(1));
    }
    dir.write("data_batch_4.bin", &cifar_record(1)[..3000]);
    let err = load(&DatasetSpec::Cifar10, &dir.0).unwrap_err().to_string();
    assert!(
        err.contains("data_batch_4.bin: length: expected a non-zero multiple of 3073 bytes"),
        "{err}"
    );
}

fn idx_images(magic: u32, count: u32, side: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = [magic, count, side, side]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    out.extend(pixels);
    out
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = [0x801u32, labels.len() as u32]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    out.extend(labels);
    out
}

/// Writes the four MNIST files under `dir/mnist/`, gzipped.
fn write_mnist(dir: &Scratch, train_images: Vec<u8>, train_labels: Vec<u8>) {
    dir.write("mnist/train-images-idx3-ubyte.gz", &gzip(&train_images));
    dir.write("mnist/train-labels-idx1-ubyte.gz", &gzip(&train_labels));
    dir.write(
        "mnist/t10k-images-idx3-ubyte.gz",
        &gzip(&idx_images(0x803, 1, 28, &[7; 784])),
    );
    dir.write("mnist/t10k-labels-idx1-ubyte.gz", &gzip(&idx_labels(&[4])));
}

#[test]
fn small_idx_files_load_and_are_not_taken_for_the_official_ones() {
    let dir = Scratch::new("idx-ok");
    let pixels: Vec<u8> = (0..2 * 784).map(|i| (i % 256) as u8).collect();
    write_mnist(&dir, idx_images(0x803, 2, 28, &pixels), idx_labels(&[1, 8]));
    let data = load(&DatasetSpec::Mnist, &dir.0).unwrap();
    assert_eq!(data.train.images, pixels);
    assert_eq!(
        (data.train.labels.clone(), data.test.labels.clone()),
        (vec![1, 8], vec![4])
    );
    assert!(data
        .identity
        .sources
        .iter()
        .all(|s| s.official == Some(false)));
}

#[test]
fn idx_files_with_wrong_magic_dimensions_or_labels_are_rejected_with_their_path() {
    let dir = Scratch::new("idx-broken");
    let cases = [
        (
            idx_images(0x801, 1, 28, &[0; 784]),
            idx_labels(&[1]),
            "train-images-idx3-ubyte.gz: magic number: expected 0x00000803",
        ),
        (
            idx_images(0x803, 1, 27, &[0; 729]),
            idx_labels(&[1]),
            "train-images-idx3-ubyte.gz: image size: expected 28x28, found 27x27",
        ),
        (
            idx_images(0x803, 2, 28, &[0; 784]),
            idx_labels(&[1, 1]),
            "train-images-idx3-ubyte.gz: length: expected 1584 bytes",
        ),
        (
            idx_images(0x803, 1, 28, &[0; 784]),
            idx_labels(&[12]),
            "train-labels-idx1-ubyte.gz: label of item 0: expected a class 0..=9, found 12",
        ),
    ];
    for (images, labels, message) in cases {
        write_mnist(&dir, images, labels);
        let err = load(&DatasetSpec::Mnist, &dir.0).unwrap_err().to_string();
        assert!(err.contains(message), "{err}");
        assert!(err.contains(&dir.0.display().to_string()), "{err}");
    }
}

#[test]
fn a_missing_idx_file_without_download_says_what_to_place_where() {
    let dir = Scratch::new("idx-missing");
    let err = load(&DatasetSpec::FashionMnist, &dir.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-labels-idx1-ubyte.gz"), "{err}");
    assert!(
        err.contains(&dir.0.join("fashion-mnist").display().to_string()),
        "{err}"
    );
    assert!(err.contains("fashion-mnist.s3-website"), "{err}");
}

/// A two-class Tiny-ImageNet zip; `extra` adds members.
fn tiny_zip(extra: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut members = vec![
        ("tiny-imagenet-200/wnids.txt", b"n2\nn1\n".to_vec()),
        (
            "tiny-imagenet-200/train/n1/images/n1_0.JPEG",
            png(64, 64, 11),
        ),
        (
            "tiny-imagenet-200/train/n2/images/n2_0.JPEG",
            png(64, 64, 22),
        ),
        ("tiny-imagenet-200/val/images/val_0.JPEG", png(64, 64, 33)),
        (
            "tiny-imagenet-200/val/val_annotations.txt",
            b"val_0.JPEG\tn1\t0\t0\t1\t1\n".to_vec(),
        ),
    ];
    members.extend(extra.iter().cloned());
    for (name, bytes) in members {
        zip.start_file(name, deflated).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn tiny_imagenet_zip_loads_with_validation_as_test() {
    let dir = Scratch::new("tiny-zip");
    dir.write("tiny-imagenet/tiny-imagenet-200.zip", &tiny_zip(&[]));
    let data = load(&DatasetSpec::TinyImageNet, &dir.0).unwrap();
    assert_eq!(data.classes, vec!["n1", "n2"]);
    assert_eq!(data.train.labels, vec![0, 1]);
    assert_eq!(
        (
            data.train.image(1)[0],
            data.test.image(0)[0],
            data.test.labels[0]
        ),
        (22, 33, 0)
    );
    assert_eq!(data.identity.sources[0].official, Some(false));
}

#[test]
fn a_zip_member_with_a_parent_component_is_refused() {
    let dir = Scratch::new("tiny-unsafe");
    let zip_path = dir.write(
        "tiny-imagenet-200.zip",
        &tiny_zip(&[("../escape.txt", b"x".to_vec())]),
    );
    let err = load(&DatasetSpec::TinyImageNet, &dir.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&zip_path.display().to_string()) && err.contains("`../escape.txt`"),
        "{err}"
    );
    assert!(
        err.contains("expected a relative path without `..`"),
        "{err}"
    );
}

#[test]
fn a_folder_tarball_with_an_enclosing_folder_loads() {
    let dir = Scratch::new("folder-tar");
    let archive = dir.write(
        "pets.tar.gz",
        &tar_gz(&[
            ("pets/train/dog/1.png", png(4, 4, 1)),
            ("pets/train/cat/1.png", png(4, 4, 2)),
            ("pets/test/cat/2.png", png(4, 4, 3)),
        ]),
    );
    let data = data::load(&DatasetSpec::Folder(archive), None).unwrap();
    assert_eq!(data.classes, vec!["cat", "dog"]);
    assert_eq!(data.train.labels, vec![0, 1]);
    assert_eq!((data.train.image(0)[0], data.test.image(0)[0]), (2, 3));
}

#[test]
fn a_tar_member_escaping_with_dot_dot_or_an_absolute_path_is_refused() {
    let dir = Scratch::new("folder-unsafe");
    for bad in ["../train/cat/1.png", "/train/cat/1.png"] {
        let archive = dir.write(
            "evil.tar.gz",
            &tar_gz(&[("train/cat/0.png", png(4, 4, 1)), (bad, png(4, 4, 1))]),
        );
        let err = data::load(&DatasetSpec::Folder(archive.clone()), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&archive.display().to_string()) && err.contains(bad),
            "{err}"
        );
        assert!(
            err.contains("expected a relative path without `..`"),
            "{err}"
        );
    }
}

#[test]
fn an_unreadable_image_in_a_tarball_is_named_with_the_archive() {
    let dir = Scratch::new("folder-unreadable");
    let members = [
        ("train/cat/0.png", png(4, 4, 1)),
        ("test/cat/1.jpg", b"\xff\xd8 truncated".to_vec()),
    ];
    let archive = dir.write("bad.tar.gz", &tar_gz(&members));
    let err = data::load(&DatasetSpec::Folder(archive.clone()), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{}:test/cat/1.jpg", archive.display())),
        "{err}"
    );
    assert!(err.contains("cannot decode the image"), "{err}");
}

#[test]
fn a_truncated_tarball_is_an_error_not_a_panic() {
    let dir = Scratch::new("folder-truncated");
    let whole = tar_gz(&[
        ("train/cat/0.png", png(16, 16, 1)),
        ("test/cat/1.png", png(16, 16, 1)),
    ]);
    let archive = dir.write("cut.tar.gz", &whole[..whole.len() / 2]);
    let err = data::load(&DatasetSpec::Folder(archive.clone()), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&archive.display().to_string()), "{err}");
}

#[cfg(unix)]
#[test]
fn class_folders_differing_only_in_bytes_that_are_not_utf8_stay_two_classes() {
    use std::os::unix::ffi::OsStrExt;
    let dir = Scratch::new("non-utf8");
    let image = png(4, 4, 9);
    for (split, class) in [("train", b"a\xff"), ("train", b"a\xfe"), ("test", b"a\xff")] {
        let folder = dir.0.join(split).join(std::ffi::OsStr::from_bytes(class));
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join("0.png"), &image).unwrap();
    }
    let data = load(&DatasetSpec::Folder(dir.0.clone()), &dir.0).unwrap();
    assert_eq!(data.classes, vec!["a\\xfe", "a\\xff"]);
    assert_eq!((data.train.len(), data.test.labels.clone()), (2, vec![1]));
    let mut builder = tar::Builder::new(Vec::new());
    for name in [
        &b"train/b\xff/0.png"[..],
        b"train/b\xfe/0.png",
        b"test/b\xfe/0.png",
    ] {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_size(image.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, &image[..]).unwrap();
    }
    let archive = dir.write("raw.tar", &builder.into_inner().unwrap());
    let data = load(&DatasetSpec::Folder(archive), &dir.0).unwrap();
    assert_eq!(data.classes, vec!["b\\xfe", "b\\xff"]);
}
