//! The commands about mscribe itself rather than its jobs: `config check`,
//! `config show`, `completions` and `man`. None opens a database or starts
//! anything.

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, CliResult, Failure, out};
use crate::config::{Config, effective_toml, redact_url};

/// `mscribe config check [FILE]`: loads and checks the configuration as
/// `serve` does (same messages, exit 2 on an error), and starts nothing.
pub(super) fn config_check(cli: &Cli, file: Option<&Path>) -> CliResult {
    let path = file.or(cli.config.as_deref());
    let cfg = Config::load(path).map_err(|e| Failure::Usage(e.to_string()))?;
    for name in &cfg.unknown_env {
        eprintln!("mscribe: warning: unknown MSCRIBE_ environment variable {name} ignored");
    }
    let source =
        cfg.source.as_ref().map_or("no config file (defaults and environment)".to_owned(), |p| {
            p.display().to_string()
        });
    let jobs = cfg.jobs.all().iter().filter(|j| j.common.enabled).count();
    out!("{source}: ok ({jobs} jobs enabled, listen {}, database {})", cfg.listen, db_label(&cfg));
    Ok(ExitCode::SUCCESS)
}

/// `mscribe config show`: the configuration read, secrets redacted.
pub(super) fn config_show(cli: &Cli) -> CliResult {
    let text = effective_toml(cli.config.as_deref()).map_err(|e| Failure::Usage(e.to_string()))?;
    out!("# The configuration in force: the defaults, the file's keys and the MSCRIBE_*");
    out!("# variables over them; secrets redacted. A key not shown is unset.");
    out!("{}", text.trim_end());
    Ok(ExitCode::SUCCESS)
}

/// The database URL without its password ([`redact_url`]).
fn db_label(cfg: &Config) -> String {
    redact_url(&cfg.database_url)
}

/// `mscribe completions SHELL`: the completion script on standard output.
pub(super) fn completions(shell: clap_complete::Shell) -> CliResult {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "mscribe", &mut buf);
    write_stdout(&buf)
}

/// `mscribe man`: the man page (roff) on standard output.
pub(super) fn man() -> CliResult {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buf)
        .map_err(|e| Failure::Io(format!("cannot render the man page: {e}")))?;
    write_stdout(&buf)
}

fn write_stdout(buf: &[u8]) -> CliResult {
    out!("{}", String::from_utf8_lossy(buf).trim_end());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_check_redacts_url_passwords_and_password_parameters() {
        let cfg = |url: &str| Config { database_url: url.to_owned(), ..Config::default() };
        assert_eq!(
            db_label(&cfg("postgres://postgres@127.0.0.1:5432/db?password=SECRETQPW")),
            "postgres://postgres@127.0.0.1:5432/db?password=REDACTED"
        );
        assert_eq!(db_label(&cfg("postgres://u:pw@h/db")), "postgres://u:REDACTED@h/db");
        assert_eq!(db_label(&cfg("sqlite://./mscribe.db")), "sqlite://./mscribe.db");
    }
}
