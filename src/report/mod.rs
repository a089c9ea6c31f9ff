//! Reports of studies: what holds, with confidence intervals and paired tests, beside the
//! source papers' published numbers.
//!
//! [`load`] reads a study's trials and epochs from a [`Store`]; [`write_report`] writes
//!
//! | file | content |
//! |---|---|
//! | `report.md` | the report, linking its tables and figures |
//! | `report.html` | the same, self-contained: inline CSS and inline SVG figures |
//! | `tables/<name>.csv`, `tables/<name>.json` | every table (RFC 4180 CSV; JSON rows) |
//! | `figures/<name>.svg`, `figures/<name>.png` | every figure (PNG at twice the size) |
//!
//! The pipeline is pure until the last step: [`analysis`] turns trials into numbers
//! ([`stats`] holds the statistics), [`tables`] and [`figures`] turn numbers into
//! [`table::Table`]s and SVG ([`plot`]), [`content`] orders them into [`document`] blocks,
//! and only [`write_report`] touches the disk. The output depends only on the results
//! (sorted orders, no clock), so the same study always gives the same bytes.

pub mod analysis;
pub mod claims;
pub mod content;
pub mod cost;
pub mod document;
pub mod figures;
pub mod format;
pub mod plot;
pub mod png;
pub use crate::stats;
pub mod table;
pub mod tables;

use crate::store::{Store, StoreError};
use crate::study::spec::{PaperClaim, StudySpec};
use crate::train::EpochMetrics;
use crate::trial::{StudyRecord, TrialRecord};
use document::Block;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A study's stored results with its parsed spec.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyResults {
    pub study: StudyRecord,
    pub spec: StudySpec,
    /// Every trial, any state.
    pub trials: Vec<TrialRecord>,
    /// The recorded epochs of each trial, by trial id.
    pub epochs: BTreeMap<i64, Vec<EpochMetrics>>,
    /// The source paper's claims to judge (none unless given with [`StudyResults::with_claims`]).
    pub claims: Vec<PaperClaim>,
}

impl StudyResults {
    /// The same results, with `claims` to judge in the report.
    pub fn with_claims(self, claims: Vec<PaperClaim>) -> Self {
        Self { claims, ..self }
    }

    /// The epochs `trial` did not train: its last epoch less those on record. For a pruned
    /// trial, what pruning saved (at most, when trials stop early).
    pub fn untrained_epochs(&self, trial: &TrialRecord) -> usize {
        let ran = self.epochs.get(&trial.id).map_or(0, Vec::len);
        trial.trial.config.epochs.saturating_sub(ran)
    }

    /// Whether some trial stops early (its config has a patience), so that a pruned trial
    /// might have ended before its last epoch and what pruning saved is an upper bound.
    pub fn trials_may_stop_early(&self) -> bool {
        self.trials
            .iter()
            .any(|t| t.trial.config.patience.is_some())
    }
}

/// Reads the study called `study` from `store`, with its trials and their epochs. The
/// caller parses the spec (`spec`), usually from `StudyRecord::spec`.
pub fn load(store: &dyn Store, study: &str, spec: StudySpec) -> Result<StudyResults, StoreError> {
    let record = store.study(study)?;
    let trials = store.trials(study)?;
    let mut epochs = BTreeMap::new();
    for t in &trials {
        epochs.insert(t.id, store.epochs(t.id)?);
    }
    Ok(StudyResults {
        study: record,
        spec,
        trials,
        epochs,
        claims: Vec::new(),
    })
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The cause is part of the message, not a source, so it is shown once.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}: cannot render the figure: {message}", path.display())]
    Render { path: PathBuf, message: String },
    #[error(
        "{}: holds `{entry}`, which is not part of a report; the report replaces its whole \
         folder, so give an empty folder, a new one, or an earlier report's",
        path.display()
    )]
    NotAReport { path: PathBuf, entry: String },
}

/// The files a report wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub html: PathBuf,
    /// CSV and JSON of each table, in report order.
    pub tables: Vec<PathBuf>,
    /// SVG and PNG of each figure, in report order.
    pub figures: Vec<PathBuf>,
}

/// What a report folder holds (and what an earlier version, which wrote each file in
/// place, could leave: its temporary files `.NAME.PID.tmp`).
fn belongs_to_a_report(name: &str) -> bool {
    matches!(name, "report.md" | "report.html" | "tables" | "figures")
        || (name.starts_with('.') && name.ends_with(".tmp"))
}

/// Refuses an `out` that exists and holds anything but a report: writing the report
/// replaces the whole folder.
fn check_replaceable(out: &Path, extra: &[ExtraFile]) -> Result<(), ReportError> {
    let io = |cause| ReportError::Io {
        path: out.to_path_buf(),
        cause,
    };
    let entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let name = entry
            .map_err(io)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !belongs_to_a_report(&name) && !extra.iter().any(|(n, _)| *n == name) {
            return Err(ReportError::NotAReport {
                path: out.to_path_buf(),
                entry: name,
            });
        }
    }
    Ok(())
}

/// Writes the report of `results` as the folder `out` (its parents created if needed).
/// The report is written whole into a new folder beside `out`, then swapped in at once
/// (see [`crate::fsio::StagedDir`]): `out` holds either the previous report or the new one,
/// never a mix, even if the process is killed or the disk fills; temporaries are removed on
/// error, and those of a killed run by the next one.
pub fn write_report(results: &StudyResults, out: &Path) -> Result<ReportFiles, ReportError> {
    write_report_with(results, out, &[])
}

/// A file written into the report folder besides the report: its name and bytes.
pub type ExtraFile<'a> = (&'a str, &'a [u8]);

/// [`write_report`], with `extra` files in the folder as well (a reproduced study's spec).
pub fn write_report_with(
    results: &StudyResults,
    out: &Path,
    extra: &[ExtraFile],
) -> Result<ReportFiles, ReportError> {
    check_replaceable(out, extra)?;
    let io = |cause| ReportError::Io {
        path: out.to_path_buf(),
        cause,
    };
    let staged = crate::fsio::StagedDir::new(out).map_err(io)?;
    let folder = Folder {
        written: staged.path(),
        named: out,
    };
    let files = write_files(results, &folder)?;
    for (name, bytes) in extra {
        folder.put(name, bytes)?;
    }
    staged.commit().map_err(io)?;
    Ok(files)
}

/// Where report files are written (`written`) and the paths they will have (`named`).
struct Folder<'a> {
    written: &'a Path,
    named: &'a Path,
}

impl Folder<'_> {
    /// Writes the file `relative` and returns its final path.
    fn put(&self, relative: &str, bytes: &[u8]) -> Result<PathBuf, ReportError> {
        let path = self.written.join(relative);
        std::fs::write(&path, bytes).map_err(|cause| ReportError::Io {
            path: path.clone(),
            cause,
        })?;
        Ok(self.named.join(relative))
    }
}

/// Writes every file of the report into `folder`.
fn write_files(results: &StudyResults, folder: &Folder) -> Result<ReportFiles, ReportError> {
    let analysis = analysis::analyze(results);
    let blocks = content::blocks(results, &analysis);
    for sub in ["tables", "figures"] {
        let dir = folder.written.join(sub);
        std::fs::create_dir_all(&dir).map_err(|cause| ReportError::Io { path: dir, cause })?;
    }
    let mut files = ReportFiles::default();
    for block in &blocks {
        match block {
            Block::Table(t) => {
                let csv = folder.put(&format!("tables/{}.csv", t.name), t.to_csv().as_bytes())?;
                let json =
                    folder.put(&format!("tables/{}.json", t.name), t.to_json().as_bytes())?;
                files.tables.extend([csv, json]);
            }
            Block::Figure { name, svg, .. } => {
                files.figures.extend(write_figure(folder, name, svg)?);
            }
            _ => {}
        }
    }
    let title = format!("Study {}", results.spec.name);
    files.markdown = folder.put("report.md", document::to_markdown(&blocks).as_bytes())?;
    files.html = folder.put("report.html", document::to_html(&title, &blocks).as_bytes())?;
    Ok(files)
}

/// The report's headline tables as Markdown, for the terminal: per group, the methods table
/// and, where the study has them, the paper table and the claims.
pub fn console_summary(results: &StudyResults) -> String {
    let analysis = analysis::analyze(results);
    let mut text = String::new();
    for (index, group) in analysis.groups.iter().enumerate() {
        let prefix = tables::slug(&group.name, index);
        let methods = tables::methods(group, &prefix, analysis.concurrent);
        let mut shown = vec![methods.with_columns(&tables::BRIEF_METHOD_COLUMNS)];
        shown.extend(tables::paper(group, &prefix));
        shown.extend(
            tables::claims(group, &prefix).map(|t| t.with_columns(&tables::BRIEF_CLAIM_COLUMNS)),
        );
        for table in shown {
            text.push_str(&format!("\n### {}\n\n{}", table.title, table.to_markdown()));
        }
    }
    text.push_str(&format!("\n{}\n", cost::cost_sentence(&analysis.cost)));
    text
}

/// Writes a figure's SVG and its PNG rendering.
fn write_figure(folder: &Folder, name: &str, svg: &str) -> Result<[PathBuf; 2], ReportError> {
    let svg_path = folder.put(&format!("figures/{name}.svg"), svg.as_bytes())?;
    let png_name = format!("figures/{name}.png");
    let bytes = png::render(svg).map_err(|message| ReportError::Render {
        path: folder.named.join(&png_name),
        message,
    })?;
    Ok([svg_path, folder.put(&png_name, &bytes)?])
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod verdict_tests;
