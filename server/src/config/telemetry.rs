//! `[telemetry]`: where traces go (an OTLP/HTTP collector), the service
//! name they carry and the share of runs and requests sampled; with its
//! checks. Read whatever the build; traces are sent only by a build with
//! the `otel` feature.
//!
//! ```
//! use mscribe_server::config::Config;
//!
//! let cfg = Config::from_toml_str(
//!     "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.25\n",
//!     "inline.toml",
//!     |_| None,
//! )?;
//! assert_eq!(cfg.telemetry.traces_url().as_deref(), Some("http://127.0.0.1:4318/v1/traces"));
//! assert_eq!(cfg.telemetry.service_name, "mscribe");
//! assert_eq!(cfg.telemetry.sample_ratio, 0.25);
//! # Ok::<(), mscribe_server::config::ConfigError>(())
//! ```

use serde::Deserialize;

/// The service name of the traces when `service_name` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "mscribe";

/// The path of the OTLP/HTTP traces endpoint, appended to `otlp_endpoint`
/// unless it ends with it already.
pub const OTLP_TRACES_PATH: &str = "/v1/traces";

/// `[telemetry]`: OpenTelemetry traces (feature `otel`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP (protobuf) collector, e.g. `http://127.0.0.1:4318`
    /// (`otlp_endpoint`); traces go to its `/v1/traces`. No traces when
    /// unset (the default).
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the traces (`service_name`, default `mscribe`).
    pub service_name: String,
    /// The share of traces kept, from 0 to 1 (`sample_ratio`, default 1):
    /// each run and each API request without a sampled caller is kept with
    /// this probability; an attempt follows its run, a request with a
    /// `traceparent` follows its caller.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            sample_ratio: 1.0,
        }
    }
}

impl TelemetryConfig {
    /// Whether traces are to be sent: `otlp_endpoint` is set.
    pub fn enabled(&self) -> bool {
        self.otlp_endpoint.is_some()
    }

    /// The URL the spans are posted to: `otlp_endpoint` with
    /// [`OTLP_TRACES_PATH`] appended unless it ends with it.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.otlp_endpoint.as_deref()?.trim();
        if base.trim_end_matches('/').ends_with(OTLP_TRACES_PATH) {
            return Some(base.to_owned());
        }
        Some(format!("{}{OTLP_TRACES_PATH}", base.trim_end_matches('/')))
    }

    /// Checks the values; an error is the key and what is wrong with it.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(url) = &self.otlp_endpoint {
            let parsed = crate::http_client::parse_http_url(url)
                .map_err(|reason| ("otlp_endpoint", reason))?;
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err((
                    "otlp_endpoint",
                    format!("\"{}\" must not have a query or a fragment", super::redact_url(url)),
                ));
            }
        }
        if self.service_name.trim().is_empty() {
            return Err(("service_name", "must not be empty".to_owned()));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err((
                "sample_ratio",
                format!("must be between 0 and 1, got {}", self.sample_ratio),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    fn err(text: &str) -> String {
        Config::from_toml_str(text, "mscribe.toml", |_| None).unwrap_err().to_string()
    }

    #[test]
    fn defaults_send_nothing() {
        let c = Config::from_toml_str("", "x", |_| None).unwrap();
        assert!(!c.telemetry.enabled());
        assert_eq!(c.telemetry.traces_url(), None);
        assert_eq!(c.telemetry.service_name, "mscribe");
        assert_eq!(c.telemetry.sample_ratio, 1.0);
    }

    #[test]
    fn the_traces_path_is_appended_once() {
        let url = |e: &str| {
            let text = format!("[telemetry]\notlp_endpoint = \"{e}\"");
            Config::from_toml_str(&text, "x", |_| None).unwrap().telemetry.traces_url().unwrap()
        };
        assert_eq!(url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(url("https://c/otlp"), "https://c/otlp/v1/traces");
        assert_eq!(url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        assert_eq!(
            err("[telemetry]\nsample_ratio = 1.5"),
            "invalid config: key `telemetry.sample_ratio` in file mscribe.toml: must be between \
             0 and 1, got 1.5"
        );
        assert_eq!(
            err("[telemetry]\nsample_ratio = -0.1"),
            "invalid config: key `telemetry.sample_ratio` in file mscribe.toml: must be between \
             0 and 1, got -0.1"
        );
        assert_eq!(
            err("[telemetry]\nsample_ratio = nan"),
            "invalid config: key `telemetry.sample_ratio` in file mscribe.toml: must be between \
             0 and 1, got NaN"
        );
        assert_eq!(
            err("[telemetry]\notlp_endpoint = \"grpc://c:4317\""),
            "invalid config: key `telemetry.otlp_endpoint` in file mscribe.toml: \"grpc://c:4317\" \
             is not an http:// or https:// URL (scheme \"grpc\")"
        );
        assert_eq!(
            err("[telemetry]\notlp_endpoint = \"http://c:4318/?x=1\""),
            "invalid config: key `telemetry.otlp_endpoint` in file mscribe.toml: \
             \"http://c:4318/?x=1\" must not have a query or a fragment"
        );
        assert_eq!(
            err("[telemetry]\nservice_name = \" \""),
            "invalid config: key `telemetry.service_name` in file mscribe.toml: must not be empty"
        );
        assert!(err("[telemetry]\nendpoint = \"http://c\"").contains("telemetry"));
    }

    #[test]
    fn endpoint_errors_name_the_url_with_its_password_redacted() {
        assert_eq!(
            err("[telemetry]\notlp_endpoint = \"http://user:SECRETPW3@127.0.0.1:4318\""),
            "invalid config: key `telemetry.otlp_endpoint` in file mscribe.toml: \
             \"http://user:REDACTED@127.0.0.1:4318\": credentials in the URL are not supported; \
             send them in a header"
        );
        assert_eq!(
            err("[telemetry]\notlp_endpoint = \"http://c:4318/?password=SECRETPW4\""),
            "invalid config: key `telemetry.otlp_endpoint` in file mscribe.toml: \
             \"http://c:4318/?password=REDACTED\" must not have a query or a fragment"
        );
        let e = Config::from_toml_str("", "x", |k: &str| {
            (k == "MSCRIBE_HEALTH_AUTH_URL")
                .then(|| "http://u:SECRETAUTH11@127.0.0.1:1/x".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert!(!e.contains("SECRETAUTH11") && e.contains("u:REDACTED@127.0.0.1:1/x"), "{e}");
    }

    #[test]
    fn the_environment_overrides_each_key() {
        let env = |k: &str| match k {
            "MSCRIBE_TELEMETRY_OTLP_ENDPOINT" => Some("http://collector:4318".to_owned()),
            "MSCRIBE_TELEMETRY_SERVICE_NAME" => Some("mscribe-eu".to_owned()),
            "MSCRIBE_TELEMETRY_SAMPLE_RATIO" => Some("0.5".to_owned()),
            _ => None,
        };
        let c = Config::from_toml_str("", "x", env).unwrap();
        assert_eq!(c.telemetry.otlp_endpoint.as_deref(), Some("http://collector:4318"));
        assert_eq!(c.telemetry.service_name, "mscribe-eu");
        assert_eq!(c.telemetry.sample_ratio, 0.5);
        let e = Config::from_toml_str("", "x", |k: &str| {
            (k == "MSCRIBE_TELEMETRY_SAMPLE_RATIO").then(|| "2".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "invalid config: key `telemetry.sample_ratio` in environment variable \
             MSCRIBE_TELEMETRY_SAMPLE_RATIO: must be between 0 and 1, got 2"
        );
    }
}
