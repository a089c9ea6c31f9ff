//! What the commands show while they work: progress bars (on a terminal only) and lines,
//! drawn from what the library reports to its observers.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use regstudy::data::DownloadObserver;
use regstudy::study::layout::LayoutChoice;
use regstudy::study::runner::{StudyObserver, TrialReport};
use regstudy::train::metrics::{console_header, console_line};
use regstudy::train::{BatchProgress, EpochMetrics, RunOutcome, RunStart, TrainObserver};
use regstudy::trial::TrialRecord;
use std::io::IsTerminal;
use std::sync::Mutex;

/// A bar on stderr per download (drawn only on a terminal): the file, bytes, speed, eta.
#[derive(Default)]
pub struct DownloadBar {
    bar: Mutex<Option<ProgressBar>>,
}

impl DownloadObserver for DownloadBar {
    fn download_started(&self, url: &str, bytes: Option<u64>) {
        let bar = match bytes {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        };
        let style = ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        );
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn download_progressed(&self, bytes: u64) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            bar.inc(bytes);
        }
    }

    fn download_ended(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

/// `regstudy train`'s output: a header and a line per epoch on stdout, a bar over each
/// epoch's batches on stderr (a terminal only), and the test result at the end.
pub struct TrainConsole {
    /// Whether to show anything (`--quiet` shows nothing).
    show: bool,
    bar: Mutex<Option<ProgressBar>>,
    downloads: DownloadBar,
}

impl TrainConsole {
    pub fn new(show: bool) -> Self {
        TrainConsole {
            show,
            bar: Mutex::new(None),
            downloads: DownloadBar::default(),
        }
    }

    fn clear_bar(&self) {
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for TrainConsole {
    /// A run that ends with an error leaves no bar behind.
    fn drop(&mut self) {
        self.clear_bar();
    }
}

impl TrainObserver for TrainConsole {
    fn run_started(&self, _start: &RunStart) {
        if self.show {
            println!("{}", console_header());
        }
    }

    fn epoch_started(&self, epoch: usize, batches: usize) {
        if !self.show || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr());
        let style =
            ProgressStyle::with_template("epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg} ({eta})")
                .expect("valid template")
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(epoch.to_string());
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn batch_done(&self, progress: &BatchProgress) {
        {
            let guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
            let Some(bar) = guard.as_ref() else {
                return;
            };
            bar.inc(1);
            // The live loss and accuracy every 20 batches, from the first.
            if (progress.batch - 1).is_multiple_of(20) {
                bar.set_message(format!(
                    "loss {:.4} acc {:.2}%",
                    progress.mean_loss,
                    100.0 * progress.accuracy
                ));
            }
        }
        if progress.batch == progress.batches {
            self.clear_bar();
        }
    }

    fn epoch_finished(&self, metrics: &EpochMetrics) -> Result<(), String> {
        self.clear_bar();
        if self.show {
            println!("{}", console_line(metrics));
        }
        Ok(())
    }

    fn run_finished(&self, outcome: &RunOutcome) {
        self.clear_bar();
        if !self.show {
            return;
        }
        if let RunOutcome::Completed(report) | RunOutcome::EarlyStopped(report) = outcome {
            let s = &report.summary;
            println!(
                "test loss {:.4}, test accuracy {:.2}% ({}; {})",
                s.test_loss.unwrap_or(f64::NAN),
                100.0 * s.test_acc.unwrap_or(f64::NAN),
                s.status,
                report.folder.path().display()
            );
        }
    }

    fn warning(&self, message: &str) {
        eprintln!("warning: {message}");
    }

    fn downloads(&self) -> &dyn DownloadObserver {
        &self.downloads
    }
}

/// A study's output: an overall bar on stderr (a terminal only) and a line per finished
/// trial; warnings always.
pub struct StudyConsole {
    /// Whether to show the bar and the lines (`--quiet` shows neither).
    show: bool,
    bar: Mutex<Option<ProgressBar>>,
    downloads: DownloadBar,
}

impl StudyConsole {
    pub fn new(show: bool) -> Self {
        StudyConsole {
            show,
            bar: Mutex::new(None),
            downloads: DownloadBar::default(),
        }
    }

    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StudyObserver for StudyConsole {
    fn study_started(&self, total: usize, finished: usize) {
        if !self.show || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "study [{bar:30}] {pos}/{len} trials {msg} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_position(finished as u64);
        *self.bar() = Some(bar);
    }

    fn trial_epoch(&self, trial: &TrialRecord, epoch: usize, epochs: usize) {
        if let Some(bar) = self.bar().as_ref() {
            let number = trial.trial.number;
            bar.set_message(format!("trial {number}: epoch {epoch}/{epochs}"));
        }
    }

    fn trial_finished(&self, report: &TrialReport) {
        let bar = self.bar();
        if let Some(bar) = bar.as_ref() {
            bar.inc(1);
        }
        if !self.show {
            return;
        }
        match bar.as_ref() {
            Some(bar) => bar.println(report.line()),
            None => println!("{}", report.line()),
        }
    }

    fn warning(&self, message: &str) {
        eprintln!("warning: {message}");
    }

    fn layout_chosen(&self, choice: &LayoutChoice) {
        if self.show {
            println!("{}", choice.describe());
        }
    }

    fn study_finished(&self) {
        if let Some(bar) = self.bar().take() {
            bar.finish_and_clear();
        }
    }

    fn downloads(&self) -> &dyn DownloadObserver {
        &self.downloads
    }
}
