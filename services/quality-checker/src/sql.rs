//! How a check's query runs: counted and sampled in one pass, with the planner settings that
//! make it faster. The query itself, the check's failing rows, is
//! [`catalog::checks::sql::failing_rows`].

use catalog::checks::{Check, CheckKind};

/// A planner setting `check`'s query runs with (`SET LOCAL`, for that query only), where the
/// default plan is measurably slower.
///
/// A `unique` check groups by a sort instead of a hash aggregate: over 1M staged keys at the
/// default `work_mem` the hash table spills to temporary files (390-480 ms against 225-233 ms
/// sorted; on 1M keys in random order 277-284 ms against 252 ms). docs/PERFORMANCE.md.
pub fn planner_setting(check: &Check) -> Option<(&'static str, &'static str)> {
    match check.kind {
        CheckKind::Unique { .. } => Some(("enable_hashagg", "off")),
        _ => None,
    }
}

/// Counts the failing rows and keeps up to `sample_rows` of them as JSON objects (as text, so
/// `63.00` stays `63.00` on its way back into `ops.quality_results`), in one pass:
/// each returned row carries the total count (a window over all failing rows, computed before
/// the LIMIT) and one failing row. No row back means nothing failed. The check's query is a
/// subquery here, which also makes PostgreSQL refuse a data-modifying statement in it.
///
/// The check's query is planned on its own (a materialized CTE), for all its rows: seeing the
/// LIMIT, the planner would pick a plan that is fast to the first row, although the count
/// needs every row. On a 1M-row batch that turned a relationships check's hash anti-join into
/// a million index probes: 552 ms instead of 153 ms (docs/PERFORMANCE.md).
pub fn measured(failing_rows: &str, sample_rows: u32) -> String {
    format!(
        "WITH failing AS MATERIALIZED (\nSELECT * FROM (\n{failing_rows}\n) AS checked\n)\nSELECT count(*) OVER () AS failing_rows, to_jsonb(failing)::text AS sample_row\n  FROM failing\n LIMIT {sample_rows}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_query_counts_and_samples_in_one_pass() {
        let sql = measured("SELECT 1 AS x", 20);
        assert_eq!(
            sql,
            "WITH failing AS MATERIALIZED (\nSELECT * FROM (\nSELECT 1 AS x\n) AS checked\n)\nSELECT count(*) OVER () AS failing_rows, to_jsonb(failing)::text AS sample_row\n  FROM failing\n LIMIT 20"
        );
    }
}
