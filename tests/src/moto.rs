//! moto server (PyPI `moto[server]`): the real AWS-API endpoint of the tests of the AWS path
//! (S3, SQS, STS on one port). Installed once into a venv under
//! `${LANDFALL_TOOLS_DIR:-/var/tmp/landfall-tools}/moto`; one server per test on a free port,
//! killed (and its log removed) on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";
/// moto accepts any credentials.
pub const ACCESS_KEY: &str = "landfall-moto";
pub const SECRET_KEY: &str = "landfall-moto-secret";

/// The venv's python with moto installed: `${LANDFALL_TOOLS_DIR:-/var/tmp/landfall-tools}/moto`.
/// Installed into a temporary folder and renamed into place, so concurrent test processes never
/// see half an installation; the server is run as `python -m moto.server`, which (unlike the
/// venv's scripts) does not care that the folder was renamed.
pub async fn moto_python() -> PathBuf {
    static PYTHON: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    PYTHON
        .get_or_init(|| async {
            tokio::task::spawn_blocking(install_moto)
                .await
                .expect("installing moto")
        })
        .await
        .clone()
}

fn install_moto() -> PathBuf {
    let tools = std::env::var_os("LANDFALL_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/landfall-tools"));
    let venv = tools.join("moto");
    let python = venv.join("bin/python");
    let usable = |python: &Path| {
        std::process::Command::new(python)
            .args(["-c", "import moto.server, moto.sqs, moto.s3, moto.sts"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if usable(&python) {
        return python;
    }
    std::fs::create_dir_all(&tools).expect("creating the tools folder");
    let staging = tools.join(format!("moto.installing-{:08x}", rand::random::<u32>()));
    let run = |program: &Path, args: &[&str]| {
        let output = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("running {}: {error}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed:\n{}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(
        Path::new("python3"),
        &["-m", "venv", staging.to_str().expect("UTF-8 path")],
    );
    run(
        &staging.join("bin/python"),
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "moto[server]>=5,<6",
        ],
    );
    if std::fs::rename(&staging, &venv).is_err() {
        // Another process installed it first (or a broken leftover is in the way).
        let _ = std::fs::remove_dir_all(&staging);
        if !usable(&python) {
            let _ = std::fs::remove_dir_all(&venv);
            panic!(
                "{} exists but has no usable moto; removed it, run the test again",
                venv.display()
            );
        }
    }
    assert!(usable(&python), "moto installed into {}", venv.display());
    python
}

/// A moto server of this test.
pub struct Moto {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`: S3, SQS, STS and the rest of moto on one port.
    pub endpoint: String,
    log: PathBuf,
}

impl Moto {
    pub async fn start() -> Moto {
        let python = moto_python().await;
        let port = runtime::health::unused_local_port().expect("an unused port");
        let log = std::env::temp_dir().join(format!("landfall-moto-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("moto log file");
        let child = std::process::Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file handle"))
            .stderr(log_file)
            .spawn()
            .expect("starting moto_server");
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let s3 = moto.s3();
        let started = Instant::now();
        loop {
            let answered =
                tokio::time::timeout(Duration::from_secs(2), s3.list_buckets().send()).await;
            if matches!(answered, Ok(Ok(_))) {
                break;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited with {status}:\n{}", moto.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not answer within 30 s:\n{}",
                moto.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        moto
    }

    /// What the server printed: one line per request it answered.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An S3 client of the test itself (static keys, path style).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// An SQS client of the test itself (static keys).
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
