//! Reading the TOML file: its text, its syntax, and the errors of its keys.
//!
//! A syntax error names the file, line and column; the file is then
//! deserialized into a [`Config`] with unknown keys refused, and serde's
//! errors become a [`ConfigError::Invalid`] naming the dotted key (for a
//! job's section too: `jobs.<id>.<key>`) and the reason.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::{Config, ConfigError};

/// The text of the config file at `path`.
pub(super) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
}

/// Parses `text` as TOML; a syntax error names `origin` and the line and
/// column.
pub(super) fn parse(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        path: origin.to_owned(),
        message: match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {col}: {}", e.message())
            }
            None => e.message().to_owned(),
        },
    })
}

/// Deserializes a whole configuration; an error names `origin` and the key.
pub(super) fn deserialize_table(table: toml::Table, origin: &str) -> Result<Config, ConfigError> {
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize::<_, Config>(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().to_owned();
        // Errors raised inside `[jobs]` carry the rest of the key in front
        // of the message ("database-backup.keep: ...").
        let (key, reason) = match (path.as_str(), message.split_once(": ")) {
            ("jobs", Some((rest, reason))) if !rest.contains(' ') => {
                (format!("jobs.{rest}"), reason.to_owned())
            }
            _ => (if path == "." { String::new() } else { path }, message),
        };
        let (key, reason) = match unknown_field(&reason) {
            Some(field) if !key.ends_with(field) => {
                (if key.is_empty() { field.to_owned() } else { format!("{key}.{field}") }, reason)
            }
            _ => (key, reason),
        };
        ConfigError::Invalid { origin: origin.to_owned(), key, reason }
    })
}

/// Deserializes a table (keys not given take the type's defaults, as the
/// types have `#[serde(default)]`); an error names the key under `prefix`.
pub(super) fn sub_table<T: DeserializeOwned>(
    prefix: &str,
    value: toml::Value,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().message().to_owned();
        let mut key = match (prefix, path.as_str()) {
            (p, ".") => p.to_owned(),
            ("", rest) => rest.to_owned(),
            (p, rest) => format!("{p}.{rest}"),
        };
        if let Some(field) = unknown_field(&message)
            && !key.ends_with(field)
        {
            key = if key.is_empty() { field.to_owned() } else { format!("{key}.{field}") };
        }
        (key, message)
    })
}

/// The field named by serde's "unknown field `x`" message.
fn unknown_field(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `").or_else(|| msg.strip_prefix("unknown key `"))?;
    rest.split('`').next()
}
