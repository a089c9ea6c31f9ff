//! Command-line options (their doc comments are the `--help` text) and dispatch.

mod bench;
mod data;
mod progress;
mod report;
mod study;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    Study(study::StudyCommand),
    /// Write a study's report: tables with confidence intervals and paired tests, figures.
    Report(report::ReportArgs),
    /// Rerun a source study (its spec is built in) and write its report beside the paper's
    /// numbers.
    Reproduce(Box<report::ReproduceArgs>),
    /// Export a study's metrics as TensorBoard event files or CSV.
    Export(report::ExportArgs),
}

/// Parses the command line, runs the command, and maps an error to exit status 1 with its
/// message (and its chain of causes) on standard error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Data(command) => data::run(command),
        Command::Train(args) => train::run(*args),
        Command::Study(command) => study::run(command),
        Command::Report(args) => report::report(args),
        Command::Reproduce(args) => report::reproduce(*args),
        Command::Export(args) => report::export(args),
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
}
