//! Jobs of your own: `[jobs.<id>]` with `kind = "command"` or `kind = "http"`,
//! their options, their checks, and [`UserJobDef`], the one entry point that
//! parses and checks such a definition, from the config file's TOML or from
//! JSON (the API's future `PUT /jobs/{id}` takes the same path, so the same
//! messages).
//!
//! A definition has the scheduling keys every job has ([`COMMON_JOB_KEYS`],
//! a `schedule` required), its `kind`, and the options of that kind
//! ([`CommandOptions`], [`HttpOptions`]). Its id must not be a built-in
//! job's. An error is a [`DefError`]: the key, relative to the job's
//! section, and the reason.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::jobs::{CommonSettings, JobOptions, JobSection};
use super::{EnvKind, Secret, de};
use crate::ops::{JobKind, defs, job_kind};

/// The default of `output_limit`: the last 64 KiB of stdout and of stderr.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 * 1024;

/// The largest `output_limit` accepted (1 MiB): the output is stored in
/// the run's row.
pub const MAX_OUTPUT_LIMIT: u64 = 1024 * 1024;

/// How much of an HTTP job's response body is recorded: the first 64 KiB.
pub const HTTP_BODY_LIMIT: usize = 64 * 1024;

/// The longest id of a job of your own.
pub const MAX_JOB_ID_LEN: usize = 64;

/// The kinds of job a definition can have, as `kind` names them.
pub const USER_KINDS: &[&str] = &["command", "http"];

/// `[jobs.<id>] kind = "command"`: a program run without a shell
/// (`command`), or a script run by `/bin/sh -c` (`shell`), in its own
/// process group.
///
/// `Debug` shows the names of `env`, never the values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandOptions {
    /// The program and its arguments, run without a shell (`command`).
    pub command: Option<Vec<String>>,
    /// A script run by `/bin/sh -c` (`shell`); exactly one of `command`
    /// and `shell` is set.
    pub shell: Option<String>,
    /// The working directory (`cwd`, default the server's).
    pub cwd: Option<PathBuf>,
    /// Variables set for the process (`env`), over the server's own
    /// environment less its `MSCRIBE_*` variables.
    pub env: BTreeMap<String, Secret>,
    /// A file of `KEY=VALUE` lines read at each run (`env_file`); `env`
    /// wins over it.
    pub env_file: Option<PathBuf>,
    /// Exit codes that are permanent failures: no retry (`permanent_exit_codes`).
    pub permanent_exit_codes: Vec<i32>,
    /// How long a process group has between SIGTERM and SIGKILL, on
    /// timeout, cancellation, or when processes outlive the main one
    /// (`kill_grace`, default `10s`).
    #[serde(deserialize_with = "de::duration")]
    pub kill_grace: Duration,
    /// How much of the end of stdout and of stderr is kept in the run's
    /// result (`output_limit`, default `64KiB`, at most `1MiB`).
    #[serde(deserialize_with = "de::bytes")]
    pub output_limit: u64,
}

impl Default for CommandOptions {
    fn default() -> Self {
        CommandOptions {
            command: None,
            shell: None,
            cwd: None,
            env: BTreeMap::new(),
            env_file: None,
            permanent_exit_codes: Vec::new(),
            kill_grace: Duration::from_secs(10),
            output_limit: DEFAULT_OUTPUT_LIMIT,
        }
    }
}

impl JobOptions for CommandOptions {
    const KEYS: &'static [(&'static str, EnvKind)] = &[
        ("command", EnvKind::FileOnly),
        ("shell", EnvKind::Str),
        ("cwd", EnvKind::Str),
        ("env", EnvKind::FileOnly),
        ("env_file", EnvKind::Str),
        ("permanent_exit_codes", EnvKind::FileOnly),
        ("kill_grace", EnvKind::Str),
        ("output_limit", EnvKind::Bytes),
    ];

    fn check(&self) -> Result<(), (&'static str, String)> {
        const HOW: &str = "set `command = [\"program\", \"arg\", ...]` (run without a shell) \
                           or `shell = \"...\"` (run by /bin/sh -c)";
        match (&self.command, &self.shell) {
            (None, None) => return Err(("command", format!("missing: {HOW}"))),
            (Some(_), Some(_)) => {
                return Err((
                    "shell",
                    format!("`command` and `shell` are both set; {HOW}, not both"),
                ));
            }
            (Some(argv), None) => {
                if argv.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err((
                        "command",
                        "must name a program first: command = [\"program\", \"arg\", ...]"
                            .to_owned(),
                    ));
                }
                if argv.iter().any(|a| a.contains('\0')) {
                    return Err(("command", "an argument contains a NUL byte".to_owned()));
                }
            }
            (None, Some(script)) => {
                if script.trim().is_empty() {
                    return Err(("shell", "must not be empty".to_owned()));
                }
                if script.contains('\0') {
                    return Err(("shell", "contains a NUL byte".to_owned()));
                }
            }
        }
        if self.cwd.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(("cwd", "must not be empty (leave it out for the server's)".to_owned()));
        }
        if self.env_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(("env_file", "must not be empty".to_owned()));
        }
        for (name, value) in &self.env {
            check_env_name(name).map_err(|reason| ("env", reason))?;
            if value.expose().contains('\0') {
                return Err(("env", format!("the value of {name} contains a NUL byte")));
            }
        }
        for code in &self.permanent_exit_codes {
            if !(1..=255).contains(code) {
                return Err((
                    "permanent_exit_codes",
                    format!("exit codes are from 1 to 255 (0 is success), got {code}"),
                ));
            }
        }
        if self.output_limit > MAX_OUTPUT_LIMIT {
            return Err((
                "output_limit",
                format!(
                    "must be at most 1MiB ({MAX_OUTPUT_LIMIT} bytes), got {}",
                    self.output_limit
                ),
            ));
        }
        Ok(())
    }
}

/// Checks an environment variable name: letters, digits and `_`, not
/// starting with a digit.
pub fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a valid environment variable name (letters, digits and _, \
             not starting with a digit)"
        ))
    }
}

/// The statuses an HTTP job expects (`expect_status`): one code, a list of
/// codes, or, when unset, any 2xx.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ExpectStatus {
    /// Any status from 200 to 299.
    #[default]
    Any2xx,
    /// One of these.
    OneOf(Vec<u16>),
}

impl ExpectStatus {
    /// Whether `status` is expected.
    pub fn matches(&self, status: u16) -> bool {
        match self {
            ExpectStatus::Any2xx => (200..300).contains(&status),
            ExpectStatus::OneOf(codes) => codes.contains(&status),
        }
    }
}

impl<'de> Deserialize<'de> for ExpectStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(i64),
            Many(Vec<i64>),
        }
        let codes = match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a status code such as 200, or a list such as [200, 204]",
            )
        })? {
            Raw::One(c) => vec![c],
            Raw::Many(cs) => cs,
        };
        if codes.is_empty() {
            return Err(serde::de::Error::custom(
                "an empty list expects nothing; leave `expect_status` out for any 2xx",
            ));
        }
        codes
            .into_iter()
            .map(|c| match u16::try_from(c) {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(serde::de::Error::custom(format!(
                    "a status code is from 100 to 599, got {c}"
                ))),
            })
            .collect::<Result<Vec<u16>, _>>()
            .map(ExpectStatus::OneOf)
    }
}

/// `[jobs.<id>] kind = "http"`: one request, its status checked.
///
/// `headers` and `body` may use `${VAR}`, taken from the server's
/// environment when the job runs (`$${` is a literal `${`). `Debug` shows
/// the header names and the body's length, never their text.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpOptions {
    /// The method (`method`, default `GET`).
    pub method: String,
    /// The URL, `http://` or `https://` (`url`, required).
    pub url: String,
    /// Request headers (`headers`).
    pub headers: BTreeMap<String, String>,
    /// The request body (`body`), sent as is.
    pub body: Option<String>,
    /// The statuses that are a success (`expect_status`, default any 2xx).
    pub expect_status: ExpectStatus,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            method: "GET".to_owned(),
            url: String::new(),
            headers: BTreeMap::new(),
            body: None,
            expect_status: ExpectStatus::Any2xx,
        }
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body.as_ref().map(|b| format!("({} bytes)", b.len())))
            .field("expect_status", &self.expect_status)
            .finish()
    }
}

impl JobOptions for HttpOptions {
    const KEYS: &'static [(&'static str, EnvKind)] = &[
        ("method", EnvKind::Str),
        ("url", EnvKind::Str),
        ("headers", EnvKind::FileOnly),
        ("body", EnvKind::Str),
        ("expect_status", EnvKind::FileOnly),
    ];

    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.url.trim().is_empty() {
            return Err(("url", "missing: the URL to call, http:// or https://".to_owned()));
        }
        crate::http_client::parse_http_url(&self.url).map_err(|reason| ("url", reason))?;
        if reqwest::Method::from_bytes(self.method.to_ascii_uppercase().as_bytes()).is_err()
            || self.method.is_empty()
        {
            return Err(("method", format!("\"{}\" is not an HTTP method", self.method)));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(("headers", format!("\"{name}\" is not a valid header name")));
            }
            template_vars(value).map_err(|e| ("headers", format!("header {name}: {e}")))?;
            // Without a variable the value is final: check it now.
            if !value.contains("${") && reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(("headers", format!("header {name}: not a valid header value")));
            }
        }
        if let Some(body) = &self.body {
            template_vars(body).map_err(|e| ("body", e))?;
        }
        Ok(())
    }
}

/// Whether `name` is one of the server's own settings (`MSCRIBE_*`).
pub fn is_server_variable(name: &str) -> bool {
    name.to_ascii_uppercase().starts_with("MSCRIBE_")
}

/// Checks that a job defined through the API or the CLI reads only the
/// environment variables in `allowed` (`[api] allow_env`); the error
/// names the key and the variable.
pub fn check_allowed_env(def: &UserJobDef, allowed: &[String]) -> Result<(), DefError> {
    for (key, var) in def.env_vars() {
        let reason = if is_server_variable(var) {
            format!(
                "${{{var}}}: the server's own settings (MSCRIBE_*) are never readable by a job \
                 defined through the API or the CLI"
            )
        } else if !allowed.iter().any(|a| a == var) {
            format!(
                "${{{var}}}: a job defined through the API or the CLI reads only the environment \
                 variables the configuration lists in [api] allow_env (MSCRIBE_API_ALLOW_ENV), \
                 and {var} is not one of them"
            )
        } else {
            continue;
        };
        return Err(DefError::new(key, reason));
    }
    Ok(())
}

/// The `${VAR}` names of a template, checked: each closed, each a valid
/// variable name; `$${` is a literal `${`.
pub fn template_vars(template: &str) -> Result<Vec<&str>, String> {
    let mut vars = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            rest = lit;
            continue;
        }
        let Some(inner) = after.strip_prefix('{') else {
            rest = after;
            continue;
        };
        let end = inner.find('}').ok_or_else(|| {
            "`${` is not closed by `}` (write `$${` for a literal `${`)".to_owned()
        })?;
        let name = &inner[..end];
        check_env_name(name).map_err(|e| format!("in ${{{name}}}: {e}"))?;
        vars.push(name);
        rest = &inner[end + 1..];
    }
    Ok(vars)
}

/// Expands the `${VAR}` of `template` with `env`; a variable `env` does
/// not have is an error naming it (never a value).
pub fn expand(template: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
            continue;
        }
        let Some(inner) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let end = inner.find('}').ok_or_else(|| "`${` is not closed by `}`".to_owned())?;
        let name = &inner[..end];
        match env(name) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(format!(
                    "environment variable {name} is not set (used as ${{{name}}})"
                ));
            }
        }
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A bad definition of a job of your own: the key, relative to the job's
/// section (empty for the id itself), and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct DefError {
    /// The key, e.g. `command` or `retry.attempts`; empty for the id.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl DefError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        DefError { key: key.into(), reason: reason.into() }
    }
}

/// The definition of a job of your own, parsed and checked: its section
/// (scheduling settings and options) by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum UserJobDef {
    /// `kind = "command"`.
    Command(JobSection<CommandOptions>),
    /// `kind = "http"`.
    Http(JobSection<HttpOptions>),
}

impl UserJobDef {
    /// Parses and checks the definition of job `id` from its section's
    /// table (with its `kind`): the id, the keys (an unknown one is refused,
    /// naming it), the scheduling settings and the options. The one entry
    /// point for a definition, whatever its source.
    pub fn from_toml(id: &str, mut table: toml::Table) -> Result<UserJobDef, DefError> {
        check_id(id).map_err(|r| DefError::new("", r))?;
        let kinds = USER_KINDS.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(" or ");
        let kind = match table.remove("kind") {
            None => return Err(DefError::new("kind", format!("missing: kind = {kinds}"))),
            Some(toml::Value::String(k)) => k,
            Some(other) => {
                return Err(DefError::new(
                    "kind",
                    format!("expected {kinds}, got {} {other}", other.type_str()),
                ));
            }
        };
        let def = match kind.as_str() {
            "command" => UserJobDef::Command(section(&defs::COMMAND, table)?),
            "http" => UserJobDef::Http(section(&defs::HTTP, table)?),
            other => {
                return Err(DefError::new(
                    "kind",
                    format!("unknown kind \"{other}\", expected {kinds}"),
                ));
            }
        };
        def.check()?;
        Ok(def)
    }

    /// [`from_toml`](Self::from_toml) for a JSON object (as an API body
    /// would hold it): the same keys, checks and messages. JSON `null` has
    /// no TOML counterpart: leave the key out instead.
    pub fn from_json(id: &str, value: serde_json::Value) -> Result<UserJobDef, DefError> {
        if !value.is_object() {
            return Err(DefError::new("", "expected a JSON object with the job's keys"));
        }
        if let Some((key, reason)) = not_toml(&value, "") {
            return Err(DefError::new(key, reason));
        }
        let table =
            toml::Table::deserialize(value).map_err(|e| DefError::new("", e.to_string()))?;
        UserJobDef::from_toml(id, table)
    }

    /// The row of its kind in the table of jobs.
    pub fn kind(&self) -> &'static JobKind {
        match self {
            UserJobDef::Command(_) => &defs::COMMAND,
            UserJobDef::Http(_) => &defs::HTTP,
        }
    }

    /// The `${VAR}` a run of this job reads from the environment, with the
    /// key that uses each (`headers`, `body`).
    pub fn env_vars(&self) -> Vec<(&'static str, &str)> {
        let UserJobDef::Http(s) = self else { return Vec::new() };
        let o = &s.options;
        let headers = o.headers.values().flat_map(|v| template_vars(v).unwrap_or_default());
        let body = o.body.iter().flat_map(|b| template_vars(b).unwrap_or_default());
        headers.map(|v| ("headers", v)).chain(body.map(|v| ("body", v))).collect()
    }

    /// The scheduling settings.
    pub fn common(&self) -> CommonSettings<'_> {
        match self {
            UserJobDef::Command(s) => s.common(),
            UserJobDef::Http(s) => s.common(),
        }
    }

    /// Checks the values: the scheduling settings (a `schedule` is
    /// required), then the options of the kind.
    pub fn check(&self) -> Result<(), DefError> {
        if self.common().schedule.trim().is_empty() {
            return Err(DefError::new(
                "schedule",
                "missing: a job of your own needs a schedule, e.g. \"0 3 * * *\" or \"@every 5m\"",
            ));
        }
        self.common().check().map_err(|(k, r)| DefError::new(k, r))?;
        let options = match self {
            UserJobDef::Command(s) => s.options.check(),
            UserJobDef::Http(s) => s.options.check(),
        };
        options.map_err(|(k, r)| DefError::new(k, r))
    }
}

/// The first value of a JSON definition that TOML cannot hold, with its key
/// (`retry.attempts`, `headers.a[1]`): a null, or an integer past `i64`.
fn not_toml(value: &serde_json::Value, key: &str) -> Option<(String, String)> {
    use serde_json::Value;
    let at = |k: &str| if key.is_empty() { k.to_owned() } else { format!("{key}.{k}") };
    match value {
        Value::Null => {
            Some((key.to_owned(), "null is not a value: leave the key out instead".into()))
        }
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => Some((
            key.to_owned(),
            format!("{n} is too large: an integer here is at most {}", i64::MAX),
        )),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| not_toml(v, &format!("{key}[{i}]")))
        }
        Value::Object(map) => map.iter().find_map(|(k, v)| not_toml(v, &at(k))),
        _ => None,
    }
}

/// The section of a job of kind `kind`: the kind's defaults, then `table`.
fn section<O: JobOptions>(kind: &JobKind, table: toml::Table) -> Result<JobSection<O>, DefError> {
    let mut s = JobSection::<O>::for_kind(kind);
    s.overlay(table).map_err(|(k, r)| DefError::new(k, r))?;
    Ok(s)
}

/// Checks the id of a job of your own: 1 to 64 letters, digits, `-` and
/// `_`, starting with a letter or digit, and not a built-in job's id.
pub fn check_id(id: &str) -> Result<(), String> {
    if job_kind(id).is_some() {
        return Err(format!("`{id}` is a built-in job; a job of your own needs another id"));
    }
    let ok = id.len() <= MAX_JOB_ID_LEN
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid job id \"{id}\": 1 to {MAX_JOB_ID_LEN} letters, digits, - and _, \
             starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err(text: &str, env: impl Fn(&str) -> Option<String>) -> String {
        Config::from_toml_str(text, "mscribe.toml", env).unwrap_err().to_string()
    }

    const BOTH: &str = r#"
        [jobs.nightly-report]
        kind = "command"
        command = ["/usr/local/bin/report", "--since", "1d"]
        schedule = "0 3 * * *"
        cwd = "/srv/reports"
        env = { API_TOKEN = "t0ps3cret" }
        permanent_exit_codes = [2, 64]
        retry = { attempts = 3 }

        [jobs.ping]
        kind = "http"
        url = "https://hooks.example.test/ping"
        method = "post"
        headers = { authorization = "Bearer ${PING_TOKEN}" }
        body = '{"from": "mscribe"}'
        expect_status = [200, 204]
        schedule = "@every 5m"
    "#;

    #[test]
    fn command_and_http_jobs_parse_with_their_defaults() {
        let c = Config::from_toml_str(BOTH, "x", no_env).unwrap();
        let ids: Vec<&str> = c.jobs.all().iter().map(|j| j.id).collect();
        assert_eq!(&ids[..7], &crate::config::JOB_IDS[..]);
        assert_eq!(&ids[7..], ["nightly-report", "ping"]);
        let UserJobDef::Command(cmd) = &c.jobs.user["nightly-report"] else { panic!() };
        assert_eq!(cmd.options.command.as_ref().unwrap()[0], "/usr/local/bin/report");
        assert_eq!(cmd.options.kill_grace, Duration::from_secs(10));
        assert_eq!(cmd.options.output_limit, DEFAULT_OUTPUT_LIMIT);
        assert_eq!(cmd.timeout, Duration::from_secs(600));
        assert_eq!(cmd.retry.attempts, 3);
        let UserJobDef::Http(http) = &c.jobs.user["ping"] else { panic!() };
        assert_eq!(http.options.expect_status, ExpectStatus::OneOf(vec![200, 204]));
        assert_eq!(http.timeout, Duration::from_secs(30));
        let j = c.jobs.get("ping").unwrap();
        assert_eq!((j.kind.id, j.name, j.common.schedule), ("http", "ping", "@every 5m"));
        assert!(!j.kind.per_instance, "a job of your own runs once per cluster");
        // Nothing of `env` or of the headers shows in the config's Debug.
        let debug = format!("{c:?}");
        assert!(!debug.contains("t0ps3cret") && !debug.contains("PING_TOKEN"), "{debug}");
    }

    #[test]
    fn json_definitions_take_the_same_path_as_toml() {
        let json = serde_json::json!({
            "kind": "command",
            "shell": "echo hi",
            "schedule": "@hourly",
            "retry": { "attempts": 2 },
        });
        let def = UserJobDef::from_json("hi", json).unwrap();
        assert_eq!(def.kind().id, "command");
        assert_eq!(def.common().retry.attempts, 2);
        let e = UserJobDef::from_json(
            "hi",
            serde_json::json!({"kind": "command", "schedule": "@hourly"}),
        )
        .unwrap_err();
        let t: toml::Table = "kind = \"command\"\nschedule = \"@hourly\"".parse().unwrap();
        assert_eq!(e, UserJobDef::from_toml("hi", t).unwrap_err());
        assert_eq!(e.key, "command");
        let e = UserJobDef::from_json("x", serde_json::json!({"kind": "http", "url": null}));
        let e = e.unwrap_err();
        assert_eq!((e.key.as_str(), e.reason.contains("leave the key out")), ("url", true), "{e}");
        // What TOML cannot hold names its key and its value.
        let http = |extra: serde_json::Value| {
            let mut v =
                serde_json::json!({"kind": "http", "url": "http://x/", "schedule": "@hourly"});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            UserJobDef::from_json("x", v).unwrap_err()
        };
        let e = http(serde_json::json!({"max_concurrent": u64::MAX}));
        assert_eq!(e.key, "max_concurrent");
        assert!(e.reason.contains("18446744073709551615") && e.reason.contains("at most"), "{e}");
        let e = http(serde_json::json!({"timezone": null}));
        assert_eq!(
            (e.key.as_str(), e.reason.contains("leave the key out")),
            ("timezone", true),
            "{e}"
        );
        let e = http(serde_json::json!({"retry": {"attempts": null}}));
        assert_eq!(e.key, "retry.attempts");
        let e = http(serde_json::json!({"headers": {"a": [1, null]}}));
        assert_eq!(e.key, "headers.a[1]");
        let e = UserJobDef::from_json("log-rotation", serde_json::json!({"kind": "http"}));
        assert_eq!(
            e.unwrap_err().to_string(),
            "`log-rotation` is a built-in job; a job of your own needs another id"
        );
    }

    #[test]
    fn api_definitions_refuse_huge_durations_naming_key_and_value() {
        let def = serde_json::json!({
            "kind": "command",
            "shell": "sleep 1",
            "schedule": "@hourly",
            "kill_grace": "300000000000y",
        });
        let e = UserJobDef::from_json("x", def).unwrap_err();
        assert_eq!(e.key, "kill_grace");
        assert_eq!(e.reason, "must be at most 100y, got \"300000000000y\"");
        let def = serde_json::json!({
            "kind": "http",
            "url": "http://h/",
            "schedule": "@hourly",
            "retry": { "attempts": 2, "max_delay": "300000000000y" },
        });
        let e = UserJobDef::from_json("x", def).unwrap_err();
        assert_eq!(e.key, "retry.max_delay");
        assert!(e.reason.contains("300000000000y"), "{e}");
    }

    #[test]
    fn bad_definitions_name_the_job_and_the_key() {
        let cases = [
            "[jobs.my-report]\nschedule = \"@daily\"\ncommand = [\"report\"]",
            "[jobs.r]\nkind = \"cron\"\nschedule = \"@daily\"",
            "[jobs.r]\nkind = 1",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"a\"]\nshell = \"a\"",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\ncommand = []",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\nshell = \" \"",
            "[jobs.r]\nkind = \"command\"\ncommand = [\"a\"]",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\ncomand = [\"a\"]",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\ncommand = \"a b\"",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"a\"]\npermanent_exit_codes = [0]",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"a\"]\noutput_limit = \"2MiB\"",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"a\"]\nenv = { \"1A\" = \"v\" }",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"a\"]\nkill_grace = 5",
            "[jobs.r]\nkind = \"command\"\nschedule = \"61 * * * *\"\ncommand = [\"a\"]",
            "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\ncommand = [\"a\"]\nretry = { attempts = 0 }",
            "[jobs.database-backup]\nkind = \"command\"",
            "[jobs.\"my report\"]\nkind = \"command\"",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"\nurl = \"ftp://files/x\"",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"\nurl = \"https://u:p@h/\"",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"\nurl = \"http:///status/200\"",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"\nurl = \"http://h/\"\nmethod = \"G T\"",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"\nurl = \"http://h/\"\nexpect_status = []",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"\nurl = \"http://h/\"\nexpect_status = 700",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"\nurl = \"http://h/\"\nheaders = { \"x y\" = \"1\" }",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"\nurl = \"http://h/\"\nheaders = { a = \"${TOKEN\" }",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"\nurl = \"http://h/\"\nbody = \"${1X}\"",
            "[jobs.h]\nkind = \"http\"\nschedule = \"@daily\"\nurl = \"http://h/\"\nshell = \"x\"",
            "[jobs.a-b]\nkind = \"command\"\nschedule = \"@daily\"\nshell = \"x\"\n\
             [jobs.a_b]\nkind = \"command\"\nschedule = \"@daily\"\nshell = \"y\"",
            "[jobs.Database_Backup]\nkind = \"command\"\nschedule = \"@daily\"\nshell = \"x\"",
        ];
        let out: Vec<String> =
            cases.iter().map(|c| format!("{c}\n=> {}\n", err(c, no_env))).collect();
        insta::assert_snapshot!("user_job_errors", out.join("\n"));
    }

    #[test]
    fn scalar_keys_of_user_jobs_are_overridden_from_the_environment() {
        let env = |k: &str| -> Option<String> {
            Some(
                match k {
                    "MSCRIBE_JOBS_NIGHTLY_REPORT_TIMEOUT" => "2m",
                    "MSCRIBE_JOBS_NIGHTLY_REPORT_RETRY_ATTEMPTS" => "5",
                    "MSCRIBE_JOBS_NIGHTLY_REPORT_KILL_GRACE" => "3s",
                    "MSCRIBE_JOBS_PING_URL" => "http://127.0.0.1:9/ping",
                    "MSCRIBE_JOBS_PING_ENABLED" => "false",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let c = Config::from_toml_str(BOTH, "x", env).unwrap();
        let UserJobDef::Command(cmd) = &c.jobs.user["nightly-report"] else { panic!() };
        assert_eq!((cmd.timeout, cmd.retry.attempts), (Duration::from_secs(120), 5));
        assert_eq!(cmd.options.kill_grace, Duration::from_secs(3));
        let UserJobDef::Http(http) = &c.jobs.user["ping"] else { panic!() };
        assert_eq!(http.options.url, "http://127.0.0.1:9/ping");
        assert!(!http.enabled);
        // An override's error names the variable; lists and tables are not
        // variables at all.
        let e = err(BOTH, |k: &str| (k == "MSCRIBE_JOBS_PING_URL").then(|| "ftp://x".to_owned()));
        assert_eq!(
            e,
            "invalid config: key `jobs.ping.url` in environment variable MSCRIBE_JOBS_PING_URL: \
             \"ftp://x\" is not an http:// or https:// URL (scheme \"ftp\")"
        );
        let table: toml::Table = BOTH.parse().unwrap();
        let vars: Vec<String> =
            crate::config::user_job_env_keys(&table).into_iter().map(|k| k.var).collect();
        assert!(vars.contains(&"MSCRIBE_JOBS_NIGHTLY_REPORT_SHELL".to_owned()));
        assert!(!vars.iter().any(|v| v.ends_with("_COMMAND") || v.ends_with("_HEADERS")));
    }

    #[test]
    fn templates_expand_and_escape() {
        let env = |k: &str| (k == "A").then(|| "1".to_owned());
        assert_eq!(expand("x${A}y$${A}$z", env).unwrap(), "x1y${A}$z");
        assert_eq!(template_vars("${A}-${B_2}").unwrap(), ["A", "B_2"]);
        assert_eq!(
            expand("${NOPE}", env).unwrap_err(),
            "environment variable NOPE is not set (used as ${NOPE})"
        );
        assert!(template_vars("${A").is_err());
    }
}
