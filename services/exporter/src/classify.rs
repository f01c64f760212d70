//! Failures classified where they are made, with what was being done in the message: the
//! runtime's classification ([`runtime::failure`]), the same in every service.

/// A database error: transient when the connection or server was the problem.
pub use runtime::failure::db;
/// An S3 SDK error: transient for network errors, timeouts, 5xx and throttling. A retry of
/// the whole export is safe because every object is written to the same key again.
pub use runtime::failure::s3;
