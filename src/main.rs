//! The `alertissimo` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = alertissimo::cli::Cli::parse();
    alertissimo::cli::run(cli)
}
