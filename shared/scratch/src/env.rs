//! A whole scratch environment under one random suffix, and its cleanup.

use std::path::PathBuf;

use crate::broker::BrokerPrefix;
use crate::database::{Admin, ScratchDatabase, drop_database, unique_suffix};
use crate::s3::{S3Spec, ScratchS3};

/// The names of a scratch environment, all ending in the same random suffix.
#[derive(Debug, Clone)]
pub struct Names {
    /// 8 random hex digits.
    pub suffix: String,
    /// `<database>_<suffix>`.
    pub database: String,
    /// `<prefix>-<suffix>`.
    pub prefix: String,
    /// `<temporary folder>/<folder>-<suffix>`: the S3 server's files and whatever else the
    /// run keeps there; removed with the rest.
    pub folder: PathBuf,
}

impl Names {
    pub fn unique(database: &str, prefix: &str, folder: &str) -> Names {
        let suffix = unique_suffix();
        Names {
            database: format!("{database}_{suffix}"),
            prefix: format!("{prefix}-{suffix}"),
            folder: std::env::temp_dir().join(format!("{folder}-{suffix}")),
            suffix,
        }
    }
}

/// A database, a broker prefix and an S3 server of a run's own.
pub struct Scratch {
    pub suffix: String,
    pub database: ScratchDatabase,
    pub broker: BrokerPrefix,
    pub s3: ScratchS3,
    /// The run's folder ([`Names::folder`]).
    pub folder: PathBuf,
}

impl Scratch {
    /// Creates the database through `client` (a connection to `admin`), then the folder, and
    /// starts the S3 server with its bucket (`s3.root` is best inside the folder). Whatever
    /// was made is removed again when a later step fails.
    pub async fn create(
        admin: &Admin,
        client: &tokio_postgres::Client,
        amqp_url: &str,
        names: Names,
        s3: S3Spec<'_>,
    ) -> anyhow::Result<Scratch> {
        let database = ScratchDatabase::create(admin, client, names.database).await?;
        let broker = BrokerPrefix::new(amqp_url, &names.prefix);
        let started = async {
            std::fs::create_dir_all(&names.folder)?;
            ScratchS3::start(s3, amqp_url, &names.prefix).await
        }
        .await;
        let leftovers = Leftovers {
            admin: admin.clone(),
            database: database.name.clone(),
            broker: broker.clone(),
            folder: names.folder.clone(),
        };
        match started {
            Ok(s3) => Ok(Scratch {
                suffix: names.suffix,
                database,
                broker,
                s3,
                folder: names.folder,
            }),
            Err(error) => {
                leftovers.remove().await;
                Err(error)
            }
        }
    }

    /// What [`Scratch::cleanup`] removes, for a cleanup without the S3 server (from a `Drop`).
    pub fn leftovers(&self) -> Leftovers {
        Leftovers {
            admin: self.database.admin().clone(),
            database: self.database.name.clone(),
            broker: self.broker.clone(),
            folder: self.folder.clone(),
        }
    }

    /// Stops the S3 server, then removes the database, the exchanges and queues, and the
    /// folder; what could not be removed, in words.
    pub async fn cleanup(self) -> Vec<String> {
        let leftovers = self.leftovers();
        self.s3.shutdown().await;
        leftovers.remove().await
    }
}

/// What a scratch environment leaves until it is removed: its database, exchanges and queues,
/// and folder.
#[derive(Clone)]
pub struct Leftovers {
    admin: Admin,
    database: String,
    broker: BrokerPrefix,
    folder: PathBuf,
}

impl Leftovers {
    /// Removes each (a failure does not stop the others); what could not be removed, in words.
    pub async fn remove(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(error) = drop_database(&self.admin, &self.database).await {
            problems.push(format!(
                "could not drop database {}: {error:#}",
                self.database
            ));
        }
        if let Err(error) = self.broker.delete().await {
            problems.push(format!(
                "could not delete the exchanges and queues of {}: {error:#}",
                self.broker.prefix
            ));
        }
        let _ = std::fs::remove_dir_all(&self.folder);
        problems
    }
}
