//! Mutation fuzzing of every parser that reads a user's file: idx, CIFAR-10 batches,
//! folder trees as tar, tar.gz and zip, Tiny-ImageNet, PNG and JPEG decoding, study specs
//! and model specs.
//!
//! Each target starts from small valid seeds (cut from the real files in
//! `../shared/data` when they are there, generated otherwise) and feeds the parser
//! mutants of them: bit flips, bytes and 32-bit words overwritten with boundary values
//! (most often in the first 64 bytes, where headers are), truncation, extension,
//! splicing of another seed, duplicated and deleted ranges, and for text, numbers
//! replaced by extreme ones. The property: every input gives a result or an error, never
//! a panic, and holds at most [`MEMORY_BOUND`] bytes at once, as counted by this test's
//! own global allocator. A failing input is saved under `target/fuzz-failures/`.
//!
//! Each target runs for `REGSTUDY_FUZZ_SECONDS` seconds (default 3) or
//! [`MAX_INPUTS`] inputs, whichever comes first; `REGSTUDY_FUZZ_SEED` changes the
//! mutations (default: fixed, so a run can be repeated). `--nocapture` shows how many
//! inputs each target ran.

mod common;

use common::{small_png, tar, zip, Scratch, ZipMember, CIFAR_BATCHES};
use regstudy::data::{self, DatasetSpec, DecodeBudget, LoadOptions};
use regstudy::engine::SplitMix64;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The most bytes one input may hold at once, beyond what was held before it.
const MEMORY_BOUND: usize = 256 << 20;

/// Above this, an input is stopped at once: the process aborts after naming the input
/// (an allocation this large could fail and abort anyway, without a word).
const HARD_BOUND: usize = 1 << 30;

/// Inputs per target at most, so that a fast machine does not spend its budget on one.
const MAX_INPUTS: usize = 20_000;

/// Fewer inputs than this in the time given means the harness is too slow to test
/// anything, which fails the target.
const MIN_INPUTS: usize = 100;

/// Counts live heap bytes and their peak, for the memory bound.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static BASE: AtomicUsize = AtomicUsize::new(usize::MAX);

impl Counting {
    fn grow(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
        let base = BASE.load(Ordering::Relaxed);
        if live.saturating_sub(base) > HARD_BOUND {
            // Formatting could allocate; a fixed message and the input file are enough.
            let message = b"fuzz: one input held more than 1 GiB; it is in target/fuzz-current/\n";
            let _ = std::io::stderr().write_all(message);
            std::process::abort();
        }
    }
}

// SAFETY: every call is passed to the system allocator unchanged; only counters are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Counting::grow(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Counting::grow(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size > layout.size() {
                Counting::grow(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The targets run one at a time, so that the allocator's counts are one input's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Whether an input is running: its panics are recorded, not printed.
static IN_INPUT: AtomicBool = AtomicBool::new(false);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// Installs, once, a panic hook that records panics of inputs and leaves others to the
/// default hook.
fn install_panic_hook() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_INPUT.load(Ordering::Relaxed) {
                let mut last = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner());
                *last = info.to_string();
            } else {
                default(info);
            }
        }));
    });
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
}

fn shared_data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
}

/// How many seconds each target runs.
fn budget() -> Duration {
    let seconds = std::env::var("REGSTUDY_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(3.0);
    Duration::from_secs_f64(seconds)
}

fn fuzz_seed() -> u64 {
    std::env::var("REGSTUDY_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed)
}

/// Boundary values written over 32-bit words.
const WORDS: [u32; 12] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x1_0000,
    4097,
    250_001,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// Extreme numbers written over the numbers of a text.
const NUMBERS: [&str; 10] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999999",
    "1000000",
];

/// A position, most often in the first 64 bytes (headers).
fn position(rng: &mut SplitMix64, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let span = if rng.coin() { len.min(64) } else { len };
    rng.below(span as u64) as usize
}

/// One random change to `input`; `seeds` supply splices.
fn mutate_once(input: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut SplitMix64, text: bool) {
    let len = input.len();
    match rng.below(if text { 9 } else { 8 }) {
        0 if len > 0 => {
            let at = rng.below(len as u64) as usize;
            input[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = position(rng, len);
            input[at] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5) as usize];
        }
        2 if len >= 4 => {
            let at = position(rng, len - 3);
            let word = WORDS[rng.below(WORDS.len() as u64) as usize];
            let bytes = match rng.coin() {
                true => word.to_be_bytes(),
                false => word.to_le_bytes(),
            };
            input[at..at + 4].copy_from_slice(&bytes);
        }
        3 => input.truncate(rng.below(len as u64 + 1) as usize),
        4 => {
            let extra = rng.below(1024) as usize;
            let zeros = rng.coin();
            input.extend((0..extra).map(|_| if zeros { 0 } else { rng.next_u64() as u8 }));
        }
        5 => {
            let other = &seeds[rng.below(seeds.len() as u64) as usize];
            let from = rng.below(other.len() as u64 + 1) as usize;
            let to = (from + rng.below(2048) as usize).min(other.len());
            let at = rng.below(len as u64 + 1) as usize;
            input.splice(at..at, other[from..to].iter().copied());
        }
        6 if len > 0 => {
            let from = rng.below(len as u64) as usize;
            let to = (from + 1 + rng.below(512) as usize).min(len);
            let chunk = input[from..to].to_vec();
            let at = rng.below(len as u64 + 1) as usize;
            input.splice(at..at, chunk);
        }
        7 if len > 0 => {
            let from = rng.below(len as u64) as usize;
            let to = (from + 1 + rng.below(64) as usize).min(len);
            input.drain(from..to);
        }
        8 => replace_number(input, rng),
        _ => {}
    }
}

/// Replaces a run of digits in a text with an extreme number.
fn replace_number(input: &mut Vec<u8>, rng: &mut SplitMix64) {
    let starts: Vec<usize> = (0..input.len())
        .filter(|&i| input[i].is_ascii_digit() && (i == 0 || !input[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let from = starts[rng.below(starts.len() as u64) as usize];
    let to = (from..input.len())
        .find(|&i| !input[i].is_ascii_digit())
        .unwrap_or(input.len());
    let number = NUMBERS[rng.below(NUMBERS.len() as u64) as usize];
    input.splice(from..to, number.bytes());
}

/// A mutant of a random seed: one to four changes.
fn mutant(seeds: &[Vec<u8>], rng: &mut SplitMix64, text: bool) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len() as u64) as usize].clone();
    for _ in 0..=rng.below(4) {
        mutate_once(&mut input, seeds, rng, text);
    }
    input
}

/// How a target parses one input in a scratch folder; true when it is accepted.
type Parse = dyn Fn(&[u8], &Scratch) -> bool;

/// A parser under test: it is handed each input and a scratch folder, and returns
/// whether the input was accepted (so that the count of accepted inputs can be shown).
struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    /// Text targets also get number replacements.
    text: bool,
    run: Box<Parse>,
}

/// What one target's run found.
struct Outcome {
    seconds: f64,
    inputs: usize,
    accepted: usize,
    failures: Vec<String>,
}

/// Runs one input, catching panics and measuring its peak memory.
fn run_input(target: &Target, input: &[u8], scratch: &Scratch) -> Result<bool, String> {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    BASE.store(base, Ordering::Relaxed);
    IN_INPUT.store(true, Ordering::Relaxed);
    let result = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input, scratch)));
    IN_INPUT.store(false, Ordering::Relaxed);
    BASE.store(usize::MAX, Ordering::Relaxed);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    match result {
        Err(_) => {
            let message = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone();
            Err(format!("panic: {message}"))
        }
        Ok(_) if peak > MEMORY_BOUND => Err(format!("held {peak} bytes at once")),
        Ok(accepted) => Ok(accepted),
    }
}

/// Runs `target` for the time budget and saves every failing input.
fn fuzz(target: &Target) -> Outcome {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    install_panic_hook();
    let scratch = Scratch::new(&format!("fuzz-{}", target.name));
    let current = target_dir().join("fuzz-current");
    let failed_dir = target_dir().join("fuzz-failures");
    let _ = std::fs::create_dir_all(&current);
    let mut rng = SplitMix64::derive(
        fuzz_seed(),
        &[target.name.len() as u64, target.name.as_bytes()[0] as u64],
    );
    let start = Instant::now();
    let deadline = start + budget();
    let mut outcome = Outcome {
        seconds: 0.0,
        inputs: 0,
        accepted: 0,
        failures: Vec::new(),
    };
    while Instant::now() < deadline && outcome.inputs < MAX_INPUTS {
        let input = match target.seeds.get(outcome.inputs) {
            Some(seed) => seed.clone(),
            None => mutant(&target.seeds, &mut rng, target.text),
        };
        let _ = std::fs::write(current.join(target.name), &input);
        match run_input(target, &input, &scratch) {
            Ok(accepted) => outcome.accepted += usize::from(accepted),
            Err(problem) => {
                let _ = std::fs::create_dir_all(&failed_dir);
                let saved = failed_dir.join(format!("{}-{}.bin", target.name, outcome.inputs));
                let _ = std::fs::write(&saved, &input);
                outcome
                    .failures
                    .push(format!("{}: {problem}", saved.display()));
            }
        }
        outcome.inputs += 1;
    }
    outcome.seconds = start.elapsed().as_secs_f64();
    outcome
}

/// Runs a target and checks the property and the number of inputs.
fn check(target: Target) {
    let outcome = fuzz(&target);
    println!(
        "fuzz {}: {} inputs ({} seeds, {} accepted) in {:.1} s",
        target.name,
        outcome.inputs,
        target.seeds.len(),
        outcome.accepted,
        outcome.seconds
    );
    assert!(
        outcome.failures.is_empty(),
        "{} failing inputs:\n{}",
        outcome.failures.len(),
        outcome.failures.join("\n")
    );
    assert!(
        outcome.inputs >= MIN_INPUTS,
        "{}: only {} inputs ran",
        target.name,
        outcome.inputs
    );
    assert!(
        outcome.accepted > 0,
        "{}: not even a seed was accepted",
        target.name
    );
}

fn offline(data_dir: &Path) -> LoadOptions<'_> {
    LoadOptions {
        data_dir: Some(data_dir),
        download: false,
        progress: &data::Unobserved,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The first `count` items of an idx file in `../shared/data/mnist` (header rewritten
/// to say so), or generated ones.
fn idx_seed(name: &str, count: usize, item_len: usize) -> Vec<u8> {
    let header_len = if item_len == 1 { 8 } else { 16 };
    let path = shared_data(&format!("mnist/{name}.gz"));
    let mut bytes = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = flate2::read::GzDecoder::new(file)
            .take((header_len + count * item_len) as u64)
            .read_to_end(&mut bytes);
    }
    if bytes.len() != header_len + count * item_len {
        let magic: u32 = if item_len == 1 { 0x801 } else { 0x803 };
        bytes = magic.to_be_bytes().to_vec();
        bytes.extend(0u32.to_be_bytes());
        if item_len > 1 {
            bytes.extend(28u32.to_be_bytes());
            bytes.extend(28u32.to_be_bytes());
        }
        bytes.extend((0..count * item_len).map(|i| (i % 10) as u8));
    }
    bytes[4..8].copy_from_slice(&(count as u32).to_be_bytes());
    bytes
}

const IDX_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

#[test]
fn idx_files_never_panic_or_blow_up() {
    let files: Vec<Vec<u8>> = IDX_NAMES
        .iter()
        .map(|name| {
            let item_len = if name.contains("labels") { 1 } else { 784 };
            idx_seed(name, 50, item_len)
        })
        .collect();
    let mut seeds: Vec<Vec<u8>> = files.iter().map(|f| gzip(f)).collect();
    seeds.extend(files.iter().cloned());
    let valid: Vec<Vec<u8>> = files.iter().map(|f| gzip(f)).collect();
    check(Target {
        name: "idx",
        seeds,
        text: false,
        run: Box::new(move |input, scratch| {
            // The mutant replaces the file it was most likely made from.
            let slot = match (input.len() > 2000, input.get(3).copied()) {
                (_, Some(0x01)) => 1,
                (true, _) => 0,
                _ => 3,
            };
            for (i, name) in IDX_NAMES.iter().enumerate() {
                let bytes = if i == slot { input } else { &valid[i] };
                scratch.write(&format!("{name}.gz"), bytes);
            }
            data::load_with(&DatasetSpec::Mnist, &offline(&scratch.0)).is_ok()
        }),
    });
}

/// A CIFAR-10 batch of `records` records with generated pixels.
fn cifar_batch(records: usize, rng: &mut SplitMix64) -> Vec<u8> {
    let mut batch = Vec::new();
    for _ in 0..records {
        batch.push(rng.below(10) as u8);
        batch.extend((0..3072).map(|_| rng.next_u64() as u8));
    }
    batch
}

#[test]
fn cifar10_archives_never_panic_or_blow_up() {
    let mut rng = SplitMix64::new(10);
    let names: Vec<String> = CIFAR_BATCHES
        .iter()
        .map(|b| format!("cifar-10-batches-bin/{b}"))
        .collect();
    let members: Vec<(&str, Vec<u8>)> = names
        .iter()
        .map(|n| (n.as_str(), cifar_batch(2, &mut rng)))
        .collect();
    let plain = tar(&members);
    let seeds = vec![gzip(&plain), plain];
    check(Target {
        name: "cifar10",
        seeds,
        text: false,
        run: Box::new(|input, scratch| {
            scratch.write("cifar10/cifar-10-binary.tar.gz", input);
            data::load_with(&DatasetSpec::Cifar10, &offline(&scratch.0)).is_ok()
        }),
    });
}

/// A few JPEGs of the CIFAR-10 JPEG tarball (train and test, two classes), or PNGs
/// when it is absent.
fn tree_images() -> Vec<(String, Vec<u8>)> {
    let wanted = [
        "test/airplane/0000.jpg",
        "test/airplane/0001.jpg",
        "test/automobile/0000.jpg",
        "train/airplane/0000.jpg",
        "train/airplane/0001.jpg",
        "train/automobile/0000.jpg",
    ];
    let mut found = Vec::new();
    let archive = shared_data("cifar-10-jpeg/cifar-10-jpeg.tar.gz");
    if let Ok(file) = std::fs::File::open(archive) {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        if let Ok(entries) = tar.entries() {
            for mut entry in entries.flatten() {
                let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                if wanted.contains(&name.as_str()) {
                    let mut bytes = Vec::new();
                    let _ = entry.read_to_end(&mut bytes);
                    found.push((name, bytes));
                }
                if found.len() == wanted.len() {
                    return found;
                }
            }
        }
    }
    wanted
        .iter()
        .map(|name| (name.to_string(), small_png(8, 8)))
        .collect()
}

#[test]
fn folder_trees_as_tar_tar_gz_and_zip_never_panic_or_blow_up() {
    let images = tree_images();
    let members: Vec<(&str, Vec<u8>)> = images
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let plain = tar(&members);
    let pngs: Vec<(&str, Vec<u8>)> = vec![
        ("set/train/a/0.png", small_png(4, 4)),
        ("set/test/a/0.png", small_png(4, 4)),
    ];
    let stored: Vec<ZipMember> = images
        .iter()
        .map(|(n, b)| ZipMember::stored(n, b))
        .collect();
    let deflated: Vec<ZipMember> = images
        .iter()
        .map(|(n, b)| ZipMember::deflated(n, b))
        .collect();
    let seeds = vec![
        gzip(&plain),
        plain,
        tar(&pngs),
        zip(&stored),
        zip(&deflated),
    ];
    check(Target {
        name: "trees",
        seeds,
        text: false,
        run: Box::new(|input, scratch| {
            let path = scratch.write("tree.archive", input);
            let spec = DatasetSpec::Folder(path);
            data::load_with(&spec, &offline(&scratch.0)).is_ok()
        }),
    });
}

#[test]
fn tiny_imagenet_zips_never_panic_or_blow_up() {
    let image = small_png(64, 64);
    let members = [
        ZipMember::stored("tiny-imagenet-200/wnids.txt", b"n02\nn01\n"),
        ZipMember::deflated("tiny-imagenet-200/train/n01/images/n01_0.JPEG", &image),
        ZipMember::stored("tiny-imagenet-200/train/n02/images/n02_0.JPEG", &image),
        ZipMember::stored("tiny-imagenet-200/val/images/val_0.JPEG", &image),
        ZipMember::deflated(
            "tiny-imagenet-200/val/val_annotations.txt",
            b"val_0.JPEG\tn02\t0\t0\t63\t63\n",
        ),
    ];
    check(Target {
        name: "tiny-imagenet",
        seeds: vec![zip(&members)],
        text: false,
        run: Box::new(|input, scratch| {
            scratch.write("tiny-imagenet/tiny-imagenet-200.zip", input);
            data::load_with(&DatasetSpec::TinyImageNet, &offline(&scratch.0)).is_ok()
        }),
    });
}

/// Decodes an image with the budget a file of its size gets in a data set.
fn decode(input: &[u8]) -> bool {
    let budget = DecodeBudget::for_stored(input.len() as u64);
    data::decode_image(input, "fuzz", &budget).is_ok()
}

#[test]
fn png_decoding_never_panics_or_blows_up() {
    use zune_png::zune_core::bit_depth::BitDepth;
    use zune_png::zune_core::colorspace::ColorSpace;
    use zune_png::zune_core::options::EncoderOptions;
    let mut seeds = vec![small_png(8, 8)];
    for (colour, channels) in [
        (ColorSpace::Luma, 1),
        (ColorSpace::LumaA, 2),
        (ColorSpace::RGB, 3),
        (ColorSpace::RGBA, 4),
    ] {
        for depth in [BitDepth::Eight, BitDepth::Sixteen] {
            let bytes_per = channels * if depth == BitDepth::Sixteen { 2 } else { 1 };
            let pixels: Vec<u8> = (0..5 * 3 * bytes_per).map(|i| (i * 37) as u8).collect();
            let options = EncoderOptions::new(5, 3, colour, depth);
            seeds.push(zune_png::PngEncoder::new(&pixels, options).encode());
        }
    }
    check(Target {
        name: "png",
        seeds,
        text: false,
        run: Box::new(|input, _| decode(input)),
    });
}

#[test]
fn jpeg_decoding_never_panics_or_blows_up() {
    let mut seeds: Vec<Vec<u8>> = tree_images()
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| b.starts_with(&[0xff, 0xd8]))
        .collect();
    seeds.push(common::jpeg_8x8());
    check(Target {
        name: "jpeg",
        seeds,
        text: false,
        run: Box::new(|input, _| decode(input)),
    });
}

#[test]
fn study_specs_never_panic_or_blow_up() {
    use regstudy::study::presets::PRESETS;
    use regstudy::study::spec::StudySpec;
    let seeds = PRESETS
        .iter()
        .map(|(_, text)| text.as_bytes().to_vec())
        .collect();
    check(Target {
        name: "study-spec",
        seeds,
        text: true,
        run: Box::new(|input, _| {
            let text = String::from_utf8_lossy(input);
            StudySpec::parse(&text, Path::new("fuzz.toml")).is_ok()
        }),
    });
}

#[test]
fn model_specs_never_panic_or_blow_up() {
    use regstudy::models;
    use regstudy::nn::spec::InputShape;
    use regstudy::nn::ModelSpec;
    let input = InputShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    let seeds = models::NAMES
        .iter()
        .filter_map(|name| models::by_name(name, input, 10))
        .map(|spec| toml::to_string(&spec).unwrap().into_bytes())
        .collect();
    check(Target {
        name: "model-spec",
        seeds,
        text: true,
        run: Box::new(|input, _| {
            let text = String::from_utf8_lossy(input);
            let spec = toml::from_str::<ModelSpec>(&text);
            spec.is_ok()
        }),
    });
}
