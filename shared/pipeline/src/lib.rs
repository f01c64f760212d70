//! The steps of a batch that a service and the `landfall` command both take, in-process:
//!
//! - [`ledger`] and [`reconcile`]: recording the files that land under the landing prefix in
//!   `ops.files` and announcing them (`file.landed`); the ingester does it for notifications
//!   and on its timer, `landfall reconcile` and `landfall backfill` when an operator asks;
//! - [`transform`]: running a batch's models and recording the run; the transformer does it
//!   for a complete batch, `landfall transform` and `landfall replay` on demand;
//! - [`publish`]: copying a batch's audited report rows to `analytics`; the quality-checker
//!   does it for a batch that passed its checks, `landfall dataset check` in a scratch
//!   database.
//!
//! They live here rather than in their service so that the `landfall` command depends on no
//! service crate, and rather than in `runtime`, which holds what every service does the same
//! way (configuration, broker, database, outbox, telemetry), not the work of one stage. What a
//! dataset is (its definition, models, checks, exports) is the `catalog`'s; this crate reads
//! it from there.

pub mod ledger;
pub mod publish;
pub mod reconcile;
pub mod transform;
