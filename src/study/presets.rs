//! The source studies as ready-made specs (`regstudy reproduce NAME`), with the papers'
//! published numbers. Each preset is a spec file in `presets/` plus a `[quick]` table saying
//! how `--quick` shrinks it: `seeds` and `confirm_seeds` (0 removes them), options merged
//! into `base`, options merged into named groups (`groups.NAME`), `axis_values`, the number
//! of values kept on each grid axis and point list, and a `description` and `note` saying
//! what the quick form runs.

use crate::study::prune::PruneRule;
use crate::study::spec::{read_claims, PaperClaim, StudySpec, StudySpecError};
use std::path::PathBuf;

/// The presets: name and spec text.
pub const PRESETS: [(&str, &str); 3] = [
    ("deepa2025", include_str!("../../presets/deepa2025.toml")),
    (
        "l2-dropout-bn",
        include_str!("../../presets/l2-dropout-bn.toml"),
    ),
    ("levy", include_str!("../../presets/levy.toml")),
];

/// The source papers' claims, with their tests (see [`crate::study::spec::PaperClaim`]): preset
/// name and claims file text. Kept apart from the spec, so that a claim can be added or
/// reworded without changing a study that has already run.
pub const PRESET_CLAIMS: [(&str, &str); 3] = [
    (
        "deepa2025",
        include_str!("../../presets/deepa2025.claims.toml"),
    ),
    (
        "l2-dropout-bn",
        include_str!("../../presets/l2-dropout-bn.claims.toml"),
    ),
    ("levy", include_str!("../../presets/levy.claims.toml")),
];

/// The claims of preset `name`, checked against `spec` (the preset's study, in any of its
/// forms: quick, pruned, with another data set); none for a preset without claims.
pub fn preset_claims(name: &str, spec: &StudySpec) -> Result<Vec<PaperClaim>, StudySpecError> {
    match claims_text(name) {
        Some(text) => read_claims(text, &PathBuf::from(format!("preset:{name}.claims")), spec),
        None => Ok(Vec::new()),
    }
}

/// The claims file of preset `name`, if it has one.
pub fn claims_text(name: &str) -> Option<&'static str> {
    PRESET_CLAIMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// How a preset is adapted to this run.
#[derive(Clone, Debug, Default)]
pub struct PresetOptions {
    /// The reduced version (suffix `-quick` on the study name).
    pub quick: bool,
    /// Another copy of a data set: `SPEC` when the study uses one data set, else
    /// `NAME=SPEC` for the one to replace (e.g. `cifar10=folder:cifar-10-jpeg.tar.gz`).
    pub dataset: Option<String>,
    /// Where trials keep their run folders (default `runs/<study name>`).
    pub runs_dir: Option<PathBuf>,
    /// A pruning rule for the grid searches (suffix `-pruned` on the study name, so that
    /// the study run both ways can share a store).
    pub prune: Option<PruneRule>,
}

/// The spec text of preset `name` adapted by `options`, and the checked spec.
pub fn preset(name: &str, options: &PresetOptions) -> Result<(String, StudySpec), StudySpecError> {
    let file = PathBuf::from(format!("preset:{name}"));
    let bad = |field: &str, problem: String| StudySpecError {
        file: file.clone(),
        position: None,
        field: field.into(),
        problem,
    };
    let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        return Err(bad(
            "name",
            format!("no preset `{name}` (presets: {})", names.join(", ")),
        ));
    };
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| bad("(preset)", e.to_string()))?;
    let quick = table.remove("quick");
    if options.quick {
        if let Some(toml::Value::Table(quick)) = quick {
            apply_quick(&mut table, quick);
        }
    }
    if let Some(rule) = options.prune {
        let value = toml::Value::try_from(rule).map_err(|e| bad("--prune", e.to_string()))?;
        table.insert("prune".into(), value);
        if let Some(toml::Value::String(name)) = table.get_mut("name") {
            name.push_str("-pruned");
        }
    }
    if let Some(dataset) = &options.dataset {
        swap_dataset(&mut table, dataset).map_err(|problem| bad("--dataset", problem))?;
    }
    if let Some(dir) = &options.runs_dir {
        table.insert(
            "runs_dir".into(),
            toml::Value::String(dir.display().to_string()),
        );
    }
    let text = toml::to_string(&table).map_err(|e| bad("(preset)", e.to_string()))?;
    let spec = StudySpec::parse(&text, &file)?;
    Ok((text, spec))
}

fn base(table: &mut toml::Table) -> &mut toml::Table {
    let entry = table
        .entry("base")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = toml::Value::Table(toml::Table::new());
    }
    entry.as_table_mut().expect("made a table above")
}

/// Applies the preset's `[quick]` table and renames the study `<name>-quick`.
fn apply_quick(table: &mut toml::Table, quick: toml::Table) {
    if let Some(toml::Value::String(name)) = table.get_mut("name") {
        name.push_str("-quick");
    }
    for key in ["seeds", "confirm_seeds"] {
        match quick.get(key) {
            // `confirm_seeds = 0`: the quick form reports on its search seeds.
            Some(toml::Value::Integer(0)) => {
                table.remove(key);
            }
            Some(value) => {
                table.insert(key.into(), value.clone());
            }
            None => {}
        }
    }
    if let Some(toml::Value::Table(overlay)) = quick.get("base") {
        base(table).extend(overlay.clone());
    }
    if let Some(toml::Value::Table(overlays)) = quick.get("groups") {
        for group in groups_mut(table) {
            let name = group.get("name").and_then(|n| n.as_str()).unwrap_or("");
            if let Some(toml::Value::Table(overlay)) = overlays.get(name) {
                let set = group
                    .entry("set")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let Some(set) = set.as_table_mut() {
                    set.extend(overlay.clone());
                }
            }
        }
    }
    if let Some(keep) = quick.get("axis_values").and_then(|v| v.as_integer()) {
        truncate_axes(table, keep.max(1) as usize);
    }
    if let Some(description) = quick.get("description") {
        table.insert("description".into(), description.clone());
    }
    let note = "Quick version: fewer images, epochs and seeds than the full study; for a first look, not for conclusions.";
    let notes = table
        .entry("notes")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    if let Some(notes) = notes.as_array_mut() {
        notes.insert(0, toml::Value::String(note.into()));
        if let Some(what) = quick.get("note") {
            notes.insert(1, what.clone());
        }
    }
}

fn groups_mut(table: &mut toml::Table) -> impl Iterator<Item = &mut toml::Table> {
    table
        .get_mut("group")
        .and_then(|g| g.as_array_mut())
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_table_mut())
}

/// Keeps the first `keep` values of every method's grid axes and listed points.
fn truncate_axes(table: &mut toml::Table, keep: usize) {
    let methods = table.get_mut("method").and_then(|m| m.as_array_mut());
    for method in methods.into_iter().flatten() {
        if let Some(points) = method.get_mut("points").and_then(|p| p.as_array_mut()) {
            points.truncate(keep);
        }
        let grid = method.get_mut("grid").and_then(|g| g.as_table_mut());
        for (_, axis) in grid.into_iter().flat_map(|g| g.iter_mut()) {
            if let Some(values) = axis.as_array_mut() {
                values.truncate(keep);
            }
        }
    }
}

/// Replaces a data set: in `base` and in every group that names it.
fn swap_dataset(table: &mut toml::Table, given: &str) -> Result<(), String> {
    let mut used: Vec<String> = Vec::new();
    let base_dataset = table
        .get("base")
        .and_then(|b| b.get("dataset"))
        .and_then(|d| d.as_str())
        .map(String::from);
    used.extend(base_dataset);
    for group in groups_mut(table) {
        let dataset = group
            .get("set")
            .and_then(|s| s.get("dataset"))
            .and_then(|d| d.as_str());
        if let Some(d) = dataset {
            if !used.iter().any(|u| u == d) {
                used.push(d.to_string());
            }
        }
    }
    let (target, replacement) = match given.split_once('=') {
        Some((name, spec)) if !name.contains(':') => (name.to_string(), spec.to_string()),
        _ if used.len() == 1 => (used[0].clone(), given.to_string()),
        _ => {
            return Err(format!(
                "the study uses several data sets ({}); say which to replace: NAME=SPEC",
                used.join(", ")
            ))
        }
    };
    if !used.contains(&target) {
        return Err(format!(
            "the study does not use `{target}` (it uses {})",
            used.join(", ")
        ));
    }
    let replace = |t: &mut toml::Table| {
        if t.get("dataset").and_then(|d| d.as_str()) == Some(target.as_str()) {
            t.insert("dataset".into(), toml::Value::String(replacement.clone()));
        }
    };
    replace(base(table));
    for group in groups_mut(table) {
        if let Some(set) = group.get_mut("set").and_then(|s| s.as_table_mut()) {
            replace(set);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_in_full_and_quick_form() {
        for (name, _) in PRESETS {
            for quick in [false, true] {
                let options = PresetOptions {
                    quick,
                    ..PresetOptions::default()
                };
                let (_, spec) = preset(name, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
                let suffix = if quick { "-quick" } else { "" };
                assert_eq!(spec.name, format!("{name}{suffix}"));
                assert!(!spec.paper.is_empty(), "{name} has the paper's numbers");
            }
        }
    }

    #[test]
    fn every_presets_claims_name_methods_of_its_study_in_every_form() {
        for (name, _) in PRESET_CLAIMS {
            for (quick, prune) in [
                (false, None),
                (true, None),
                (false, Some("asha".parse().unwrap())),
            ] {
                let options = PresetOptions {
                    quick,
                    prune,
                    ..PresetOptions::default()
                };
                let (_, spec) = preset(name, &options).unwrap();
                let claims = preset_claims(name, &spec).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(claims.len() >= 4, "{name}: {} claims", claims.len());
            }
        }
    }

    #[test]
    fn a_pruned_preset_is_its_own_study_with_the_rule_in_its_spec() {
        let rule: PruneRule = "asha:min_epochs=2,reduction=3".parse().unwrap();
        let options = PresetOptions {
            prune: Some(rule),
            ..PresetOptions::default()
        };
        let (text, spec) = preset("deepa2025", &options).unwrap();
        assert_eq!(spec.name, "deepa2025-pruned");
        assert_eq!(spec.prune, Some(rule));
        assert_eq!(spec.runs_dir, PathBuf::from("runs/deepa2025-pruned"));
        let reread = StudySpec::parse_unchecked(&text, std::path::Path::new("stored")).unwrap();
        assert_eq!(reread.prune, Some(rule), "the stored spec keeps the rule");
        assert_eq!(rule.rungs(20), [2, 6, 18]);
        for (bad, says) in [
            ("hyperband", "unknown pruning rule `hyperband`"),
            ("asha:grace=2", "unknown setting `grace`"),
            ("asha:reduction=1", "reduction: expected 2 or more"),
            ("asha:min_epochs=two", "min_epochs: expected a whole number"),
        ] {
            let e = bad.parse::<PruneRule>().unwrap_err();
            assert!(e.starts_with(says), "{bad}: {e}");
        }
    }

    #[test]
    fn quick_deepa2025_shrinks_seeds_epochs_and_images() {
        let options = PresetOptions {
            quick: true,
            ..PresetOptions::default()
        };
        let (_, spec) = preset("deepa2025", &options).unwrap();
        let trials = spec.trials();
        // One point per method (the first of each grid and point list), two seeds, nothing
        // searched and so nothing confirmed.
        assert_eq!(trials.len(), 4 * 2);
        assert!(spec.confirm_seeds.is_empty() && !spec.has_later_trials());
        let l1l2 = trials.iter().find(|t| t.method == "l1l2").unwrap();
        assert_eq!((l1l2.config.l1, l1l2.config.l2), (Some(1e-5), Some(1e-4)));
        assert!(trials.iter().all(|t| t.config.epochs == 2
            && t.config.train_subset == Some(40_000)
            && t.config.init == crate::nn::Init::Keras));
    }

    #[test]
    fn full_presets_confirm_on_fresh_seeds_and_l2_combinations_take_the_searched_strength() {
        let (_, deepa) = preset("deepa2025", &PresetOptions::default()).unwrap();
        assert_eq!(
            (deepa.seeds.clone(), deepa.confirm_seeds.clone()),
            (vec![0, 1, 2], vec![3, 4, 5])
        );
        let (_, bn) = preset("l2-dropout-bn", &PresetOptions::default()).unwrap();
        let l2 = bn.method("l2").unwrap();
        let strengths: Vec<String> = l2
            .points
            .iter()
            .map(|p| p["weight_decay"].to_string())
            .collect();
        assert_eq!(strengths, ["0.0001", "0.001", "0.01", "0.1", "1.0", "10.0"]);
        for name in ["l2+dropout", "l2+bn", "l2+dropout+bn"] {
            assert_eq!(
                bn.method(name).unwrap().point_from.as_deref(),
                Some("l2"),
                "{name}"
            );
        }
        // The objective's lambda/2 * ||theta||^2 is coupled weight decay on every parameter,
        // not a Keras kernel penalty.
        assert!(bn
            .trials()
            .iter()
            .all(|t| t.config.penalty.is_none() && t.config.l2.is_none()));
    }

    #[test]
    fn quick_levy_overrides_the_resnet_groups_own_epochs() {
        let options = PresetOptions {
            quick: true,
            ..PresetOptions::default()
        };
        let (_, spec) = preset("levy", &options).unwrap();
        let epochs = |group: &str| {
            spec.trials()
                .iter()
                .find(|t| t.group == group)
                .map(|t| t.config.epochs)
        };
        assert_eq!(epochs("resnet18"), Some(1));
        assert_eq!(epochs("levy-new"), Some(2));
    }

    #[test]
    fn a_dataset_swap_must_name_its_target_when_the_study_uses_several() {
        let swap = |dataset: &str| {
            preset(
                "l2-dropout-bn",
                &PresetOptions {
                    dataset: Some(dataset.into()),
                    ..PresetOptions::default()
                },
            )
        };
        let err = swap("folder:cifar.tar.gz").unwrap_err();
        assert!(err.problem.contains("NAME=SPEC"), "{err}");
        let (_, spec) = swap("cifar10=folder:cifar.tar.gz").unwrap();
        let datasets: Vec<String> = spec.datasets().into_iter().map(|d| d.dataset).collect();
        assert_eq!(datasets, ["mnist", "fashion-mnist", "folder:cifar.tar.gz"]);
    }
}
