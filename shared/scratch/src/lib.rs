//! A scratch environment: what the demo, `landfall bench`, `landfall dataset check` and the
//! integration tests run the pipeline (or its SQL) in, made one way for all of them.
//!
//! - [`ScratchDatabase`]: a database created under a unique name on a server's maintenance
//!   database ([`Admin`]), migrated as a service migrates it, dropped `WITH (FORCE)`;
//! - [`ScratchS3`]: the embedded S3 server (`s3dev`) in a folder, notifying the prefix's
//!   exchange of every object created, with its bucket;
//! - [`BrokerPrefix`]: the exchange and queue names of a run, removed at its end;
//! - [`Scratch`]: the three under one random suffix ([`Names`]), and what its cleanup removes
//!   ([`Leftovers`]);
//! - [`shop::Shop`]: a sample shop database (the application database extracts read from);
//! - [`batch`]: where a batch stands in `ops.batches` and whether it is exported: the one reading
//!   every wait for a batch uses.

pub mod batch;
mod broker;
mod database;
mod env;
mod s3;
pub mod shop;

pub use broker::BrokerPrefix;
pub use database::{Admin, ScratchDatabase, create_if_missing, with_dbname};
pub use env::{Leftovers, Names, Scratch};
pub use s3::{S3Spec, ScratchS3, ServiceServers};
