//! What the integration tests share: the `regstudy` binary as a command, scratch folders
//! that remove themselves, the real data sets in `../shared/data`, and small files written
//! by the tests themselves: compressed streams of zeros of any length (a few megabytes on
//! disk for a gigabyte inflated), and raw tar, zip and PNG writers that put down whatever
//! sizes they are told, so that lying headers can be tested.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The folder of the real data sets (MNIST, Fashion-MNIST, CIFAR-10), beside the checkout.
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

/// The `regstudy` binary built for these tests, as a command to add arguments to.
pub fn regstudy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_regstudy"))
}

/// Runs `regstudy ARGS` offline (missing data is never downloaded) and waits for it.
pub fn run_offline<S: AsRef<OsStr>>(args: &[S]) -> Output {
    regstudy()
        .args(args)
        .env("REGSTUDY_OFFLINE", "1")
        .output()
        .expect("the regstudy binary runs")
}

/// Runs `regstudy train` on the MNIST of [`DATA`], quietly and offline, with `args`.
pub fn train_mnist(args: &[&str]) -> Output {
    regstudy()
        .args(["train", "--dataset", "mnist", "--data-dir", DATA, "--quiet"])
        .args(args)
        .env("REGSTUDY_OFFLINE", "1")
        .output()
        .expect("the regstudy binary runs")
}

/// Asserts that a process succeeded, showing its standard error if it did not.
pub fn assert_success(output: &Output) {
    assert!(output.status.success(), "{}", stderr(output));
}

/// The `summary.json` of the run folder `run`.
pub fn summary(run: &Path) -> serde_json::Value {
    let text = fs::read_to_string(run.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// A process's standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A process's standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The official CIFAR-10 binary batches, in the order they are read.
pub const CIFAR_BATCHES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// A folder under the system's temporary folder, named after the test and this process,
/// removed with everything in it when dropped (whether the test passed or not).
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// An empty folder.
    pub fn new(name: &str) -> Self {
        let scratch = Scratch::absent(name);
        fs::create_dir_all(&scratch.0).unwrap();
        scratch
    }

    /// A path where nothing is yet, for a folder that the command under test must create.
    pub fn absent(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("regstudy-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<OsStr> for Scratch {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A deflate bit stream, written least significant bit first as RFC 1951 requires.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    len: u32,
}

impl Bits {
    fn put(&mut self, value: u64, count: u32) {
        self.acc |= value << self.len;
        self.len += count;
        while self.len >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    /// A Huffman code, which deflate packs most significant bit first.
    fn code(&mut self, code: u8, count: u32) {
        self.put(u64::from(code.reverse_bits() >> (8 - count)), count);
    }

    fn align(&mut self) {
        if self.len > 0 {
            self.put(0, 8 - self.len);
        }
    }
}

/// A raw deflate stream of `prefix` (stored) followed by `zeros` zero bytes.
pub fn deflate(prefix: &[u8], zeros: u64) -> Vec<u8> {
    deflate_segments(&[(prefix, zeros)])
}

/// A raw deflate stream of segments, each some bytes (stored blocks) followed by some
/// zero bytes (a block of fixed Huffman codes: a literal, then matches of 258 bytes at
/// distance 1, 13 bits each), so a gigabyte takes 6.6 MB and a few milliseconds to
/// write.
pub fn deflate_segments(segments: &[(&[u8], u64)]) -> Vec<u8> {
    let total: u64 = segments.iter().map(|(b, z)| b.len() as u64 + z / 150).sum();
    let mut bits = Bits {
        out: Vec::with_capacity(total as usize + 64),
        acc: 0,
        len: 0,
    };
    for &(bytes, zeros) in segments {
        for chunk in bytes.chunks(65535) {
            stored_block(&mut bits, chunk, false);
        }
        if zeros > 0 {
            zeros_block(&mut bits, zeros);
        }
    }
    stored_block(&mut bits, &[], true);
    bits.out
}

fn stored_block(bits: &mut Bits, chunk: &[u8], last: bool) {
    bits.put(u64::from(last), 1);
    bits.put(0, 2);
    bits.align();
    let len = chunk.len() as u16;
    bits.out.extend(len.to_le_bytes());
    bits.out.extend((!len).to_le_bytes());
    bits.out.extend(chunk);
}

/// A block (not the last) of `zeros` zero bytes, `zeros` > 0.
fn zeros_block(bits: &mut Bits, zeros: u64) {
    bits.put(0, 1);
    bits.put(1, 2);
    bits.code(0x30, 8);
    let mut left = zeros - 1;
    while left >= 258 {
        bits.code(0xc5, 8);
        bits.put(0, 5);
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    bits.put(0, 7);
}

/// The CRC-32 of the bytes `segments` describe.
fn crc_of_segments(segments: &[(&[u8], u64)]) -> u32 {
    let mut crc = flate2::Crc::new();
    let block = vec![0u8; 1 << 20];
    for &(bytes, zeros) in segments {
        crc.update(bytes);
        let mut left = zeros;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            crc.update(&block[..n]);
            left -= n as u64;
        }
    }
    crc.sum()
}

/// The CRC-32 of `prefix` followed by `zeros` zero bytes.
fn crc_of(prefix: &[u8], zeros: u64) -> u32 {
    crc_of_segments(&[(prefix, zeros)])
}

/// A gzip file of `prefix` followed by `zeros` zero bytes.
pub fn gzip(prefix: &[u8], zeros: u64) -> Vec<u8> {
    gzip_segments(&[(prefix, zeros)])
}

/// A gzip file of the bytes `segments` describe (see [`deflate_segments`]).
pub fn gzip_segments(segments: &[(&[u8], u64)]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend(deflate_segments(segments));
    out.extend(crc_of_segments(segments).to_le_bytes());
    let len: u64 = segments.iter().map(|(b, z)| b.len() as u64 + z).sum();
    out.extend((len as u32).to_le_bytes());
    out
}

/// A zlib stream of `zeros` zero bytes.
pub fn zlib_zeros(zeros: u64) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    out.extend(deflate(&[], zeros));
    let b = (zeros % 65521) as u32;
    out.extend(((b << 16) | 1).to_be_bytes());
    out
}

/// A tar header (GNU format) for a regular file of `size` bytes.
pub fn tar_header(name: &str, size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    header.as_bytes().to_vec()
}

/// A whole tar of `(name, bytes)` members.
pub fn tar(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in members {
        out.extend(tar_header(name, bytes.len() as u64));
        out.extend(bytes);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.extend([0u8; 1024]);
    out
}

/// A `.tar.gz` whose members are `members`, then one member `name` of `zeros` zero bytes.
pub fn tar_gz_with_zeros(members: &[(&str, Vec<u8>)], name: &str, zeros: u64) -> Vec<u8> {
    let mut prefix = tar(members);
    prefix.truncate(prefix.len() - 1024);
    prefix.extend(tar_header(name, zeros));
    let tail = zeros.next_multiple_of(512) + 1024;
    gzip(&prefix, tail)
}

/// One member of a zip written by [`zip`]: its stored bytes and what the headers claim.
pub struct ZipMember {
    pub name: String,
    /// 0 stored, 8 deflated.
    pub method: u16,
    pub data: Vec<u8>,
    pub crc: u32,
    pub size: u32,
}

impl ZipMember {
    /// A stored member, honestly described.
    pub fn stored(name: &str, bytes: &[u8]) -> Self {
        let mut crc = flate2::Crc::new();
        crc.update(bytes);
        ZipMember {
            name: name.to_string(),
            method: 0,
            data: bytes.to_vec(),
            crc: crc.sum(),
            size: bytes.len() as u32,
        }
    }

    /// A deflated member, honestly described.
    pub fn deflated(name: &str, bytes: &[u8]) -> Self {
        use std::io::Write;
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        ZipMember {
            method: 8,
            data: encoder.finish().unwrap(),
            ..ZipMember::stored(name, bytes)
        }
    }

    /// A deflated member of `zeros` zero bytes whose headers claim `claimed` bytes.
    pub fn zeros(name: &str, zeros: u64, claimed: u32) -> Self {
        ZipMember {
            name: name.to_string(),
            method: 8,
            data: deflate(&[], zeros),
            crc: crc_of(&[], zeros),
            size: claimed,
        }
    }
}

/// A zip archive with a central directory, written field by field.
pub fn zip(members: &[ZipMember]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for m in members {
        let offset = out.len() as u32;
        let common = |buf: &mut Vec<u8>| {
            buf.extend(20u16.to_le_bytes());
            buf.extend(0u16.to_le_bytes());
            buf.extend(m.method.to_le_bytes());
            buf.extend([0, 0, 0x21, 0]);
            buf.extend(m.crc.to_le_bytes());
            buf.extend((m.data.len() as u32).to_le_bytes());
            buf.extend(m.size.to_le_bytes());
            buf.extend((m.name.len() as u16).to_le_bytes());
            buf.extend(0u16.to_le_bytes());
        };
        out.extend(0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend(m.name.as_bytes());
        out.extend(&m.data);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        common(&mut central);
        central.extend([0u8; 10]);
        central.extend(offset.to_le_bytes());
        central.extend(m.name.as_bytes());
    }
    let central_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(central_offset.to_le_bytes());
    out.extend([0u8; 2]);
    out
}

/// A PNG chunk with its length and CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend(crc.sum().to_be_bytes());
    out
}

/// A PNG whose header claims `width` x `height` 8-bit RGBA pixels and whose image data
/// inflates to `zeros` zero bytes, with an optional extra chunk before the data.
pub fn png(width: u32, height: u32, zeros: u64, extra: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend(extra.unwrap_or_default());
    out.extend(png_chunk(b"IDAT", &zlib_zeros(zeros)));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// A valid `width` x `height` RGBA PNG, all zero pixels.
pub fn small_png(width: u32, height: u32) -> Vec<u8> {
    png(
        width,
        height,
        u64::from(height) * (u64::from(width) * 4 + 1),
        None,
    )
}

/// An 8x8 baseline JPEG (the one the unit tests use).
pub fn jpeg_8x8() -> Vec<u8> {
    fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/data/testdata/uniform_8x8.jpg"))
        .unwrap()
}

/// A JPEG whose frame header claims `width` x `height`.
pub fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = jpeg_8x8();
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xff, 0xc0])
        .expect("a baseline frame header");
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

/// The value of `variable`, naming a service a test needs (a server, a cluster, a tool);
/// `None` (the test is skipped, saying so) when it is unset, unless
/// `REGSTUDY_REQUIRE_SERVICES=1` (as CI sets it), which makes that a failure.
pub fn required_service(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("REGSTUDY_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("REGSTUDY_REQUIRE_SERVICES=1 but {variable} is not set")
        }
        _ => {
            eprintln!("skipped: {variable} is not set");
            None
        }
    }
}

/// A database of its own on the PostgreSQL server named by `REGSTUDY_TEST_POSTGRES` (a URL
/// whose role may create databases), dropped when this is dropped. `None` when no server is
/// named, unless `REGSTUDY_REQUIRE_SERVICES=1` (as CI sets it), which makes that a failure.
pub struct PostgresDatabase {
    admin: String,
    name: String,
    /// The store URL of the database.
    pub url: String,
}

impl PostgresDatabase {
    pub fn new(test: &str) -> Option<Self> {
        let admin = required_service("REGSTUDY_TEST_POSTGRES")?;
        let name = format!("regstudy_cli_{test}_{}", std::process::id());
        let mut client = admin_client(&admin);
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            client.batch_execute(&statement).unwrap();
        }
        let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
        let root = &base[..base.rfind('/').expect("the URL names a database")];
        let url = format!("{root}/{name}?{query}");
        Some(PostgresDatabase { admin, name, url })
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let _ = admin_client(&self.admin).batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// A plain connection to the server of `url`, for creating and dropping databases.
fn admin_client(url: &str) -> postgres::Client {
    let plain = url.split_once('?').map_or(url, |(base, _)| base);
    postgres::Client::connect(&format!("{plain}?sslmode=disable"), postgres::NoTls)
        .expect("the test PostgreSQL server accepts the test role")
}
