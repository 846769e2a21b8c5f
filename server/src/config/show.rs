//! `mscribe config show`: the configuration as it is read (the file's keys
//! with the environment's overrides merged in) as TOML, with every secret
//! redacted.

use std::path::Path;

use super::{Config, ConfigError, env, file};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "REDACTED";

/// The configuration that [`Config::load`] reads from `path` (or
/// `$MSCRIBE_CONFIG`, or `./mscribe.toml`) and the process's environment,
/// as TOML: the keys the file sets with the `MSCRIBE_*` overrides merged
/// in. Keys it does not show take their defaults. Secrets are redacted:
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
    redact_table(&mut table, "");
    Ok(toml::to_string(&table).unwrap_or_default())
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
