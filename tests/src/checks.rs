//! Checks a test declares beside the bundled ones.

use std::path::PathBuf;

use crate::TestEnv;

/// Two rules of the stager written as error checks: an order appears once in the batch's
/// orders, and a review is 1 to 5 stars. The stager rejects a file's lines that break them, so
/// the bundled checks leave them out; a test that writes such a row into staging directly, past
/// the stager, declares them to see an error check catch it.
pub const STAGER_RULES: &str = r#"
[[checks]]
name = "orders_order_id_unique"
description = "An order appears once in the batch's orders."
kind = "unique"
severity = "error"
table = "staging.orders"
columns = ["order_id"]
where = "_batch = (SELECT ops.batch_date())"

[[checks]]
name = "reviews_review_in_range"
description = "A review is 1 to 5 stars (or empty)."
kind = "accepted_values"
severity = "error"
table = "staging.reviews"
column = "review"
values = [1, 2, 3, 4, 5]
where = "_batch = (SELECT ops.batch_date())"
"#;

/// A copy of the bundled datasets whose `ecommerce/checks.toml` holds the bundled ecommerce
/// checks followed by `extra` (for the quality checker's `LANDFALL_DATASETS_DIR`).
pub fn bundled_checks_with(env: &TestEnv, extra: &str) -> PathBuf {
    let dir = crate::datasets::bundled_copy(env, "checks");
    let path = dir.join("ecommerce/checks.toml");
    let mut checks = std::fs::read_to_string(&path).expect("the bundled ecommerce checks");
    checks.push_str(extra);
    std::fs::write(&path, checks).expect("checks.toml");
    dir
}
