//! A scratch database: created under a unique name on the server of an admin connection,
//! migrated as a service does at start, and dropped `WITH (FORCE)` once done.

use anyhow::Context as _;
use catalog::Datasets;
use runtime::db::PgTarget;

/// A PostgreSQL server's maintenance database (`postgres`), where scratch databases are created
/// and dropped from.
#[derive(Clone)]
pub struct Admin {
    /// Its URL, query parameters (TLS) included.
    pub url: String,
    pub target: PgTarget,
}

impl Admin {
    pub fn parse(url: &str) -> anyhow::Result<Admin> {
        Ok(Admin {
            url: url.to_owned(),
            target: PgTarget::parse(url)?,
        })
    }

    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        self.target.connect().await
    }
}

pub struct ScratchDatabase {
    pub name: String,
    /// The admin target with the scratch database's name.
    pub target: PgTarget,
    /// The admin URL with the scratch database's name.
    pub url: String,
    admin: Admin,
}

impl ScratchDatabase {
    /// `<prefix>_<8 random hex digits>`: letters, digits and `_`, so it needs no quoting.
    pub fn unique_name(prefix: &str) -> String {
        format!("{prefix}_{}", unique_suffix())
    }

    /// Creates the database `name` through `client`, a connection to `admin`.
    pub async fn create(
        admin: &Admin,
        client: &tokio_postgres::Client,
        name: String,
    ) -> anyhow::Result<ScratchDatabase> {
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating the scratch database {name}"))?;
        let mut target = admin.target.clone();
        target.config.dbname(&name);
        Ok(ScratchDatabase {
            url: with_dbname(&admin.url, &name),
            name,
            target,
            admin: admin.clone(),
        })
    }

    /// Connects to the scratch database.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        self.target
            .connect()
            .await
            .with_context(|| format!("connecting to the scratch database {}", self.name))
    }

    /// Applies the migrations and the staging tables of `datasets` through `client`, a
    /// connection to this database, as a service does at start.
    pub async fn migrate(
        &self,
        client: &mut tokio_postgres::Client,
        datasets: &Datasets,
    ) -> anyhow::Result<()> {
        runtime::db::migrate(client, datasets).await?;
        Ok(())
    }

    /// A connection to the database once it is migrated for `datasets`.
    pub async fn migrated(&self, datasets: &Datasets) -> anyhow::Result<tokio_postgres::Client> {
        let mut client = self.connect().await?;
        self.migrate(&mut client, datasets).await?;
        Ok(client)
    }

    /// Drops the database, ending the sessions still connected to it.
    pub async fn drop(&self) -> anyhow::Result<()> {
        drop_database(&self.admin, &self.name).await
    }

    /// The server's maintenance database this one was created from.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }
}

/// Drops the database `name` of `admin`'s server, ending the sessions still connected to it.
pub(crate) async fn drop_database(admin: &Admin, name: &str) -> anyhow::Result<()> {
    let client = admin.connect().await?;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("dropping the scratch database {name}"))
}

/// 8 random hex digits.
pub(crate) fn unique_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Creates the database of `target` (on the same server's `postgres` database) unless it can
/// be connected to already; the database's name when it was created. Unlike a scratch database
/// it stays (the demo's).
pub async fn create_if_missing(target: &PgTarget) -> anyhow::Result<Option<String>> {
    let name = target.config.get_dbname().unwrap_or("postgres").to_owned();
    if target.connect().await.is_ok() {
        return Ok(None);
    }
    anyhow::ensure!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database name '{name}' must be letters, digits and '_' to be created"
    );
    let mut admin = target.clone();
    admin.config.dbname("postgres");
    let client = admin
        .connect()
        .await
        .context("connecting to PostgreSQL (is it running? see README)")?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    Ok(Some(name))
}

/// `url` with its database name replaced by `database` (its query parameters kept).
pub fn with_dbname(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |at| at + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{host_part}/{database}{query}")
}

#[cfg(test)]
mod tests {
    use super::with_dbname;

    #[test]
    fn the_database_name_is_replaced_and_the_parameters_kept() {
        assert_eq!(
            with_dbname("postgres://u@h:5432/postgres?sslmode=require", "x_1"),
            "postgres://u@h:5432/x_1?sslmode=require"
        );
        assert_eq!(with_dbname("postgres://u@h", "x_1"), "postgres://u@h/x_1");
    }
}
