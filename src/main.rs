//! The `alertissimo` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = alertissimo::cli::Cli::parse();
    alertissimo::cli::run(cli)
}

// Imports allocate small strings on one thread and free them on another; glibc's
// allocator contends on that (a quarter of the baseline import's time was spent in
// malloc locks), mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
