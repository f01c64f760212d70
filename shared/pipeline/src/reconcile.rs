//! Reconcile: list the landing prefix and land every object the ledger does not have, so a
//! file whose notification was lost is still loaded. Runs on start, on a timer, and on
//! `landfall reconcile`; `landfall backfill` lists one batch's folders with [`reconcile_batch`].

use anyhow::Context as _;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use catalog::{Datasets, KeyMatch};
use contract::BatchKey;
use deadpool_postgres::Pool;
use runtime::config::LandingConfig;

use crate::ledger::{self, DiscoveredBy, ObjectCreated, Recorded};

/// What a reconcile pass found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub listed: u64,
    /// New files recorded (each gets a `FileLanded`).
    pub landed: u64,
    /// New keys that map to no dataset source.
    pub unmapped: u64,
}

/// Lists `landing.bucket` under the landing prefix (optionally narrowed to `sub_prefix`) and records
/// what the ledger lacks, one transaction per listing page (the page's objects recorded
/// set-based, as the consumer's batches are), events through the outbox.
pub async fn reconcile(
    pool: &Pool,
    s3: &aws_sdk_s3::Client,
    landing: &LandingConfig,
    datasets: &Datasets,
    service: &str,
    sub_prefix: Option<&str>,
) -> anyhow::Result<ReconcileReport> {
    reconcile_filtered(pool, s3, landing, datasets, service, sub_prefix, &|_| true).await
}

/// Like [`reconcile`], for one batch: of the keys listed under `sub_prefix`, only those mapping
/// to `batch` (and those mapping to no source, recorded as ignored) are looked at and counted;
/// a key of another batch found there is left to that batch.
pub async fn reconcile_batch(
    pool: &Pool,
    s3: &aws_sdk_s3::Client,
    landing: &LandingConfig,
    datasets: &Datasets,
    service: &str,
    sub_prefix: &str,
    batch: &BatchKey,
) -> anyhow::Result<ReconcileReport> {
    let keep = |key_match: &KeyMatch| match key_match {
        KeyMatch::File {
            dataset,
            ingestion_date,
            ..
        } => *dataset == batch.dataset && *ingestion_date == batch.ingestion_date,
        KeyMatch::Unmapped(_) => true,
        KeyMatch::Outside => false,
    };
    reconcile_filtered(
        pool,
        s3,
        landing,
        datasets,
        service,
        Some(sub_prefix),
        &keep,
    )
    .await
}

async fn reconcile_filtered(
    pool: &Pool,
    s3: &aws_sdk_s3::Client,
    landing: &LandingConfig,
    datasets: &Datasets,
    service: &str,
    sub_prefix: Option<&str>,
    keep: &(dyn Fn(&KeyMatch) -> bool + Sync),
) -> anyhow::Result<ReconcileReport> {
    let prefix = format!("{}{}", landing.landing_prefix, sub_prefix.unwrap_or(""));
    let mut report = ReconcileReport::default();
    let mut pages = s3
        .list_objects_v2()
        .bucket(&landing.bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("listing s3://{}/{prefix}", landing.bucket))?;
        let objects = listed_objects(&page, landing, datasets, keep);
        report.listed += objects.len() as u64;
        let page = Page {
            spans: object_spans(&objects),
            objects,
        };
        record_page(pool, landing, datasets, service, &page, &mut report).await?;
    }
    if report.landed > 0 {
        tracing::info!(
            listed = report.listed,
            landed = report.landed,
            "reconcile landed files whose notification never came"
        );
    }
    Ok(report)
}

/// The objects of one listing page that `keep` wants.
fn listed_objects(
    page: &ListObjectsV2Output,
    landing: &LandingConfig,
    datasets: &Datasets,
    keep: &(dyn Fn(&KeyMatch) -> bool + Sync),
) -> Vec<ObjectCreated> {
    page.contents()
        .iter()
        .filter_map(|object| {
            Some(ObjectCreated {
                bucket: landing.bucket.clone(),
                key: object.key()?.to_owned(),
                size: object.size().unwrap_or(0).max(0) as u64,
                etag: object.e_tag()?.trim_matches('"').to_owned(),
                version_id: None,
            })
        })
        .filter(|object| keep(&datasets.match_key(&landing.landing_prefix, &object.key)))
        .collect()
}

/// Each file found here starts its own trace, as a notification would.
fn object_spans(objects: &[ObjectCreated]) -> Vec<tracing::Span> {
    objects
        .iter()
        .map(|object| {
            let span = tracing::info_span!(
                parent: None,
                "reconcile object",
                landfall.key = object.key.as_str(),
                trace_id = tracing::field::Empty,
            );
            // Its log lines carry the new trace's id, as a notification's do.
            runtime::telemetry::continue_trace(&span, &Default::default());
            span
        })
        .collect()
}

/// The objects of one listing page, each with the span of its own trace.
struct Page {
    objects: Vec<ObjectCreated>,
    spans: Vec<tracing::Span>,
}

/// Records one page's objects and their events in one transaction, counted in `report`.
async fn record_page(
    pool: &Pool,
    landing: &LandingConfig,
    datasets: &Datasets,
    service: &str,
    page: &Page,
    report: &mut ReconcileReport,
) -> anyhow::Result<()> {
    let announced: Vec<(&ObjectCreated, &tracing::Span)> =
        page.objects.iter().zip(&page.spans).collect();
    let mut client = pool.get().await.context("reconcile: database")?;
    let tx = client.transaction().await?;
    let recorded = ledger::record_many(
        &tx,
        datasets,
        &landing.landing_prefix,
        &announced,
        DiscoveredBy::Reconcile,
    )
    .await?;
    let mut events = Vec::new();
    for (recorded, span) in recorded.iter().zip(&page.spans) {
        match recorded {
            Recorded::Landed(event) => {
                report.landed += 1;
                events.push((
                    &**event,
                    span.in_scope(runtime::telemetry::current_trace_headers),
                ));
            }
            Recorded::Unmapped(_) => report.unmapped += 1,
            Recorded::Duplicate | Recorded::Outside => {}
        }
    }
    runtime::outbox::enqueue_many(&tx, service, &events).await?;
    tx.commit().await?;
    Ok(())
}
