//! Running a batch's models: in parallel, each in its own transaction once its dependencies
//! committed, or all of them in one transaction; either way re-running a batch replaces exactly
//! its own rows.

use std::time::Instant;

use chrono::NaiveDate;
use contract::ModelRun;
use runtime::Failure;
use tokio_postgres::{SimpleQueryMessage, Transaction};
use tracing::Instrument as _;

use catalog::models::Model;

/// Runs `models` in order for the batch dated `batch_date`; returns each one's rows (see
/// [`rows_written`]) and time.
/// A model's SQL sees the batch date as `ops.batch_date()`; each model starts from the
/// session's default settings ([`fresh_settings`]), whatever the models before it set.
pub async fn run_models(
    tx: &Transaction<'_>,
    models: &[&Model],
    batch_date: NaiveDate,
) -> Result<Vec<ModelRun>, Failure> {
    let mut runs = Vec::with_capacity(models.len());
    for model in models {
        runs.push(run_one(tx, model, batch_date).await?);
    }
    Ok(runs)
}

/// Runs `models` (in dependency order) for the batch, up to `parallelism` at once, each in its
/// own transaction on its own connection from `pool`: a model starts once every model of this
/// run it depends on has committed. Each model replaces its batch's rows atomically and is
/// idempotent, so a run cut short (a failed model, a killed process) is repaired by running
/// the batch again; the transform's record and its `transform.completed` are written by the
/// caller only after every model committed. On a failure the models already running finish
/// (committed or rolled back) before the first error is returned. Of the models ready to
/// start, those with the longest chain of models waiting on them go first ([`start_order`]).
pub async fn run_models_in_parallel(
    pool: &deadpool_postgres::Pool,
    models: &[&Model],
    batch_date: NaiveDate,
    parallelism: usize,
) -> Result<Vec<ModelRun>, Failure> {
    use futures::StreamExt as _;
    use std::collections::HashSet;

    let in_run: HashSet<&str> = models.iter().map(|model| model.name.as_str()).collect();
    let mut runs: Vec<Option<ModelRun>> = vec![None; models.len()];
    let mut started = vec![false; models.len()];
    let mut committed: HashSet<&str> = HashSet::new();
    let mut running = futures::stream::FuturesUnordered::new();
    let mut failure = None;
    let order = start_order(models);
    loop {
        if failure.is_none() {
            for &index in &order {
                let model = models[index];
                if running.len() >= parallelism.max(1) {
                    break;
                }
                let ready = !started[index]
                    && model.depends_on.iter().all(|dependency| {
                        !in_run.contains(dependency.as_str())
                            || committed.contains(dependency.as_str())
                    });
                if ready {
                    started[index] = true;
                    running
                        .push(async move { (index, run_committed(pool, model, batch_date).await) });
                }
            }
        }
        let Some((index, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(run) => {
                committed.insert(models[index].name.as_str());
                runs[index] = Some(run);
            }
            Err(error) => {
                failure.get_or_insert(error);
            }
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    Ok(runs
        .into_iter()
        .map(|run| run.expect("every model ran: the dependencies are in run order"))
        .collect())
}

/// The indexes of `models` (in dependency order) in the order they are considered for a free
/// connection: the longest chain of models of this run that depend on a model, itself
/// included, first; then as listed. With two connections and the dimensions done, a fact that
/// a report waits for starts before a report nothing waits for: on the 1M-order batch
/// `agg_public_holiday` used to take the connection `fact_orders` was ready for, and the
/// second connection idled at the end while `fact_reviews` and then
/// `best_performing_product` ran (docs/PERFORMANCE.md).
pub fn start_order(models: &[&Model]) -> Vec<usize> {
    let position: std::collections::HashMap<&str, usize> = models
        .iter()
        .enumerate()
        .map(|(index, model)| (model.name.as_str(), index))
        .collect();
    // Dependents come after their dependencies: walk backwards.
    let mut chain = vec![1usize; models.len()];
    for index in (0..models.len()).rev() {
        for dependency in &models[index].depends_on {
            if let Some(&upstream) = position.get(dependency.as_str()) {
                chain[upstream] = chain[upstream].max(chain[index] + 1);
            }
        }
    }
    let mut order: Vec<usize> = (0..models.len()).collect();
    order.sort_by_key(|&index| (std::cmp::Reverse(chain[index]), index));
    order
}

/// One model in its own transaction on a connection of `pool`, committed.
async fn run_committed(
    pool: &deadpool_postgres::Pool,
    model: &Model,
    batch_date: NaiveDate,
) -> Result<ModelRun, Failure> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let run = run_one(&tx, model, batch_date).await?;
    tx.commit().await?;
    Ok(run)
}

/// Puts `tx` back to the session's default settings, undoing any `SET LOCAL` (or `SET`) of a
/// model run before in the same transaction (`RESET ALL` inside a transaction resets
/// `SET LOCAL` values too), then makes `batch_date` what the next model sees as
/// `ops.batch_date()` (until the transaction ends). One round trip.
async fn fresh_settings(tx: &Transaction<'_>, batch_date: NaiveDate) -> Result<(), Failure> {
    // A date's text (YYYY-MM-DD) needs no quoting beyond the literal's.
    tx.batch_execute(&format!(
        "RESET ALL; SELECT set_config('landfall.batch_date', '{batch_date}', true)"
    ))
    .await?;
    Ok(())
}

/// One model inside `tx`, from fresh settings ([`fresh_settings`]): its rows and time.
async fn run_one(
    tx: &Transaction<'_>,
    model: &Model,
    batch_date: NaiveDate,
) -> Result<ModelRun, Failure> {
    runtime::fault::point("transformer.between_models");
    fresh_settings(tx, batch_date).await?;
    let started = Instant::now();
    // As the database conventions name it: the statement's command, or BATCH for several.
    let verbs = statement_verbs(&model.sql);
    let operation = match verbs.as_slice() {
        [verb] => verb.as_str(),
        _ => "BATCH",
    };
    let span = tracing::info_span!(
        "model",
        otel.name = format!("transform {}", model.name),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
        landfall.model = model.name.as_str(),
        landfall.rows = tracing::field::Empty,
    );
    let messages = tx
        .simple_query(&model.sql)
        .instrument(span.clone())
        .await
        .map_err(|error| {
            runtime::failure::db(
                error,
                format!("model {} failed for batch {batch_date}", model.name),
            )
        })?;
    let completed: Vec<u64> = messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::CommandComplete(rows) => Some(*rows),
            _ => None,
        })
        .collect();
    let rows = rows_written(&verbs, &completed);
    span.record("landfall.rows", rows);
    let duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(model = model.name, rows, duration_ms, "model ran");
    Ok(ModelRun {
        model: model.name.clone(),
        rows,
        duration_ms,
    })
}

/// The rows a model wrote: the counts of its `INSERT`, `UPDATE` and `MERGE` statements (also
/// behind a `WITH`), given each statement's count in order. The `DELETE` that clears the
/// batch's old rows before they are inserted again, and `SELECT`s and `SET`s, do not count, so
/// a re-run reports what the batch holds, not what it deleted plus what it inserted. Should the
/// statements not line up with the counts (SQL this reader splits differently from the
/// server), every count is summed, as before.
/// `verbs` are the statements' main verbs ([`statement_verbs`]). The statements may come in any
/// order. (The server's command tags, `INSERT 0 5` or `MERGE 3`, name each statement's verb,
/// but tokio-postgres 0.7 keeps only their row count: `SimpleQueryMessage::CommandComplete`.)
pub fn rows_written(verbs: &[String], completed: &[u64]) -> u64 {
    if verbs.len() != completed.len() {
        return completed.iter().sum();
    }
    verbs
        .iter()
        .zip(completed)
        .filter(|(verb, _)| matches!(verb.as_str(), "INSERT" | "UPDATE" | "MERGE"))
        .map(|(_, rows)| rows)
        .sum()
}

/// The main verb of each statement in `sql`, upper-cased: its first word, or for a `WITH` the
/// first `INSERT`/`UPDATE`/`DELETE`/`MERGE`/`SELECT` outside the parentheses of its common
/// table expressions. Quotes, dollar quotes and comments are skipped; empty statements too.
pub fn statement_verbs(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut verbs = Vec::new();
    // The statement's words outside parentheses, so far.
    let mut words: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skipped_text_end(sql, i) {
            i = end;
            continue;
        }
        match bytes[i] {
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b';' => {
                verbs.extend(main_verb(&words));
                words.clear();
                depth = 0;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = word_end(bytes, i);
                if depth == 0 {
                    words.push(sql[i..end].to_ascii_uppercase());
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    verbs.extend(main_verb(&words));
    verbs
}

/// The main verb of a statement given its words outside parentheses (none for no words).
fn main_verb(words: &[String]) -> Option<String> {
    let first = words.first()?;
    if first != "WITH" {
        return Some(first.clone());
    }
    let verb = words
        .iter()
        .find(|word| {
            matches!(
                word.as_str(),
                "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "SELECT"
            )
        })
        .unwrap_or(first);
    Some(verb.clone())
}

/// Where the word starting at `start` ends (letters, digits, `_`).
fn word_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    i
}

/// When a comment, a quoted literal or identifier, or a dollar-quoted string starts at `i`:
/// the index just past it (possibly past the end of `sql` when it is not closed).
fn skipped_text_end(sql: &str, i: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    match bytes[i] {
        b'-' if bytes.get(i + 1) == Some(&b'-') => Some(
            bytes[i..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |offset| i + offset),
        ),
        b'/' if bytes.get(i + 1) == Some(&b'*') => {
            let mut end = i + 2;
            while end < bytes.len() && !(bytes[end] == b'*' && bytes.get(end + 1) == Some(&b'/')) {
                end += 1;
            }
            Some(end + 2)
        }
        quote @ (b'\'' | b'"') => Some(quoted_end(bytes, i, quote)),
        b'$' => dollar_quote_end(sql, i),
        _ => None,
    }
}

/// The index just past the literal or identifier quoted with `quote` that starts at `start`;
/// a doubled quote is one quote inside it.
fn quoted_end(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            break;
        }
        i += 1;
    }
    i + 1
}

/// When a dollar quote (`$$` or `$tag$` … the same tag) starts at `start`: the index just past
/// its closing tag (the end of `sql` when there is none). `None` for a parameter like `$1` or
/// a lone `$`.
fn dollar_quote_end(sql: &str, start: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    let end = bytes[start + 1..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .map(|offset| start + 1 + offset)?;
    if bytes[end] != b'$' || bytes[start + 1].is_ascii_digit() {
        return None;
    }
    let tag = &sql[start..=end];
    Some(
        sql[end + 1..]
            .find(tag)
            .map(|offset| end + 1 + offset + tag.len())
            .unwrap_or(bytes.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_that_others_wait_on_start_first() {
        let model = |name: &str, depends_on: &[&str]| Model {
            name: name.into(),
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
            sql: String::new(),
        };
        // In dependency order, a report listed before the fact a longer chain waits on.
        let models = [
            model("dim", &[]),
            model("report_of_dim", &["dim"]),
            model("fact", &["dim"]),
            model("report_of_fact", &["fact"]),
            model("lone", &[]),
            model("outside_dependency", &["not_in_this_run"]),
        ];
        let models: Vec<&Model> = models.iter().collect();
        let names: Vec<&str> = start_order(&models)
            .into_iter()
            .map(|index| models[index].name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "dim",
                "fact",
                "report_of_dim",
                "report_of_fact",
                "lone",
                "outside_dependency"
            ]
        );
    }

    #[test]
    fn the_bundled_facts_start_before_the_reports_beside_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../datasets/ecommerce/models");
        let set = catalog::models::ModelSet::load(&dir).unwrap();
        let models: Vec<&Model> = set.models().iter().collect();
        let order: Vec<&str> = start_order(&models)
            .into_iter()
            .map(|index| models[index].name.as_str())
            .collect();
        let position = |name: &str| order.iter().position(|n| *n == name).unwrap();
        for fact in ["fact_orders", "fact_reviews", "fact_shipments"] {
            for report in ["agg_public_holiday", "agg_shipments", "sales_by_month"] {
                assert!(position(fact) < position(report), "{order:?}");
            }
        }
        assert!(position("dim_date") < position("fact_orders"), "{order:?}");
    }

    #[test]
    fn verbs_of_statements_skip_quotes_comments_and_ctes() {
        let sql = "-- model: x; not a statement\n\
                   SET LOCAL work_mem = '64MB';\n\
                   /* a; comment */ DELETE FROM t WHERE note = 'it''s; fine';\n\
                   WITH fresh AS (SELECT 1 AS a), gone AS (DELETE FROM u RETURNING 1)\n\
                   INSERT INTO t SELECT a FROM fresh;\n\
                   SELECT $body$ ; DELETE $body$, $1;\n\
                   merge into t using s on true when matched then do nothing;\n\
                   ;\n";
        assert_eq!(
            statement_verbs(sql),
            ["SET", "DELETE", "INSERT", "SELECT", "MERGE"]
        );
    }

    #[test]
    fn rows_written_leave_out_deletes_and_selects() {
        let sql = "DELETE FROM r WHERE d = ops.batch_date(); INSERT INTO r SELECT 1";
        assert_eq!(rows_written(&statement_verbs(sql), &[12, 12]), 12);
        let sql = "SELECT set_config('x', '1', true); WITH a AS (SELECT 1) UPDATE r SET v = 1";
        assert_eq!(rows_written(&statement_verbs(sql), &[1, 4]), 4);
        // Counts that do not line up with the statements: all of them, as the server said.
        assert_eq!(
            rows_written(&statement_verbs("INSERT INTO r SELECT 1"), &[3, 4]),
            7
        );
    }

    #[test]
    fn a_merge_counts_wherever_it_stands_in_the_file() {
        let sql = "SET LOCAL work_mem = '256MB';\n\
                   MERGE INTO f USING s ON f.k = s.k WHEN NOT MATCHED THEN INSERT VALUES (s.k);\n\
                   DELETE FROM r WHERE d = ops.batch_date();\n\
                   SELECT count(*) FROM f;";
        assert_eq!(rows_written(&statement_verbs(sql), &[0, 5, 2, 1]), 5);
    }
}
