//! The `insurebot` command line: a thin shell over the library (the commands are in
//! [`insurebot::cli`]).

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: under load the server spent about a quarter of its CPU
/// in glibc's allocator (`perf`, PostgreSQL at 1,000 messages/s); see README, "Load benchmark".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    insurebot::cli::run(insurebot::cli::Cli::parse()).await
}
