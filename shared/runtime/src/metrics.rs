//! landfall's metrics, one instrument per thing that happens, exported over OTLP with the traces
//! (a no-op when export is off). Names follow `landfall.<what>`; attributes name the service,
//! dataset, source, event type or outcome.

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};

/// Every instrument; created once, after the meter provider is installed.
pub struct Metrics {
    /// Rows loaded into staging (dataset, source).
    pub rows_staged: Counter<u64>,
    /// Rows the extractor read from a source database into a landing file (dataset, source).
    pub rows_extracted: Counter<u64>,
    /// Rows refused by the stager (dataset, source).
    pub rows_rejected: Counter<u64>,
    /// Files by outcome: landed, ignored, staged, rejected, superseded, missing; extracted or
    /// unchanged (the extractor).
    pub files: Counter<u64>,
    /// How long handling one message took, in seconds (service, event type).
    pub stage_duration: Histogram<f64>,
    /// Messages consumed by outcome: applied, duplicate, dead_lettered, requeued (service).
    pub events_consumed: Counter<u64>,
    /// Events the outbox relay published (service, event type).
    pub events_published: Counter<u64>,
    /// Messages sent to a dead-letter queue (service, kind).
    pub events_dead_lettered: Counter<u64>,
    /// Outbox rows not yet published, as last seen by a relay (service).
    pub outbox_backlog: Gauge<u64>,
    /// Seconds from the first file of a batch landing to its export (dataset).
    pub landed_to_export: Histogram<f64>,
}

/// The process's instruments.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = opentelemetry::global::meter("landfall");
        Metrics {
            rows_staged: meter
                .u64_counter("landfall.rows.staged")
                .with_unit("{row}")
                .build(),
            rows_extracted: meter
                .u64_counter("landfall.rows.extracted")
                .with_unit("{row}")
                .build(),
            rows_rejected: meter
                .u64_counter("landfall.rows.rejected")
                .with_unit("{row}")
                .build(),
            files: meter
                .u64_counter("landfall.files")
                .with_unit("{file}")
                .build(),
            stage_duration: meter
                .f64_histogram("landfall.stage.duration")
                .with_unit("s")
                .build(),
            events_consumed: meter
                .u64_counter("landfall.events.consumed")
                .with_unit("{event}")
                .build(),
            events_published: meter
                .u64_counter("landfall.events.published")
                .with_unit("{event}")
                .build(),
            events_dead_lettered: meter
                .u64_counter("landfall.events.dead_lettered")
                .with_unit("{event}")
                .build(),
            outbox_backlog: meter
                .u64_gauge("landfall.outbox.backlog")
                .with_unit("{event}")
                .build(),
            landed_to_export: meter
                .f64_histogram("landfall.batch.landed_to_export")
                .with_unit("s")
                .build(),
        }
    })
}

/// `key=value` attributes, briefly.
pub fn attributes(pairs: &[(&'static str, &str)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(key, value)| KeyValue::new(*key, (*value).to_owned()))
        .collect()
}
