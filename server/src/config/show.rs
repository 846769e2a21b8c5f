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
/// ...) and its `password` query parameter ([`redact_url`]), the `env`
/// and `headers` values of the jobs of your own, and each alert's `url` and
/// `headers` values.
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
    redact_table(&mut shown, &[]);
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

/// Redacts the secrets of `table`, found at the keys `path` (from the root).
fn redact_table(table: &mut toml::Table, path: &[&str]) {
    for (key, value) in table.iter_mut() {
        let mut here = path.to_vec();
        here.push(key);
        redact(value, &here);
    }
}

/// Whether the value at the keys `path` is a secret as a whole: those that
/// the README calls secrets (the admin token, the `env` and `headers`
/// values of the jobs of your own, an alert's `url` and `headers` values).
/// The keys are kept apart, as a header name may hold a dot.
fn is_secret(path: &[&str]) -> bool {
    matches!(
        path,
        ["admin_token"]
            | ["jobs", _, "env" | "headers", _]
            | ["alerts", _, "url"]
            | ["alerts", _, "headers", _]
    )
}

fn redact(value: &mut toml::Value, path: &[&str]) {
    if is_secret(path) {
        *value = toml::Value::String(REDACTED.to_owned());
        return;
    }
    match value {
        toml::Value::String(s) => *s = redact_url(s),
        toml::Value::Table(t) => redact_table(t, path),
        toml::Value::Array(items) => items.iter_mut().for_each(|v| redact(v, path)),
        _ => {}
    }
}

/// The query parameters of a URL whose value is a secret, compared without
/// case and percent-decoded: `password` (read by sqlx and libpq, as the
/// URL's password) and libpq's `sslpassword` (the client key's).
const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

/// `text` with the secrets of every URL in it (`scheme://...`, up to the
/// next white space) replaced by [`REDACTED`]: the password of the
/// user info (`postgres://svc:REDACTED@db/x`) and the values of the
/// `password` and `sslpassword` query parameters, in any case
/// (`?password=REDACTED`). The rest is kept as written, so that a message
/// can quote a bad value; a text without a URL is returned as is.
///
/// ```
/// use mscribe_server::config::redact_url;
///
/// assert_eq!(
///     redact_url("postgres://svc:hunter2@db/x?sslmode=require&Password=hunter3"),
///     "postgres://svc:REDACTED@db/x?sslmode=require&Password=REDACTED"
/// );
/// assert_eq!(redact_url("sqlite://./mscribe.db"), "sqlite://./mscribe.db");
/// ```
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        let after = &rest[i + 3..];
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        redact_one(&after[..end], &mut out);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Appends to `out` the part of one URL after its `scheme://`, redacted.
fn redact_one(url: &str, out: &mut String) {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, path) = url.split_at(authority_end);
    // The last `@` ends the user info (a password may hold an unescaped `@`).
    match authority.rfind('@').map(|at| authority.split_at(at)) {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(REDACTED);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let Some(q) = path.find('?') else {
        out.push_str(path);
        return;
    };
    out.push_str(&path[..=q]);
    let query_and_fragment = &path[q + 1..];
    let (query, fragment) = match query_and_fragment.find('#') {
        Some(h) => query_and_fragment.split_at(h),
        None => (query_and_fragment, ""),
    };
    for (n, pair) in query.split('&').enumerate() {
        if n > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) if is_secret_param(key) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    out.push_str(fragment);
}

/// Whether a query parameter's name (percent-encoded, as written) is one
/// of [`SECRET_PARAMS`].
fn is_secret_param(key: &str) -> bool {
    let decoded = url::form_urlencoded::parse(key.as_bytes())
        .next()
        .map(|(k, _)| k.to_ascii_lowercase())
        .unwrap_or_default();
    SECRET_PARAMS.contains(&decoded.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        let mut table = file::parse(text, "t.toml").unwrap();
        redact_table(&mut table, &[]);
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

    #[test]
    fn url_password_query_parameters_are_redacted_in_config_show() {
        let out = shown(
            "database_url = \"postgres://postgres@127.0.0.1:5432/db?password=SECRETQPW\"\n\
             [health]\nauth_url = \"https://u:SECRETPW@auth.example/h?sslmode=x&PassWord=SECRET2&SSLPASSWORD=SECRET3&%70assword=SECRET4#f\"\n",
        );
        for secret in ["SECRETQPW", "SECRETPW", "SECRET2", "SECRET3", "SECRET4"] {
            assert!(!out.contains(secret), "{secret} shown:\n{out}");
        }
        assert!(out.contains("postgres://postgres@127.0.0.1:5432/db?password=REDACTED"), "{out}");
        assert!(
            out.contains(
                "https://u:REDACTED@auth.example/h?sslmode=x&PassWord=REDACTED&\
                 SSLPASSWORD=REDACTED&%70assword=REDACTED#f"
            ),
            "{out}"
        );
    }

    #[test]
    fn alert_urls_and_header_values_are_redacted_in_config_show() {
        let out = shown(
            "[alerts.pager]\nurl = \"https://events.example.com/hook/TOKEN_IN_PATH_abc123\"\n\
             headers = { Authorization = \"Bearer sk_live_abc123\", X-Api-Key = \"k-999\", \
             \"X.Dotted\" = \"dotted-secret\" }\n\
             format = \"slack\"\n\
             [jobs.ping]\nkind = \"http\"\nurl = \"https://example.com\"\n\
             headers = { \"X.Job\" = \"job-dotted-secret\" }\n",
        );
        for secret in
            ["TOKEN_IN_PATH", "events.example", "sk_live_abc123", "k-999", "dotted-secret"]
        {
            assert!(!out.contains(secret), "{secret} shown:\n{out}");
        }
        assert!(out.contains("url = \"REDACTED\""), "{out}");
        assert!(out.contains("Authorization = \"REDACTED\""), "{out}");
        assert!(out.contains("X-Api-Key = \"REDACTED\""), "{out}");
        // The header names and the other keys are no secrets.
        assert!(out.contains("format = \"slack\""), "{out}");
    }
}
