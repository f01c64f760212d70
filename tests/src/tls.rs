//! Real TLS servers for tests, each on ports of its own and removed when dropped: a CA made at
//! test time with the `openssl` command, a PostgreSQL 15 cluster that accepts only TLS
//! (`hostssl` and nothing else), and a RabbitMQ node whose only listener is TLS.
//!
//! The server certificate is for `localhost` and `127.0.0.1`; every address of 127.0.0.0/8 is
//! the loopback interface, so connecting to `127.0.0.2` reaches the same server under a name the
//! certificate does not list (the host-name-mismatch case). Both servers also trust the CA for
//! client certificates (asked for, not required), so a client certificate given is checked.
//!
//! PostgreSQL refuses to run as root: when the tests run as root (CI), its cluster runs as the
//! `postgres` user through `runuser`, and RabbitMQ's node as `rabbitmq` (the Debian scripts
//! switch to it); the files they read are handed to those users.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A folder of certificates: a CA, a server certificate it signed (`localhost`, `127.0.0.1`),
/// a client certificate it signed (`CN=postgres`), and another CA that signed nothing here.
pub struct TestCa {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCa {
    pub fn create() -> TestCa {
        let dir = std::env::temp_dir().join(format!("landfall-tls-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).expect("certificate folder");
        let openssl = |args: &[&str], what: &str| {
            run(Command::new("openssl").args(args).current_dir(&dir), what)
        };
        for ca in ["ca", "other-ca"] {
            openssl(
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=landfall test {ca}"),
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                ],
                "making a test CA",
            );
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("client.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for (name, subject) in [("server", "/CN=localhost"), ("client", "/CN=postgres")] {
            openssl(
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    subject,
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                ],
                "making a key and a signing request",
            );
            openssl(
                &[
                    "x509",
                    "-req",
                    "-days",
                    "2",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.pem"),
                ],
                "signing a certificate",
            );
        }
        // Readable by the servers' users; the keys stay private to their owners below.
        set_mode(&dir, 0o755);
        TestCa {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            dir,
        }
    }

    /// Lines of the private keys' PEM bodies: none may ever show in a log.
    pub fn key_material(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for key in [&self.client_key, &self.server_key, &self.dir.join("ca.key")] {
            let text = std::fs::read_to_string(key).expect("reading a test key");
            lines.extend(
                text.lines()
                    .filter(|line| !line.starts_with("-----") && line.len() > 20)
                    .map(str::to_owned),
            );
        }
        lines
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &Path, user: &str) {
    if is_root() {
        run(
            Command::new("chown").args(["-R", user]).arg(path),
            "handing files to a server's user",
        );
    }
}

/// `command` run as `user` when the tests run as root.
fn as_user(user: &str, program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", user, "--", program]);
        command
    } else {
        Command::new(program)
    }
}

/// A PostgreSQL 15 cluster on a port of its own that accepts only TLS connections from
/// 127.0.0.0/8 (trust authentication: the URL's password is ignored).
pub struct TlsPostgres {
    pub port: u16,
    dir: PathBuf,
}

impl TlsPostgres {
    pub fn start(ca: &TestCa) -> TlsPostgres {
        let started = Instant::now();
        let dir = ca.dir.join("postgres");
        std::fs::create_dir_all(&dir).unwrap();
        for (from, to) in [
            (&ca.server_cert, "server.pem"),
            (&ca.server_key, "server.key"),
            (&ca.ca, "ca.pem"),
        ] {
            std::fs::copy(from, dir.join(to)).expect("copying a certificate");
        }
        set_mode(&dir.join("server.key"), 0o600);
        chown(&dir, "postgres");
        let data = dir.join("data");
        run(
            as_user("postgres", &format!("{PG_BIN}/initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]),
            "initdb of the TLS cluster",
        );
        let port = free_port();
        let dir_text = dir.display();
        let settings = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1,127.0.0.2'\nunix_socket_directories = '{dir_text}'\n\
             ssl = on\nssl_cert_file = '{dir_text}/server.pem'\nssl_key_file = '{dir_text}/server.key'\n\
             ssl_ca_file = '{dir_text}/ca.pem'\nfsync = off\nmax_connections = 200\n"
        );
        append(&data.join("postgresql.conf"), &settings);
        // TLS only: no `host` line, no `local` line.
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.0/8 trust\n",
        )
        .unwrap();
        chown(&dir, "postgres");
        let server = TlsPostgres { port, dir };
        run(
            as_user("postgres", &format!("{PG_BIN}/pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(server.dir.join("server.log"))
                .args(["-w", "-t", "60", "start"]),
            "starting the TLS cluster",
        );
        eprintln!(
            "TLS-only PostgreSQL on port {port}, ready in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        server
    }

    /// `postgres://postgres:<password>@<host>:<port>/<database>?<params>`.
    pub fn url(&self, host: &str, password: &str, database: &str, params: &str) -> String {
        format!(
            "postgres://postgres:{password}@{host}:{}/{database}?{params}",
            self.port
        )
    }

    /// The server's log (it records refused connections).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = as_user("postgres", &format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("opening a config file");
    file.write_all(text.as_bytes())
        .expect("writing a config file");
}

/// A RabbitMQ node of its own (own node name, distribution port and files) whose only
/// listener is TLS, with `guest` allowed from 127.0.0.0/8.
pub struct TlsRabbit {
    pub port: u16,
    node: String,
    dir: PathBuf,
}

impl TlsRabbit {
    pub fn start(ca: &TestCa) -> TlsRabbit {
        let started = Instant::now();
        let dir = ca.dir.join("rabbitmq");
        std::fs::create_dir_all(dir.join("mnesia")).unwrap();
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        let port = free_port();
        let dist_port = free_port();
        let node = format!("lftls{:08x}@localhost", rand::random::<u32>());
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp = none\nlisteners.ssl.default = {port}\n\
                 ssl_options.cacertfile = {ca}\nssl_options.certfile = {cert}\nssl_options.keyfile = {key}\n\
                 ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = false\n\
                 loopback_users = none\n",
                ca = ca.ca.display(),
                cert = ca.server_cert.display(),
                key = ca.server_key.display(),
            ),
        )
        .unwrap();
        chown(&dir, "rabbitmq");
        if is_root() {
            // The node reads the server key from the CA folder.
            chown(&ca.server_key, "rabbitmq");
        }
        let rabbit = TlsRabbit { port, node, dir };
        run(
            Command::new("rabbitmq-server")
                .arg("-detached")
                .env("RABBITMQ_NODENAME", &rabbit.node)
                .env("RABBITMQ_DIST_PORT", dist_port.to_string())
                .env("RABBITMQ_CONFIG_FILE", rabbit.dir.join("rabbitmq"))
                .env("RABBITMQ_MNESIA_BASE", rabbit.dir.join("mnesia"))
                .env("RABBITMQ_LOG_BASE", rabbit.dir.join("log"))
                .env(
                    "RABBITMQ_ENABLED_PLUGINS_FILE",
                    rabbit.dir.join("enabled_plugins"),
                ),
            "starting a RabbitMQ node with a TLS listener",
        );
        // `await_startup` fails at once while the node is not registered yet: ask again.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let up = Command::new("rabbitmqctl")
                .args(["-n", &rabbit.node, "await_startup", "--timeout", "60"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if up && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the RabbitMQ TLS node {} did not start in 90 s; its log is in {}",
                rabbit.node,
                rabbit.dir.join("log").display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!(
            "RabbitMQ TLS node {} on port {port}, ready in {:.1} s",
            rabbit.node,
            started.elapsed().as_secs_f64()
        );
        rabbit
    }

    /// `amqps://guest:guest@<host>:<port>/%2f?<params>`.
    pub fn url(&self, host: &str, params: &str) -> String {
        format!("amqps://guest:guest@{host}:{}/%2f?{params}", self.port)
    }
}

impl Drop for TlsRabbit {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
