//! PostgreSQL connection settings the libpq way: a URL (or `key=value` string) whose `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey` mean what they mean to libpq, with `PGSSLMODE`,
//! `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY` as defaults, over rustls. Every landfall
//! connection to PostgreSQL is made here.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Socket};

use crate::tls::{self, Verify};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS if the server refuses plaintext.
    Allow,
    /// TLS if the server offers it, else plaintext (libpq's default).
    Prefer,
    /// TLS only; the certificate is checked only when a root certificate is given.
    Require,
    /// TLS, the chain must lead to the root certificate; the host name is not checked.
    VerifyCa,
    /// TLS, the chain and the host name are checked.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> anyhow::Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => anyhow::bail!(
                "sslmode '{other}' is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS parameters libpq reads from the connection string (they are taken out before the
/// rest goes to `tokio_postgres`, which knows only some of them).
const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

#[derive(Debug, Default)]
struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
}

impl TlsParams {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            "sslcert" => self.sslcert = Some(value),
            "sslkey" => self.sslkey = Some(value),
            _ => {}
        }
    }
}

/// Where and how to connect: the driver's configuration (host, port, user, database, …; change
/// it freely, e.g. the database name) and the TLS settings.
#[derive(Clone)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    mode: SslMode,
    tls: MakeRustls,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The driver's Config Debug prints the password; show only what is harmless.
        f.debug_struct("PgTarget")
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("dbname", &self.config.get_dbname())
            .field("sslmode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// Reads a `postgres://` URL or a libpq `key=value` string, with the libpq environment
    /// variables (`PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`) where it says nothing.
    /// Errors name the parameter or file, never the URL, a password or a key.
    pub fn parse(url: &str) -> anyhow::Result<PgTarget> {
        PgTarget::parse_with_env(url, &|name| std::env::var(name).ok())
    }

    /// [`PgTarget::parse`] with the environment given.
    pub fn parse_with_env(
        url: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<PgTarget> {
        let (rest, mut params) = split_tls_params(url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            // The parser's messages name the option, never the URL or its values.
            .context("not a valid PostgreSQL URL")?;
        for (key, var) in [
            ("sslmode", "PGSSLMODE"),
            ("sslrootcert", "PGSSLROOTCERT"),
            ("sslcert", "PGSSLCERT"),
            ("sslkey", "PGSSLKEY"),
        ] {
            let present = match key {
                "sslmode" => params.sslmode.is_some(),
                "sslrootcert" => params.sslrootcert.is_some(),
                "sslcert" => params.sslcert.is_some(),
                _ => params.sslkey.is_some(),
            };
            if !present && let Some(value) = env(var).filter(|value| !value.is_empty()) {
                params.set(key, value);
            }
        }
        let home = env("HOME").map(PathBuf::from);
        let (mode, tls) = tls_settings(&params, home.as_deref())?;
        config.ssl_mode(match mode {
            SslMode::Disable | SslMode::Allow => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        });
        Ok(PgTarget { config, mode, tls })
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// Connects and drives the connection on a task of its own. Errors say why, with a hint
    /// when the server refused plaintext.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let (client, connection) = connect_config(&self.config, self.mode, &self.tls)
            .await
            .map_err(explain)?;
        drop(connection);
        Ok(client)
    }

    /// A pool connector: every pooled connection is made the same way as [`PgTarget::connect`].
    pub(crate) fn pool_connector(&self) -> PoolConnect {
        PoolConnect {
            mode: self.mode,
            tls: self.tls.clone(),
        }
    }
}

/// Connects to `url` (see [`PgTarget::parse`]).
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    PgTarget::parse(url)?.connect().await
}

/// Adds a hint to an error whose cause is the server refusing an unencrypted connection.
pub fn explain(error: impl Into<anyhow::Error>) -> anyhow::Error {
    let error = error.into();
    match hint(&error) {
        Some(hint) => error.context(hint),
        None => error,
    }
}

/// The hint for a server that refused an unencrypted connection (pg_hba.conf has no `host`
/// line, only `hostssl`), if that is what happened.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    let refused_plaintext = error.chain().any(|cause| {
        cause
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::as_db_error)
            .is_some_and(|db| db.message().contains("no encryption"))
    });
    refused_plaintext.then_some(
        "the PostgreSQL server refused an unencrypted connection: set sslmode=verify-full (with sslrootcert=<CA file>) or sslmode=require in the database URL, or PGSSLMODE",
    )
}

type Connection = tokio::task::JoinHandle<()>;

async fn connect_config(
    config: &tokio_postgres::Config,
    mode: SslMode,
    tls: &MakeRustls,
) -> Result<(Client, Connection), tokio_postgres::Error> {
    match config.connect(tls.clone()).await {
        Ok((client, connection)) => Ok((client, spawn(connection))),
        // libpq's `allow`: plaintext first, then TLS when the server refused it.
        Err(error) if mode == SslMode::Allow && error.as_db_error().is_some() => {
            let mut with_tls = config.clone();
            with_tls.ssl_mode(DriverSslMode::Require);
            match with_tls.connect(tls.clone()).await {
                Ok((client, connection)) => Ok((client, spawn(connection))),
                Err(_) => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

fn spawn<F>(connection: F) -> Connection
where
    F: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %error, "PostgreSQL connection ended");
        }
    })
}

/// deadpool's way of opening a connection, the same as ours.
pub(crate) struct PoolConnect {
    mode: SslMode,
    tls: MakeRustls,
}

impl deadpool_postgres::Connect for PoolConnect {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> Pin<
        Box<dyn Future<Output = Result<(Client, Connection), tokio_postgres::Error>> + Send + '_>,
    > {
        let config = pg_config.clone();
        Box::pin(async move { connect_config(&config, self.mode, &self.tls).await })
    }
}

/// Takes libpq's TLS parameters out of a URL or `key=value` string.
fn split_tls_params(url: &str) -> anyhow::Result<(String, TlsParams)> {
    let mut params = TlsParams::default();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), params));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            if TLS_KEYS.contains(&key.as_str()) {
                params.set(&key, decode(value)?);
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, params))
    } else {
        let mut kept = Vec::new();
        for (key, value, raw) in key_values(url)? {
            if TLS_KEYS.contains(&key.as_str()) {
                params.set(&key, value);
            } else {
                kept.push(raw);
            }
        }
        Ok((kept.join(" "), params))
    }
}

fn decode(text: &str) -> anyhow::Result<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| anyhow::anyhow!("the database URL has a parameter that is not valid UTF-8"))
}

/// Splits a libpq `key=value …` string: values may be single-quoted with `\'` and `\\`.
/// Returns each key, its value and its original text.
fn key_values(text: &str) -> anyhow::Result<Vec<(String, String, &str)>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= bytes.len() {
            return Ok(out);
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = text[start..i].to_owned();
        skip_space(&mut i);
        anyhow::ensure!(
            i < bytes.len() && bytes[i] == b'=',
            "not a valid PostgreSQL URL: '{key}' has no value"
        );
        i += 1;
        skip_space(&mut i);
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            let mut closed = false;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1] as char);
                        i += 2;
                    }
                    b'\'' => {
                        i += 1;
                        closed = true;
                        break;
                    }
                    _ => {
                        let ch = text[i..].chars().next().unwrap_or_default();
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            anyhow::ensure!(
                closed,
                "not a valid PostgreSQL URL: the value of '{key}' has no closing quote"
            );
        } else {
            let value_start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&text[value_start..i]);
        }
        out.push((key, value, &text[start..i]));
    }
}

/// Decides the mode and builds the TLS configuration, libpq's way:
/// - `sslrootcert` defaults to `~/.postgresql/root.crt` when that file exists; when a root
///   certificate is there, `prefer`, `require` and `allow` check the chain too (as `verify-ca`);
/// - `verify-ca` and `verify-full` need a root certificate;
/// - `sslrootcert=system` uses the system's CAs and makes the default mode `verify-full`
///   (weaker modes are refused with it, as libpq 16 does);
/// - `sslcert`/`sslkey` default to `~/.postgresql/postgresql.crt`/`.key` when they exist.
fn tls_settings(params: &TlsParams, home: Option<&Path>) -> anyhow::Result<(SslMode, MakeRustls)> {
    let system = params.sslrootcert.as_deref() == Some("system");
    let mode = match params.sslmode.as_deref() {
        Some(mode) => SslMode::parse(mode)?,
        None if system => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if mode == SslMode::Disable {
        return Ok((mode, MakeRustls::default()));
    }
    anyhow::ensure!(
        !system || mode == SslMode::VerifyFull,
        "sslmode={} may not be used with sslrootcert=system (use verify-full)",
        mode.as_str()
    );
    let (roots, roots_from) = root_certificates(params, system, home)?;
    let verify = match (mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => Verify::Full(Arc::new(roots)),
        (_, Some(roots)) => Verify::Chain(Arc::new(roots)),
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => anyhow::bail!(
            "sslmode={} needs a root certificate to check the server against: set sslrootcert=<CA file> (or PGSSLROOTCERT), or sslrootcert=system for the system's CAs",
            mode.as_str()
        ),
        (_, None) => Verify::Nothing,
    };
    let identity = client_identity(params, home)?;
    let config = tls::client_config(&verify, identity)?;
    Ok((
        mode,
        MakeRustls {
            config: Some(Arc::new(config)),
            mode: Some(mode),
            roots_from: Arc::from(roots_from),
        },
    ))
}

/// The file a parameter names, which must exist.
fn existing_file(path: &str, what: &str, parameter: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(path);
    anyhow::ensure!(
        path.is_file(),
        "{what} {} ({parameter}) does not exist",
        path.display()
    );
    Ok(path)
}

/// `~/.postgresql/<name>` when that file exists.
fn default_file(home: Option<&Path>, name: &str) -> Option<PathBuf> {
    home.map(|home| home.join(".postgresql").join(name))
        .filter(|path| path.is_file())
}

/// The root certificates to check the server against (none: no chain check), and where they
/// come from in words.
fn root_certificates(
    params: &TlsParams,
    system: bool,
    home: Option<&Path>,
) -> anyhow::Result<(Option<rustls::RootCertStore>, String)> {
    if system {
        return Ok((
            Some(tls::system_roots()?),
            "the system's trusted CAs".to_owned(),
        ));
    }
    let path = match &params.sslrootcert {
        Some(path) => Some(existing_file(path, "root certificate file", "sslrootcert")?),
        None => default_file(home, "root.crt"),
    };
    Ok(match path {
        Some(path) => (
            Some(tls::load_roots(&path).context("sslrootcert")?),
            format!("sslrootcert ({})", path.display()),
        ),
        None => (None, String::new()),
    })
}

/// The client certificate and its key (`sslcert`, `sslkey`, or their files in
/// `~/.postgresql`), when there is one.
fn client_identity(
    params: &TlsParams,
    home: Option<&Path>,
) -> anyhow::Result<Option<tls::Identity>> {
    let cert = match &params.sslcert {
        Some(path) => Some(existing_file(path, "client certificate file", "sslcert")?),
        None => default_file(home, "postgresql.crt"),
    };
    let Some(cert) = cert else {
        return Ok(None);
    };
    let key = match &params.sslkey {
        Some(path) => PathBuf::from(path),
        None => default_file(home, "postgresql.key").ok_or_else(|| {
            anyhow::anyhow!("a client certificate (sslcert) needs its private key: set sslkey")
        })?,
    };
    Ok(Some(tls::load_identity(&cert, &key)?))
}

/// `tokio_postgres`'s TLS hook over `tokio-rustls`.
#[derive(Clone, Default)]
pub(crate) struct MakeRustls {
    config: Option<Arc<ClientConfig>>,
    mode: Option<SslMode>,
    roots_from: Arc<str>,
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        Ok(RustlsConnect {
            config: self.config.clone(),
            domain: domain.to_owned(),
            mode: self.mode,
            roots_from: self.roots_from.clone(),
        })
    }
}

pub(crate) struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    domain: String,
    mode: Option<SslMode>,
    roots_from: Arc<str>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("TLS is off (sslmode=disable)"))?;
            let name = ServerName::try_from(self.domain.clone()).map_err(|_| {
                io::Error::other(format!(
                    "'{}' is not a host name or IP address TLS can check",
                    self.domain
                ))
            })?;
            let connector = tokio_rustls::TlsConnector::from(config);
            match connector.connect(name, stream).await {
                Ok(stream) => Ok(RustlsStream(Box::new(stream))),
                Err(error) => {
                    let Some(mut message) =
                        tls::explain_handshake_error(&error, &self.domain, &self.roots_from)
                    else {
                        return Err(error);
                    };
                    if message.contains("host name mismatch") {
                        message.push_str(
                            "; sslmode=verify-full checks the host name, sslmode=verify-ca does not",
                        );
                    }
                    if let Some(mode) = self.mode {
                        message.push_str(&format!(" [sslmode={}]", mode.as_str()));
                    }
                    Err(io::Error::other(message))
                }
            }
        })
    }
}

/// An encrypted connection to PostgreSQL.
pub(crate) struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl tokio_postgres::tls::TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM channel binding (tls-server-end-point) is not offered; SCRAM still works.
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
