//! What the report says, in order: the study's identity and notes, trial counts, how to
//! read it, then per group its tables and figures.

use super::analysis::{Analysis, Choice, GroupAnalysis, Pruning, Verdict, ALPHA};
use super::cost::{cost_sentence, thread_counts_sentence};
use super::document::Block;
use super::figures::group_figures;
use super::format::{p_value, pct_pm, signed};
use super::tables::{self, seeds_text, slug, CONCURRENT_MARK};
use super::StudyResults;
use crate::study::spec::{Selection, StudySpec};

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
    out.push(Block::Paragraph(seeds_paragraph(spec)));
    if !results.claims.is_empty() {
        out.push(Block::Paragraph(claims_paragraph()));
    }
    if let Some(pruning) = &analysis.pruning {
        out.push(Block::Paragraph(pruning_paragraph(pruning)));
    }
    out.push(Block::Paragraph(cost_sentence(&analysis.cost)));
    if let Some(text) = thread_counts_sentence(&analysis.cost) {
        out.push(Block::Paragraph(text));
    }
    if analysis.concurrent {
        out.push(Block::Paragraph(format!(
            "{CONCURRENT_MARK} Some trials ran at the same time as others, so their times \
             per epoch include the contention: the overheads are not reliable. Measure a \
             penalty's cost with `--workers 1` and nothing else running."
        )));
    }
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
    let confirm: Vec<String> = spec.confirm_seeds.iter().map(u64::to_string).collect();
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
        format!("Search seeds: {}", seeds.join(", ")),
        format!(
            "Confirmation seeds: {}",
            if confirm.is_empty() {
                "none (the search seeds also report)".to_string()
            } else {
                confirm.join(", ")
            }
        ),
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
        Selection::ValAcc => {
            "highest mean validation accuracy over seeds, of the weights that are tested"
        }
        Selection::ValLoss => {
            "lowest mean validation loss over seeds, of the weights that are tested"
        }
    }
}

/// Which seeds chose and which report, and what that means for the estimates.
fn seeds_paragraph(spec: &StudySpec) -> String {
    let searched = spec.methods.iter().any(|m| spec.searches(m));
    if !searched {
        format!(
            "No method searches a grid: each runs at one point on seeds {}, so no seed \
             chose what it reports.",
            seeds_text(if spec.confirms() {
                &spec.confirm_seeds
            } else {
                &spec.seeds
            })
        )
    } else if spec.confirms() {
        format!(
            "Grid points were searched on seeds {} and each chosen point, like every method \
             without a grid, was run again on the fresh seeds {}; the methods table, its \
             intervals and its tests use only those confirmation runs, so the choice does not \
             bias them.",
            seeds_text(&spec.seeds),
            seeds_text(&spec.confirm_seeds)
        )
    } else {
        format!(
            "The seeds that chose each grid point ({}) also report it: a point chosen as the \
             best of several looks better on those seeds than it is (the winner's curse), so \
             the estimates of searched methods are biased upward and their tests against the \
             baseline reject too often. Give the spec `confirm_seeds` to report chosen points \
             on fresh seeds.",
            seeds_text(&spec.seeds)
        )
    }
}

/// How the claims are judged.
fn claims_paragraph() -> String {
    format!(
        "Each of the paper's claims is judged by the reported runs alone (the confirmation \
         runs, where the study has them). A claim about a range holds when the 95% confidence \
         interval of its figure lies inside the range, does not hold when the interval lies \
         wholly outside it, and is open when it crosses a bound or when a reported run \
         diverged and the figure is not test accuracy (which alone counts such a run, at \
         chance). A claim that one method beats others holds when its test accuracy is above \
         each of theirs by a two-sided paired t-test by seed at p < {ALPHA} (an \
         intersection-union test: every comparison must reject, so no adjustment is needed), \
         does not hold when any of them is above it at Holm-adjusted p < {ALPHA} over the \
         claim's comparisons, and is open otherwise or when a method compared is at chance. \
         Each claim is a test of its own: the claims are not adjusted against each other, nor \
         against the methods table, whose tests against the baseline are adjusted over the \
         whole group, so a claim that one method beats the baseline can hold while the \
         methods table finds no significant difference. A claim that needs a method without \
         reported runs has no data yet; one that the numbers cannot decide says why."
    )
}

/// What the pruning rule is, what it stopped and what that saved.
fn pruning_paragraph(p: &Pruning) -> String {
    let share = if p.budget_epochs > 0 {
        100.0 * p.saved_epochs as f64 / p.budget_epochs as f64
    } else {
        0.0
    };
    let (at_most, bound) = if p.early_stopping {
        (
            "at most ",
            " Both counts take every trial to its last epoch; early stopping would have ended \
             some trials sooner, so this is an upper bound on what pruning saved.",
        )
    } else {
        ("", "")
    };
    format!(
        "Search trials were pruned by {}. It stopped {} of the {} search trials of methods \
         with a grid, which left {at_most}{} of the study's {} trial-epochs untrained \
         ({share:.1}%).{bound} A pruned trial is never a result: a point with one cannot be \
         chosen, so every chosen point was trained to the full budget on every search seed, \
         and confirmation runs are never pruned.",
        p.rule, p.pruned, p.prunable, p.saved_epochs, p.budget_epochs
    )
}

/// How to read the numbers.
fn reading(select: Selection) -> String {
    format!(
        "Each method's grid point (its tuned strength) is chosen on the validation split \
         only, by the {} (the last epoch's, or the restored epoch's under early stopping); \
         the best validation accuracy over epochs is shown only to compare with papers. A \
         point with a diverged, failed or pruned seed, or whose validation accuracy is at chance \
         (its mean below 1.2/classes: a network that calls every image the most frequent class \
         scores that class's share), cannot be chosen. The test set is \
         read only to report. Intervals are 95% confidence intervals over seeds: CI = mean ± \
         t(0.975, n-1)·s/√n, with s the sample standard deviation and n the number of seeds; \
         a reported run that diverged counts at chance accuracy. The verdict against the \
         baseline is a two-sided paired t-test on test accuracy, pairs matched by seed, with \
         Holm's adjustment over the group's comparisons so that the chance of any false \
         verdict in a group stays below α = {ALPHA}: better or worse when the adjusted p < \
         {ALPHA} (by the sign of the mean difference), no significant difference otherwise, \
         n/a with fewer than 2 pairs or differences that do not vary; a method whose test \
         accuracy is at chance in the same sense is flagged and not tested. Training accuracy (eval) \
         is the tested weights' accuracy in evaluation mode on a fixed subset of the \
         training images as large as the validation split, and the gap is it minus the \
         validation accuracy, in percentage points; training accuracy (running) is the \
         figure papers quote, averaged during the epoch with dropout, batch statistics and \
         augmentation active, and biased low. Sparsity is measured on the tested kernel \
         weights; overhead is the change in training seconds per epoch (validation and \
         statistics excluded) against the baseline.",
        selection_text(select)
    )
}

/// One sentence per searched method with points that could not be chosen: which, and why
/// (a strength that stops learning is a finding, said in words).
fn search_sentences(group: &GroupAnalysis) -> Vec<String> {
    group
        .methods
        .iter()
        .filter(|m| m.choice == Choice::Searched)
        .filter_map(|m| {
            // Points grouped by why they are out, in the order the reasons first appear.
            let mut by_reason: Vec<(String, Vec<&str>)> = Vec::new();
            for p in &m.points {
                let Some(why) = &p.score.excluded else {
                    continue;
                };
                let why = why.to_string();
                match by_reason.iter_mut().find(|(reason, _)| *reason == why) {
                    Some((_, labels)) => labels.push(&p.label),
                    None => by_reason.push((why, vec![&p.label])),
                }
            }
            if by_reason.is_empty() {
                return None;
            }
            let excluded: Vec<String> = by_reason
                .iter()
                .map(|(why, labels)| format!("{}: {why}", labels.join(", ")))
                .collect();
            let outcome = match m.chosen_point() {
                Some(p) => format!("chosen among the rest: {}", p.label),
                None => "no point is left to choose, so the method has no result".into(),
            };
            Some(format!(
                "{}'s search, not eligible: {}; {outcome}.",
                m.name,
                excluded.join("; ")
            ))
        })
        .collect()
}

/// One sentence per method: its verdict with the numbers it follows from.
fn verdict_sentences(group: &GroupAnalysis) -> Vec<String> {
    let baseline = group.baseline.map(|b| group.methods[b].name.as_str());
    group
        .methods
        .iter()
        .filter_map(|m| {
            let r = m.result.as_ref()?;
            let acc = pct_pm(r.test_acc);
            let text = match &m.verdict {
                Verdict::Baseline if r.at_chance => {
                    format!("baseline at {acc}% test accuracy: at chance")
                }
                Verdict::Baseline => format!("baseline at {acc}% test accuracy"),
                Verdict::AtChance => {
                    format!("{acc}% test accuracy: at chance, it learned nothing and is not ranked")
                }
                Verdict::Better {
                    p,
                    p_adjusted,
                    mean_diff,
                }
                | Verdict::Worse {
                    p,
                    p_adjusted,
                    mean_diff,
                }
                | Verdict::NoDifference {
                    p,
                    p_adjusted,
                    mean_diff,
                } => format!(
                    "{acc}%: {} {} ({} pp; paired t-test p = {}, Holm-adjusted p = {})",
                    match m.verdict {
                        Verdict::NoDifference { .. } => "no significant difference from",
                        Verdict::Better { .. } => "better than",
                        _ => "worse than",
                    },
                    baseline.unwrap_or("the baseline"),
                    signed(Some(100.0 * mean_diff), 2),
                    p_value(*p),
                    p_value(*p_adjusted)
                ),
                Verdict::NotAvailable(reason) => format!("{acc}%: not tested ({reason})"),
            };
            let diverged = if m.diverged > 0 {
                format!("; {} of {} runs diverged", m.diverged, m.trials)
            } else {
                String::new()
            };
            Some(format!("{}: {text}{diverged}.", m.name))
        })
        .collect()
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
    let mut sentences = search_sentences(group);
    sentences.extend(verdict_sentences(group));
    if !sentences.is_empty() {
        out.push(Block::List(sentences));
    }
    out.extend(tables::claims(group, &prefix).map(Block::Table));
    out.push(Block::Table(tables::methods(
        group,
        &prefix,
        analysis.concurrent,
    )));
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
