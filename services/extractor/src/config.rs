//! The extractor's settings, read from the environment beside the common ones.

use chrono::NaiveDate;
use runtime::{CommonConfig, ConfigError, Env, LandingConfig, S3Config, Secret};

use crate::SERVICE;

/// S3 refuses parts smaller than this, except the last one of an upload.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// What one run holds in memory for the file it is writing, about.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;

/// The extractor's configuration.
#[derive(Debug, Clone)]
pub struct ExtractorConfig {
    pub common: CommonConfig,
    /// How to reach S3 (`LANDFALL_S3_*`).
    pub s3: S3Config,
    /// Where the files are written (`LANDFALL_BUCKET`, `LANDFALL_LANDING_PREFIX`).
    pub landing: LandingConfig,
    /// The shop's database (`LANDFALL_SOURCE_DATABASE_URL`), for a login that may only read.
    pub source_database_url: Secret,
    /// The dataset whose `extract.toml` is run (`LANDFALL_EXTRACT_DATASET`).
    pub dataset: String,
    /// The ingestion date the files are written under (`LANDFALL_EXTRACT_DATE`, YYYY-MM-DD);
    /// `None`: today's date in UTC when the run starts.
    pub date: Option<NaiveDate>,
    /// Bytes of compressed file per multipart part (`LANDFALL_EXTRACT_PART_SIZE_BYTES`): what
    /// the run holds of a file in memory.
    pub part_size: usize,
    /// gzip level, 0 (none) to 9 (smallest) (`LANDFALL_EXTRACT_GZIP_LEVEL`, default 6, gzip's).
    pub gzip_level: u32,
}

impl runtime::service::ServiceConfig for ExtractorConfig {
    fn common(&self) -> &CommonConfig {
        &self.common
    }

    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, SERVICE)?;
        let source_database_url = env.postgres_url(
            "LANDFALL_SOURCE_DATABASE_URL",
            "the PostgreSQL URL of the database extracts read from (a login that may only read)",
        )?;
        let dataset = env.required(
            "LANDFALL_EXTRACT_DATASET",
            "the name of the dataset to extract (a folder with an extract.toml)",
        )?;
        let date = match env.get("LANDFALL_EXTRACT_DATE") {
            None => None,
            Some(raw) => Some(NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(
                |error| ConfigError {
                    variable: "LANDFALL_EXTRACT_DATE".into(),
                    problem: format!("'{raw}' is not a date (YYYY-MM-DD): {error}"),
                },
            )?),
        };
        Ok(ExtractorConfig {
            s3: S3Config::from_env(env)?,
            landing: LandingConfig::from_env(env)?,
            source_database_url: Secret::new(source_database_url),
            dataset,
            date,
            part_size: env.number(
                "LANDFALL_EXTRACT_PART_SIZE_BYTES",
                DEFAULT_PART_SIZE,
                MIN_PART_SIZE,
                1024 * 1024 * 1024,
            )? as usize,
            gzip_level: env.number("LANDFALL_EXTRACT_GZIP_LEVEL", 6, 0, 9)? as u32,
            common,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use runtime::service::ServiceConfig as _;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<ExtractorConfig, ConfigError> {
        let mut vars: HashMap<String, String> = [
            ("LANDFALL_DATABASE_URL", "postgres://postgres@db/landfall"),
            (
                "LANDFALL_SOURCE_DATABASE_URL",
                "postgres://reader@shop/shop",
            ),
            ("LANDFALL_BUCKET", "lake"),
            ("LANDFALL_EXTRACT_DATASET", "ecommerce"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        for (name, value) in pairs {
            vars.insert(name.to_string(), value.to_string());
        }
        ExtractorConfig::from_env(&Env::from_fn(|name| vars.get(name).cloned()))
    }

    #[test]
    fn defaults_and_the_role() {
        let config = load(&[]).unwrap();
        assert_eq!(config.dataset, "ecommerce");
        assert_eq!(config.date, None);
        assert_eq!(config.part_size, DEFAULT_PART_SIZE as usize);
        assert_eq!(config.gzip_level, 6);
        assert_eq!(config.landing.landing_prefix, "landing/");
        assert_eq!(
            config.common.database_role.as_deref(),
            Some("landfall_extractor")
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = load(&[("LANDFALL_EXTRACT_DATE", "2026-13-01")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_EXTRACT_DATE");
        let error = load(&[("LANDFALL_SOURCE_DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_SOURCE_DATABASE_URL");
        let error = load(&[("LANDFALL_EXTRACT_PART_SIZE_BYTES", "1000")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_EXTRACT_PART_SIZE_BYTES");
        let error = load(&[("LANDFALL_EXTRACT_DATASET", "")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_EXTRACT_DATASET");
    }
}
