//! `regstudy completions SHELL` and `regstudy man`: shell completion scripts and the manual
//! page, generated from the same definitions as `--help`.

use super::CommandResult;
use clap::Args;
use clap_complete::Shell;
use std::io::Write;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for. Bash: `regstudy completions bash >
    /// ~/.local/share/bash-completion/completions/regstudy`; zsh: write `_regstudy` into a
    /// folder of `$fpath`; fish: `~/.config/fish/completions/regstudy.fish`.
    #[arg(value_enum)]
    shell: Shell,
}

/// Writes the completion script for `args.shell` on standard output.
pub fn completions(args: CompletionsArgs) -> CommandResult {
    let mut command = super::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "regstudy", &mut script);
    write_stdout(&script)
}

/// Writes the manual page, every subcommand included, on standard output (read it with
/// `regstudy man | man -l -`).
pub fn man() -> CommandResult {
    let mut page = Vec::new();
    render_man(&super::command(), &mut page)?;
    write_stdout(&page)
}

/// The page of `command`: its title, name, synopsis, description and options, then a section
/// per subcommand (nested ones named `study run`, `data info`), so that one page documents
/// every option.
fn render_man(command: &clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
        render_subcommand(sub, command.get_name(), out)?;
    }
    Ok(())
}

/// A section for `sub` (whose parent's full name is `parent`): its name, description,
/// options and subcommands.
fn render_subcommand(sub: &clap::Command, parent: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
    let name = format!("{parent} {}", sub.get_name());
    let titled = sub.clone().bin_name(name.clone());
    let man = clap_mangen::Man::new(titled);
    writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    for nested in sub.get_subcommands().filter(|c| c.get_name() != "help") {
        render_subcommand(nested, &name, out)?;
    }
    Ok(())
}

/// Standard output, written whole; a closed pipe (`regstudy man | head`) is not an error.
fn write_stdout(bytes: &[u8]) -> CommandResult {
    match std::io::stdout().lock().write_all(bytes) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.map_err(|e| format!("cannot write to standard output: {e}"))?),
    }
}
