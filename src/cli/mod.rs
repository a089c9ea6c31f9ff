//! Command-line options (their doc comments are the `--help` text) and dispatch.

mod bench;
mod data;
mod docs;
mod launch;
mod progress;
mod report;
mod signals;
mod study;
mod train;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The environment variable naming the folder of the data sets. The library reads it itself
/// (see [`regstudy::data`]); `--data-dir` shows it in its help.
pub const DATA_ENV: &str = "REGSTUDY_DATA";

/// Reproducible, fast studies of weight regularization in convolutional networks.
#[derive(Debug, Parser)]
#[command(name = "regstudy", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Time training steps and inference on synthetic data (compare with PyTorch's peer script).
    Bench(bench::BenchArgs),
    /// Inspect and verify data sets.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train one network on one data set under one regularization, recording every metric.
    Train(Box<train::TrainArgs>),
    /// Run a study (methods x strengths x seeds) from a spec, crash-safe and resumable.
    #[command(subcommand)]
    Study(Box<study::StudyCommand>),
    /// Write a study's report: tables with confidence intervals and paired tests, figures.
    Report(report::ReportArgs),
    /// Rerun a source study (its spec is built in) and write its report beside the paper's
    /// numbers.
    Reproduce(Box<report::ReproduceArgs>),
    /// Export a study's metrics as TensorBoard event files or CSV.
    Export(report::ExportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on standard
    /// output.
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff) on standard output.
    Man,
}

/// The command-line interface as clap sees it: every command, option and help text, from
/// which `--help`, the completion scripts and the manual page are all generated.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses the command line. A `--data-dir` taken from `$REGSTUDY_DATA` is dropped: clap
/// reads the variable only to show it in `--help`, while the library resolves it itself,
/// after a settings file's or a study spec's own `data_dir`, which an environment value must
/// not override.
fn parse() -> Cli {
    let matches = command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    if data_dir_from_env(&matches) {
        if let Some(data_dir) = cli.command.data_dir_mut() {
            *data_dir = None;
        }
    }
    cli
}

/// Whether the innermost command's `--data-dir` has its value from the environment.
fn data_dir_from_env(matches: &ArgMatches) -> bool {
    match matches.subcommand() {
        Some((_, sub)) => data_dir_from_env(sub),
        None => {
            matches.ids().any(|id| id.as_str() == "data_dir")
                && matches.value_source("data_dir") == Some(ValueSource::EnvVariable)
        }
    }
}

impl Command {
    /// The command's `--data-dir`, for those that have one.
    fn data_dir_mut(&mut self) -> Option<&mut Option<PathBuf>> {
        match self {
            Command::Train(args) => Some(&mut args.data_dir),
            Command::Data(command) => Some(command.data_dir_mut()),
            Command::Study(command) => command.data_dir_mut(),
            Command::Reproduce(args) => Some(&mut args.workers.data_dir),
            Command::Bench(_)
            | Command::Report(_)
            | Command::Export(_)
            | Command::Completions(_)
            | Command::Man => None,
        }
    }
}

/// Parses the command line, runs the command, and maps an error to exit status 1 with its
/// message (and its chain of causes) on standard error.
pub fn main() -> ExitCode {
    signals::end_quietly_on_closed_pipe();
    let cli = parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Data(command) => data::run(command),
        Command::Train(args) => train::run(*args),
        Command::Study(command) => study::run(*command),
        Command::Report(args) => report::report(args),
        Command::Reproduce(args) => report::reproduce(*args),
        Command::Export(args) => report::export(args),
        Command::Completions(args) => docs::completions(args),
        Command::Man => docs::man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            for line in error_lines(err.as_ref()) {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The lines that report `err`: its message, then each cause in its chain that the lines
/// before do not already say (many errors put their cause in their message and also
/// return it as their source).
fn error_lines(err: &dyn std::error::Error) -> Vec<String> {
    let mut said = err.to_string();
    let mut lines = vec![format!("error: {said}")];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !said.contains(&text) {
            lines.push(format!("  caused by: {text}"));
            said.push('\n');
            said.push_str(&text);
        }
        source = cause.source();
    }
    lines
}

/// The error type of a command: any error, reported with its causes.
pub type CommandResult = Result<(), Box<dyn std::error::Error>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x.toml: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x.toml")]
    struct Separate(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_printed_again() {
        let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            error_lines(&Repeats(missing())),
            ["error: cannot read x.toml: no such file"]
        );
        assert_eq!(
            error_lines(&Separate(missing())),
            ["error: cannot read x.toml", "  caused by: no such file"]
        );
    }

    /// Clap checks for options defined twice only in debug builds, and the tests run in
    /// release: this walks every command itself.
    #[test]
    fn no_command_defines_an_option_twice() {
        use clap::CommandFactory;
        use std::collections::HashSet;
        fn check(command: &clap::Command, path: &str) {
            let (mut ids, mut longs) = (HashSet::new(), HashSet::new());
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                assert!(ids.insert(id), "`{path}` defines `{id}` twice");
                if let Some(long) = arg.get_long() {
                    assert!(longs.insert(long), "`{path}` defines --{long} twice");
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "regstudy");
    }
}
