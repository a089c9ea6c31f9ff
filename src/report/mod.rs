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
pub mod content;
pub mod document;
pub mod figures;
pub mod format;
pub mod plot;
pub mod png;
pub use crate::stats;
pub mod table;
pub mod tables;

use crate::store::{Store, StoreError};
use crate::study::record::{StudyRecord, TrialRecord};
use crate::study::spec::StudySpec;
use crate::train::EpochMetrics;
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
    })
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot render the figure: {message}", path.display())]
    Render { path: PathBuf, message: String },
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

/// Writes the report of `results` into the folder `out` (created if needed), every file
/// atomically.
pub fn write_report(results: &StudyResults, out: &Path) -> Result<ReportFiles, ReportError> {
    let analysis = analysis::analyze(results);
    let blocks = content::blocks(results, &analysis);
    for dir in [out.to_path_buf(), out.join("tables"), out.join("figures")] {
        std::fs::create_dir_all(&dir).map_err(|source| ReportError::Io { path: dir, source })?;
    }
    let mut files = ReportFiles::default();
    for block in &blocks {
        match block {
            Block::Table(t) => {
                let dir = out.join("tables");
                files.tables.push(write(
                    &dir.join(format!("{}.csv", t.name)),
                    t.to_csv().as_bytes(),
                )?);
                files.tables.push(write(
                    &dir.join(format!("{}.json", t.name)),
                    t.to_json().as_bytes(),
                )?);
            }
            Block::Figure { name, svg, .. } => files.figures.extend(write_figure(out, name, svg)?),
            _ => {}
        }
    }
    let title = format!("Study {}", results.spec.name);
    files.markdown = write(
        &out.join("report.md"),
        document::to_markdown(&blocks).as_bytes(),
    )?;
    files.html = write(
        &out.join("report.html"),
        document::to_html(&title, &blocks).as_bytes(),
    )?;
    Ok(files)
}

/// The report's headline tables as Markdown, for the terminal: per group, the methods table
/// and, where the study has published numbers, the paper table.
pub fn console_summary(results: &StudyResults) -> String {
    let analysis = analysis::analyze(results);
    let mut text = String::new();
    for (index, group) in analysis.groups.iter().enumerate() {
        let prefix = tables::slug(&group.name, index);
        let methods = tables::methods(group, &prefix, analysis.concurrent);
        let mut shown = vec![methods.with_columns(&tables::BRIEF_METHOD_COLUMNS)];
        shown.extend(tables::paper(group, &prefix));
        for table in shown {
            text.push_str(&format!("\n### {}\n\n{}", table.title, table.to_markdown()));
        }
    }
    text
}

/// Writes a figure's SVG and its PNG rendering.
fn write_figure(out: &Path, name: &str, svg: &str) -> Result<[PathBuf; 2], ReportError> {
    let dir = out.join("figures");
    let svg_path = write(&dir.join(format!("{name}.svg")), svg.as_bytes())?;
    let png_path = dir.join(format!("{name}.png"));
    let bytes = png::render(svg).map_err(|message| ReportError::Render {
        path: png_path.clone(),
        message,
    })?;
    Ok([svg_path, write(&png_path, &bytes)?])
}

/// [`crate::fsio::write_atomic`], naming the file on failure.
fn write(path: &Path, bytes: &[u8]) -> Result<PathBuf, ReportError> {
    crate::fsio::write_atomic(path, bytes).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod verdict_tests;
