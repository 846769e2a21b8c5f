//! Logging: `tracing` to stderr and, for `serve`, to `log_dir/mscribe.log`
//! through a writer that the log-rotation job can make reopen its file; as
//! text or as JSON (one object per line, [`LogFormat`]). Colour only on a
//! terminal and never with `NO_COLOR`. For `serve`, the OpenTelemetry
//! layer too when `[telemetry]` names a collector (feature `otel`,
//! [`init_serve`]); the log layers never write the spans of
//! [`TRACE_TARGET`], so without it no span is created.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TelemetryConfig;
use crate::telemetry::Telemetry;
use mscribe_scheduler::TRACE_TARGET;

/// The environment variable that overrides the log filter.
pub const LOG_ENV: &str = "MSCRIBE_LOG";

/// The environment variable that turns colour off when set and not empty
/// (<https://no-color.org>).
pub const NO_COLOR_ENV: &str = "NO_COLOR";

/// How log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`
    /// and the event's fields at the top level.
    Json,
}

/// Whether stderr output may be coloured: a terminal, and no `NO_COLOR`.
fn colour(no_color: Option<String>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The file the server logs to, inside `log_dir`.
pub const LOG_FILE_NAME: &str = "mscribe.log";

/// An append-only log file that can be reopened after a rotation renamed it.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

impl LogFile {
    /// Opens (creating, mode 0600) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Arc<LogFile>> {
        Ok(Arc::new(LogFile { path: path.to_owned(), file: Mutex::new(open_append(path)?) }))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again; later lines go to the new file.
    pub fn reopen(&self) {
        match open_append(&self.path) {
            Ok(f) => *self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = f,
            Err(e) => eprintln!("mscribe: cannot reopen log file {}: {e}", self.path.display()),
        }
    }

    fn writer(self: &Arc<Self>) -> LogWriter {
        LogWriter(self.clone())
    }
}

/// A handle writing to a [`LogFile`].
#[derive(Debug)]
struct LogWriter(Arc<LogFile>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner).flush()
    }
}

/// Installs the global subscriber: `filter` (or `$MSCRIBE_LOG`) to stderr
/// as text, and to `file` when given. A second call does nothing.
pub fn init(filter: &str, file: Option<Arc<LogFile>>) {
    init_with(filter, LogFormat::Text, file);
}

/// Installs the global subscriber: `filter` (or `$MSCRIBE_LOG`) to stderr,
/// and to `file` when given, both in `format`. A second call does nothing.
pub fn init_with(filter: &str, format: LogFormat, file: Option<Arc<LogFile>>) {
    let _ = install(filter, format, file, None);
}

/// As [`init_with`], and with the OpenTelemetry layer when `telemetry`
/// has an `otlp_endpoint` and the build the `otel` feature (a build
/// without it logs a warning). The handle flushes the spans at shutdown.
/// An exporter that cannot be set up is an error naming the endpoint
/// (logging is installed all the same).
pub fn init_serve(
    filter: &str,
    format: LogFormat,
    file: Option<Arc<LogFile>>,
    telemetry: &TelemetryConfig,
) -> Result<Telemetry, String> {
    install(filter, format, file, Some(telemetry))
}

/// The level names a directive without `=` may be (in any case).
const LEVEL_NAMES: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Parses a log filter (`log_level`, `$MSCRIBE_LOG`): comma-separated
/// directives, each a level name or `target=level`. A directive without
/// `=` that is no level name is refused: the filter syntax would read it as
/// a target and log that target alone, so a misspelt level (`warning`)
/// would silence every line.
pub fn parse_filter(spec: &str) -> Result<Targets, String> {
    for d in spec.split(',').filter(|d| !d.contains('=')) {
        if !LEVEL_NAMES.iter().any(|l| d.eq_ignore_ascii_case(l)) {
            return Err(format!(
                "\"{d}\" is no level (trace, debug, info, warn, error or off); to filter a \
                 target, write target=level, e.g. \"info,mscribe_server=debug\""
            ));
        }
    }
    spec.parse().map_err(|e: tracing_subscriber::filter::ParseError| e.to_string())
}

/// The filter of the log layers: `spec`, or `info` when it is refused by
/// [`parse_filter`] (saying so), never [`TRACE_TARGET`]: the spans of runs,
/// attempts and requests are the OpenTelemetry layer's only, so that with
/// no such layer none is created.
fn log_targets(spec: &str) -> Targets {
    let targets: Targets = parse_filter(spec).unwrap_or_else(|e| {
        eprintln!("mscribe: invalid log filter \"{spec}\" ({e}); using \"info\"");
        Targets::new().with_default(tracing::Level::INFO)
    });
    targets.with_target(TRACE_TARGET, LevelFilter::OFF)
}

fn install(
    filter: &str,
    format: LogFormat,
    file: Option<Arc<LogFile>>,
    telemetry: Option<&TelemetryConfig>,
) -> Result<Telemetry, String> {
    let spec = std::env::var(LOG_ENV).unwrap_or_else(|_| filter.to_owned());
    let targets = log_targets(&spec);
    let ansi = colour(
        std::env::var(NO_COLOR_ENV).ok(),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    let stderr = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(targets.clone());
    let file_layer = file.map(|f| {
        match format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_target(true)
                .with_writer(move || f.writer())
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(move || f.writer())
                .boxed(),
        }
        .with_filter(targets)
    });
    #[cfg(feature = "otel")]
    let (otel, handle, error) = match telemetry.map(crate::telemetry::install) {
        Some(Ok((layer, handle))) => (layer, handle, None),
        Some(Err(e)) => (None, Telemetry::none(), Some(e)),
        None => (None, Telemetry::none(), None),
    };
    #[cfg(not(feature = "otel"))]
    let (otel, handle, error) =
        (None::<tracing_subscriber::layer::Identity>, Telemetry::none(), None::<String>);
    let _ = tracing_subscriber::registry().with(otel).with(stderr).with(file_layer).try_init();
    if let Some(e) = error {
        return Err(e);
    }
    if let Some(t) = telemetry.filter(|t| t.enabled()) {
        let url = t.traces_url().unwrap_or_default();
        if handle.is_on() {
            tracing::info!(
                url,
                service_name = %t.service_name,
                sample_ratio = t.sample_ratio,
                "OpenTelemetry traces on"
            );
        } else {
            tracing::warn!(
                url,
                "[telemetry] otlp_endpoint is set, but this build has no `otel` feature: no \
                 traces are sent"
            );
        }
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(colour(None, true));
        assert!(colour(Some(String::new()), true));
        assert!(!colour(Some("1".to_owned()), true));
        assert!(!colour(None, false));
    }

    #[test]
    fn the_log_layers_leave_the_spans_of_runs_disabled() {
        // Even with everything logged, no layer wants the spans: the
        // registry creates none (and the engine skips its span work).
        for spec in ["trace", "info,mscribe::otel=trace", "info,mscribe=trace"] {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(log_targets(spec));
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!(target: TRACE_TARGET, "mscribe.run", job_id = "x");
                assert!(span.is_disabled(), "{spec}");
                let other = tracing::info_span!(target: "mscribe_server::x", "other");
                assert!(!other.is_disabled(), "{spec}");
            });
        }
    }

    #[test]
    fn a_bare_word_that_is_no_level_is_refused_and_levels_and_targets_pass() {
        for spec in ["info", "Warn", "OFF", "info,mscribe_server=debug", "mscribe=trace"] {
            assert!(parse_filter(spec).is_ok(), "{spec}");
        }
        for (spec, word) in [("warning", "warning"), ("info,bogus", "bogus"), ("", ""), ("3", "3")]
        {
            let e = parse_filter(spec).unwrap_err();
            assert!(e.contains(&format!("\"{word}\" is no level")), "{spec}: {e}");
            assert!(e.contains("target=level"), "{e}");
        }
        assert!(parse_filter("info,mscribe_server=nope").is_err());
    }

    #[test]
    fn reopen_follows_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let f = LogFile::open(&path).unwrap();
        let mut w = f.writer();
        w.write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("x.log.1")).unwrap();
        w.write_all(b"two\n").unwrap();
        f.reopen();
        w.write_all(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("x.log.1")).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }
}
