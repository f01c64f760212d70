use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(pairs: &[(&str, &str)]) -> Result<CommonConfig, ConfigError> {
    let vars = env(pairs);
    CommonConfig::from_env(&Env::from_fn(|name| vars.get(name).cloned()), "stager")
}

const MINIMAL: &[(&str, &str)] = &[(
    "LANDFALL_DATABASE_URL",
    "postgres://landfall:hunter2@db/landfall",
)];

#[test]
fn minimal_configuration_uses_defaults() {
    let config = load(MINIMAL).unwrap();
    assert_eq!(config.amqp_prefix, "landfall");
    assert_eq!(config.notify_exchange, "landfall.s3");
    assert_eq!(config.service_name, "stager");
    assert_eq!(config.database_role.as_deref(), Some("landfall_stager"));
    // One message per transaction, a few prefetched, except for the ingester's
    // notifications.
    assert_eq!((config.prefetch, config.consume_batch), (8, 1));
    let vars = env(MINIMAL);
    let ingester =
        CommonConfig::from_env(&Env::from_fn(|name| vars.get(name).cloned()), "ingester").unwrap();
    assert_eq!((ingester.prefetch, ingester.consume_batch), (128, 64));
}

/// Renaming a service for telemetry leaves the key its handled events are recorded under.
#[test]
fn the_idempotency_key_is_the_stage_never_the_telemetry_name() {
    let mut vars = env(MINIMAL);
    vars.insert("OTEL_SERVICE_NAME".into(), "stager-eu-west".into());
    let config =
        CommonConfig::from_env(&Env::from_fn(|name| vars.get(name).cloned()), "stager").unwrap();
    assert_eq!(config.service_name, "stager-eu-west");
    assert_eq!(config.consumer, "stager");
}

/// Each variable of PER_SERVICE_DEFAULTS really gives two services different defaults (so
/// the list names no variable that a shared value could set harmlessly).
#[test]
fn per_service_defaults_differ_between_services() {
    let vars = env(MINIMAL);
    let lookup = Env::from_fn(|name| vars.get(name).cloned());
    let configs: Vec<CommonConfig> = crate::Stage::ALL
        .iter()
        .map(|stage| CommonConfig::from_env(&lookup, stage.name()).unwrap())
        .collect();
    for variable in PER_SERVICE_DEFAULTS {
        let value = |config: &CommonConfig| match *variable {
            "LANDFALL_PREFETCH" => config.prefetch.to_string(),
            "LANDFALL_CONSUME_BATCH" => config.consume_batch.to_string(),
            "LANDFALL_DATABASE_ROLE" => format!("{:?}", config.database_role),
            "OTEL_SERVICE_NAME" => config.service_name.clone(),
            other => panic!("{other}: say here which setting it gives"),
        };
        let mut defaults: Vec<String> = configs.iter().map(value).collect();
        defaults.sort();
        defaults.dedup();
        assert!(
            defaults.len() > 1,
            "{variable}: one default for all: {defaults:?}"
        );
    }
}

#[test]
fn the_database_role_is_the_services_own_unless_configured() {
    let vars = env(MINIMAL);
    let lookup = Env::from_fn(|name| vars.get(name).cloned());
    let role = |service| {
        CommonConfig::from_env(&lookup, service)
            .unwrap()
            .database_role
    };
    assert_eq!(
        role("quality-checker").as_deref(),
        Some("landfall_quality_checker")
    );
    assert_eq!(role("landfall-reconcile"), None);

    let mut pairs = MINIMAL.to_vec();
    pairs.push(("LANDFALL_DATABASE_ROLE", "none"));
    assert_eq!(load(&pairs).unwrap().database_role, None);
    pairs.pop();
    pairs.push(("LANDFALL_DATABASE_ROLE", "etl_stager"));
    assert_eq!(
        load(&pairs).unwrap().database_role.as_deref(),
        Some("etl_stager")
    );
    pairs.pop();
    pairs.push(("LANDFALL_DATABASE_ROLE", "x; DROP TABLE"));
    assert_eq!(load(&pairs).unwrap_err().variable, "LANDFALL_DATABASE_ROLE");
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let config = load(MINIMAL).unwrap();
    let printed = format!("{config:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("[redacted]"));
}

#[test]
fn a_missing_variable_is_named() {
    let error = load(&[("LANDFALL_BUCKET", "lake")]).unwrap_err();
    assert_eq!(error.variable, "LANDFALL_DATABASE_URL");
    assert!(error.to_string().contains("is not set"), "{error}");
}

#[test]
fn a_malformed_value_says_what_is_wrong() {
    let mut pairs = MINIMAL.to_vec();
    pairs.push(("LANDFALL_PREFETCH", "lots"));
    let error = load(&pairs).unwrap_err();
    assert_eq!(error.variable, "LANDFALL_PREFETCH");
    assert!(
        error.to_string().contains("'lots' is not a whole number"),
        "{error}"
    );

    let mut pairs = MINIMAL.to_vec();
    pairs.push(("LANDFALL_AMQP_PREFIX", "Bad Name!"));
    assert_eq!(load(&pairs).unwrap_err().variable, "LANDFALL_AMQP_PREFIX");

    let vars = env(&[("LANDFALL_S3_ACCESS_KEY_ID", "AKIA")]);
    let error = S3Config::from_env(&Env::from_fn(|name| vars.get(name).cloned())).unwrap_err();
    assert_eq!(error.variable, "LANDFALL_S3_SECRET_ACCESS_KEY");
}

#[test]
fn the_common_configuration_needs_no_bucket() {
    // The transformer, the quality-checker, `landfall transform` and `replay` never touch S3.
    let config = load(MINIMAL).unwrap();
    assert_eq!(config.service_name, "stager");

    let vars = env(&[]);
    let lookup = Env::from_fn(|name| vars.get(name).cloned());
    let error = LandingConfig::from_env(&lookup).unwrap_err();
    assert_eq!(error.variable, "LANDFALL_BUCKET");
    assert!(error.to_string().contains("is not set"), "{error}");
    // Reaching S3 needs no bucket either: the stager reads it from each file's event.
    let s3 = S3Config::from_env(&lookup).unwrap();
    assert_eq!(s3.endpoint, None);
    assert_eq!(
        s3.region, None,
        "unset: the AWS default region chain decides"
    );
    assert!(s3.access_key_id.is_none() && s3.secret_access_key.is_none());
    assert!(!s3.force_path_style);

    let vars = env(&[
        ("LANDFALL_BUCKET", "lake"),
        ("LANDFALL_LANDING_PREFIX", "in"),
        ("LANDFALL_S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("LANDFALL_S3_REGION", "eu-west-1"),
    ]);
    let lookup = Env::from_fn(|name| vars.get(name).cloned());
    let landing = LandingConfig::from_env(&lookup).unwrap();
    assert_eq!(
        (landing.bucket.as_str(), landing.landing_prefix.as_str()),
        ("lake", "in/")
    );
    let s3 = S3Config::from_env(&lookup).unwrap();
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    assert!(
        s3.force_path_style,
        "path style by default with an endpoint"
    );
}

#[test]
fn the_log_format_is_text_or_json_and_nothing_else() {
    assert!(!load(MINIMAL).unwrap().log_json);
    for (format, json) in [
        ("text", false),
        ("json", true),
        ("JSON", true),
        (" text ", false),
    ] {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("LANDFALL_LOG_FORMAT", format));
        assert_eq!(load(&pairs).unwrap().log_json, json, "{format}");
    }
    let mut pairs = MINIMAL.to_vec();
    pairs.push(("LANDFALL_LOG_FORMAT", "jsno"));
    let error = load(&pairs).unwrap_err();
    assert_eq!(error.variable, "LANDFALL_LOG_FORMAT");
    assert!(
        error
            .to_string()
            .contains("'jsno' is not a log format; use text or json"),
        "{error}"
    );
}
