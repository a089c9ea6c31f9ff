//! `--workers auto`: how to divide a machine's threads between a study's trials.
//!
//! A study's trials are independent, so a process can train one trial on all of its threads
//! or several trials at once on fewer threads each. Which trains more images per second
//! depends on the network, the batch and the machine: a small network's batch leaves
//! threads idle between its layers' parallel parts, so several trials use them better, while
//! large ones scale over threads and compete for the memory bandwidth when run side by
//! side. Rather than guess, [`measure`] times every even division of the threads
//! ([`candidates`]) on the study's next network, with synthetic batches of its batch size,
//! all of a layout's workers training at once, and [`choose`] takes the fastest.

use crate::engine::{Rng, Tensor, ThreadPool};
use crate::nn::spec::ModelSpec;
use crate::nn::{Context, Init};
use crate::optim::AdamConfig;
use crate::regularize::Regularizers;
use crate::train::TrainStep;
use std::fmt;
use std::str::FromStr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// How many trials a process trains at once: a number, or `auto` (measured at the start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    Count(usize),
    Auto,
}

impl FromStr for Workers {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "auto" {
            return Ok(Workers::Auto);
        }
        text.parse()
            .map(Workers::Count)
            .map_err(|_| format!("expected a number of workers or `auto`, got `{text}`"))
    }
}

impl fmt::Display for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workers::Count(n) => write!(f, "{n}"),
            Workers::Auto => f.write_str("auto"),
        }
    }
}

/// One division of the threads: `workers` trials at once, on `threads_each` threads each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    pub workers: usize,
    pub threads_each: usize,
}

/// A layout and the images per second all its workers together trained.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Measured {
    pub layout: Layout,
    pub images_per_s: f64,
}

/// What `--workers auto` measured and chose, as printed and written beside the run folders.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LayoutChoice {
    /// The network timed: the study's next trial's.
    pub network: String,
    pub batch: usize,
    pub measured: Vec<Measured>,
    pub chosen: Layout,
}

impl LayoutChoice {
    /// One line: every layout's rate, then the choice.
    pub fn describe(&self) -> String {
        let rates: Vec<String> = self
            .measured
            .iter()
            .map(|m| {
                format!(
                    "{} x {} thread{}: {:.0} img/s",
                    m.layout.workers,
                    m.layout.threads_each,
                    if m.layout.threads_each == 1 { "" } else { "s" },
                    m.images_per_s
                )
            })
            .collect();
        format!(
            "workers auto: {} training at batch {}: {}; chose {} worker{} of {} thread{}",
            self.network,
            self.batch,
            rates.join(", "),
            self.chosen.workers,
            if self.chosen.workers == 1 { "" } else { "s" },
            self.chosen.threads_each,
            if self.chosen.threads_each == 1 {
                ""
            } else {
                "s"
            },
        )
    }
}

/// A layout with more workers is chosen over one with fewer only when it trains more than
/// this much faster: more workers hold more memory, and each trial (and so each pruning
/// decision and the study's first results) takes longer, which a gain within the timing
/// noise does not pay for.
pub const MARGIN: f64 = 0.05;

/// The layouts worth timing for `threads` threads in all and `trials` trials left: each
/// worker count from 1 to `min(threads, trials)` that divides the threads evenly (a worker
/// without a trial, or threads left over, would idle).
pub fn candidates(threads: usize, trials: usize) -> Vec<Layout> {
    let most = threads.min(trials).max(1);
    (1..=most)
        .filter(|w| threads.is_multiple_of(*w))
        .map(|workers| Layout {
            workers,
            threads_each: threads / workers,
        })
        .collect()
}

/// The layout with the most images per second, taken in order of workers: one with more
/// workers replaces the best so far only when faster by more than [`MARGIN`]. `None` when
/// nothing was measured.
pub fn choose(measured: &[Measured]) -> Option<Layout> {
    let mut sorted: Vec<&Measured> = measured.iter().collect();
    sorted.sort_by_key(|m| m.layout.workers);
    let mut best = *sorted.first()?;
    for m in sorted {
        if m.images_per_s > best.images_per_s * (1.0 + MARGIN) {
            best = m;
        }
    }
    Some(best.layout)
}

/// How long each layout is timed.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Untimed steps first (first-touch allocation, caches, frequency ramp).
    pub warmup: Duration,
    pub measure: Duration,
}

impl Default for Timing {
    /// One second of warm-up and three of timing per layout: a few seconds against a
    /// study of hours, and long enough for many steps of the networks studied.
    fn default() -> Self {
        Timing {
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(3),
        }
    }
}

/// Times each layout: its workers each train their own copy of `network` with Adam on one
/// synthetic batch of `batch` images, on their own pool of `threads_each` threads, all at
/// once; the rate is the sum of the workers' images per second.
pub fn measure(
    network: &ModelSpec,
    batch: usize,
    layouts: &[Layout],
    timing: Timing,
) -> Result<Vec<Measured>, String> {
    layouts
        .iter()
        .map(|&layout| {
            let barrier = Barrier::new(layout.workers);
            let rates: Vec<Result<f64, String>> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..layout.workers)
                    .map(|w| {
                        let barrier = &barrier;
                        scope.spawn(move || {
                            worker_rate(network, batch, layout.threads_each, w, barrier, timing)
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| {
                        w.join()
                            .unwrap_or_else(|_| Err("a timing thread panicked".into()))
                    })
                    .collect()
            });
            let images_per_s = rates.into_iter().sum::<Result<f64, String>>()?;
            Ok(Measured {
                layout,
                images_per_s,
            })
        })
        .collect()
}

/// One worker's training rate in images per second. Every worker builds its network before
/// the first barrier and starts timing at the second, so that the layout's workers are timed
/// over the same span.
fn worker_rate(
    network: &ModelSpec,
    batch: usize,
    threads: usize,
    index: usize,
    barrier: &Barrier,
    timing: Timing,
) -> Result<f64, String> {
    // A worker that cannot start must still meet its companions at both barriers.
    let prepared = prepare(network, batch, threads, index);
    barrier.wait();
    let Ok((pool, mut net, images, labels)) = prepared else {
        barrier.wait();
        return prepared.map(|_| 0.0);
    };
    pool.install(|| {
        let mut optimizer = AdamConfig::new(1e-3).init();
        let mut regularizers = Regularizers::default();
        let mut ctx = Context::train(Rng::new(index as u64));
        let mut step = TrainStep::new();
        let mut train = || {
            // Random labels on uniform images keep the loss finite; a non-finite one would
            // only end the step early, which the count still times.
            let result = step.run(
                &mut net,
                &mut optimizer,
                &mut regularizers,
                &mut ctx,
                &images,
                &labels,
            );
            std::hint::black_box(result.is_ok());
        };
        let start = Instant::now();
        while start.elapsed() < timing.warmup {
            train();
        }
        barrier.wait();
        let (start, mut steps) = (Instant::now(), 0usize);
        while start.elapsed() < timing.measure {
            train();
            steps += 1;
        }
        Ok((steps * batch) as f64 / start.elapsed().as_secs_f64())
    })
}

type Prepared = (ThreadPool, crate::nn::Network, Tensor, Vec<u32>);

/// A worker's pool, network and synthetic batch (uniform pixels in [0, 1), random labels).
fn prepare(
    network: &ModelSpec,
    batch: usize,
    threads: usize,
    index: usize,
) -> Result<Prepared, String> {
    let pool = ThreadPool::new(threads).map_err(|e| e.to_string())?;
    let net = network
        .build(Init::Pytorch, index as u64)
        .map_err(|e| e.to_string())?;
    let input = network.input;
    let len = batch * input.height * input.width * input.channels;
    let mut rng = Rng::new(42 + index as u64);
    let pixels = (0..len).map(|_| rng.next_f32()).collect();
    let images = Tensor::from_vec(&[batch, input.height, input.width, input.channels], pixels)
        .ok_or("the synthetic batch has the wrong size")?;
    let classes = net.classes() as u64;
    let labels = (0..batch).map(|_| rng.below(classes) as u32).collect();
    Ok((pool, net, images, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models;
    use crate::nn::spec::InputShape;

    fn measured(workers: usize, threads_each: usize, images_per_s: f64) -> Measured {
        Measured {
            layout: Layout {
                workers,
                threads_each,
            },
            images_per_s,
        }
    }

    #[test]
    fn workers_parse_as_a_number_or_auto_and_print_as_given() {
        assert_eq!("auto".parse(), Ok(Workers::Auto));
        assert_eq!("3".parse(), Ok(Workers::Count(3)));
        let err = "many".parse::<Workers>().unwrap_err();
        assert!(err.contains("`many`") && err.contains("`auto`"), "{err}");
        assert_eq!(Workers::Auto.to_string(), "auto");
        assert_eq!(Workers::Count(4).to_string(), "4");
    }

    #[test]
    fn the_candidates_divide_the_threads_evenly_among_no_more_workers_than_trials() {
        let shown = |threads, trials| -> Vec<(usize, usize)> {
            candidates(threads, trials)
                .iter()
                .map(|l| (l.workers, l.threads_each))
                .collect()
        };
        assert_eq!(shown(2, 30), [(1, 2), (2, 1)]);
        assert_eq!(shown(16, 30), [(1, 16), (2, 8), (4, 4), (8, 2), (16, 1)]);
        assert_eq!(shown(16, 3), [(1, 16), (2, 8)]);
        assert_eq!(shown(6, 30), [(1, 6), (2, 3), (3, 2), (6, 1)]);
        assert_eq!(shown(1, 30), [(1, 1)]);
        assert_eq!(shown(8, 0), [(1, 8)]);
    }

    #[test]
    fn more_workers_are_chosen_only_when_faster_by_more_than_the_margin() {
        // 2 workers 4% faster: within the margin, one worker stays.
        let close = [measured(1, 2, 1000.0), measured(2, 1, 1040.0)];
        assert_eq!(choose(&close).unwrap().workers, 1);
        // 10% faster: chosen.
        let faster = [measured(2, 1, 1100.0), measured(1, 2, 1000.0)];
        assert_eq!(choose(&faster).unwrap().workers, 2);
        // Each step compares with the best so far, not with its neighbour.
        let steps = [
            measured(1, 8, 1000.0),
            measured(2, 4, 1040.0),
            measured(4, 2, 1080.0),
            measured(8, 1, 1000.0),
        ];
        assert_eq!(choose(&steps).unwrap().workers, 4);
        // One worker on all threads when it is the fastest.
        let slower = [measured(1, 2, 1000.0), measured(2, 1, 700.0)];
        assert_eq!(choose(&slower).unwrap().workers, 1);
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn measuring_times_every_layout_with_all_its_workers_training() {
        let mnist = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let network = models::by_name("simple-cnn", mnist, 10).unwrap();
        let layouts = candidates(2, 10);
        let timing = Timing {
            warmup: Duration::from_millis(50),
            measure: Duration::from_millis(300),
        };
        let measured = measure(&network, 8, &layouts, timing).unwrap();
        assert_eq!(measured.len(), 2);
        for (m, layout) in measured.iter().zip(&layouts) {
            assert_eq!(m.layout, *layout);
            assert!(m.images_per_s.is_finite() && m.images_per_s > 0.0, "{m:?}");
        }
        let choice = LayoutChoice {
            network: "simple-cnn".into(),
            batch: 8,
            chosen: choose(&measured).unwrap(),
            measured,
        };
        let line = choice.describe();
        assert!(
            line.starts_with("workers auto: simple-cnn training at batch 8: 1 x 2 threads: ")
                && line.contains(", 2 x 1 thread: ")
                && line.contains("; chose "),
            "{line}"
        );
    }

    #[test]
    fn a_network_that_cannot_be_built_is_an_error_not_a_hang() {
        let mut network = models::by_name(
            "simple-cnn",
            InputShape {
                channels: 1,
                height: 28,
                width: 28,
            },
            10,
        )
        .unwrap();
        network.layers.clear();
        let layouts = candidates(2, 10);
        let err = measure(&network, 8, &layouts, Timing::default()).unwrap_err();
        assert!(!err.is_empty());
    }
}
