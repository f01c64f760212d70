use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn tls_parameters_are_taken_out_of_a_url() {
    let (rest, params) = split_tls_params(
        "postgres://u:p%3Fw@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
    )
    .unwrap();
    assert_eq!(rest, "postgres://u:p%3Fw@h:5/db?application_name=x");
    assert_eq!(params.sslmode.as_deref(), Some("verify-full"));
    assert_eq!(params.sslrootcert.as_deref(), Some("/tmp/ca.pem"));
}

#[test]
fn tls_parameters_are_taken_out_of_key_values() {
    let (rest, params) =
        split_tls_params("host=h  sslmode = require password='a b\\'c' dbname=d").unwrap();
    assert_eq!(rest, "host=h password='a b\\'c' dbname=d");
    assert_eq!(params.sslmode.as_deref(), Some("require"));
    let config: tokio_postgres::Config = rest.parse().unwrap();
    assert_eq!(config.get_password(), Some(&b"a b'c"[..]));
}

#[test]
fn modes_the_libpq_way() {
    let target = PgTarget::parse_with_env("postgres://h/db", &no_env).unwrap();
    assert_eq!(target.ssl_mode(), SslMode::Prefer);
    let env = |name: &str| (name == "PGSSLMODE").then(|| "disable".to_owned());
    let target = PgTarget::parse_with_env("postgres://h/db", &env).unwrap();
    assert_eq!(target.ssl_mode(), SslMode::Disable);
    let target = PgTarget::parse_with_env("postgres://h/db?sslmode=require", &env).unwrap();
    assert_eq!(target.ssl_mode(), SslMode::Require);
    let error = PgTarget::parse_with_env("postgres://h/db?sslmode=verify-full", &no_env)
        .unwrap_err()
        .to_string();
    assert!(error.contains("needs a root certificate"), "{error}");
    let error = PgTarget::parse_with_env("postgres://h/db?sslmode=verify", &no_env)
        .unwrap_err()
        .to_string();
    assert!(error.contains("is not one of"), "{error}");
    let error = PgTarget::parse_with_env(
        "postgres://u:secret@h/db?sslmode=require&sslrootcert=system",
        &no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("verify-full"), "{error}");
    assert!(!error.contains("secret"));
}
