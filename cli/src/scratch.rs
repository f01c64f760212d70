//! A scratch database: created under a unique name on the server of an admin connection, and
//! dropped `WITH (FORCE)` once done. `bench` and `dataset check` run in one each.

use anyhow::Context as _;
use runtime::db::PgTarget;

pub(crate) struct ScratchDatabase {
    pub(crate) name: String,
    /// The admin target with the scratch database's name.
    pub(crate) target: PgTarget,
    admin: PgTarget,
}

impl ScratchDatabase {
    /// `<prefix>_<8 random hex digits>`: letters, digits and `_`, so it needs no quoting.
    pub(crate) fn unique_name(prefix: &str) -> String {
        format!("{prefix}_{:08x}", rand::random::<u32>())
    }

    /// Creates the database `name` through `client`, a connection to `admin`.
    pub(crate) async fn create(
        admin: &PgTarget,
        client: &tokio_postgres::Client,
        name: String,
    ) -> anyhow::Result<ScratchDatabase> {
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating the scratch database {name}"))?;
        let mut target = admin.clone();
        target.config.dbname(&name);
        Ok(ScratchDatabase {
            name,
            target,
            admin: admin.clone(),
        })
    }

    /// Connects to the scratch database.
    pub(crate) async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        self.target
            .connect()
            .await
            .with_context(|| format!("connecting to the scratch database {}", self.name))
    }

    /// Drops the database, ending the sessions still connected to it.
    pub(crate) async fn drop(&self) -> anyhow::Result<()> {
        let name = &self.name;
        let admin = self.admin.connect().await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .with_context(|| format!("dropping the scratch database {name}"))
    }
}

/// `url` with its database name replaced by `database` (its query parameters kept).
pub(crate) fn with_dbname(url: &str, database: &str) -> String {
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
