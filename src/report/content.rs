//! What the report says, in order: the study's identity and notes, trial counts, how to
//! read it, then per group its tables and figures.

use super::analysis::{Analysis, ALPHA};
use super::document::Block;
use super::figures::group_figures;
use super::tables::{self, slug};
use super::StudyResults;
use crate::study::spec::Selection;

/// The report's blocks.
pub fn blocks(results: &StudyResults, analysis: &Analysis) -> Vec<Block> {
    let spec = &results.spec;
    let mut out = vec![Block::Heading(1, format!("Study {}", spec.name))];
    if !spec.description.is_empty() {
        out.push(Block::Paragraph(spec.description.clone()));
    }
    if !spec.notes.is_empty() {
        out.push(Block::Heading(2, "Notes".into()));
        out.push(Block::List(spec.notes.clone()));
    }
    out.push(Block::Heading(2, "Study".into()));
    out.push(Block::List(identity(results)));
    out.push(Block::Table(tables::counts(analysis)));
    if let Some(t) = tables::problems(analysis) {
        out.push(Block::Table(t));
    }
    out.push(Block::Heading(2, "Reading this report".into()));
    out.push(Block::Paragraph(reading(spec.select)));
    for index in 0..analysis.groups.len() {
        out.extend(group_blocks(results, analysis, index));
    }
    out.push(Block::Heading(2, "Spec".into()));
    out.push(Block::Paragraph(
        "The study as stored; `regstudy study run` on this text repeats it.".into(),
    ));
    out.push(Block::Code(results.study.spec.clone()));
    out
}

/// Name, creation, version, seeds, selection and baseline.
fn identity(results: &StudyResults) -> Vec<String> {
    let (study, spec) = (&results.study, &results.spec);
    let seeds: Vec<String> = spec.seeds.iter().map(u64::to_string).collect();
    let groups: Vec<&str> = spec
        .groups
        .iter()
        .map(|g| g.name.as_str())
        .filter(|g| !g.is_empty())
        .collect();
    let mut items = vec![
        format!("Study name: {}", study.name),
        format!(
            "Created: {} by regstudy {}",
            utc(study.created_at),
            study.version
        ),
        format!("Seeds: {}", seeds.join(", ")),
        format!("Selection: {}", selection_text(spec.select)),
        format!("Baseline: {}", spec.baseline),
    ];
    if !groups.is_empty() {
        items.push(format!("Groups: {}", groups.join(", ")));
    }
    let shared: Vec<String> = spec
        .base
        .iter()
        .filter(|(key, _)| key.as_str() != "data_dir")
        .map(|(key, value)| format!("{key} = {value}"))
        .collect();
    if !shared.is_empty() {
        items.push(format!("Shared settings: {}", shared.join(", ")));
    }
    items
}

fn selection_text(select: Selection) -> &'static str {
    match select {
        Selection::ValAcc => "highest mean best validation accuracy over seeds",
        Selection::ValLoss => "lowest mean best validation loss over seeds",
    }
}

/// How to read the numbers.
fn reading(select: Selection) -> String {
    format!(
        "Each method's grid point (its tuned strength) is chosen on the validation split \
         only, by the {}; the test set is read only to report the chosen point. Intervals \
         are 95% confidence intervals over seeds: CI = mean ± t(0.975, n-1)·s/√n, with s the \
         sample standard deviation and n the number of seeds. The verdict against the \
         baseline is a two-sided paired t-test on test accuracy, pairs matched by seed, at \
         α = {ALPHA}: better or worse when p < {ALPHA} (by the sign of the mean difference), \
         no significant difference otherwise, n/a with fewer than 2 pairs or differences that \
         do not vary. Training and validation accuracy and the gap (training minus \
         validation, in percentage points) are at the final epoch; sparsity is measured on \
         the final kernel weights; overhead is the change in mean seconds per epoch against \
         the baseline.",
        selection_text(select)
    )
}

/// A group's heading, tables and figures.
fn group_blocks(results: &StudyResults, analysis: &Analysis, index: usize) -> Vec<Block> {
    let group = &analysis.groups[index];
    let prefix = slug(&group.name, index);
    let heading = if group.name.is_empty() {
        "Results".to_string()
    } else {
        format!("Group {}", group.name)
    };
    let mut out = vec![Block::Heading(2, heading)];
    if group.methods.iter().all(|m| m.result.is_none()) {
        out.push(Block::Paragraph(
            "No trial of this group has finished with results yet.".into(),
        ));
    }
    out.push(Block::Table(tables::methods(group, &prefix)));
    let sweep = tables::sweep(group, &prefix);
    let optional = [
        Some(sweep).filter(|t| !t.rows.is_empty()),
        tables::paper(group, &prefix),
        tables::combinations(group, &prefix),
        tables::ablation_table(group, &prefix),
    ];
    out.extend(optional.into_iter().flatten().map(Block::Table));
    let figures = group_figures(results, group, &prefix);
    if !figures.is_empty() {
        out.push(Block::Heading(3, "Figures".into()));
    }
    out.extend(figures.into_iter().map(|f| Block::Figure {
        title: f.title,
        name: f.name,
        svg: f.svg,
    }));
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian calendar; days to
/// civil date by Howard Hinnant's algorithm).
pub fn utc(unix: f64) -> String {
    if !unix.is_finite() {
        return "unknown".into();
    }
    let secs = unix.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_print_as_a_utc_date() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000.5), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
    }
}
