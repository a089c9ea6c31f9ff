//! The `regstudy` command. Options live in [`cli`]; the work lives in the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
