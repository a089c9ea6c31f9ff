//! Decoding JPEG and PNG files to 8-bit pixels.
//!
//! The format is told by the file's first bytes, not its name. Grey images decode to one
//! channel and colour images to three (RGB); alpha is dropped and 16-bit PNG samples are
//! reduced to 8 bits.

use super::{limits, DataError};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// Decoded pixels, HWC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

impl Decoded {
    /// The image with `channels` channels: a grey image is repeated into RGB; asking a
    /// colour image for one channel returns it unchanged (callers check `channels`).
    pub fn with_channels(self, channels: usize) -> Decoded {
        if self.channels != 1 || channels != 3 {
            return self;
        }
        let pixels = self.pixels.iter().flat_map(|&v| [v, v, v]).collect();
        Decoded {
            channels: 3,
            pixels,
            ..self
        }
    }

    /// `HxWxC`, as messages show shapes.
    pub fn shape(&self) -> String {
        format!("{}x{}x{}", self.height, self.width, self.channels)
    }
}

/// What decoding may still cost, shared by all the images of a data set, so that many
/// small files cannot add up to more memory than their size justifies (see
/// [`limits::decode_allowance`]).
#[derive(Debug)]
pub struct DecodeBudget {
    left: AtomicU64,
    /// The allowance it started with, for messages.
    total: u64,
}

impl DecodeBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        DecodeBudget {
            left: AtomicU64::new(bytes),
            total: bytes,
        }
    }

    /// The budget for images stored in `stored` bytes of files.
    pub fn for_stored(stored: u64) -> Self {
        DecodeBudget::new(limits::decode_allowance(stored))
    }

    /// Takes `cost` bytes from the budget, or refuses `file` if they are not left.
    pub(crate) fn charge(&self, cost: u64, file: &str) -> Result<(), DataError> {
        let taken = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(cost)
            });
        taken.map(|_| ()).map_err(|_| {
            let limit = format!(
                "{} bytes for decoding all the images ({} MiB plus {} times the bytes of \
                 the image files)",
                self.total,
                limits::DECODE_SLACK >> 20,
                limits::DECODE_RATIO
            );
            DataError::too_large(file, "decoded size", &limit, format!("{cost} more bytes"))
        })
    }
}

/// The size an image header declares, checked against [`limits::MAX_IMAGE_SIDE`].
struct Declared {
    width: usize,
    height: usize,
    /// Bytes a pixel takes as the decoder first produces it.
    stored_pixel_bytes: usize,
}

impl Declared {
    /// Refuses a side above the limit; otherwise charges the budget what decoding costs:
    /// the pixels as stored plus three bytes a pixel as kept.
    fn check(&self, file: &str, budget: &DecodeBudget) -> Result<(), DataError> {
        let side = limits::MAX_IMAGE_SIDE;
        if self.width > side || self.height > side || self.width == 0 || self.height == 0 {
            let limit = format!("{side}x{side} pixels, the largest image decoded");
            let found = format!("{}x{}", self.height, self.width);
            return Err(DataError::too_large(file, "image size", &limit, found));
        }
        let cost = self.width * self.height * (self.stored_pixel_bytes + 3);
        budget.charge(cost as u64, file)
    }
}

/// Decodes a JPEG or PNG held in `bytes`; `file` names it in errors. The size its header
/// declares is checked and charged to `budget` before any pixel is decoded.
pub fn decode_image(bytes: &[u8], file: &str, budget: &DecodeBudget) -> Result<Decoded, DataError> {
    if bytes.starts_with(&[0xff, 0xd8]) {
        decode_jpeg(bytes, file, budget)
    } else if bytes.starts_with(PNG_SIGNATURE) {
        decode_png(bytes, file, budget)
    } else {
        Err(DataError::image(
            file,
            "the file starts with neither the JPEG nor the PNG signature",
        ))
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Decoder options that refuse images above the size limit.
fn limited_options() -> DecoderOptions {
    DecoderOptions::default()
        .set_max_width(limits::MAX_IMAGE_SIDE)
        .set_max_height(limits::MAX_IMAGE_SIDE)
}

fn decode_jpeg(bytes: &[u8], file: &str, budget: &DecodeBudget) -> Result<Decoded, DataError> {
    let failed = |e: zune_jpeg::errors::DecodeErrors| DataError::image(file, e);
    let mut probe = zune_jpeg::JpegDecoder::new_with_options(bytes, limited_options());
    probe.decode_headers().map_err(failed)?;
    let info = probe
        .info()
        .ok_or_else(|| DataError::image(file, "no frame header"))?;
    let grey = probe.get_input_colorspace() == Some(ColorSpace::Luma);
    Declared {
        width: usize::from(info.width),
        height: usize::from(info.height),
        stored_pixel_bytes: usize::from(info.components),
    }
    .check(file, budget)?;
    let out = if grey {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    let options = limited_options().jpeg_set_out_colorspace(out);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(bytes, options);
    let pixels = decoder.decode().map_err(failed)?;
    let info = decoder
        .info()
        .ok_or_else(|| DataError::image(file, "no frame header"))?;
    finish(
        usize::from(info.height),
        usize::from(info.width),
        out.num_components(),
        pixels,
    )
    .map_err(|reason| DataError::image(file, reason))
}

fn decode_png(bytes: &[u8], file: &str, budget: &DecodeBudget) -> Result<Decoded, DataError> {
    let failed = |reason: String| DataError::image(file, reason);
    png_header(bytes).map_err(failed)?.check(file, budget)?;
    let bytes = without_compressed_metadata(bytes);
    let options = limited_options().png_set_strip_to_8bit(true);
    let mut decoder = zune_png::PngDecoder::new_with_options(&bytes[..], options);
    let result = decoder.decode().map_err(|e| failed(format!("{e:?}")))?;
    let pixels = match result {
        zune_png::zune_core::result::DecodingResult::U8(pixels) => pixels,
        _ => return Err(failed("samples are not 8-bit".into())),
    };
    let no_header = || failed("no image header".into());
    let (width, height) = decoder.get_dimensions().ok_or_else(no_header)?;
    let stored = decoder
        .get_colorspace()
        .ok_or_else(no_header)?
        .num_components();
    let kept = if stored <= 2 { 1 } else { 3 };
    let pixels = drop_extra_channels(pixels, stored, kept);
    finish(height, width, kept, pixels).map_err(failed)
}

/// The size a PNG's `IHDR` chunk declares (it must be the first chunk).
fn png_header(bytes: &[u8]) -> Result<Declared, String> {
    let ihdr = bytes
        .get(8..8 + 8 + 13)
        .filter(|chunk| &chunk[4..8] == b"IHDR")
        .ok_or("no IHDR chunk at the start of the file")?;
    let be32 = |at: usize| u32::from_be_bytes([ihdr[at], ihdr[at + 1], ihdr[at + 2], ihdr[at + 3]]);
    let (width, height) = (be32(8) as usize, be32(12) as usize);
    let (depth, colour) = (usize::from(ihdr[16]), ihdr[17]);
    // Samples a pixel: grey, RGB, palette (expanded to RGBA at most), grey+alpha, RGBA.
    let samples = match colour {
        0 => 1,
        2 => 3,
        4 => 2,
        _ => 4,
    };
    Ok(Declared {
        width,
        height,
        stored_pixel_bytes: samples * depth.div_ceil(8).max(1),
    })
}

/// The PNG without its compressed colour profile and text chunks (`iCCP`, `zTXt`,
/// `iTXt`): they are never used here, and the decoder would inflate each of them up to
/// a gigabyte. Anything it cannot walk is left for the decoder to refuse.
fn without_compressed_metadata(bytes: &[u8]) -> Cow<'_, [u8]> {
    const DROPPED: [&[u8; 4]; 3] = [b"iCCP", b"zTXt", b"iTXt"];
    let mut chunks = Vec::new();
    let mut at = PNG_SIGNATURE.len();
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(end) = len.checked_add(at + 12).filter(|&end| end <= bytes.len()) else {
            break;
        };
        chunks.push((at, end, DROPPED.iter().any(|kind| head[4..8] == kind[..])));
        at = end;
    }
    if !chunks.iter().any(|&(_, _, dropped)| dropped) {
        return Cow::Borrowed(bytes);
    }
    let mut kept = PNG_SIGNATURE.to_vec();
    for &(start, end, dropped) in &chunks {
        if !dropped {
            kept.extend_from_slice(&bytes[start..end]);
        }
    }
    kept.extend_from_slice(&bytes[at..]);
    Cow::Owned(kept)
}

/// Keeps the first `kept` of every `stored` samples (drops alpha).
fn drop_extra_channels(pixels: Vec<u8>, stored: usize, kept: usize) -> Vec<u8> {
    if stored == kept {
        return pixels;
    }
    pixels
        .chunks_exact(stored)
        .flat_map(|px| px[..kept].iter().copied())
        .collect()
}

/// Checks that the decoder returned the promised number of samples.
fn finish(
    height: usize,
    width: usize,
    channels: usize,
    pixels: Vec<u8>,
) -> Result<Decoded, String> {
    if pixels.len() != height * width * channels || pixels.is_empty() {
        return Err(format!(
            "decoder returned {} samples for {height}x{width}x{channels}",
            pixels.len()
        ));
    }
    Ok(Decoded {
        height,
        width,
        channels,
        pixels,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use zune_png::zune_core::bit_depth::BitDepth;
    use zune_png::zune_core::options::EncoderOptions;

    /// A PNG of the given pixels (1, 2, 3 or 4 channels), for tests.
    pub(crate) fn png(height: usize, width: usize, channels: usize, pixels: &[u8]) -> Vec<u8> {
        let colorspace = match channels {
            1 => ColorSpace::Luma,
            2 => ColorSpace::LumaA,
            3 => ColorSpace::RGB,
            _ => ColorSpace::RGBA,
        };
        let options = EncoderOptions::new(width, height, colorspace, BitDepth::Eight);
        zune_png::PngEncoder::new(pixels, options).encode()
    }

    /// An 8x8 RGB baseline JPEG written by Pillow 13.0 (`Image.new("RGB", (8, 8),
    /// (200, 100, 50)).save(path, quality=90)`); Pillow decodes every pixel of it as
    /// (200, 100, 50). Decoders may round differently, hence a tolerance of one level.
    /// Decodes with a budget that never runs out.
    pub(crate) fn decode_any(bytes: &[u8], file: &str) -> Result<Decoded, DataError> {
        decode_image(bytes, file, &DecodeBudget::new(u64::MAX))
    }

    pub(crate) const JPEG_8X8: &[u8] = include_bytes!("testdata/uniform_8x8.jpg");

    #[test]
    fn a_png_decodes_to_its_pixels() {
        let pixels: Vec<u8> = (0..2 * 3 * 3).map(|v| v as u8 * 10).collect();
        let decoded = decode_any(&png(2, 3, 3, &pixels), "a.png").unwrap();
        assert_eq!((decoded.height, decoded.width, decoded.channels), (2, 3, 3));
        assert_eq!(decoded.pixels, pixels);
    }

    #[test]
    fn png_alpha_is_dropped_and_grey_stays_one_channel() {
        let rgba = decode_any(&png(1, 2, 4, &[1, 2, 3, 255, 4, 5, 6, 0]), "a.png").unwrap();
        assert_eq!(rgba.pixels, vec![1, 2, 3, 4, 5, 6]);
        let grey = decode_any(&png(1, 2, 1, &[9, 8]), "g.png").unwrap();
        assert_eq!((grey.channels, grey.pixels.clone()), (1, vec![9, 8]));
        assert_eq!(grey.with_channels(3).pixels, vec![9, 9, 9, 8, 8, 8]);
    }

    #[test]
    fn a_jpeg_decodes_close_to_pillow() {
        let decoded = decode_any(JPEG_8X8, "u.jpg").unwrap();
        assert_eq!(decoded.shape(), "8x8x3");
        for px in decoded.pixels.chunks(3) {
            for (&got, want) in px.iter().zip([200u8, 100, 50]) {
                assert!(got.abs_diff(want) <= 1, "{px:?}");
            }
        }
    }

    #[test]
    fn an_unreadable_image_is_rejected_with_its_name() {
        let err = decode_any(b"not an image", "train/cat/x.jpg")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train/cat/x.jpg") && err.contains("JPEG or PNG"),
            "{err}"
        );
        let truncated = &JPEG_8X8[..JPEG_8X8.len() / 2];
        assert!(decode_any(truncated, "half.jpg").is_err());
        let png = png(2, 2, 1, &[1, 2, 3, 4]);
        assert!(decode_any(&png[..png.len() - 20], "half.png").is_err());
    }
}
