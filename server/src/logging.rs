//! Logging: `tracing` to stderr and, for `serve`, to `log_dir/mscribe.log`
//! through a writer that the log-rotation job can make reopen its file; as
//! text or as JSON (one object per line, [`LogFormat`]). Colour only on a
//! terminal and never with `NO_COLOR`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    let spec = std::env::var(LOG_ENV).unwrap_or_else(|_| filter.to_owned());
    let targets: Targets = spec.parse().unwrap_or_else(|e| {
        eprintln!("mscribe: invalid {LOG_ENV} \"{spec}\" ({e}); using \"info\"");
        Targets::new().with_default(tracing::Level::INFO)
    });
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
    let _ = tracing_subscriber::registry().with(stderr).with(file_layer).try_init();
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
