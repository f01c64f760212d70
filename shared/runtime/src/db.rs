//! The PostgreSQL pool and the migration runner.

use anyhow::Context as _;
use catalog::Datasets;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use crate::config::Secret;
pub use crate::pg::{PgTarget, SslMode, connect, explain, hint};
/// Quotes an identifier for SQL (identifiers from configuration are validated before this).
pub use catalog::sql::quote_ident;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Held while migrating, so services starting together migrate one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x6c61_6e64_6661_6c6c; // "landfall"

/// A pool of connections; connections are made lazily, so a service starts while the
/// database is still coming up and reports not-ready until it can reach it. Statements run with
/// the login user's own rights (the `landfall` commands and the migration use this).
pub fn pool(url: &Secret, size: usize) -> anyhow::Result<Pool> {
    pool_as(url, size, None)
}

/// A pool whose every connection runs as `role` (`SET ROLE` at connection start, through the
/// startup option `-c role=…`, so `RESET ROLE` and `DISCARD ALL` come back to it): every
/// statement is checked against that role's grants even when the login user owns the tables.
/// The login user must be a member of `role`; `None` keeps the login user's rights.
pub fn pool_as(url: &Secret, size: usize, role: Option<&str>) -> anyhow::Result<Pool> {
    let target = PgTarget::parse(url.expose()).context("LANDFALL_DATABASE_URL is not usable")?;
    let mut pg_config = target.config.clone();
    if let Some(role) = role {
        anyhow::ensure!(
            crate::config::is_role_name(role),
            "'{role}' is not a valid database role name"
        );
        let options = match pg_config.get_options() {
            Some(options) if !options.trim().is_empty() => format!("{options} -c role={role}"),
            _ => format!("-c role={role}"),
        };
        pg_config.options(options);
    }
    let manager = Manager::from_connect(
        pg_config,
        target.pool_connector(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .wait_timeout(Some(std::time::Duration::from_secs(30)))
        .build()
        .context("building the PostgreSQL pool")
}

/// Applies every platform migration (`sql/migrations`, embedded) not yet applied, makes sure
/// every dataset's staging tables exist, then applies each dataset's own migrations
/// (`<dataset folder>/migrations/*.sql`, read now) not yet applied, and grants the service
/// roles their privileges. Safe when several processes run it at once: they queue on an
/// advisory lock. A migration that was changed after it was applied is an error, not a silent
/// skip. Returns how many migrations it applied.
pub async fn migrate(
    client: &mut tokio_postgres::Client,
    datasets: &Datasets,
) -> anyhow::Result<usize> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .context("taking the migration lock")?;
    let result = apply_migrations(client, datasets).await;
    // Unlock even when migrating failed; a lost connection releases it anyway.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    result
}

/// Platform migrations rewritten when the bundled datasets' tables moved from them to the
/// datasets' own migrations (`datasets/<name>/migrations`): each one's name and the checksum of
/// its file before. A database migrated before the move applied the old file, which made what
/// the new one makes plus those datasets' tables; the datasets' first migrations make their
/// tables only when missing, so that database is complete as it is. Its record is accepted and
/// given the new checksum. (0006, 0011, 0012 and 0015 made only dataset tables and were
/// removed; a database that applied them keeps their records.)
const REWRITTEN: &[(&str, &str)] = &[
    ("0003_warehouse_and_reports", "28fd067be017bd31"),
    ("0016_write_audit_publish", "f5b8282d0c2d4a01"),
];

async fn apply_migrations(
    client: &mut tokio_postgres::Client,
    datasets: &Datasets,
) -> anyhow::Result<usize> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS ops;
             CREATE TABLE IF NOT EXISTS ops.schema_migrations (
                 name       text        PRIMARY KEY,
                 checksum   text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await
        .context("creating ops.schema_migrations")?;
    let mut applied = 0;
    for (name, sql) in MIGRATIONS {
        applied += usize::from(apply_once(client, name, sql).await?);
    }
    catalog::staging::ensure_staging_tables(client, datasets).await?;
    for dataset in datasets.iter() {
        for (name, sql) in catalog::migrations::of(dataset)? {
            applied += usize::from(apply_once(client, &name, &sql).await?);
        }
    }
    // The service roles' grants, again: tables made since (staging tables and the datasets'
    // tables just above, tables made by hand) get them too. Defined by migration
    // 0008_service_roles.
    client
        .batch_execute("SELECT ops.apply_service_grants()")
        .await
        .context("granting the service roles their privileges (ops.apply_service_grants)")?;
    client
        .batch_execute("SELECT ops.apply_staging_rows_grants()")
        .await
        .context("granting the staged rows' tables (ops.apply_staging_rows_grants)")?;
    client
        .batch_execute("SELECT ops.apply_audit_grants()")
        .await
        .context("granting the audit schema's tables (ops.apply_audit_grants)")?;
    Ok(applied)
}

/// Applies migration `name` in a transaction with its record in `ops.schema_migrations`,
/// unless it is recorded already; true when it was applied now.
async fn apply_once(
    client: &mut tokio_postgres::Client,
    name: &str,
    sql: &str,
) -> anyhow::Result<bool> {
    let checksum = checksum(sql);
    let row = client
        .query_opt(
            "SELECT checksum FROM ops.schema_migrations WHERE name = $1",
            &[&name],
        )
        .await?;
    if let Some(row) = row {
        let recorded: String = row.get(0);
        if recorded == checksum {
            return Ok(false);
        }
        if REWRITTEN.contains(&(name, recorded.as_str())) {
            client
                .execute(
                    "UPDATE ops.schema_migrations SET checksum = $2 WHERE name = $1",
                    &[&name, &checksum],
                )
                .await?;
            tracing::info!(
                migration = name,
                "recorded the checksum of the rewritten migration"
            );
            return Ok(false);
        }
        anyhow::bail!(
            "migration {name} was changed after it was applied (checksum {recorded} in the database, {checksum} in this build); add a new migration instead"
        );
    }
    let tx = client.transaction().await?;
    tx.batch_execute(sql)
        .await
        .with_context(|| format!("applying migration {name}"))?;
    tx.execute(
        "INSERT INTO ops.schema_migrations (name, checksum) VALUES ($1, $2)",
        &[&name, &checksum],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(migration = name, "applied migration");
    Ok(true)
}

/// FNV-1a over the SQL text: stable across builds and Rust versions.
fn checksum(sql: &str) -> String {
    let hash = sql.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}
