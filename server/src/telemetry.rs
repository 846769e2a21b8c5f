//! OpenTelemetry traces (feature `otel`): the OTLP/HTTP exporter and the
//! `tracing` layer that sends the spans of runs, attempts and API requests
//! ([`TRACE_TARGET`]), the server span of an API request, and the
//! `traceparent` header of an HTTP job's request. Without the feature no
//! OpenTelemetry crate is built; [`Telemetry`], [`inject_traceparent`],
//! [`api_span`] and [`record_response`] remain and do nothing (the span
//! they would open is disabled).
//!
//! The spans are `tracing` spans on their own target, which the log layers
//! filter out: without the OpenTelemetry layer no layer enables their
//! callsites, so none is created (see [`mscribe_scheduler::TRACE_TARGET`]).
//!
//! | span | attributes |
//! |---|---|
//! | `mscribe.run` (a root) | `job_id`, `execution_id`, `fire_key`, `trigger`, `status` |
//! | `mscribe.attempt` (child of its run) | the same and `attempt` |
//! | `METHOD /route` (kind server) | `http.request.method`, `http.route`, `url.path`, `http.response.status_code` |

use tracing::Span;
use tracing::field::Empty;
use warp::http::{HeaderMap, Method, StatusCode};

#[cfg(feature = "otel")]
use crate::config::TelemetryConfig;

use mscribe_scheduler::TRACE_TARGET;

/// The installed tracer provider, if any: [`shutdown`](Self::shutdown)
/// exports the spans still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// No provider: nothing to flush.
    pub fn none() -> Self {
        Telemetry::default()
    }

    /// Whether spans are being exported.
    pub fn is_on(&self) -> bool {
        #[cfg(feature = "otel")]
        return self.provider.is_some();
        #[cfg(not(feature = "otel"))]
        false
    }

    /// Exports the spans still buffered and stops the exporter. Blocks
    /// until the export is done or times out (call it off the async
    /// workers, e.g. in `spawn_blocking`).
    pub fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(p) = self.provider {
            if let Err(e) = p.force_flush() {
                tracing::warn!(error = %e, "cannot export the last spans");
            }
            let _ = p.shutdown();
        }
    }
}

#[cfg(feature = "otel")]
pub use otel::{layer, otlp_provider, provider_builder};

/// What the OpenTelemetry crates need; built with the `otel` feature only.
#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, TracerProviderBuilder};
    use tracing::Subscriber;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::registry::LookupSpan;
    use warp::http::{HeaderMap, HeaderName, HeaderValue};

    use super::{Span, TRACE_TARGET, Telemetry, TelemetryConfig};

    /// A tracer provider with `cfg`'s sampler (the ratio for roots, the
    /// parent's choice for children) and `service.name`, without an
    /// exporter: add one (tests add an in-memory one).
    pub fn provider_builder(cfg: &TelemetryConfig) -> TracerProviderBuilder {
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample_ratio)));
        let resource = Resource::builder()
            .with_service_name(cfg.service_name.clone())
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        SdkTracerProvider::builder().with_sampler(sampler).with_resource(resource)
    }

    /// The provider of `cfg`: spans batched to its OTLP/HTTP endpoint
    /// (protobuf, reqwest with rustls). `None` when no endpoint is set.
    pub fn otlp_provider(cfg: &TelemetryConfig) -> Result<Option<SdkTracerProvider>, String> {
        use opentelemetry_otlp::WithExportConfig;
        let Some(url) = cfg.traces_url() else { return Ok(None) };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .build()
            .map_err(|e| {
                format!(
                    "cannot set up the OTLP exporter to {}: {e}",
                    crate::config::redact_url(&url)
                )
            })?;
        Ok(Some(provider_builder(cfg).with_batch_exporter(exporter).build()))
    }

    /// The layer sending the spans of [`TRACE_TARGET`] (and nothing else)
    /// through `provider`.
    pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("mscribe"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(TRACE_TARGET, tracing::Level::INFO))
    }

    impl Telemetry {
        /// Wraps an installed provider.
        pub(crate) fn with_provider(provider: SdkTracerProvider) -> Self {
            Telemetry { provider: Some(provider) }
        }
    }

    /// Headers as a propagation carrier.
    struct Headers<'a>(&'a mut HeaderMap);

    impl Injector for Headers<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value))
            {
                // A header the job sets itself wins.
                self.0.entry(name).or_insert(value);
            }
        }
    }

    struct ReadHeaders<'a>(&'a HeaderMap);

    impl Extractor for ReadHeaders<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(HeaderName::as_str).collect()
        }
    }

    pub(super) fn inject(span: &Span, headers: &mut HeaderMap) {
        TraceContextPropagator::new().inject_context(&span.context(), &mut Headers(headers));
    }

    pub(super) fn set_remote_parent(span: &Span, headers: &HeaderMap) {
        if headers.contains_key("traceparent") {
            let cx = TraceContextPropagator::new().extract(&ReadHeaders(headers));
            let _ = span.set_parent(cx);
        }
    }
}

/// Installs the exporter of `cfg` when it has an endpoint (and the build
/// the `otel` feature): returns the layer to add to the subscriber and the
/// handle that flushes it.
#[cfg(feature = "otel")]
pub(crate) fn install<S>(
    cfg: &TelemetryConfig,
) -> Result<(Option<impl tracing_subscriber::Layer<S> + use<S>>, Telemetry), String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    match otel::otlp_provider(cfg)? {
        Some(p) => Ok((Some(otel::layer(&p)), Telemetry::with_provider(p))),
        None => Ok((None, Telemetry::none())),
    }
}

/// Adds the W3C `traceparent` (and `tracestate`) of the current span to
/// `headers`, unless they set it already; nothing when the span is not
/// exported.
pub fn inject_traceparent(headers: &mut HeaderMap) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    #[cfg(feature = "otel")]
    otel::inject(&span, headers);
    #[cfg(not(feature = "otel"))]
    let _ = headers;
}

/// The server span of an API request (`otel.kind` server), named
/// `METHOD /route` from `route` (called only when the span is exported),
/// child of the caller's `traceparent` when it sends one.
pub fn api_span(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    route: impl FnOnce() -> &'static str,
) -> Span {
    // As the engine does: no disabled span (which tracing's `log` feature
    // would still fill in for the `log` crate when no subscriber is set).
    if !tracing::enabled!(target: TRACE_TARGET, tracing::Level::INFO) {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TRACE_TARGET,
        "mscribe.api",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = Empty,
        url.path = path,
        http.response.status_code = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let route = route();
    span.record("http.route", route);
    span.record("otel.name", format!("{method} {route}"));
    #[cfg(feature = "otel")]
    otel::set_remote_parent(&span, headers);
    #[cfg(not(feature = "otel"))]
    let _ = headers;
    span
}

/// Records the answer's status on an API request's span (a 5xx is an
/// error).
pub fn record_response(span: &Span, status: StatusCode) {
    if span.is_disabled() {
        return;
    }
    // An i64, an int attribute as the semantic conventions want (the
    // OpenTelemetry bridge exports an u64 as a string).
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}
