//! Tiny-ImageNet-200: `tiny-imagenet-200.zip` or the folder it extracts to.
//!
//! ```text
//! tiny-imagenet-200/wnids.txt                      200 WordNet ids, one a line
//! tiny-imagenet-200/words.txt                      WordNet id<TAB>description (not needed)
//! tiny-imagenet-200/train/<wnid>/images/*.JPEG     500 64x64 images per class
//! tiny-imagenet-200/val/images/*.JPEG              10,000 images
//! tiny-imagenet-200/val/val_annotations.txt        FILE<TAB>WNID<TAB>x0<TAB>y0<TAB>x1<TAB>y1
//! tiny-imagenet-200/test/images/*.JPEG             unlabelled, not read
//! ```
//!
//! The test labels are not public, so the validation set is returned as `test`. Classes
//! are the WordNet ids sorted by name, as an image-folder loader would number them. Some
//! images are grey; they are repeated into three channels.

use super::archive::{Member, Tree};
use super::decode::{decode_image, DecodeBudget};
use super::download::Remote;
use super::{DataError, DataIdentity, Dataset, ImageSet};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The official archive.
pub const ARCHIVE: &str = "tiny-imagenet-200.zip";

pub const REMOTES: [Remote; 1] = [Remote {
    file: ARCHIVE,
    urls: &["http://cs231n.stanford.edu/tiny-imagenet-200.zip"],
    md5: "90528d7ca1a48142e341f4ef8d21d0de",
}];

const SIDE: usize = 64;

/// Where Tiny-ImageNet is in `dir`: the zip, else `dir/tiny-imagenet-200/`, else `dir`
/// itself if it holds `wnids.txt`.
pub fn find(dir: &Path) -> Option<PathBuf> {
    let archive = dir.join(ARCHIVE);
    if archive.is_file() {
        return Some(archive);
    }
    [dir.join("tiny-imagenet-200"), dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join("wnids.txt").is_file())
}

/// The members read: the two text files and the train and val images.
fn wanted(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let image = [".jpeg", ".jpg", ".png"]
        .iter()
        .any(|ext| lower.ends_with(ext));
    let text = name.ends_with("wnids.txt") || name.ends_with("val_annotations.txt");
    let split = name.contains("train/") || name.contains("val/");
    text || (image && split)
}

/// Loads Tiny-ImageNet from the zip or its folder.
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    let tree = Tree::open(path, &wanted)?;
    let prefix = root_prefix(&tree)?;
    let classes = read_wnids(&tree, &prefix)?;
    let (train_members, train_labels) = train_images(&tree, &prefix, &classes)?;
    let (val_members, val_labels) = val_images(&tree, &prefix, &classes)?;
    let budget = tree.decode_budget();
    let train = decode_all(&tree, &train_members, train_labels, &budget)?;
    let test = decode_all(&tree, &val_members, val_labels, &budget)?;
    Ok(Dataset {
        name: "tiny-imagenet".to_string(),
        train,
        test,
        classes,
        identity: DataIdentity {
            spec: "tiny-imagenet".to_string(),
            sources: vec![tree.source(path.is_file().then_some(REMOTES[0].md5))],
        },
    })
}

/// The folder inside the tree that holds `wnids.txt` (`""` or `"tiny-imagenet-200/"`).
fn root_prefix(tree: &Tree) -> Result<String, DataError> {
    let wnids = tree
        .members
        .iter()
        .filter(|m| m.name == "wnids.txt" || m.name.ends_with("/wnids.txt"))
        .min_by_key(|m| m.name.len());
    let wnids = wnids.ok_or_else(|| {
        let expected = "wnids.txt at the top or in tiny-imagenet-200/";
        DataError::format(
            tree.path.display().to_string(),
            "contents",
            expected,
            "none",
        )
    })?;
    Ok(wnids.name[..wnids.name.len() - "wnids.txt".len()].to_string())
}

/// A text member of the tree that must exist.
fn required<'t>(tree: &'t Tree, name: &str) -> Result<&'t Member, DataError> {
    tree.get(name).ok_or_else(|| {
        DataError::format(
            tree.path.display().to_string(),
            "contents",
            format!("a file {name}"),
            "none",
        )
    })
}

/// The WordNet ids of `wnids.txt`, sorted, each once.
fn read_wnids(tree: &Tree, prefix: &str) -> Result<Vec<String>, DataError> {
    let name = format!("{prefix}wnids.txt");
    let text = tree.read_text(required(tree, &name)?)?;
    let mut wnids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let listed = wnids.len();
    wnids.sort();
    wnids.dedup();
    if wnids.is_empty() || wnids.len() != listed {
        let found = format!("{listed} lines, {} distinct ids", wnids.len());
        return Err(DataError::format(
            tree.location(&name),
            "ids",
            "one distinct WordNet id a line",
            found,
        ));
    }
    Ok(wnids)
}

/// The images `train/<wnid>/images/*`, labelled by their folder.
fn train_images<'t>(
    tree: &'t Tree,
    prefix: &str,
    classes: &[String],
) -> Result<(Vec<&'t Member>, Vec<u32>), DataError> {
    let mut members = Vec::new();
    let mut labels = Vec::new();
    let root = format!("{prefix}train/");
    for member in &tree.members {
        let Some(rest) = member.name.strip_prefix(&root) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() != 3 || parts[1] != "images" {
            let expected = "train/<wnid>/images/<image>";
            return Err(DataError::format(
                tree.location(&member.name),
                "path",
                expected,
                &member.name,
            ));
        }
        let label = classes
            .binary_search_by(|c| c.as_str().cmp(parts[0]))
            .map_err(|_| {
                DataError::format(
                    tree.location(&member.name),
                    "class folder",
                    "a WordNet id listed in wnids.txt",
                    parts[0],
                )
            })?;
        members.push(member);
        labels.push(label as u32);
    }
    Ok((members, labels))
}

/// The images `val/images/*`, labelled by `val/val_annotations.txt`: every annotation
/// needs its image and every image its annotation.
fn val_images<'t>(
    tree: &'t Tree,
    prefix: &str,
    classes: &[String],
) -> Result<(Vec<&'t Member>, Vec<u32>), DataError> {
    let annotations_name = format!("{prefix}val/val_annotations.txt");
    let text = tree.read_text(required(tree, &annotations_name)?)?;
    let location = tree.location(&annotations_name);
    let mut label_of = HashMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        let field = format!("line {}", n + 1);
        if fields.len() < 2 {
            return Err(DataError::format(
                &location,
                field,
                "FILE<TAB>WNID<TAB>x0<TAB>y0<TAB>x1<TAB>y1",
                line,
            ));
        }
        let label = classes
            .binary_search_by(|c| c.as_str().cmp(fields[1]))
            .map_err(|_| {
                DataError::format(
                    &location,
                    &field,
                    "a WordNet id listed in wnids.txt",
                    fields[1],
                )
            })?;
        if tree
            .get(&format!("{prefix}val/images/{}", fields[0]))
            .is_none()
        {
            return Err(DataError::format(
                &location,
                field,
                format!("an image val/images/{}", fields[0]),
                "none",
            ));
        }
        label_of.insert(fields[0].to_string(), label as u32);
    }
    let root = format!("{prefix}val/images/");
    let mut members = Vec::new();
    let mut labels = Vec::new();
    for member in tree.members.iter().filter(|m| m.name.starts_with(&root)) {
        let file = &member.name[root.len()..];
        let label = label_of.get(file).ok_or_else(|| {
            DataError::format(
                tree.location(&member.name),
                "annotation",
                "a line in val/val_annotations.txt",
                "none",
            )
        })?;
        members.push(member);
        labels.push(*label);
    }
    Ok((members, labels))
}

/// Decodes 64x64 images in parallel straight into the set's buffer, which is charged to
/// `budget` first.
fn decode_all(
    tree: &Tree,
    members: &[&Member],
    labels: Vec<u32>,
    budget: &DecodeBudget,
) -> Result<ImageSet, DataError> {
    let mut set = ImageSet::empty(SIDE, SIDE, 3);
    let image_len = set.image_len();
    let total = members.len() * image_len;
    budget.charge(total as u64, &tree.path.display().to_string())?;
    set.images = vec![0; total];
    set.images
        .par_chunks_mut(image_len)
        .zip(members.par_iter())
        .try_for_each(|(out, member)| {
            let location = tree.location(&member.name);
            let image = decode_image(&tree.read(member)?, &location, budget)?.with_channels(3);
            if image.shape() != "64x64x3" {
                return Err(DataError::format(
                    location,
                    "image size",
                    "64x64",
                    format!("{}x{}", image.height, image.width),
                ));
            }
            out.copy_from_slice(&image.pixels);
            Ok(())
        })?;
    set.labels = labels;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decode::tests::png;
    use std::fs;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("regstudy-tiny-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// A two-class tree; `tweak` may break it before loading.
    fn tree(name: &str, tweak: impl Fn(&Path)) -> (PathBuf, Result<Dataset, DataError>) {
        let dir = scratch(name);
        let root = dir.join("tiny-imagenet-200");
        let write = |rel: &str, bytes: &[u8]| {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        };
        let image = |v: u8| png(64, 64, 3, &[v; 64 * 64 * 3]);
        write("wnids.txt", b"n02\nn01\n");
        write("train/n01/images/n01_0.JPEG", &image(10));
        write("train/n02/images/n02_0.JPEG", &image(20));
        write("train/n02/n02_boxes.txt", b"ignored");
        write("val/images/val_0.JPEG", &image(30));
        write(
            "val/val_annotations.txt",
            b"val_0.JPEG\tn02\t0\t0\t63\t63\n",
        );
        write("test/images/test_0.JPEG", b"never read");
        tweak(&root);
        let result = load(&find(&dir).unwrap());
        (dir, result)
    }

    #[test]
    fn a_small_tree_loads_with_validation_as_test() {
        let (dir, result) = tree("ok", |_| {});
        let data = result.unwrap();
        assert_eq!(data.classes, vec!["n01", "n02"]);
        assert_eq!(data.train.labels, vec![0, 1]);
        assert_eq!(data.train.image(1)[0], 20);
        assert_eq!(
            (data.test.len(), data.test.labels[0], data.test.image(0)[5]),
            (1, 1, 30)
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn an_annotation_with_an_unknown_wnid_names_the_line() {
        let (dir, result) = tree("wnid", |root| {
            fs::write(
                root.join("val/val_annotations.txt"),
                "val_0.JPEG\tn99\t0\t0\t1\t1\n",
            )
            .unwrap();
        });
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains(
                "val_annotations.txt: line 1: expected a WordNet id listed in wnids.txt, found n99"
            ),
            "{err}"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn an_unannotated_validation_image_is_rejected() {
        let (dir, result) = tree("unannotated", |root| {
            fs::copy(
                root.join("val/images/val_0.JPEG"),
                root.join("val/images/val_1.JPEG"),
            )
            .unwrap();
        });
        let err = result.unwrap_err().to_string();
        assert!(err.contains("val_1.JPEG: annotation"), "{err}");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_wrong_sized_or_unreadable_image_is_named() {
        let (dir, result) = tree("size", |root| {
            fs::write(
                root.join("train/n01/images/n01_0.JPEG"),
                png(32, 32, 3, &[0; 3072]),
            )
            .unwrap();
        });
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("n01_0.JPEG: image size: expected 64x64, found 32x32"),
            "{err}"
        );
        let _ = fs::remove_dir_all(dir);
        let (dir, result) = tree("unreadable", |root| {
            fs::write(root.join("train/n02/images/n02_0.JPEG"), b"garbage").unwrap();
        });
        let err = result.unwrap_err().to_string();
        assert!(err.contains("n02_0.JPEG: cannot decode"), "{err}");
        let _ = fs::remove_dir_all(dir);
    }
}
