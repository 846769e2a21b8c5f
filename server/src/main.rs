//! The `mscribe` binary: see `mscribe --help` and the crate's README.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mscribe_server::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mscribe: error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(mscribe_server::cli::run(cli))
}
