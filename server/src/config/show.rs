//! `mscribe config show`: the configuration in force (the defaults, the
//! file's keys over them, the environment's overrides over both) as TOML,
//! with every secret redacted.

use std::path::Path;

use super::{Config, ConfigError, env, file};

/// The defaults, as the example configuration lists them (a test checks
/// that they are the code's).
const DEFAULTS: &str = include_str!("../../mscribe.example.toml");

/// What a redacted value is replaced with.
pub const REDACTED: &str = "REDACTED";

/// The configuration that [`Config::load`] reads from `path` (or
/// `$MSCRIBE_CONFIG`, or `./mscribe.toml`) and the process's environment,
/// as TOML: every key with its default, the file's keys over them and the
/// `MSCRIBE_*` overrides over both. A key not shown is unset (an optional
/// key without a default, like `admin_token`). Secrets are redacted:
/// `admin_token`, the password of every URL (`database_url`, `auth_url`,
/// ...), and the `env` values and `headers` values of the jobs of your own.
/// Fails as [`Config::load`] does, with the same messages.
pub fn effective_toml(path: Option<&Path>) -> Result<String, ConfigError> {
    // The same checks and messages as `serve`.
    let cfg = Config::load(path)?;
    let text = match &cfg.source {
        Some(p) => file::read(p)?,
        None => String::new(),
    };
    let origin = cfg.source.as_ref().map_or("(defaults)".to_owned(), |p| p.display().to_string());
    let mut table = file::parse(&text, &origin)?;
    env::apply(&mut table, |name: &str| std::env::var(name).ok())?;
    let mut shown = defaults();
    merge(&mut shown, table);
    redact_table(&mut shown, "");
    Ok(toml::to_string(&shown).unwrap_or_default())
}

/// The default of every key that has one, as a table.
fn defaults() -> toml::Table {
    DEFAULTS.parse().unwrap_or_default()
}

/// `over`'s keys set on `base`, tables merged key by key.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn redact_table(table: &mut toml::Table, path: &str) {
    for (key, value) in table.iter_mut() {
        let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        redact(value, &here);
    }
}

/// Whether the value at dotted `path` is a secret as a whole.
fn is_secret(path: &str) -> bool {
    let parts: Vec<&str> = path.split('.').collect();
    matches!(parts.as_slice(), ["admin_token"] | ["jobs", _, "env" | "headers", _])
}

fn redact(value: &mut toml::Value, path: &str) {
    if is_secret(path) {
        *value = toml::Value::String(REDACTED.to_owned());
        return;
    }
    match value {
        toml::Value::String(s) => {
            if let Some(r) = redact_url_password(s) {
                *s = r;
            }
        }
        toml::Value::Table(t) => redact_table(t, path),
        toml::Value::Array(items) => items.iter_mut().for_each(|v| redact(v, path)),
        _ => {}
    }
}

/// `s` with its password replaced, if it is a URL with a password.
fn redact_url_password(s: &str) -> Option<String> {
    let mut url = url::Url::parse(s).ok()?;
    url.password()?;
    url.set_password(Some(REDACTED)).ok()?;
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        let mut table = file::parse(text, "t.toml").unwrap();
        redact_table(&mut table, "");
        toml::to_string(&table).unwrap()
    }

    #[test]
    fn the_defaults_shown_are_the_codes() {
        let text = toml::to_string(&defaults()).unwrap();
        let read = Config::from_toml_str(&text, "defaults", |_| None).unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn the_file_and_environment_win_over_the_defaults() {
        let mut shown = defaults();
        let file =
            file::parse("listen = \"0.0.0.0:1\"\n[jobs.database-backup]\nkeep = 3\n", "t").unwrap();
        merge(&mut shown, file);
        let read = Config::from_toml_str(&toml::to_string(&shown).unwrap(), "t", |_| None).unwrap();
        assert_eq!(read.listen.port(), 1);
        assert_eq!(read.jobs.database_backup.options.keep, 3);
        // The rest of the section keeps its defaults.
        assert_eq!(
            read.jobs.database_backup.schedule,
            Config::default().jobs.database_backup.schedule
        );
    }

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let out = shown(
            "admin_token = \"0123456789abcdef0123456789abcdef\"\n\
             database_url = \"postgres://svc:hunter2@db:5432/mscribe\"\n\
             listen = \"0.0.0.0:9000\"\n\
             [health]\nauth_url = \"https://user:pw@auth.example/health\"\n\
             [jobs.ping]\nkind = \"http\"\nurl = \"https://example.com\"\n\
             headers = { Authorization = \"Bearer abc\" }\n\
             [jobs.sync]\nkind = \"command\"\ncommand = [\"true\"]\nenv = { API_KEY = \"k3y\" }\n",
        );
        for secret in ["0123456789abcdef", "hunter2", ":pw@", "Bearer abc", "k3y"] {
            assert!(!out.contains(secret), "{secret} shown:\n{out}");
        }
        assert!(out.contains("postgres://svc:REDACTED@db:5432/mscribe"), "{out}");
        assert!(out.contains("admin_token = \"REDACTED\""), "{out}");
        assert!(out.contains("Authorization = \"REDACTED\""), "{out}");
        assert!(out.contains("API_KEY = \"REDACTED\""), "{out}");
        assert!(out.contains("listen = \"0.0.0.0:9000\""), "{out}");
        assert!(out.contains("url = \"https://example.com\""), "{out}");
    }
}
