//! Tracing and metrics, set up once per process, and W3C trace context carried in AMQP headers.
//!
//! Configured only by the standard OpenTelemetry variables: with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans and metrics are exported over OTLP/gRPC
//! by batching exporters off the hot path; `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*` and `OTEL_METRIC_EXPORT_INTERVAL` apply. Without an
//! endpoint nothing is exported, but spans still get real ids, so `traceparent` still travels
//! from a publisher (stored with the outbox row) to its consumer, which continues the trace.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::Context as _;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static TRACER_PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static METER_PROVIDER: OnceLock<SdkMeterProvider> = OnceLock::new();

/// Whether `service.name` comes from `OTEL_RESOURCE_ATTRIBUTES` alone: set there while
/// `OTEL_SERVICE_NAME` (which takes precedence, and which the configuration reads) is not.
fn service_name_in_resource_attributes(var: impl Fn(&str) -> Option<String>) -> bool {
    var("OTEL_SERVICE_NAME").is_none_or(|name| name.trim().is_empty())
        && var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
            attributes.split(',').any(|pair| {
                pair.split_once('=')
                    .is_some_and(|(key, _)| key.trim() == "service.name")
            })
        })
}

/// Whether the standard variables ask for OTLP export; an unsupported protocol is an error.
pub fn otlp_export_enabled(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<bool> {
    let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true")) {
        return Ok(false);
    }
    if set("OTEL_TRACES_EXPORTER").is_some_and(|value| value == "none") {
        return Ok(false);
    }
    if let Some(protocol) =
        set("OTEL_EXPORTER_OTLP_PROTOCOL").or_else(|| set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
        && protocol != "grpc"
    {
        anyhow::bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL: '{protocol}' is not supported; landfall exports OTLP over gRPC (use grpc)"
        );
    }
    Ok(set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some())
}

/// Log targets whose debug or trace events carry credentials: the AWS SDK's endpoint and auth
/// resolution print the request's identity (the S3 access key id) at debug, and SigV4 signing
/// prints what it signs at trace. `tests/tests/secrets.rs` runs the services at debug level and
/// checks no key reaches a log line.
const SECRET_PRINTING_TARGETS: &[&str] = &[
    "aws_smithy_runtime::client::orchestrator::endpoints",
    "aws_smithy_runtime::client::orchestrator::auth",
    "aws_sigv4",
];

/// Installs the global subscriber: `RUST_LOG`-filtered logs (text, or JSON where every line
/// inside a span carries the span's fields, `trace_id` among them) plus the OpenTelemetry layer,
/// and, when configured, the OTLP exporters. Must run inside the Tokio runtime. Safe to call
/// more than once (tests run several services in one process): the first call wins.
pub fn init(service_name: &str, json: bool) -> anyhow::Result<()> {
    let export = otlp_export_enabled(|name| std::env::var(name).ok())?;
    let named_by_attributes = service_name_in_resource_attributes(|name| std::env::var(name).ok());
    let resource = || {
        // The builder reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; the service's own
        // name applies only where neither names the service.
        let builder = Resource::builder();
        if named_by_attributes {
            builder.build()
        } else {
            builder.with_service_name(service_name.to_owned()).build()
        }
    };
    let provider = tracer_provider(resource(), export)?;
    if export && METER_PROVIDER.get().is_none() {
        install_meter_provider(resource())?;
    }
    let tracer = provider.tracer(service_name.to_owned());
    let _ = tracing_subscriber::registry()
        .with(log_layer(json))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                // landfall's own spans; the clients' internals would drown them.
                .with_filter(EnvFilter::new(
                    "info,lapin=off,amq_protocol=off,aws_smithy_runtime=off,aws_sdk_s3=off,aws_sdk_sqs=off,hyper=off,h2=off,tonic=off,tower=off,tokio_postgres=off",
                )),
        )
        .try_init();
    Ok(())
}

/// The process's tracer provider, made by the first call (with the OTLP span exporter when
/// `export`).
fn tracer_provider(resource: Resource, export: bool) -> anyhow::Result<&'static SdkTracerProvider> {
    let mut failure = None;
    let provider = TRACER_PROVIDER.get_or_init(|| {
        let mut builder = SdkTracerProvider::builder().with_resource(resource);
        if export {
            match opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
            {
                Ok(exporter) => builder = builder.with_batch_exporter(exporter),
                Err(error) => {
                    failure =
                        Some(anyhow::Error::new(error).context("building the OTLP span exporter"))
                }
            }
        }
        builder.build()
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(provider),
    }
}

/// The OTLP metric exporter, as the global meter provider.
fn install_meter_provider(resource: Resource) -> anyhow::Result<()> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()
        .context("building the OTLP metric exporter")?;
    let meter_provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(exporter)
        .build();
    opentelemetry::global::set_meter_provider(meter_provider.clone());
    let _ = METER_PROVIDER.set(meter_provider);
    Ok(())
}

/// `RUST_LOG` (default `info`), with the targets that print credentials held at info.
fn log_filter() -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Whatever RUST_LOG asks for, these never log below info: they print credentials.
    SECRET_PRINTING_TARGETS
        .iter()
        .fold(filter, |filter, target| {
            filter.add_directive(format!("{target}=info").parse().expect("a valid directive"))
        })
}

/// The log lines, text or JSON, to stderr.
fn log_layer<S>(json: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    // Logs go to stderr: stdout is a command's output (`landfall status > out.txt`, `--json`).
    if json {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(log_filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour_wanted(
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .with_target(false)
            .with_filter(log_filter())
            .boxed()
    }
}

/// Whether log lines may carry ANSI colours: only on a terminal, and not when `NO_COLOR` is set
/// to anything but the empty string (<https://no-color.org>).
pub fn colour_wanted(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Flushes and stops the exporters; call once when the process is about to exit.
pub fn shutdown() {
    if let Some(provider) = TRACER_PROVIDER.get() {
        let _ = provider.force_flush();
        let _ = provider.shutdown();
    }
    if let Some(provider) = METER_PROVIDER.get() {
        let _ = provider.force_flush();
        let _ = provider.shutdown();
    }
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

/// Makes `span` a child of the trace named by the incoming headers (if any), and records its
/// trace id in the span's `trace_id` field (so every log line inside it carries it).
pub fn continue_trace(span: &tracing::Span, headers: &BTreeMap<String, String>) {
    if headers.contains_key("traceparent") {
        let context = TraceContextPropagator::new().extract(&MapExtractor(headers));
        let _ = span.set_parent(context);
    }
    let span_context = span.context().span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
    }
}

/// Links `span` to the spans named by these `traceparent` values (e.g. a batch's transform to
/// the trace of every file that fed the batch). Malformed values are skipped.
pub fn link_to(span: &tracing::Span, traceparents: &[String]) {
    let propagator = TraceContextPropagator::new();
    for traceparent in traceparents {
        let headers = BTreeMap::from([("traceparent".to_owned(), traceparent.clone())]);
        let context = propagator.extract(&MapExtractor(&headers));
        let span_context = context.span().span_context().clone();
        if span_context.is_valid() {
            span.add_link(span_context);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some(OsStr::new(""))));
        assert!(!colour_wanted(true, Some(OsStr::new("1"))));
        assert!(!colour_wanted(false, None));
    }

    /// An environment holding only `pairs`.
    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn service_name_from_resource_attributes_only_without_otel_service_name() {
        assert!(!service_name_in_resource_attributes(vars(&[])));
        assert!(service_name_in_resource_attributes(vars(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod, service.name=ingest-eu"
        )])));
        assert!(!service_name_in_resource_attributes(vars(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod,service.namespace=landfall"
        )])));
        assert!(!service_name_in_resource_attributes(vars(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=ingest-eu"),
            ("OTEL_SERVICE_NAME", "ingester-eu")
        ])));
    }

    #[test]
    fn export_follows_the_standard_variables() {
        assert!(!otlp_export_enabled(vars(&[])).unwrap());
        assert!(
            otlp_export_enabled(vars(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://collector:4317"
            )]))
            .unwrap()
        );
        assert!(
            !otlp_export_enabled(vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_SDK_DISABLED", "true")
            ]))
            .unwrap()
        );
        assert!(
            !otlp_export_enabled(vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_TRACES_EXPORTER", "none")
            ]))
            .unwrap()
        );
        let error = otlp_export_enabled(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]))
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("'http/protobuf' is not supported"),
            "{error}"
        );
    }
}
