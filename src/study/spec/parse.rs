//! Parsing: the spec file's raw TOML types, and their conversion into a checked
//! [`StudySpec`] (every part that does not need a trial's whole settings).

use super::error::{Locator, StudySpecError};
use super::{Group, Method, PaperValue, Selection, StudySpec};
use crate::study::prune::PruneRule;
use crate::train::RunConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Reads spec `text` (`file` names it in errors) into a spec, with the place of every bad
/// value: a TOML error is located at the key it is about.
pub(super) fn read(text: &str, file: &Path) -> Result<StudySpec, StudySpecError> {
    let at = Locator { file, text };
    let raw: RawSpec = toml::from_str(text).map_err(|e| at.toml_error(&e))?;
    build(raw, &at)
}

/// An option table as written, each key and value with its place in the file.
type RawTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    seeds: Option<Spanned<RawSeeds>>,
    confirm_seeds: Option<Spanned<RawSeeds>>,
    #[serde(default)]
    select: Selection,
    prune: Option<Spanned<PruneRule>>,
    baseline: Option<Spanned<String>>,
    runs_dir: Option<PathBuf>,
    #[serde(default)]
    base: RawTable,
    #[serde(default)]
    group: Vec<RawGroup>,
    method: Option<Spanned<Vec<RawMethod>>>,
    #[serde(default)]
    paper: Vec<Spanned<PaperValue>>,
    #[serde(default)]
    notes: Vec<String>,
    max_trials: Option<Spanned<usize>>,
}

/// `seeds` and `confirm_seeds`: a count, or a list of seeds.
enum RawSeeds {
    Count(u64),
    List(Vec<u64>),
}

/// Reads a count or a list of non-negative integers, and says so when given anything else.
impl<'de> Deserialize<'de> for RawSeeds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seeds;
        impl<'de> serde::de::Visitor<'de> for Seeds {
            type Value = RawSeeds;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count of seeds (such as 3) or a list of seeds (such as [0, 1, 2])")
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<RawSeeds, E> {
                u64::try_from(n).map(RawSeeds::Count).map_err(|_| {
                    E::custom(format!(
                        "expected a count of seeds (such as 3) or a list of seeds, got {n}"
                    ))
                })
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<RawSeeds, E> {
                Ok(RawSeeds::Count(n))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawSeeds, A::Error> {
                let mut list = Vec::new();
                while let Some(value) = seq.next_element::<toml::Value>()? {
                    let seed = value.as_integer().and_then(|n| u64::try_from(n).ok());
                    let seed = seed.ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "expected a list of seeds, each an integer >= 0, got {value}"
                        ))
                    })?;
                    list.push(seed);
                }
                Ok(RawSeeds::List(list))
            }
        }
        deserializer.deserialize_any(Seeds)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    #[serde(default)]
    set: RawTable,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethod {
    name: Spanned<String>,
    #[serde(default)]
    set: RawTable,
    #[serde(default)]
    grid: RawTable,
    points: Option<Spanned<Vec<RawTable>>>,
    #[serde(default)]
    components: Vec<String>,
    point_from: Option<Spanned<String>>,
}

/// The options a trial may not take from a spec: the runner sets them per trial.
const RUNNER_OPTIONS: [&str; 3] = ["out", "seed", "threads"];

/// The most seeds a study may have: a typo such as `seeds = 10000000000` is caught before
/// it is expanded.
const MAX_SEEDS: u64 = 10_000;
/// The most trials a study may have unless its `max_trials` says more: a grid typed with a
/// zero too many would otherwise fill the store (a million trials take most of a gigabyte)
/// before anything runs.
const DEFAULT_MAX_TRIALS: usize = 10_000;
/// The most `max_trials` may allow, and the most grid points one method may expand to.
const MAX_TRIALS: usize = 1_000_000;

/// Converts the parsed file into a spec, checking every part that does not need a trial's
/// whole settings.
fn build(raw: RawSpec, at: &Locator) -> Result<StudySpec, StudySpecError> {
    let mut origins = BTreeMap::new();
    let name = check_name(&raw.name, "name", at)?;
    let seeds = check_seeds(raw.seeds.as_ref(), at)?;
    let confirm_seeds = check_confirm_seeds(raw.confirm_seeds.as_ref(), &seeds, at)?;
    let base = check_options(&raw.base, "base", at, &mut origins)?;
    let mut groups = Vec::new();
    for (g, group) in raw.group.iter().enumerate() {
        let field = format!("group[{g}]");
        origins.insert(field.clone(), at.position(group.name.span().start));
        let name = check_name(&group.name, &format!("{field}.name"), at)?;
        if groups.iter().any(|other: &Group| other.name == name) {
            return Err(at.error(
                Some(group.name.span()),
                format!("{field}.name"),
                format!("group `{name}` is defined twice"),
            ));
        }
        let set = check_options(&group.set, &format!("{field}.set"), at, &mut origins)?;
        groups.push(Group { name, set });
    }
    if groups.is_empty() {
        groups.push(Group {
            name: String::new(),
            set: toml::Table::new(),
        });
    }
    let Some(raw_methods) = &raw.method else {
        return Err(at.error(None, "method", "the study needs at least one [[method]]"));
    };
    let mut methods: Vec<Method> = Vec::new();
    for (m, method) in raw_methods.get_ref().iter().enumerate() {
        let built = check_method(method, m, at, &mut origins)?;
        if methods.iter().any(|other| other.name == built.name) {
            return Err(at.error(
                Some(method.name.span()),
                format!("method[{m}].name"),
                format!("method `{}` is defined twice", built.name),
            ));
        }
        methods.push(built);
    }
    if methods.is_empty() {
        return Err(at.error(
            Some(raw_methods.span()),
            "method",
            "the study needs at least one [[method]]",
        ));
    }
    let baseline = match &raw.baseline {
        Some(b) if methods.iter().any(|m| m.name == *b.get_ref()) => b.get_ref().clone(),
        Some(b) => {
            let names: Vec<&str> = methods.iter().map(|m| m.name.as_str()).collect();
            return Err(at.error(
                Some(b.span()),
                "baseline",
                format!(
                    "no method is called `{}` (methods: {})",
                    b.get_ref(),
                    names.join(", ")
                ),
            ));
        }
        None => methods[0].name.clone(),
    };
    check_point_sources(raw_methods.get_ref(), &methods, at)?;
    if let Some(rule) = &raw.prune {
        if let Some((field, problem)) = rule.get_ref().problem() {
            return Err(at.error(Some(rule.span()), format!("prune.{field}"), problem));
        }
    }
    check_paper(&raw.paper, &groups, &methods, at)?;
    let runs_dir = raw
        .runs_dir
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(&name));
    let spec = StudySpec {
        name,
        description: raw.description,
        seeds,
        confirm_seeds,
        select: raw.select,
        prune: raw.prune.map(Spanned::into_inner),
        baseline,
        runs_dir,
        base,
        groups,
        methods,
        paper: raw.paper.into_iter().map(Spanned::into_inner).collect(),
        notes: raw.notes,
        file: at.file.to_path_buf(),
        origins,
    };
    check_trial_count(spec.expected_trials(), raw.max_trials.as_ref(), at)?;
    Ok(spec)
}

/// Refuses a study of more trials than its limit: `max_trials`, else
/// [`DEFAULT_MAX_TRIALS`]; `max_trials` itself is at most [`MAX_TRIALS`].
fn check_trial_count(
    trials: usize,
    max_trials: Option<&Spanned<usize>>,
    at: &Locator,
) -> Result<(), StudySpecError> {
    if let Some(limit) = max_trials.filter(|m| *m.get_ref() > MAX_TRIALS) {
        let problem = format!("expected at most {MAX_TRIALS}, got {}", limit.get_ref());
        return Err(at.error(Some(limit.span()), "max_trials", problem));
    }
    let limit = max_trials.map_or(DEFAULT_MAX_TRIALS, |m| *m.get_ref());
    if trials <= limit {
        return Ok(());
    }
    let problem = if trials > MAX_TRIALS {
        format!("the study expands to {trials} trials, more than the most a study may have ({MAX_TRIALS})")
    } else {
        format!(
            "the study expands to {trials} trials, more than its limit of {limit}; if that \
             many is meant, raise the limit with `max_trials = {trials}` at the top of the spec"
        )
    };
    Err(at.error(max_trials.map(Spanned::span), "max_trials", problem))
}

/// A name used in folder names and reports, checked by [`crate::study::name::check_name`].
fn check_name(name: &Spanned<String>, field: &str, at: &Locator) -> Result<String, StudySpecError> {
    let value = name.get_ref();
    match crate::study::name::check_name(value) {
        Ok(()) => Ok(value.clone()),
        Err(err) => Err(at.error(Some(name.span()), field, err.to_string())),
    }
}

/// Confirmation seeds: a count `n` gives the `n` seeds after the largest search seed; a list
/// must not share a seed with the search (a seed that chose a point would confirm it).
fn check_confirm_seeds(
    confirm: Option<&Spanned<RawSeeds>>,
    seeds: &[u64],
    at: &Locator,
) -> Result<Vec<u64>, StudySpecError> {
    let Some(raw) = confirm else {
        return Ok(Vec::new());
    };
    let after = seeds.iter().max().map_or(0, |s| s.saturating_add(1));
    let list = seed_list(raw, "confirm_seeds", after, at)?;
    if let Some(shared) = list.iter().find(|s| seeds.contains(s)) {
        let problem = format!(
            "seed {shared} is also a search seed; confirmation seeds must be fresh, or the \
             seeds that chose a point would also confirm it"
        );
        return Err(at.error(Some(raw.span()), "confirm_seeds", problem));
    }
    Ok(list)
}

/// A `point_from` names another method of the study that has its own points.
fn check_point_sources(
    raw: &[RawMethod],
    methods: &[Method],
    at: &Locator,
) -> Result<(), StudySpecError> {
    for (m, method) in methods.iter().enumerate() {
        let (Some(source), Some(span)) = (&method.point_from, raw[m].point_from.as_ref()) else {
            continue;
        };
        let field = format!("method[{m}].point_from");
        let problem = match methods.iter().find(|other| &other.name == source) {
            None => format!("no method is called `{source}`"),
            Some(other) if other.name == method.name => "a method cannot take its own point".into(),
            Some(other) if other.point_from.is_some() => format!(
                "method `{source}` takes its point from another method itself; name that one"
            ),
            Some(_) => continue,
        };
        return Err(at.error(Some(span.span()), field, problem));
    }
    Ok(())
}

fn check_seeds(
    seeds: Option<&Spanned<RawSeeds>>,
    at: &Locator,
) -> Result<Vec<u64>, StudySpecError> {
    match seeds {
        Some(seeds) => seed_list(seeds, "seeds", 0, at),
        None => Ok(vec![0]),
    }
}

/// The seeds of `field`: a count `n` gives `first, first + 1, ...`, a list is taken as it
/// is; at least one seed, at most [`MAX_SEEDS`], none twice.
fn seed_list(
    raw: &Spanned<RawSeeds>,
    field: &str,
    first: u64,
    at: &Locator,
) -> Result<Vec<u64>, StudySpecError> {
    let list: Vec<u64> = match raw.get_ref() {
        RawSeeds::Count(n) if *n > MAX_SEEDS => {
            let problem = format!("expected at most {MAX_SEEDS} seeds, got {n}");
            return Err(at.error(Some(raw.span()), field, problem));
        }
        RawSeeds::Count(n) => (0..*n).map(|k| first.saturating_add(k)).collect(),
        RawSeeds::List(list) => list.clone(),
    };
    if list.is_empty() {
        let problem = "expected at least one seed (a count >= 1 or a list of seeds)";
        return Err(at.error(Some(raw.span()), field, problem));
    }
    let mut sorted = list.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != list.len() {
        return Err(at.error(Some(raw.span()), field, "a seed is listed twice"));
    }
    Ok(list)
}

/// Checks each option of a table on its own: a `regstudy train` option, of the right type,
/// not one the runner sets.
fn check_options(
    table: &RawTable,
    field: &str,
    at: &Locator,
    origins: &mut BTreeMap<String, (usize, usize)>,
) -> Result<toml::Table, StudySpecError> {
    let mut checked = toml::Table::new();
    for (key, value) in table {
        let path = format!("{field}.{}", key.get_ref());
        check_option(key, value.get_ref(), &path, at)?;
        origins.insert(path, at.position(key.span().start));
        checked.insert(key.get_ref().clone(), value.get_ref().clone());
    }
    Ok(checked)
}

fn check_option(
    key: &Spanned<String>,
    value: &toml::Value,
    path: &str,
    at: &Locator,
) -> Result<(), StudySpecError> {
    let name = key.get_ref();
    if RUNNER_OPTIONS.contains(&name.as_str()) {
        let why = if name == "threads" {
            "threads are divided among the workers by `study run --threads`"
        } else if name == "seed" {
            "seeds are given by the study's `seeds`"
        } else {
            "each trial gets its own run folder under `runs_dir`"
        };
        return Err(at.error(
            Some(key.span()),
            path,
            format!("`{name}` cannot be set in a study: {why}"),
        ));
    }
    if name == "precision" && !path.starts_with("base.") {
        return Err(at.error(
            Some(key.span()),
            path,
            "`precision` is set once for the whole study, in [base]: trials of different \
             arithmetic are never compared"
                .to_string(),
        ));
    }
    let mut one = toml::Table::new();
    one.insert(name.clone(), value.clone());
    toml::Value::Table(one)
        .try_into::<RunConfig>()
        .map(drop)
        .map_err(|e| at.error(Some(key.span()), path, e.message().trim().to_string()))
}

fn check_method(
    method: &RawMethod,
    m: usize,
    at: &Locator,
    origins: &mut BTreeMap<String, (usize, usize)>,
) -> Result<Method, StudySpecError> {
    let field = format!("method[{m}]");
    origins.insert(field.clone(), at.position(method.name.span().start));
    let name = check_name(&method.name, &format!("{field}.name"), at)?;
    let set = check_options(&method.set, &format!("{field}.set"), at, origins)?;
    if let (Some(from), false) = (
        &method.point_from,
        method.grid.is_empty() && method.points.is_none(),
    ) {
        return Err(at.error(
            Some(from.span()),
            format!("{field}.point_from"),
            "a method that takes another's point has no `grid` or `points` of its own",
        ));
    }
    let points = match (&method.points, method.grid.is_empty()) {
        (Some(points), false) => {
            return Err(at.error(
                Some(points.span()),
                format!("{field}.points"),
                "give either `grid` or `points`, not both",
            ));
        }
        (Some(points), true) => check_points(points, &field, at, origins)?,
        (None, _) => expand_grid(&method.grid, &field, at, origins)?,
    };
    Ok(Method {
        name,
        set,
        points,
        components: method.components.clone(),
        point_from: method.point_from.as_ref().map(|p| p.get_ref().clone()),
    })
}

fn check_points(
    points: &Spanned<Vec<RawTable>>,
    field: &str,
    at: &Locator,
    origins: &mut BTreeMap<String, (usize, usize)>,
) -> Result<Vec<toml::Table>, StudySpecError> {
    if points.get_ref().is_empty() {
        return Err(at.error(
            Some(points.span()),
            format!("{field}.points"),
            "expected at least one point",
        ));
    }
    points
        .get_ref()
        .iter()
        .enumerate()
        .map(|(p, point)| check_options(point, &format!("{field}.points[{p}]"), at, origins))
        .collect()
}

/// Every combination of the grid's values, the last key varying fastest.
fn expand_grid(
    grid: &RawTable,
    field: &str,
    at: &Locator,
    origins: &mut BTreeMap<String, (usize, usize)>,
) -> Result<Vec<toml::Table>, StudySpecError> {
    let count = grid.values().fold(1usize, |n, values| {
        n.saturating_mul(values.get_ref().as_array().map_or(1, Vec::len))
    });
    if count > MAX_TRIALS {
        let span = grid.values().next().map(Spanned::span);
        let problem = format!(
            "the grid has {count} points, more than the most a study may have ({MAX_TRIALS})"
        );
        return Err(at.error(span, format!("{field}.grid"), problem));
    }
    let mut points = vec![toml::Table::new()];
    for (key, values) in grid {
        let path = format!("{field}.grid.{}", key.get_ref());
        let toml::Value::Array(values_list) = values.get_ref() else {
            return Err(at.error(
                Some(values.span()),
                path,
                format!("expected a list of values, got {}", values.get_ref()),
            ));
        };
        if values_list.is_empty() {
            return Err(at.error(
                Some(values.span()),
                path,
                "the axis is empty: give at least one value",
            ));
        }
        for value in values_list {
            check_option(key, value, &path, at)?;
        }
        origins.insert(path, at.position(key.span().start));
        points = points
            .into_iter()
            .flat_map(|point| {
                values_list.iter().map(move |v| {
                    let mut next = point.clone();
                    next.insert(key.get_ref().clone(), v.clone());
                    next
                })
            })
            .collect();
    }
    Ok(points)
}

/// Paper values must name a method (and group) of the study.
fn check_paper(
    paper: &[Spanned<PaperValue>],
    groups: &[Group],
    methods: &[Method],
    at: &Locator,
) -> Result<(), StudySpecError> {
    for (i, entry) in paper.iter().enumerate() {
        let field = format!("paper[{i}]");
        let (value, span) = (entry.get_ref(), Some(entry.span()));
        if !methods.iter().any(|m| m.name == value.method) {
            return Err(at.error(
                span.clone(),
                format!("{field}.method"),
                format!("no method is called `{}`", value.method),
            ));
        }
        if let Some(group) = &value.group {
            if !groups.iter().any(|g| &g.name == group) {
                return Err(at.error(
                    span.clone(),
                    format!("{field}.group"),
                    format!("no group is called `{group}`"),
                ));
            }
        }
    }
    Ok(())
}
