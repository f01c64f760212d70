//! Tracing, set up once per process, and W3C trace context carried in AMQP headers.
//!
//! Spans get real trace and span ids from an OpenTelemetry tracer provider, so `traceparent`
//! travels from the publisher (stored with the outbox row) to the consumer, which continues the
//! trace. Exporting the spans over OTLP plugs into the same provider.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber: `RUST_LOG`-filtered logs (text or JSON) plus the
/// OpenTelemetry layer. Safe to call more than once (tests run several services in one process).
pub fn init(service_name: &str, json: bool) {
    let provider = PROVIDER.get_or_init(|| SdkTracerProvider::builder().build());
    let tracer = provider.tracer(service_name.to_owned());
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_filter(filter())
            .boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init();
}

/// The current span's `traceparent` (and `tracestate`) as AMQP header values.
pub fn current_trace_headers() -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MapInjector(&mut headers));
    headers
}

/// The current span's trace id, if it has one (for the ledger and `landfall status`).
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Makes `span` a child of the trace named by the incoming headers (if any).
pub fn continue_trace(span: &tracing::Span, headers: &BTreeMap<String, String>) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let context = TraceContextPropagator::new().extract(&MapExtractor(headers));
    let _ = span.set_parent(context);
}

struct MapInjector<'a>(&'a mut BTreeMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapExtractor<'a>(&'a BTreeMap<String, String>);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}
