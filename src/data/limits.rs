//! How much one file may make the loaders allocate.
//!
//! A compressed file says little about its decompressed size: a gzip or deflate stream
//! can expand a thousandfold, and a header can claim any count or size. So every
//! declared size is checked against these limits before anything is allocated, and
//! every decompressed stream is cut off at the size it declared or at these limits,
//! whichever is smaller. The values leave room for every data set this program is for
//! (and several times the official ones) while keeping a hostile file to a few
//! hundred megabytes.

/// The most bytes one archive member may expand to: 64 MiB. The largest member of any
/// supported data set is a CIFAR-10 batch (30,730,000 bytes); images are kilobytes.
pub const MAX_MEMBER_BYTES: u64 = 64 << 20;

/// The most items (images or labels) one idx file may declare: 250,000. MNIST and
/// Fashion-MNIST have 60,000 training images (47 MB decompressed); EMNIST Digits, the
/// largest ten-class 28x28 set in this format, has 240,000. An images file is then at
/// most 196 MB.
pub const MAX_IDX_ITEMS: u64 = 250_000;

/// The most records one CIFAR-10 batch may hold: 10,000, as every official batch does
/// (30,730,000 bytes; the six batches decompress to 184 MB).
pub const MAX_CIFAR_RECORDS: u64 = 10_000;

/// The longest side, in pixels, of an image the loaders decode: 4096. The networks
/// trained here take small images (28x28 to 64x64 in the supported data sets); a
/// 4096x4096 RGB image already decodes to 48 MiB.
pub const MAX_IMAGE_SIDE: usize = 4096;

/// What a compressed archive may expand to in all, beyond its own size times
/// [`EXPANSION_RATIO`]: 64 MiB, so that small data sets never meet the limit.
pub const EXPANSION_SLACK: u64 = 64 << 20;

/// How many times its size on disk a compressed archive may expand to: 16. Archives of
/// images barely compress (the CIFAR-10 JPEG tarball expands 3 times, the CIFAR-10
/// binary tarball 1.1 times, MNIST's idx files 5 times); a deflate stream of zeros
/// expands a thousand times.
pub const EXPANSION_RATIO: u64 = 16;

/// The most bytes a compressed archive of `stored` bytes may expand to.
pub fn expansion_allowance(stored: u64) -> u64 {
    EXPANSION_SLACK.saturating_add(EXPANSION_RATIO.saturating_mul(stored))
}

/// What decoding a data set's images may cost in all, beyond [`DECODE_RATIO`] times
/// the bytes of its image files: 128 MiB, so that small data sets never meet the limit.
pub const DECODE_SLACK: u64 = 128 << 20;

/// How many times the bytes of its image files decoding a data set may cost: 32. A
/// decoded image is charged its pixels as stored in the file plus three bytes a pixel
/// as kept; real photographs and small data sets cost 3 to 20 times their files
/// (CIFAR-10 as JPEGs: 19 times its tarball), while an image of one colour can cost
/// thousands of times its file.
pub const DECODE_RATIO: u64 = 32;

/// What decoding images stored in `stored` bytes may cost.
pub fn decode_allowance(stored: u64) -> u64 {
    DECODE_SLACK.saturating_add(DECODE_RATIO.saturating_mul(stored))
}
