//! A user's own images: `PATH/{train,test}/<class>/<image>`.
//!
//! `PATH` is a folder, a `.tar` or a `.tar.gz` (read directly, not extracted); a single
//! enclosing folder inside an archive (`cifar/train/...`) is accepted. Images are JPEG or
//! PNG files named `*.jpg`, `*.jpeg` or `*.png` (any case); names starting with `.` are
//! skipped (they are editor and archiver leftovers, e.g. `._x.jpg`). Classes are the
//! folder names under `train/`, sorted by name (byte order), and labelled 0, 1, ... in
//! that order. All images must have the same height and width; if any is in colour, grey
//! ones are repeated into three channels.

use super::archive::{Member, Tree};
use super::decode::{decode_image, Decoded};
use super::{DataError, DataIdentity, Dataset, ImageSet};
use std::path::Path;

/// Whether a member is an image this loader reads.
fn is_image(name: &str) -> bool {
    let hidden = name.split('/').any(|part| part.starts_with('.'));
    let lower = name.to_ascii_lowercase();
    !hidden
        && [".jpg", ".jpeg", ".png"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// Loads `PATH/{train,test}/<class>/<image>`.
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    let tree = Tree::open(path, &is_image)?;
    let entries = layout(&tree)?;
    let classes = class_names(&tree, &entries)?;
    let members: Vec<&Member> = entries.iter().map(|e| e.member).collect();
    let budget = tree.decode_budget();
    let decoded = tree.map(&members, |m, bytes| {
        decode_image(bytes, &tree.location(&m.name), &budget)
    })?;
    let channels = decoded.iter().map(|d| d.channels).max().unwrap_or(1);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (entry, image) in entries.iter().zip(decoded) {
        let label = classes.binary_search(&entry.class.to_string()).unwrap_or(0) as u32;
        let split = if entry.train { &mut train } else { &mut test };
        split.push((entry.member, image.with_channels(channels), label));
    }
    let first = &train[0];
    let (height, width) = (first.1.height, first.1.width);
    let reference = tree.location(&first.0.name);
    let to_set = |images: Vec<(&Member, Decoded, u32)>| {
        assemble(images, (height, width, channels), &reference, &tree)
    };
    let train = to_set(train)?;
    let test = to_set(test)?;
    Ok(Dataset {
        name: path.file_name().map_or_else(
            || "folder".to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        train,
        test,
        classes,
        identity: DataIdentity {
            spec: format!("folder:{}", path.display()),
            sources: vec![tree.source(None)],
        },
    })
}

/// An image of the tree and where it belongs.
struct Entry<'a> {
    member: &'a Member,
    train: bool,
    class: &'a str,
}

/// Splits each member name into `[prefix/]{train,test}/<class>/<image>`; every member
/// must follow that pattern with the same prefix, and both splits must have images.
fn layout(tree: &Tree) -> Result<Vec<Entry<'_>>, DataError> {
    let mut prefix: Option<String> = None;
    let mut entries = Vec::new();
    for member in &tree.members {
        let parts: Vec<&str> = member.name.split('/').collect();
        let n = parts.len();
        let split = if n >= 3 { parts[n - 3] } else { "" };
        if split != "train" && split != "test" {
            let expected = "train/<class>/<image> or test/<class>/<image>";
            return Err(DataError::format(
                tree.location(&member.name),
                "path",
                expected,
                &member.name,
            ));
        }
        let this_prefix = parts[..n - 3].join("/");
        if let Some(first) = &prefix {
            if *first != this_prefix {
                let expected = format!("every image under `{first}/`");
                return Err(DataError::format(
                    tree.location(&member.name),
                    "path",
                    expected,
                    &member.name,
                ));
            }
        }
        prefix.get_or_insert(this_prefix);
        entries.push(Entry {
            member,
            train: split == "train",
            class: parts[n - 2],
        });
    }
    for (train, folder) in [(true, "train"), (false, "test")] {
        if !entries.iter().any(|e| e.train == train) {
            let expected = format!("images in {folder}/<class>/ (JPEG or PNG)");
            return Err(DataError::format(
                tree.path.display().to_string(),
                folder,
                expected,
                "none",
            ));
        }
    }
    Ok(entries)
}

/// The training classes, sorted; a test class must be one of them.
fn class_names(tree: &Tree, entries: &[Entry]) -> Result<Vec<String>, DataError> {
    let mut classes: Vec<String> = entries
        .iter()
        .filter(|e| e.train)
        .map(|e| e.class.to_string())
        .collect();
    classes.sort();
    classes.dedup();
    if let Some(stray) = entries
        .iter()
        .find(|e| !e.train && classes.binary_search(&e.class.to_string()).is_err())
    {
        let expected = format!("one of the training classes ({})", classes.join(", "));
        return Err(DataError::format(
            tree.location(&stray.member.name),
            "class",
            expected,
            stray.class,
        ));
    }
    Ok(classes)
}

/// Packs decoded images of one shape into a set; `reference` names the image whose size
/// all must have.
fn assemble(
    images: Vec<(&Member, Decoded, u32)>,
    (height, width, channels): (usize, usize, usize),
    reference: &str,
    tree: &Tree,
) -> Result<ImageSet, DataError> {
    let mut set = ImageSet::empty(height, width, channels);
    set.images.reserve(images.len() * set.image_len());
    for (member, image, label) in images {
        if (image.height, image.width) != (height, width) {
            let expected = format!("{height}x{width} (the size of {reference})");
            let found = format!("{}x{}", image.height, image.width);
            return Err(DataError::format(
                tree.location(&member.name),
                "image size",
                expected,
                found,
            ));
        }
        set.images.extend_from_slice(&image.pixels);
        set.labels.push(label);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decode::tests::{png, JPEG_8X8};
    use std::fs;
    use std::path::PathBuf;

    /// A folder under the system's temporary folder, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("regstudy-folder-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, name: &str, bytes: &[u8]) {
            let path = self.0.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn grey(value: u8) -> Vec<u8> {
        png(8, 8, 1, &[value; 64])
    }

    #[test]
    fn classes_are_sorted_and_grey_images_join_colour_ones() {
        let dir = Scratch::new("mixed");
        dir.write("train/zebra/a.png", &grey(7));
        dir.write("train/ant/b.JPG", JPEG_8X8);
        dir.write("train/ant/.hidden.png", b"junk");
        dir.write("test/zebra/c.png", &grey(9));
        let data = load(&dir.0).unwrap();
        assert_eq!(data.classes, vec!["ant", "zebra"]);
        assert_eq!(data.train.labels, vec![0, 1]);
        assert_eq!(
            (data.train.height, data.train.width, data.train.channels),
            (8, 8, 3)
        );
        assert_eq!(&data.train.image(1)[..6], &[7, 7, 7, 7, 7, 7]);
        assert_eq!(data.test.labels, vec![1]);
        assert_eq!(data.identity.sources[0].files, 3);
    }

    #[test]
    fn an_unreadable_image_is_named() {
        let dir = Scratch::new("broken");
        dir.write("train/a/1.png", &grey(1));
        dir.write("train/a/2.jpg", b"not a jpeg");
        dir.write("test/a/3.png", &grey(1));
        let err = load(&dir.0).unwrap_err().to_string();
        assert!(
            err.contains("train/a/2.jpg") && err.contains("JPEG or PNG"),
            "{err}"
        );
    }

    #[test]
    fn images_of_another_size_are_rejected_with_both_names() {
        let dir = Scratch::new("sizes");
        dir.write("train/a/1.png", &grey(1));
        dir.write("test/a/2.png", &png(4, 8, 1, &[0; 32]));
        let err = load(&dir.0).unwrap_err().to_string();
        assert!(
            err.contains("test/a/2.png: image size: expected 8x8") && err.contains("found 4x8"),
            "{err}"
        );
        assert!(err.contains("train/a/1.png"), "{err}");
    }

    #[test]
    fn a_missing_test_folder_or_stray_image_is_explained() {
        let dir = Scratch::new("layout");
        dir.write("train/a/1.png", &grey(1));
        let err = load(&dir.0).unwrap_err().to_string();
        assert!(
            err.contains("test: expected images in test/<class>/"),
            "{err}"
        );
        dir.write("loose.png", &grey(1));
        let err = load(&dir.0).unwrap_err().to_string();
        assert!(
            err.contains("loose.png: path: expected train/<class>/<image>"),
            "{err}"
        );
    }

    #[test]
    fn a_test_class_unknown_to_training_is_rejected() {
        let dir = Scratch::new("classes");
        dir.write("train/a/1.png", &grey(1));
        dir.write("test/b/1.png", &grey(1));
        let err = load(&dir.0).unwrap_err().to_string();
        assert!(
            err.contains("test/b/1.png: class: expected one of the training classes (a)"),
            "{err}"
        );
    }
}
