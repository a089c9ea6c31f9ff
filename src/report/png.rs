//! SVG to PNG with resvg, using only the embedded DejaVu Sans, so a PNG looks the same on
//! every machine whatever fonts it has installed.

use resvg::tiny_skia;
use resvg::usvg::{self, fontdb};
use std::sync::{Arc, OnceLock};

/// DejaVu Sans (Bitstream Vera license, `assets/fonts/LICENSE-DejaVu.txt`).
pub const DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name the charts ask for.
pub const FAMILY: &str = "DejaVu Sans";

/// Pixels per SVG unit: 2 for sharp text on high-density screens and in print.
pub const SCALE: f32 = 2.0;

/// A font database holding only DejaVu Sans, which also answers for the generic families.
fn fonts() -> Arc<fontdb::Database> {
    static DB: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = fontdb::Database::new();
        db.load_font_data(DEJAVU_SANS.to_vec());
        db.set_sans_serif_family(FAMILY);
        db.set_serif_family(FAMILY);
        db.set_monospace_family(FAMILY);
        Arc::new(db)
    })
    .clone()
}

/// Renders `svg` at [`SCALE`] times its size and encodes it as PNG.
pub fn render(svg: &str) -> Result<Vec<u8>, String> {
    let options = usvg::Options {
        font_family: FAMILY.into(),
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| e.to_string())?;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(SCALE)
        .ok_or("image too large")?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| format!("cannot allocate {}x{} pixels", size.width(), size.height()))?;
    let transform = tiny_skia::Transform::from_scale(SCALE, SCALE);
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| e.to_string())
}

/// Width and height from a PNG's IHDR chunk.
pub fn dimensions(png: &[u8]) -> Option<(u32, u32)> {
    let be = |at: usize| Some(u32::from_be_bytes(png.get(at..at + 4)?.try_into().ok()?));
    (png.get(12..16)? == b"IHDR").then_some(())?;
    Some((be(16)?, be(20)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_is_the_only_one_and_renders_text() {
        let db = fonts();
        assert_eq!(db.len(), 1);
        let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"60\" height=\"20\">\
                   <text x=\"2\" y=\"15\" font-family=\"DejaVu Sans, sans-serif\">Ab</text></svg>";
        let png = render(svg).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(dimensions(&png), Some((120, 40)));
        let pixmap = tiny_skia::Pixmap::decode_png(&png).unwrap();
        let inked = pixmap.pixels().iter().filter(|p| p.alpha() > 0).count();
        assert!(inked > 20, "the glyphs were drawn ({inked} pixels)");
    }
}
