//! Decoding JPEG and PNG files to 8-bit pixels.
//!
//! The format is told by the file's first bytes, not its name. Grey images decode to one
//! channel and colour images to three (RGB); alpha is dropped and 16-bit PNG samples are
//! reduced to 8 bits.

use super::DataError;
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

/// Decodes a JPEG or PNG held in `bytes`; `file` names it in errors.
pub fn decode_image(bytes: &[u8], file: &str) -> Result<Decoded, DataError> {
    let failed = |reason: String| DataError::Image {
        file: file.to_string(),
        reason,
    };
    if bytes.starts_with(&[0xff, 0xd8]) {
        decode_jpeg(bytes).map_err(failed)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes).map_err(failed)
    } else {
        Err(failed(
            "the file starts with neither the JPEG nor the PNG signature".into(),
        ))
    }
}

fn decode_jpeg(bytes: &[u8]) -> Result<Decoded, String> {
    let mut probe = zune_jpeg::JpegDecoder::new(bytes);
    probe.decode_headers().map_err(|e| e.to_string())?;
    let grey = probe.get_input_colorspace() == Some(ColorSpace::Luma);
    let out = if grey {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    let options = DecoderOptions::default().jpeg_set_out_colorspace(out);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(bytes, options);
    let pixels = decoder.decode().map_err(|e| e.to_string())?;
    let info = decoder.info().ok_or("no image header")?;
    finish(
        usize::from(info.height),
        usize::from(info.width),
        out.num_components(),
        pixels,
    )
}

fn decode_png(bytes: &[u8]) -> Result<Decoded, String> {
    let options = DecoderOptions::default().png_set_strip_to_8bit(true);
    let mut decoder = zune_png::PngDecoder::new_with_options(bytes, options);
    let result = decoder.decode().map_err(|e| format!("{e:?}"))?;
    let pixels = match result {
        zune_png::zune_core::result::DecodingResult::U8(pixels) => pixels,
        _ => return Err("samples are not 8-bit".into()),
    };
    let (width, height) = decoder.get_dimensions().ok_or("no image header")?;
    let stored = decoder
        .get_colorspace()
        .ok_or("no image header")?
        .num_components();
    let kept = if stored <= 2 { 1 } else { 3 };
    let pixels = drop_extra_channels(pixels, stored, kept);
    finish(height, width, kept, pixels)
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
    pub(crate) const JPEG_8X8: &[u8] = include_bytes!("testdata/uniform_8x8.jpg");

    #[test]
    fn a_png_decodes_to_its_pixels() {
        let pixels: Vec<u8> = (0..2 * 3 * 3).map(|v| v as u8 * 10).collect();
        let decoded = decode_image(&png(2, 3, 3, &pixels), "a.png").unwrap();
        assert_eq!((decoded.height, decoded.width, decoded.channels), (2, 3, 3));
        assert_eq!(decoded.pixels, pixels);
    }

    #[test]
    fn png_alpha_is_dropped_and_grey_stays_one_channel() {
        let rgba = decode_image(&png(1, 2, 4, &[1, 2, 3, 255, 4, 5, 6, 0]), "a.png").unwrap();
        assert_eq!(rgba.pixels, vec![1, 2, 3, 4, 5, 6]);
        let grey = decode_image(&png(1, 2, 1, &[9, 8]), "g.png").unwrap();
        assert_eq!((grey.channels, grey.pixels.clone()), (1, vec![9, 8]));
        assert_eq!(grey.with_channels(3).pixels, vec![9, 9, 9, 8, 8, 8]);
    }

    #[test]
    fn a_jpeg_decodes_close_to_pillow() {
        let decoded = decode_image(JPEG_8X8, "u.jpg").unwrap();
        assert_eq!(decoded.shape(), "8x8x3");
        for px in decoded.pixels.chunks(3) {
            for (&got, want) in px.iter().zip([200u8, 100, 50]) {
                assert!(got.abs_diff(want) <= 1, "{px:?}");
            }
        }
    }

    #[test]
    fn an_unreadable_image_is_rejected_with_its_name() {
        let err = decode_image(b"not an image", "train/cat/x.jpg")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train/cat/x.jpg") && err.contains("JPEG or PNG"),
            "{err}"
        );
        let truncated = &JPEG_8X8[..JPEG_8X8.len() / 2];
        assert!(decode_image(truncated, "half.jpg").is_err());
        let png = png(2, 2, 1, &[1, 2, 3, 4]);
        assert!(decode_image(&png[..png.len() - 20], "half.png").is_err());
    }
}
