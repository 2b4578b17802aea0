//! `inbox-api`: the whole system in one process (API + webhook), and the admin CLI.

use clap::Parser;
use inbox_api::cli::{Cli, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inbox-api: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
