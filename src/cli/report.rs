//! `regstudy report`, `regstudy reproduce` and `regstudy export`: what a study found, the
//! source studies rerun, and results for other tools.

use super::study::{failed_trials_error, print_run_end, stopped_by_signal, StoreArgs, WorkerArgs};
use super::CommandResult;
use clap::{Args, ValueEnum};
use regstudy::report::{console_summary, load, write_report_with, ExtraFile};
use regstudy::store::{self, Store};
use regstudy::study::name::StudyName;
use regstudy::study::presets::{
    claims_text, preset, preset_claims, PresetOptions, PRESETS, PRESET_CLAIMS,
};
use regstudy::study::prune::PruneRule;
use regstudy::study::runner::{run_study, StudyRunOptions};
use regstudy::study::spec::{read_claims, PaperClaim, StudySpec, StudySpecError};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The study to report on.
    #[arg(value_name = "NAME")]
    study: StudyName,
    #[command(flatten)]
    store: StoreArgs,
    /// Folder for report.md, report.html, tables/ and figures/ [default: reports/<study>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The paper's claims to judge: a claims file (`[[claim]]` tables, each with a `range`,
    /// `beats` or `untested` test), or `preset:NAME` for a source study's own claims
    /// (deepa2025, l2-dropout-bn, levy).
    #[arg(long, value_name = "FILE|preset:NAME")]
    claims: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// The source study: deepa2025 (CIFAR-10, L1/L2/elastic net), l2-dropout-bn (MNIST,
    /// Fashion-MNIST, CIFAR-10) or levy (Tiny-ImageNet).
    #[arg(value_parser = preset_names())]
    name: String,
    /// A reduced version (a few thousand images, few epochs, two seeds) that runs in
    /// minutes, for a first look.
    #[arg(long)]
    quick: bool,
    /// Another copy of the data: SPEC (e.g. folder:cifar-10-jpeg.tar.gz), or NAME=SPEC when
    /// the study uses several data sets.
    #[arg(long, value_name = "SPEC")]
    dataset: Option<String>,
    /// Stop clearly worse grid points early by asynchronous successive halving: `asha`, or
    /// `asha:min_epochs=R,reduction=E` (defaults 1 and 4). The study is named
    /// `<preset>-pruned`, so it shares a store with the unpruned run.
    #[arg(long, value_name = "RULE")]
    prune: Option<PruneRule>,
    /// Folder of the report [default: reports/<study>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    pub(super) workers: WorkerArgs,
}

fn preset_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(PRESETS.map(|(name, _)| name))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// TensorBoard event files, one run per trial.
    Tensorboard,
    /// trials.csv and epochs.csv.
    Csv,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The study to export.
    #[arg(value_name = "NAME")]
    study: StudyName,
    #[command(flatten)]
    store: StoreArgs,
    /// The format of the files written.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn report(args: ReportArgs) -> CommandResult {
    let store = store::open_existing(&args.store.store)?;
    let out = args
        .out
        .unwrap_or_else(|| Path::new("reports").join(&args.study));
    let claims = match &args.claims {
        Some(source) => ClaimsSource::parse(source)?,
        None => ClaimsSource::None,
    };
    write_and_show(store.as_ref(), args.study.as_str(), &out, &claims, &[])?;
    if let (None, Some(preset)) = (&args.claims, preset_of(args.study.as_str())) {
        println!("(add --claims preset:{preset} to judge the paper's claims)");
    }
    Ok(())
}

/// The preset with claims that a study of this name was made from by `reproduce`
/// (`deepa2025`, `deepa2025-quick`, `deepa2025-pruned`, `deepa2025-quick-pruned`).
fn preset_of(study: &str) -> Option<&'static str> {
    let base = study.strip_suffix("-pruned").unwrap_or(study);
    let base = base.strip_suffix("-quick").unwrap_or(base);
    PRESET_CLAIMS
        .iter()
        .map(|(name, _)| *name)
        .find(|name| *name == base)
}

/// Where the paper's claims judged in a report come from.
enum ClaimsSource {
    None,
    /// A source study's own (`preset:NAME`).
    Preset(String),
    /// A claims file, with its text.
    File(PathBuf, String),
}

impl ClaimsSource {
    /// `preset:NAME` or a file's path (read now, so that a missing file fails before the
    /// report is made).
    fn parse(source: &str) -> Result<ClaimsSource, String> {
        if let Some(name) = source.strip_prefix("preset:") {
            if claims_text(name).is_none() {
                let names: Vec<&str> = PRESET_CLAIMS.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "--claims: no preset `{name}` has claims (presets with claims: {})",
                    names.join(", ")
                ));
            }
            return Ok(ClaimsSource::Preset(name.to_string()));
        }
        let path = PathBuf::from(source);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: cannot read the claims: {e}", path.display()))?;
        Ok(ClaimsSource::File(path, text))
    }

    /// The claims, checked against the study's `spec`.
    fn read(&self, spec: &StudySpec) -> Result<Vec<PaperClaim>, StudySpecError> {
        match self {
            ClaimsSource::None => Ok(Vec::new()),
            ClaimsSource::Preset(name) => preset_claims(name, spec),
            ClaimsSource::File(path, text) => read_claims(text, path, spec),
        }
    }
}

/// Writes the report of `study` (with `extra` files in its folder), judging `claims`, and
/// prints its summary tables.
fn write_and_show(
    store: &dyn Store,
    study: &str,
    out: &Path,
    claims: &ClaimsSource,
    extra: &[ExtraFile],
) -> CommandResult {
    let record = store.study(study)?;
    let origin = PathBuf::from(format!("store:{study}"));
    let spec = StudySpec::parse_unchecked(&record.spec, &origin)?;
    let claims = claims.read(&spec)?;
    let results = load(store, study, spec)?.with_claims(claims);
    let files = write_report_with(&results, out, extra)?;
    print!("{}", console_summary(&results));
    println!();
    println!("report: {}", files.markdown.display());
    println!("        {}", files.html.display());
    Ok(())
}

pub fn reproduce(args: ReproduceArgs) -> CommandResult {
    let options = PresetOptions {
        quick: args.quick,
        dataset: args.dataset,
        runs_dir: args.workers.runs_dir.clone(),
        prune: args.prune,
    };
    let (text, spec) = preset(&args.name, &options)?;
    let out = args
        .out
        .unwrap_or_else(|| Path::new("reports").join(&spec.name));
    // The spec is written before the study runs, so that an interrupted study can be rerun
    // from it; the report, which replaces the folder, carries it over.
    let spec_name = format!("{}.toml", spec.name);
    let spec_file = out.join(&spec_name);
    std::fs::create_dir_all(&out)
        .map_err(|e| format!("--out: cannot create {}: {e}", out.display()))?;
    regstudy::fsio::write_atomic(&spec_file, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", spec_file.display()))?;
    println!(
        "study {} ({} trials); spec written to {} (rerun it with `regstudy study run`)",
        spec.name,
        spec.trials().len(),
        spec_file.display()
    );
    let store = store::open(&args.store.store)?;
    let options = StudyRunOptions {
        stop: Some(super::signals::stop_on_signals()),
        ..args.workers.run_options()
    };
    let console = args.workers.console();
    let done = run_study(&spec, &text, store.as_ref(), &options, &console)?;
    print_run_end(&spec.name, &store.identity().location, &done);
    // Stopped by a signal, the study is not over: no report until it is.
    stopped_by_signal(&spec.name)?;
    // The report is written even when trials failed (it shows what finished); the command
    // still fails, so that a script does not take a partial study for a whole one.
    // The preset's claims go beside its spec, so that the folder says what was judged.
    let claims_name = format!("{}.claims.toml", spec.name);
    let mut extra: Vec<ExtraFile> = vec![(&spec_name, text.as_bytes())];
    if let Some(claims) = claims_text(&args.name) {
        extra.push((&claims_name, claims.as_bytes()));
    }
    write_and_show(
        store.as_ref(),
        &spec.name,
        &out,
        &ClaimsSource::Preset(args.name.clone()),
        &extra,
    )?;
    match failed_trials_error(
        &spec.name,
        &spec_file,
        &store.identity().location,
        &done.failed,
    ) {
        Some(message) => Err(message.into()),
        None => Ok(()),
    }
}

pub fn export(args: ExportArgs) -> CommandResult {
    let store = store::open_existing(&args.store.store)?;
    match args.format {
        ExportFormat::Tensorboard => {
            let n = regstudy::export::tensorboard(store.as_ref(), args.study.as_str(), &args.out)?;
            println!(
                "{n} runs written; view them with: tensorboard --logdir {}",
                args.out.display()
            );
        }
        ExportFormat::Csv => {
            regstudy::export::csv(store.as_ref(), args.study.as_str(), &args.out)?;
            println!("{}/trials.csv and epochs.csv written", args.out.display());
        }
    }
    Ok(())
}
