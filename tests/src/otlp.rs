//! A test OTLP receiver: the real OTLP/gRPC trace and metrics services, served with tonic,
//! keeping what the services export so a test can assert on traces, links, attributes,
//! resources and metric values.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, number_data_point};

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub attributes: BTreeMap<String, String>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
    /// The attributes of the resource that exported the span (`service.name` among them).
    pub resource: BTreeMap<String, String>,
}

/// The latest value of one metric time series (metric name, resource and point attributes):
/// a sum's or gauge's value, a histogram's count. The services' exporters send cumulative
/// sums, so a counter's latest value is its total so far.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub service: String,
    pub name: String,
    pub resource: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    pub value: f64,
}

/// Which time series a point belongs to: service, metric name, resource, point attributes.
type SeriesKey = (
    String,
    String,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
);

#[derive(Clone, Default)]
struct Store {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    metrics: Arc<Mutex<BTreeSet<(String, String)>>>,
    points: Arc<Mutex<BTreeMap<SeriesKey, f64>>>,
}

/// A running receiver; dropping it stops the server.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    store: Store,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Serves on `addr` (port 0 picks a free one).
    pub async fn start(addr: &str) -> anyhow::Result<OtlpReceiver> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let store = Store::default();
        let incoming = tokio_stream_from(listener);
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(store.clone()))
            .add_service(MetricsServiceServer::new(store.clone()));
        let task = tokio::spawn(async move {
            let _ = server.serve_with_incoming(incoming).await;
        });
        Ok(OtlpReceiver { addr, store, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.spans.lock().expect("spans lock").clone()
    }

    /// (service, metric name) pairs received so far.
    pub fn metrics(&self) -> BTreeSet<(String, String)> {
        self.store.metrics.lock().expect("metrics lock").clone()
    }

    /// The latest point of every time series received so far.
    pub fn metric_points(&self) -> Vec<MetricPoint> {
        self.store
            .points
            .lock()
            .expect("points lock")
            .iter()
            .map(
                |((service, name, resource, attributes), value)| MetricPoint {
                    service: service.clone(),
                    name: name.clone(),
                    resource: resource.clone(),
                    attributes: attributes.clone(),
                    value: *value,
                },
            )
            .collect()
    }

    /// The sum of the latest values of `service`'s series of metric `name` whose attributes
    /// include all of `attributes` (e.g. `[("outcome", "staged")]`); `None` when no such series
    /// has arrived yet.
    pub fn metric_value(
        &self,
        service: &str,
        name: &str,
        attributes: &[(&str, &str)],
    ) -> Option<f64> {
        let matching: Vec<f64> = self
            .metric_points()
            .into_iter()
            .filter(|point| {
                point.service == service
                    && point.name == name
                    && attributes.iter().all(|(key, value)| {
                        point.attributes.get(*key).map(String::as_str) == Some(*value)
                    })
            })
            .map(|point| point.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(Value::StringValue(text)) => text.clone(),
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::DoubleValue(number)) => number.to_string(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|pair| (pair.key.clone(), text(&pair.value)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Store {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("spans lock");
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|resource| attributes(&resource.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    spans.push(ReceivedSpan {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: attributes(&span.attributes),
                        links: span
                            .links
                            .iter()
                            .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                            .collect(),
                        resource: resource.clone(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Store {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut metrics = self.metrics.lock().expect("metrics lock");
        let mut points = self.points.lock().expect("points lock");
        for resource_metrics in request.into_inner().resource_metrics {
            let resource = resource_metrics
                .resource
                .map(|resource| attributes(&resource.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for scope in resource_metrics.scope_metrics {
                for metric in scope.metrics {
                    for (attributes, value) in data_points(&metric.data) {
                        let key = (
                            service.clone(),
                            metric.name.clone(),
                            resource.clone(),
                            attributes,
                        );
                        points.insert(key, value);
                    }
                    metrics.insert((service.clone(), metric.name));
                }
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// The points of one metric as (attributes, value): a sum's or gauge's value, a histogram's
/// count.
fn data_points(data: &Option<Data>) -> Vec<(BTreeMap<String, String>, f64)> {
    let number = |point: &NumberDataPoint| {
        let value = match point.value {
            Some(number_data_point::Value::AsDouble(value)) => value,
            Some(number_data_point::Value::AsInt(value)) => value as f64,
            None => f64::NAN,
        };
        (attributes(&point.attributes), value)
    };
    match data {
        Some(Data::Sum(sum)) => sum.data_points.iter().map(number).collect(),
        Some(Data::Gauge(gauge)) => gauge.data_points.iter().map(number).collect(),
        Some(Data::Histogram(histogram)) => histogram
            .data_points
            .iter()
            .map(|point| (attributes(&point.attributes), point.count as f64))
            .collect(),
        Some(Data::ExponentialHistogram(histogram)) => histogram
            .data_points
            .iter()
            .map(|point| (attributes(&point.attributes), point.count as f64))
            .collect(),
        Some(Data::Summary(summary)) => summary
            .data_points
            .iter()
            .map(|point| (attributes(&point.attributes), point.count as f64))
            .collect(),
        None => Vec::new(),
    }
}
