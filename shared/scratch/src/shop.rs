//! A sample shop database: the application database the bundled `ecommerce` dataset's
//! `extract.toml` reads (`datasets/ecommerce/shop.sql`), in a scratch database of its own, with a
//! login that may only read. The demo (`--from-db`), `landfall bench extract` and the tests fill
//! it with a day's sample files, so that what is extracted can be compared with those files.

use anyhow::Context as _;
use bytes::Bytes;
use futures::SinkExt as _;

use crate::{Admin, ScratchDatabase};

/// The shop's tables (`datasets/ecommerce/shop.sql`).
pub const SHOP_SQL: &str = include_str!("../../../datasets/ecommerce/shop.sql");

/// The login the extractor reads the shop with: SELECT on the shop's tables, nothing else.
pub const READER: &str = "landfall_shop_reader";

/// Where each landing file's rows go in the shop: the table, and its columns in the order of
/// the landing file's header (the sample files' headers are the dataset's column names).
pub const TABLES: &[(&str, &str, &str)] = &[
    (
        "orders",
        "shop.orders",
        "order_id, customer_id, order_date, product_id, unit_price, quantity, total_price",
    ),
    ("reviews", "shop.reviews", "review, product_id"),
    (
        "shipment_deliveries",
        "shop.shipments",
        "id, order_id, shipped_on, delivered_on",
    ),
    (
        "customers",
        "shop.customers",
        "customer_id, customer_name, postal_code",
    ),
    (
        "products",
        "shop.products",
        "product_id, product_category, product_name",
    ),
];

/// A shop database and the reader's URL.
pub struct Shop {
    pub database: ScratchDatabase,
    /// The database's URL for [`READER`].
    pub reader_url: String,
}

impl Shop {
    /// Drops `name` if it exists, then [`Shop::create`]s it: a shop made anew (the demo's).
    pub async fn recreate(admin: &Admin, name: String) -> anyhow::Result<Shop> {
        crate::database::drop_database(admin, &name).await?;
        Shop::create(admin, name).await
    }

    /// Creates `name` on `admin`'s server with the shop's tables and the read-only login.
    pub async fn create(admin: &Admin, name: String) -> anyhow::Result<Shop> {
        let client = admin.connect().await?;
        let database = ScratchDatabase::create(admin, &client, name).await?;
        let shop = database.connect().await?;
        shop.batch_execute(SHOP_SQL)
            .await
            .context("creating the shop's tables (shop.sql)")?;
        // Roles belong to the server: made once, then granted in each shop database.
        let made = client
            .batch_execute(&format!("CREATE ROLE {READER} LOGIN"))
            .await;
        if let Err(error) = made {
            let duplicate = error.code().is_some_and(|code| {
                *code == tokio_postgres::error::SqlState::DUPLICATE_OBJECT
                    || *code == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            });
            anyhow::ensure!(duplicate, "creating the role {READER}: {error}");
        }
        shop.batch_execute(&format!(
            "GRANT USAGE ON SCHEMA shop TO {READER};
             GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {READER};"
        ))
        .await
        .context("granting the reader SELECT on the shop")?;
        let reader_url = reader_url(&database.url);
        Ok(Shop {
            database,
            reader_url,
        })
    }

    /// Makes the shop hold exactly the rows of `files` (landing file source and CSV body, with
    /// a header), in one transaction; sources not given keep their rows.
    pub async fn load(&self, files: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut client = self.database.connect().await?;
        let tx = client.transaction().await?;
        for (source, body) in files {
            let Some((_, table, columns)) = TABLES.iter().find(|(name, ..)| name == source) else {
                continue;
            };
            tx.batch_execute(&format!("TRUNCATE {table}")).await?;
            let sink = tx
                .copy_in(&format!(
                    "COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER)"
                ))
                .await?;
            let mut sink = std::pin::pin!(sink);
            sink.send(Bytes::copy_from_slice(body.as_bytes())).await?;
            sink.as_mut()
                .finish()
                .await
                .with_context(|| format!("loading {source} into {table}"))?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The URL with the reader as its user and no password (the servers these run on trust local
/// logins; a real shop's reader has a password in the URL or in PGPASSFILE).
fn reader_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{READER}@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_replaces_the_user_of_the_url() {
        assert_eq!(
            reader_url("postgres://postgres:pw@127.0.0.1:5432/shop_1"),
            "postgres://landfall_shop_reader@127.0.0.1:5432/shop_1"
        );
        assert_eq!(
            reader_url("postgresql://localhost/shop_1?sslmode=disable"),
            "postgresql://landfall_shop_reader@localhost/shop_1?sslmode=disable"
        );
    }
}
