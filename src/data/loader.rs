//! Batches prepared on a background thread.
//!
//! A [`BatchLoader`] owns one worker thread. For each epoch it is asked for, the worker
//! shuffles the indices (seeded by `(seed, epoch)`), converts each image from `u8` to
//! normalized `f32` with its augmentation (seeded by `(seed, epoch, position)`), and
//! sends the batches through a bounded channel (`prefetch` batches ahead), so the
//! training loop finds the next batch ready. Because every random draw is keyed by what
//! it is for, not by the order of work, the batches depend on the seed only.
//!
//! Spent batches can be handed back with [`BatchLoader::recycle`]; the worker refills
//! their buffers instead of allocating new ones.

use super::augment::{Augmentation, Transform};
use super::{DataError, ImageSet};
use crate::engine::SplitMix64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Keys that separate the shuffle stream from the augmentation streams.
const SHUFFLE_KEY: u64 = 0x5348_5546;
const AUGMENT_KEY: u64 = 0x4155_474d;

/// How bytes become network inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalization {
    /// `v / 255`, in [0, 1] (as the CIFAR-10 study does).
    UnitRange,
    /// `(v / 255 - mean[c]) / std[c]`, with mean and std in [0, 1] units, per channel.
    Standardize { mean: Vec<f32>, std: Vec<f32> },
}

impl Normalization {
    /// Per-channel mean and (population) standard deviation of `v / 255` over a training
    /// set. Compute it on the training part only, never on test images.
    pub fn standardize_from(set: &ImageSet) -> Normalization {
        let channels = set.channels.max(1);
        let mut sums = vec![(0u64, 0u64); channels];
        for (i, &v) in set.images.iter().enumerate() {
            let (sum, squares) = &mut sums[i % channels];
            *sum += u64::from(v);
            *squares += u64::from(v) * u64::from(v);
        }
        let count = (set.images.len() / channels).max(1) as f64;
        let (mean, std) = sums
            .iter()
            .map(|&(sum, squares)| {
                let mean = sum as f64 / count / 255.0;
                let variance = (squares as f64 / count / 65025.0 - mean * mean).max(0.0);
                (mean as f32, variance.sqrt() as f32)
            })
            .unzip();
        Normalization::Standardize { mean, std }
    }

    /// The value of every byte for every channel.
    fn table(&self, channels: usize) -> Result<Vec<[f32; 256]>, DataError> {
        match self {
            Normalization::UnitRange => {
                Ok(vec![std::array::from_fn(|v| v as f32 / 255.0); channels])
            }
            Normalization::Standardize { mean, std } => {
                if mean.len() != channels || std.len() != channels {
                    let found = format!("{} means and {} deviations", mean.len(), std.len());
                    return Err(DataError::invalid(
                        "normalization",
                        &format!("{channels} values each"),
                        found,
                    ));
                }
                if let Some(bad) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                    return Err(DataError::invalid(
                        "normalization std",
                        "positive finite values",
                        bad,
                    ));
                }
                let row = |c: usize| std::array::from_fn(|v| (v as f32 / 255.0 - mean[c]) / std[c]);
                Ok((0..channels).map(row).collect())
            }
        }
    }
}

/// What the loader produces.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Visit the images in a new random order each epoch.
    pub shuffle: bool,
    /// Leave out the last batch if it is smaller than `batch_size`. Without it, a last batch
    /// of a single image is never produced: that image joins the batch before, which then
    /// has `batch_size + 1` images (batch norm's batch statistics of one image are
    /// degenerate; merging, unlike dropping, still shows every image once per epoch). A set
    /// of one image is still one batch of one.
    pub drop_last: bool,
    pub seed: u64,
    pub normalization: Normalization,
    pub augmentation: Augmentation,
    /// Batches prepared ahead of the consumer (at least 1).
    pub prefetch: usize,
}

impl LoaderConfig {
    /// In order, all images, [0, 1] scaling, no augmentation, two batches ahead.
    pub fn new(batch_size: usize) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: false,
            drop_last: false,
            seed: 0,
            normalization: Normalization::UnitRange,
            augmentation: Augmentation::none(),
            prefetch: 2,
        }
    }
}

/// A batch: `len` images, NHWC `f32`, and their labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub len: usize,
}

enum Message {
    Batch(Batch),
    EndOfEpoch,
}

/// A background batch producer over one image set.
pub struct BatchLoader {
    requests: Option<Sender<u64>>,
    batches: Receiver<Message>,
    recycled: Sender<Batch>,
    cancel: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
    batches_per_epoch: usize,
}

impl BatchLoader {
    /// Starts the worker thread. Fails on a zero batch size or a normalization that does
    /// not fit the images' channels.
    pub fn new(set: Arc<ImageSet>, config: LoaderConfig) -> Result<Self, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::invalid("batch size", "at least 1", 0));
        }
        let table = config.normalization.table(set.channels)?;
        let batches_per_epoch = if config.drop_last {
            set.len() / config.batch_size
        } else if set.len() > 1 && set.len() % config.batch_size == 1 {
            // The last image joins the batch before (see `LoaderConfig::drop_last`).
            set.len() / config.batch_size
        } else {
            set.len().div_ceil(config.batch_size)
        };
        let (request_tx, request_rx) = mpsc::channel();
        let (batch_tx, batch_rx) = mpsc::sync_channel(config.prefetch.max(1));
        let (recycle_tx, recycle_rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            set,
            config,
            table,
            batches_per_epoch,
            cancel: Arc::clone(&cancel),
            batches: batch_tx,
            recycled: recycle_rx,
        };
        let handle = std::thread::Builder::new()
            .name("regstudy-batches".into())
            .spawn(move || worker.run(request_rx))
            .map_err(|e| DataError::invalid("batch loader thread", "a new thread", e))?;
        Ok(BatchLoader {
            requests: Some(request_tx),
            batches: batch_rx,
            recycled: recycle_tx,
            cancel,
            worker: Some(handle),
            batches_per_epoch,
        })
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.batches_per_epoch
    }

    /// The batches of epoch `epoch` (its number seeds its shuffle and augmentation).
    /// Dropping the iterator early stops the worker's work on that epoch.
    pub fn epoch(&mut self, epoch: u64) -> Epoch<'_> {
        let sent = self
            .requests
            .as_ref()
            .is_some_and(|tx| tx.send(epoch).is_ok());
        Epoch {
            remaining: if sent { self.batches_per_epoch } else { 0 },
            done: !sent,
            loader: self,
        }
    }

    /// Hands a spent batch back so its buffers are reused.
    pub fn recycle(&self, batch: Batch) {
        let _ = self.recycled.send(batch);
    }

    /// Receives until the current epoch's end marker (or the worker's exit).
    fn drain(&self) {
        while let Ok(Message::Batch(_)) = self.batches.recv() {}
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        self.requests.take();
        self.cancel.store(true, Ordering::SeqCst);
        while self.batches.recv().is_ok() {}
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The batches of one epoch, in order.
pub struct Epoch<'a> {
    loader: &'a mut BatchLoader,
    remaining: usize,
    done: bool,
}

impl Iterator for Epoch<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.done {
            return None;
        }
        match self.loader.batches.recv() {
            Ok(Message::Batch(batch)) => {
                self.remaining = self.remaining.saturating_sub(1);
                Some(batch)
            }
            Ok(Message::EndOfEpoch) | Err(_) => {
                self.done = true;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl Drop for Epoch<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.loader.cancel.store(true, Ordering::SeqCst);
            self.loader.drain();
            self.loader.cancel.store(false, Ordering::SeqCst);
        }
    }
}

/// The state of the background thread.
struct Worker {
    set: Arc<ImageSet>,
    config: LoaderConfig,
    table: Vec<[f32; 256]>,
    batches_per_epoch: usize,
    cancel: Arc<AtomicBool>,
    batches: SyncSender<Message>,
    recycled: Receiver<Batch>,
}

impl Worker {
    /// Serves epoch requests until the loader is dropped.
    fn run(self, requests: Receiver<u64>) {
        while let Ok(epoch) = requests.recv() {
            if !self.serve(epoch) || self.batches.send(Message::EndOfEpoch).is_err() {
                return;
            }
        }
    }

    /// Sends one epoch's batches; false if the loader is gone.
    fn serve(&self, epoch: u64) -> bool {
        let order = self.order(epoch);
        let size = self.config.batch_size;
        for b in 0..self.batches_per_epoch {
            if self.cancel.load(Ordering::SeqCst) {
                return true;
            }
            let first = b * size;
            // Without drop_last the last batch takes every image left: a short batch, or
            // `size + 1` images when a single one would be left over.
            let end = if b + 1 == self.batches_per_epoch && !self.config.drop_last {
                order.len()
            } else {
                first + size
            };
            let batch = self.fill(epoch, first, &order[first..end]);
            if self.batches.send(Message::Batch(batch)).is_err() {
                return false;
            }
        }
        true
    }

    /// The image indices of an epoch, in visiting order.
    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.set.len()).collect();
        if self.config.shuffle {
            SplitMix64::derive(self.config.seed ^ SHUFFLE_KEY, &[epoch]).shuffle(&mut order);
        }
        order
    }

    /// Builds the batch of `indices`, which start at position `first` of the epoch.
    fn fill(&self, epoch: u64, first: usize, indices: &[usize]) -> Batch {
        let set = &*self.set;
        let shape = (set.height, set.width, set.channels);
        let image_len = set.image_len();
        let mut batch = self.recycled.try_recv().unwrap_or_default();
        batch.images.clear();
        batch.images.resize(indices.len() * image_len, 0.0);
        batch.labels.clear();
        batch.len = indices.len();
        for (k, (&index, out)) in indices
            .iter()
            .zip(batch.images.chunks_exact_mut(image_len))
            .enumerate()
        {
            let transform = self.transform(epoch, (first + k) as u64);
            transform.apply(set.image(index), shape, &self.table, out);
            batch.labels.push(set.labels[index]);
        }
        batch
    }

    /// The augmentation of the image at `position` of epoch `epoch`.
    fn transform(&self, epoch: u64, position: u64) -> Transform {
        let augmentation = &self.config.augmentation;
        if augmentation.is_identity() {
            return Transform::default();
        }
        augmentation.draw(&mut SplitMix64::derive(
            self.config.seed ^ AUGMENT_KEY,
            &[epoch, position],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` 2x2 RGB images; image i has every byte equal to i.
    fn set(n: usize) -> Arc<ImageSet> {
        Arc::new(ImageSet {
            images: (0..n).flat_map(|i| [i as u8; 12]).collect(),
            labels: (0..n as u32).collect(),
            ..ImageSet::empty(2, 2, 3)
        })
    }

    fn collect(loader: &mut BatchLoader, epoch: u64) -> Vec<Batch> {
        loader.epoch(epoch).collect()
    }

    #[test]
    fn unshuffled_batches_cover_the_set_in_order_with_a_short_last_batch() {
        let mut loader = BatchLoader::new(set(10), LoaderConfig::new(4)).unwrap();
        let batches = collect(&mut loader, 0);
        assert_eq!(
            batches.iter().map(|b| b.len).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        assert_eq!(batches[2].labels, vec![8, 9]);
        assert_eq!(batches[0].images.len(), 4 * 12);
        assert_eq!(batches[0].images[12], 1.0 / 255.0);
    }

    #[test]
    fn a_last_batch_of_one_image_joins_the_batch_before_and_every_image_is_still_seen() {
        for shuffle in [false, true] {
            let config = LoaderConfig {
                shuffle,
                seed: 7,
                ..LoaderConfig::new(4)
            };
            // 9 = 2 * 4 + 1 and 13 = 3 * 4 + 1: one image would be left over.
            for n in [9, 13, 5] {
                let mut loader = BatchLoader::new(set(n), config.clone()).unwrap();
                assert_eq!(loader.batches_per_epoch(), n / 4);
                for epoch in 0..2 {
                    let batches = collect(&mut loader, epoch);
                    let sizes: Vec<usize> = batches.iter().map(|b| b.len).collect();
                    let mut expected = vec![4; n / 4];
                    *expected.last_mut().unwrap() = 5;
                    assert_eq!(sizes, expected, "n = {n}, shuffle = {shuffle}");
                    assert!(batches.iter().all(|b| b.images.len() == b.len * 12));
                    let mut labels: Vec<u32> = batches.into_iter().flat_map(|b| b.labels).collect();
                    labels.sort_unstable();
                    assert_eq!(labels, (0..n as u32).collect::<Vec<_>>());
                }
            }
        }
        // Batches of one are left only when there is nothing to merge with.
        let mut single = BatchLoader::new(set(1), LoaderConfig::new(4)).unwrap();
        assert_eq!(collect(&mut single, 0).len(), 1);
    }

    #[test]
    fn drop_last_leaves_out_the_short_batch() {
        let config = LoaderConfig {
            drop_last: true,
            ..LoaderConfig::new(4)
        };
        let mut loader = BatchLoader::new(set(10), config).unwrap();
        assert_eq!(loader.batches_per_epoch(), 2);
        assert_eq!(collect(&mut loader, 0).len(), 2);
    }

    #[test]
    fn shuffling_is_seeded_per_epoch_and_covers_every_image() {
        let config = LoaderConfig {
            shuffle: true,
            seed: 3,
            ..LoaderConfig::new(8)
        };
        let mut a = BatchLoader::new(set(20), config.clone()).unwrap();
        let mut b = BatchLoader::new(set(20), config).unwrap();
        let labels = |batches: Vec<Batch>| {
            batches
                .into_iter()
                .flat_map(|b| b.labels)
                .collect::<Vec<_>>()
        };
        let first = labels(collect(&mut a, 0));
        assert_eq!(first, labels(collect(&mut b, 0)));
        assert_ne!(first, labels(collect(&mut a, 1)));
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<u32>>());
    }

    #[test]
    fn augmented_batches_repeat_exactly_and_recycled_buffers_change_nothing() {
        let config = LoaderConfig {
            shuffle: true,
            augmentation: Augmentation {
                horizontal_flip: true,
                max_shift: 1,
            },
            ..LoaderConfig::new(3)
        };
        let mut loader = BatchLoader::new(set(7), config.clone()).unwrap();
        let first = collect(&mut loader, 2);
        for batch in first.clone() {
            loader.recycle(batch);
        }
        let again = collect(&mut loader, 2);
        assert_eq!(first, again);
        let padded = first
            .iter()
            .flat_map(|b| &b.images)
            .filter(|&&v| v == 0.0)
            .count();
        assert!(padded > 0, "some shifts should bring in zero padding");
    }

    #[test]
    fn standardization_uses_per_channel_statistics() {
        let set = ImageSet {
            images: vec![0, 255, 10, 255, 255, 10],
            labels: vec![0, 0],
            ..ImageSet::empty(1, 1, 3)
        };
        let Normalization::Standardize { mean, std } = Normalization::standardize_from(&set) else {
            unreachable!()
        };
        assert_eq!(mean, vec![0.5, 1.0, 10.0 / 255.0]);
        assert_eq!(std[..2], [0.5, 0.0]);
        assert!(std[2].abs() < 1e-6);
        let good = Normalization::Standardize {
            mean: vec![0.5],
            std: vec![0.5],
        };
        let table = good.table(1).unwrap();
        assert_eq!((table[0][0], table[0][255]), (-1.0, 1.0));
        assert!(Normalization::standardize_from(&set).table(3).is_err());
    }

    #[test]
    fn an_epoch_abandoned_early_does_not_leak_into_the_next() {
        let mut loader = BatchLoader::new(
            set(50),
            LoaderConfig {
                prefetch: 1,
                ..LoaderConfig::new(2)
            },
        )
        .unwrap();
        let first = loader.epoch(0).next().unwrap();
        assert_eq!(first.labels, vec![0, 1]);
        let next_epoch = collect(&mut loader, 1);
        assert_eq!(next_epoch.len(), 25);
        assert_eq!(next_epoch[0].labels, vec![0, 1]);
    }

    #[test]
    fn a_zero_batch_size_or_mismatched_normalization_is_an_error() {
        assert!(BatchLoader::new(set(3), LoaderConfig::new(0)).is_err());
        let config = LoaderConfig {
            normalization: Normalization::Standardize {
                mean: vec![0.0],
                std: vec![1.0],
            },
            ..LoaderConfig::new(2)
        };
        let err = BatchLoader::new(set(3), config).err().unwrap().to_string();
        assert!(err.contains("3 values each"), "{err}");
    }
}
