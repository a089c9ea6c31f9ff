//! Decompression bombs: files a few megabytes on disk that claim, or inflate to,
//! gigabytes. `regstudy data info` must refuse each with an error that names the file,
//! and its own peak resident memory (read from the kernel when the process is reaped)
//! must stay under 300 MB.

mod common;

use common::{
    gzip, gzip_segments, jpeg_8x8, jpeg_claiming, png, png_chunk, small_png, tar,
    tar_gz_with_zeros, tar_header, zip, zlib_zeros, Scratch, ZipMember,
};
use std::fs::File;
use std::process::Stdio;
use std::sync::Mutex;

/// The most memory a refused bomb may cost.
const PEAK_LIMIT_MB: u64 = 300;

/// What a bomb inflates to: several times the limit.
const GIB: u64 = 1 << 30;

/// One bomb at a time, so that a regression cannot take the machine's memory many
/// times over.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How a run of `regstudy` ended and the most memory it held.
struct Measured {
    exit_code: Option<i32>,
    signal: Option<i32>,
    peak_mb: u64,
    stderr: String,
}

/// Runs `regstudy ARGS` and reaps it with `wait4`, which reports the child's own peak
/// resident set size. Linux counts in it the memory of the test process at the moment
/// the child was started (before `exec`), so the figure errs on the high side; the bombs
/// are written without holding their inflated contents.
fn measure(args: &[&str], scratch: &Scratch) -> Measured {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stderr_path = scratch.path("stderr.txt");
    // Reaped below with wait4, which Child::wait cannot do (it discards the usage).
    #[allow(clippy::zombie_processes)]
    let child = common::regstudy()
        .args(args)
        .env("REGSTUDY_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; the pid is our own child, not
    // yet reaped (Child::wait is never called on it).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    let exited = libc::WIFEXITED(status);
    Measured {
        exit_code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        // Linux reports kilobytes.
        peak_mb: usage.ru_maxrss as u64 / 1024,
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

/// Runs `data info` on a bomb and checks it is refused, cheaply, naming `named`.
fn assert_refused_cheaply(args: &[&str], scratch: &Scratch, named: &str) {
    let run = measure(args, scratch);
    println!(
        "{args:?}: peak {} MB, exit {:?}",
        run.peak_mb, run.exit_code
    );
    assert_eq!(run.signal, None, "killed by a signal: {}", run.stderr);
    assert_eq!(run.exit_code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(named),
        "{named} not named: {}",
        run.stderr
    );
    assert!(
        run.peak_mb < PEAK_LIMIT_MB,
        "peak {} MB: {}",
        run.peak_mb,
        run.stderr
    );
}

/// An idx images file header.
fn idx_header(count: u32) -> Vec<u8> {
    [0x803u32, count, 28, 28]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// An MNIST folder whose training images file is `images` (gzip).
fn mnist_with_images(scratch: &Scratch, images: &[u8]) -> String {
    let labels = |n: u32| {
        let mut bytes = [0x801u32, n]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<_>>();
        bytes.resize(8 + n as usize, 1);
        gzip(&bytes, 0)
    };
    let mut test_images = idx_header(10);
    test_images.resize(16 + 10 * 784, 0);
    scratch.write("mnist/train-images-idx3-ubyte.gz", images);
    scratch.write("mnist/train-labels-idx1-ubyte.gz", &labels(60_000));
    scratch.write("mnist/t10k-images-idx3-ubyte.gz", &gzip(&test_images, 0));
    scratch.write("mnist/t10k-labels-idx1-ubyte.gz", &labels(10));
    scratch.0.display().to_string()
}

#[test]
fn an_idx_gz_of_zeros_inflating_to_a_gigabyte_is_refused_cheaply() {
    let scratch = Scratch::new("bomb-idx-zeros");
    let dir = mnist_with_images(&scratch, &gzip(&idx_header(60_000), GIB));
    let args = ["data", "info", "mnist", "--data-dir", &dir, "--offline"];
    assert_refused_cheaply(&args, &scratch, "train-images-idx3-ubyte.gz");
}

#[test]
fn an_idx_header_claiming_billions_of_images_is_refused_cheaply() {
    let scratch = Scratch::new("bomb-idx-header");
    let dir = mnist_with_images(&scratch, &gzip(&idx_header(u32::MAX), GIB));
    let args = ["data", "info", "mnist", "--data-dir", &dir, "--offline"];
    assert_refused_cheaply(&args, &scratch, "train-images-idx3-ubyte.gz");
}

#[test]
fn a_cifar_archive_with_a_gigabyte_batch_is_refused_cheaply() {
    let scratch = Scratch::new("bomb-cifar");
    let bomb = tar_gz_with_zeros(&[], "cifar-10-batches-bin/data_batch_1.bin", GIB);
    scratch.write("cifar10/cifar-10-binary.tar.gz", &bomb);
    let dir = scratch.0.display().to_string();
    let args = ["data", "info", "cifar10", "--data-dir", &dir, "--offline"];
    assert_refused_cheaply(&args, &scratch, "cifar-10-binary.tar.gz");
}

/// `train/a/0.png` and `test/a/0.png`, small and valid.
fn valid_images() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("train/a/0.png", small_png(8, 8)),
        ("test/a/0.png", small_png(8, 8)),
    ]
}

#[test]
fn a_tar_gz_with_one_member_inflating_to_a_gigabyte_is_refused_cheaply() {
    let scratch = Scratch::new("bomb-tar-one");
    let bomb = tar_gz_with_zeros(&valid_images(), "train/a/1.png", GIB);
    let path = scratch.write("images.tar.gz", &bomb);
    let spec = format!("folder:{}", path.display());
    assert_refused_cheaply(&["data", "info", &spec], &scratch, "images.tar.gz");
}

#[test]
fn a_tar_gz_of_many_members_inflating_to_a_gigabyte_in_all_is_refused_cheaply() {
    let scratch = Scratch::new("bomb-tar-many");
    let mut valid = tar(&valid_images());
    valid.truncate(valid.len() - 1024);
    let member = 16u64 << 20;
    let headers: Vec<Vec<u8>> = (1..=64)
        .map(|i| tar_header(&format!("train/a/{i}.png"), member))
        .collect();
    let mut segments: Vec<(&[u8], u64)> = vec![(&valid, 0)];
    segments.extend(headers.iter().map(|h| (&h[..], member)));
    segments.push((&[], 1024));
    let compressed = gzip_segments(&segments);
    let path = scratch.write("many.tar.gz", &compressed);
    let spec = format!("folder:{}", path.display());
    assert_refused_cheaply(&["data", "info", &spec], &scratch, "many.tar.gz");
}

#[test]
fn a_zip_member_inflating_to_a_gigabyte_is_refused_cheaply_whatever_size_it_claims() {
    for (name, claimed) in [("honest.zip", GIB as u32), ("lying.zip", 100)] {
        let scratch = Scratch::new(&format!("bomb-{name}"));
        let mut members: Vec<ZipMember> = valid_images()
            .iter()
            .map(|(n, b)| ZipMember::stored(n, b))
            .collect();
        members.push(ZipMember::zeros("train/a/1.png", GIB, claimed));
        let path = scratch.write(name, &zip(&members));
        let spec = format!("folder:{}", path.display());
        assert_refused_cheaply(&["data", "info", &spec], &scratch, name);
    }
}

#[test]
fn a_tiny_imagenet_zip_whose_class_list_inflates_to_a_gigabyte_is_refused_cheaply() {
    let scratch = Scratch::new("bomb-tiny");
    let members = [ZipMember::zeros("tiny-imagenet-200/wnids.txt", GIB, 200)];
    scratch.write("tiny-imagenet/tiny-imagenet-200.zip", &zip(&members));
    let dir = scratch.0.display().to_string();
    let args = [
        "data",
        "info",
        "tiny-imagenet",
        "--data-dir",
        &dir,
        "--offline",
    ];
    assert_refused_cheaply(&args, &scratch, "tiny-imagenet-200.zip");
}

/// A folder data set whose `train/a/1.png` (or `.jpg`) is `bomb`.
fn folder_with_image(scratch: &Scratch, file: &str, bomb: &[u8]) -> String {
    for (name, bytes) in valid_images() {
        scratch.write(&format!("set/{name}"), &bytes);
    }
    scratch.write(&format!("set/train/a/{file}"), bomb);
    format!("folder:{}", scratch.path("set").display())
}

#[test]
fn a_png_claiming_60000_by_60000_pixels_is_refused_cheaply() {
    let scratch = Scratch::new("bomb-png-header");
    let spec = folder_with_image(&scratch, "1.png", &png(60_000, 60_000, 1 << 20, None));
    assert_refused_cheaply(&["data", "info", &spec], &scratch, "1.png");
}

#[test]
fn a_png_whose_image_data_inflates_to_a_gigabyte_is_refused_cheaply() {
    let scratch = Scratch::new("bomb-png-idat");
    let bomb = png(16_000, 16_000, 16_000 * (16_000 * 4 + 1), None);
    let spec = folder_with_image(&scratch, "1.png", &bomb);
    assert_refused_cheaply(&["data", "info", &spec], &scratch, "1.png");
}

#[test]
fn a_png_text_chunk_inflating_to_a_gigabyte_costs_nothing() {
    let scratch = Scratch::new("bomb-png-ztxt");
    let mut text = b"Comment\0\0".to_vec();
    text.extend(zlib_zeros(GIB - (1 << 20)));
    let bomb = png(8, 8, 8 * 33, Some(png_chunk(b"zTXt", &text)));
    let spec = folder_with_image(&scratch, "1.png", &bomb);
    let run = measure(&["data", "info", &spec], &scratch);
    println!("zTXt: peak {} MB, exit {:?}", run.peak_mb, run.exit_code);
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    assert!(run.peak_mb < PEAK_LIMIT_MB, "peak {} MB", run.peak_mb);
}

#[test]
fn a_jpeg_claiming_16000_by_16000_pixels_is_refused_cheaply() {
    let scratch = Scratch::new("bomb-jpeg");
    assert!(jpeg_8x8().len() < 1000);
    let spec = folder_with_image(&scratch, "1.jpg", &jpeg_claiming(16_000, 16_000));
    assert_refused_cheaply(&["data", "info", &spec], &scratch, "1.jpg");
}

#[test]
fn the_generated_streams_inflate_to_what_they_claim() {
    use std::io::Read;
    let prefix: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8 + 1).collect();
    let mut out = Vec::new();
    let segments: [(&[u8], u64); 3] = [(b"ab", 3), (&[], 0), (b"c", 300)];
    flate2::read::GzDecoder::new(&gzip_segments(&segments)[..])
        .read_to_end(&mut out)
        .unwrap();
    let mut expected = b"ab\0\0\0c".to_vec();
    expected.resize(306, 0);
    assert_eq!(out, expected);
    for zeros in [0u64, 1, 2, 258, 259, 1000, 100_000] {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&prefix, zeros)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len() as u64, prefix.len() as u64 + zeros);
        assert_eq!(&out[..prefix.len()], &prefix[..]);
        assert!(out[prefix.len()..].iter().all(|&b| b == 0));
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&zlib_zeros(zeros)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len() as u64, zeros);
    }
    let budget = regstudy::data::DecodeBudget::new(1 << 20);
    let image = regstudy::data::decode_image(&small_png(8, 8), "x.png", &budget).unwrap();
    assert_eq!(image.shape(), "8x8x3");
}
