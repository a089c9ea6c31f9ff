//! A validation split carved from the training set.
//!
//! Hyper-parameters are chosen on this split, never on the test set. The split is
//! stratified (each class gives the same fraction of its images, so class balance is
//! kept) and seeded (the same seed gives the same split on every machine).

use super::{DataError, ImageSet};
use crate::engine::SplitMix64;
use std::collections::BTreeMap;

/// Splits `set` into (training, validation). From each class of `n` images,
/// `round(fraction * n)` images chosen at random go to validation, but at least one
/// stays in training. Both parts keep the original order of their images.
pub fn split_validation(
    set: &ImageSet,
    fraction: f64,
    seed: u64,
) -> Result<(ImageSet, ImageSet), DataError> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(DataError::invalid(
            "validation fraction",
            "a number in [0, 1)",
            fraction,
        ));
    }
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &label) in set.labels.iter().enumerate() {
        by_class.entry(label).or_default().push(i);
    }
    let mut in_validation = vec![false; set.len()];
    for (label, mut indices) in by_class {
        // One stream per class: a class's split does not depend on the other classes.
        SplitMix64::derive(seed, &[u64::from(label)]).shuffle(&mut indices);
        let n = indices.len();
        let take = ((fraction * n as f64).round() as usize).min(n - 1);
        for &i in &indices[..take] {
            in_validation[i] = true;
        }
    }
    let (validation, training): (Vec<usize>, Vec<usize>) =
        (0..set.len()).partition(|&i| in_validation[i]);
    Ok((set.subset(&training), set.subset(&validation)))
}

/// `n` images of `set` (all of them if it has fewer) drawn at random, stratified: each
/// class gives its share, `n * n_c / len` rounded, so a subset of a set stored class by
/// class is still balanced. The subset keeps the original order of its images.
pub fn stratified_subset(set: &ImageSet, n: usize, seed: u64) -> ImageSet {
    if n >= set.len() {
        return set.clone();
    }
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &label) in set.labels.iter().enumerate() {
        by_class.entry(label).or_default().push(i);
    }
    // Within each class a random order; across classes, the j-th of n_c images ranks at
    // (j + 0.5) / n_c, so taking the n best ranks takes each class in proportion.
    let mut ranked: Vec<(f64, u32, usize)> = Vec::with_capacity(set.len());
    for (label, mut indices) in by_class {
        SplitMix64::derive(seed, &[u64::from(label), 1]).shuffle(&mut indices);
        let count = indices.len() as f64;
        for (j, i) in indices.into_iter().enumerate() {
            ranked.push(((j as f64 + 0.5) / count, label, i));
        }
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut chosen: Vec<usize> = ranked[..n].iter().map(|r| r.2).collect();
    chosen.sort_unstable();
    set.subset(&chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subset_of_a_set_sorted_by_class_is_balanced_and_seeded() {
        // Images numbered in two bytes, stored class by class.
        let mut set = ImageSet::empty(1, 2, 1);
        for i in 0..400u16 {
            set.labels.push(u32::from(i / 100));
            set.images.extend_from_slice(&i.to_le_bytes());
        }
        let subset = stratified_subset(&set, 40, 7);
        assert_eq!(subset.len(), 40);
        assert_eq!(subset.class_counts(4), [10, 10, 10, 10]);
        assert_eq!(subset, stratified_subset(&set, 40, 7));
        assert_ne!(subset, stratified_subset(&set, 40, 8));
        assert_eq!(stratified_subset(&set, 1000, 7), set);
    }

    /// 100 images of class 0 and 50 of class 1, image i filled with i % 256.
    fn set() -> ImageSet {
        let labels: Vec<u32> = (0..150).map(|i| u32::from(i >= 100)).collect();
        ImageSet {
            images: (0..150).flat_map(|i| [i as u8; 4]).collect(),
            labels,
            ..ImageSet::empty(2, 2, 1)
        }
    }

    #[test]
    fn the_split_is_stratified_and_disjoint() {
        let (train, validation) = split_validation(&set(), 0.2, 1).unwrap();
        assert_eq!(validation.class_counts(2), vec![20, 10]);
        assert_eq!(train.class_counts(2), vec![80, 40]);
        let mut seen: Vec<u8> = train
            .images
            .chunks(4)
            .chain(validation.images.chunks(4))
            .map(|px| px[0])
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..150).map(|i| i as u8).collect::<Vec<_>>());
    }

    #[test]
    fn the_same_seed_gives_the_same_split_and_another_seed_another() {
        let a = split_validation(&set(), 0.1, 5).unwrap().1;
        let b = split_validation(&set(), 0.1, 5).unwrap().1;
        let c = split_validation(&set(), 0.1, 6).unwrap().1;
        assert_eq!(a, b);
        assert_ne!(a.images, c.images);
    }

    #[test]
    fn a_fraction_outside_zero_to_one_is_an_error() {
        for fraction in [-0.1, 1.0, f64::NAN] {
            let err = split_validation(&set(), fraction, 0)
                .unwrap_err()
                .to_string();
            assert!(err.contains("validation fraction"), "{err}");
        }
        let (train, validation) = split_validation(&set(), 0.0, 0).unwrap();
        assert_eq!((train.len(), validation.len()), (150, 0));
    }

    #[test]
    fn a_one_image_class_stays_in_training() {
        let set = ImageSet {
            images: vec![1, 2],
            labels: vec![0, 1],
            ..ImageSet::empty(1, 1, 1)
        };
        let (train, validation) = split_validation(&set, 0.9, 0).unwrap();
        assert_eq!((train.len(), validation.len()), (2, 0));
    }
}
