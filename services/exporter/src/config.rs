//! The exporter's own settings, read from the environment beside the common ones.

use runtime::{CommonConfig, ConfigError, Env, S3Config};

use crate::SERVICE;

/// S3 refuses parts smaller than this, except the last one of an upload.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Big enough that most reports go up in one request, small enough to hold in memory.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;

/// The exporter's configuration.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    pub common: CommonConfig,
    /// How to reach S3 (`LANDFALL_S3_*`).
    pub s3: S3Config,
    /// Bucket the reports are written to (`LANDFALL_EXPORT_BUCKET`, default the landing bucket
    /// `LANDFALL_BUCKET`; one of them must be set).
    pub export_bucket: String,
    /// Where export keys start (`LANDFALL_EXPORT_PREFIX`, default `analytics_export/`);
    /// empty, or ending in `/`.
    pub export_prefix: String,
    /// Batches per dataset whose staging rows are kept (`LANDFALL_STAGING_RETENTION_BATCHES`,
    /// default 7); 0 keeps every batch's rows.
    pub staging_retention_batches: u32,
    /// Bytes per multipart-upload part (`LANDFALL_EXPORT_PART_SIZE_BYTES`); a report smaller
    /// than one part goes up in a single PUT. This bounds the memory one export holds.
    pub multipart_part_size: usize,
}

impl runtime::service::ServiceConfig for ExporterConfig {
    fn common(&self) -> &CommonConfig {
        &self.common
    }

    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, SERVICE)?;
        let export_bucket = match env.get("LANDFALL_EXPORT_BUCKET") {
            Some(bucket) => bucket,
            None => env.required(
                "LANDFALL_BUCKET",
                "the bucket reports are exported to (or set LANDFALL_EXPORT_BUCKET)",
            )?,
        };
        let mut export_prefix = env.string("LANDFALL_EXPORT_PREFIX", "analytics_export/");
        if export_prefix.starts_with('/') {
            return Err(ConfigError {
                variable: "LANDFALL_EXPORT_PREFIX".into(),
                problem: format!(
                    "'{export_prefix}' must not start with '/' (S3 keys are relative to the bucket)"
                ),
            });
        }
        if !export_prefix.is_empty() && !export_prefix.ends_with('/') {
            export_prefix.push('/');
        }
        Ok(ExporterConfig {
            s3: S3Config::from_env(env)?,
            export_bucket,
            export_prefix,
            staging_retention_batches: env.number(
                "LANDFALL_STAGING_RETENTION_BATCHES",
                7,
                0,
                1_000_000,
            )? as u32,
            multipart_part_size: env.number(
                "LANDFALL_EXPORT_PART_SIZE_BYTES",
                DEFAULT_PART_SIZE,
                MIN_PART_SIZE,
                MAX_PART_SIZE,
            )? as usize,
            common,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use runtime::service::ServiceConfig as _;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<ExporterConfig, ConfigError> {
        let mut vars: HashMap<String, String> = [
            ("LANDFALL_DATABASE_URL", "postgres://postgres@db/landfall"),
            ("LANDFALL_BUCKET", "lake"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        for (name, value) in pairs {
            vars.insert(name.to_string(), value.to_string());
        }
        ExporterConfig::from_env(&Env::from_fn(|name| vars.get(name).cloned()))
    }

    #[test]
    fn defaults_export_to_the_landing_bucket() {
        let config = load(&[]).unwrap();
        assert_eq!(config.export_bucket, "lake");
        assert_eq!(config.export_prefix, "analytics_export/");
        assert_eq!(config.staging_retention_batches, 7);
        assert_eq!(config.multipart_part_size, DEFAULT_PART_SIZE as usize);
        assert_eq!(config.common.service_name, "exporter");
    }

    #[test]
    fn settings_are_read_and_the_prefix_gets_its_slash() {
        let config = load(&[
            ("LANDFALL_EXPORT_BUCKET", "reports"),
            ("LANDFALL_EXPORT_PREFIX", "out"),
            ("LANDFALL_STAGING_RETENTION_BATCHES", "0"),
            ("LANDFALL_EXPORT_PART_SIZE_BYTES", "5242880"),
        ])
        .unwrap();
        assert_eq!(config.export_bucket, "reports");
        assert_eq!(config.export_prefix, "out/");
        assert_eq!(config.staging_retention_batches, 0);
        assert_eq!(config.multipart_part_size, 5 * 1024 * 1024);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = load(&[("LANDFALL_EXPORT_PART_SIZE_BYTES", "1000")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_EXPORT_PART_SIZE_BYTES");
        assert!(error.to_string().contains("out of range"), "{error}");

        let error = load(&[("LANDFALL_STAGING_RETENTION_BATCHES", "seven")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_STAGING_RETENTION_BATCHES");
        assert!(error.to_string().contains("'seven' is not a whole number"));

        let error = load(&[("LANDFALL_EXPORT_PREFIX", "/abs/")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_EXPORT_PREFIX");

        let error = load(&[("LANDFALL_BUCKET", "")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_BUCKET");
        assert!(
            error.to_string().contains("LANDFALL_EXPORT_BUCKET"),
            "{error}"
        );
        let config = load(&[
            ("LANDFALL_BUCKET", ""),
            ("LANDFALL_EXPORT_BUCKET", "reports"),
        ]);
        assert_eq!(config.unwrap().export_bucket, "reports");
    }
}
