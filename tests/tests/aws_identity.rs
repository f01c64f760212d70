//! AWS credentials the AWS way: with no static `LANDFALL_S3_*` keys, S3 and SQS take their
//! credentials from the AWS SDK's default chain. On EKS with IRSA that is the web identity
//! token: the SDK trades the pod's token file for temporary keys with STS
//! `AssumeRoleWithWebIdentity`. Here moto server is STS, S3 and SQS; a relay in front of its S3
//! and SQS endpoint keeps what the service sent, so the test reads the key id of every signed
//! request and compares it with the keys moto's STS issued. And with no keys and no provider at
//! all, a service stops at start with a message naming every source it tried.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use landfall_tests::moto::Moto;
use landfall_tests::{TestEnv, binary_path, data, wait_until};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const DEADLINE: Duration = Duration::from_secs(60);
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/landfall-ingester";
/// What a projected service-account token looks like (moto checks no signature).
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJpc3MiOiJodHRwczovL29pZGMuZWtzLnVzLWVhc3QtMS5hbWF6b25hd3MuY29tL2lkL1RFU1QiLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bGFuZGZhbGw6aW5nZXN0ZXIiLCJhdWQiOiJzdHMuYW1hem9uYXdzLmNvbSJ9.c2lnbmF0dXJl";

/// A TCP relay to one server that keeps every byte clients sent through it.
struct Recorder {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start(target: SocketAddr) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let kept = sent.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream = async {
                        let mut buffer = vec![0u8; 16 * 1024];
                        loop {
                            let read = client_read.read(&mut buffer).await?;
                            if read == 0 {
                                return server_write.shutdown().await;
                            }
                            kept.lock().unwrap().extend_from_slice(&buffer[..read]);
                            server_write.write_all(&buffer[..read]).await?;
                        }
                    };
                    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
                    let _ = tokio::join!(upstream, downstream);
                });
            }
        });
        Recorder { addr, sent, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The SigV4 credential scopes of the requests sent so far: (access key id, service).
    fn signed_by(&self) -> BTreeSet<(String, String)> {
        let sent = String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned();
        sent.split("Credential=")
            .skip(1)
            .filter_map(|rest| {
                let scope = rest.split([',', ' ', '\r']).next()?;
                let parts: Vec<&str> = scope.split('/').collect();
                (parts.len() == 5).then(|| (parts[0].to_owned(), parts[3].to_owned()))
            })
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET path` on moto; the body.
async fn moto_get(endpoint: &str, path: &str) -> String {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// The environment of a process that must find no AWS identity on this machine but the one
/// the test gives it: no profile files, no instance metadata (probing it would wait seconds).
fn isolated_aws_env(home: &Path) -> Vec<(String, String)> {
    let none = home.join("none");
    [
        ("HOME", home.display().to_string()),
        ("AWS_CONFIG_FILE", none.display().to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", none.display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("PATH", std::env::var("PATH").unwrap_or_default()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_web_identity_token_s3_and_sqs_use_the_keys_sts_issued() {
    let env = TestEnv::new().await;
    let moto = Moto::start().await;
    let moto_addr: SocketAddr = moto.endpoint.trim_start_matches("http://").parse().unwrap();
    let relay = Recorder::start(moto_addr).await;
    let suffix = &env.suffix;
    let bucket = format!("landfall-irsa-{suffix}");
    let session = format!("landfall-irsa-{suffix}");

    // The test's own keys set the stage: a bucket with one landing file, a queue.
    let s3 = moto.s3();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let key = TestEnv::landing_key("2026-05-01", "orders.csv");
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(ByteStream::from(data::orders_csv(1, 3).into_bytes()))
        .send()
        .await
        .unwrap();
    let queue_url = moto
        .sqs()
        .create_queue()
        .queue_name(format!("landfall-irsa-{suffix}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    // The ingester as a pod with IRSA sees it: a token file, a role, a region; no keys.
    let home = temp_dir("landfall-irsa");
    let token_file = home.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let log = home.join("ingester.log");
    let mut vars: HashMap<String, String> = env.vars();
    vars.remove("LANDFALL_S3_ACCESS_KEY_ID");
    vars.remove("LANDFALL_S3_SECRET_ACCESS_KEY");
    vars.remove("LANDFALL_S3_REGION");
    vars.extend(isolated_aws_env(&home));
    for (name, value) in [
        ("LANDFALL_S3_ENDPOINT", relay.url()),
        ("LANDFALL_BUCKET", bucket.clone()),
        ("LANDFALL_SQS_QUEUE_URL", queue_url.clone()),
        ("LANDFALL_SQS_ENDPOINT", relay.url()),
        ("LANDFALL_SQS_WAIT_TIME_S", "1".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ROLE_ARN", ROLE_ARN.to_owned()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AWS_ROLE_SESSION_NAME", session.clone()),
        // STS straight to moto; S3 and SQS through the relay.
        ("AWS_ENDPOINT_URL_STS", moto.endpoint.clone()),
        // Everything the AWS SDK logs, down to trace: no token or key may show.
        (
            "RUST_LOG",
            "info,aws_config=trace,aws_smithy_runtime=trace,aws_smithy_http_client=trace,aws_sdk_sts=trace,aws_sdk_s3=trace,aws_sdk_sqs=trace,aws_sigv4=trace,aws_credential_types=trace".to_owned(),
        ),
    ] {
        vars.insert(name.to_owned(), value);
    }
    let mut ingester = tokio::process::Command::new(binary_path("ingester"))
        .env_clear()
        .envs(&vars)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Reconcile lists the bucket (S3) and lands the file; the poller receives from the queue.
    wait_until("the file landed by reconcile", DEADLINE, || async {
        let row = env
            .db
            .query_opt(
                "SELECT discovered_by FROM ops.files WHERE key = $1 AND state = 'landed'",
                &[&key],
            )
            .await?;
        Ok(row.map(|row| row.get::<_, String>(0)))
    })
    .await;
    wait_until("an SQS request through the relay", DEADLINE, || async {
        Ok(relay
            .signed_by()
            .iter()
            .any(|(_, service)| service == "sqs")
            .then_some(()))
    })
    .await;

    // Every S3 and SQS request was signed with a key moto's STS issued for the role and session.
    let state: serde_json::Value =
        serde_json::from_str(&moto_get(&moto.endpoint, "/moto-api/data.json").await).unwrap();
    let issued: BTreeSet<String> = state["sts"]["AssumedRole"]
        .as_array()
        .expect("moto's STS assumed the role")
        .iter()
        .filter(|role| role["role_arn"] == ROLE_ARN && role["session_name"] == session.as_str())
        .map(|role| role["access_key_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!issued.is_empty(), "no AssumeRoleWithWebIdentity: {state}");
    assert!(
        issued.iter().all(|key| key.starts_with("ASIA")),
        "{issued:?}"
    );
    let signed = relay.signed_by();
    let services: BTreeSet<&str> = signed.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(services, BTreeSet::from(["s3", "sqs"]), "{signed:?}");
    for (key_id, service) in &signed {
        assert!(
            issued.contains(key_id),
            "a {service} request was signed by {key_id}, not by a key STS issued ({issued:?})"
        );
    }

    // The start-up log says where the credentials came from, and never what they are.
    let pid = ingester.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), ingester.wait())
        .await
        .expect("the ingester exited after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("AWS credentials from the default chain")
            && logged.contains("web identity token"),
        "{logged}"
    );
    assert!(
        !logged.contains(TOKEN),
        "the web identity token logged:\n{logged}"
    );
    for role in state["sts"]["AssumedRole"].as_array().unwrap() {
        for secret in ["secret_access_key", "session_token"] {
            let value = role[secret].as_str().unwrap();
            assert!(!logged.contains(value), "{secret} logged:\n{logged}");
        }
    }
    eprintln!("ingester log: {} bytes", logged.len());
    let _ = std::fs::remove_dir_all(&home);
    drop(relay);
    drop(moto);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_keys_and_no_provider_a_service_stops_at_start_naming_what_it_tried() {
    let home = temp_dir("landfall-no-identity");
    let base: Vec<(String, String)> = [
        (
            "LANDFALL_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/landfall_never_connected",
        ),
        ("LANDFALL_BUCKET", "lake"),
        ("LANDFALL_S3_REGION", "eu-west-1"),
        ("LANDFALL_S3_ENDPOINT", "http://127.0.0.1:9"),
        (
            "LANDFALL_DATASETS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../datasets"),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .chain(isolated_aws_env(&home))
    .collect();
    let run = |program: &'static str, args: &'static [&'static str], extra: Vec<(&str, &str)>| {
        let mut command = tokio::process::Command::new(binary_path(program));
        command.args(args).env_clear().envs(base.clone());
        for (name, value) in extra {
            command.env(name, value);
        }
        async move {
            let started = Instant::now();
            let output = tokio::time::timeout(DEADLINE, command.output())
                .await
                .unwrap_or_else(|_| panic!("{program} did not stop within {DEADLINE:?}"))
                .unwrap();
            (
                output.status,
                String::from_utf8_lossy(&output.stderr).into_owned(),
                started.elapsed(),
            )
        }
    };
    for (program, args) in [
        ("exporter", &[][..]),
        ("stager", &[][..]),
        ("landfall", &["reconcile"][..]),
    ] {
        let (status, stderr, took) = run(program, args, vec![]).await;
        assert!(!status.success(), "{program}: {status}\n{stderr}");
        for named in [
            "no AWS credentials",
            "LANDFALL_S3_ACCESS_KEY_ID",
            "Environment",
            "Profile",
            "WebIdentityToken",
            "EcsContainer",
            "Ec2InstanceMetadata",
        ] {
            assert!(
                stderr.contains(named),
                "{program}: no '{named}' in:\n{stderr}"
            );
        }
        eprintln!("{program} stopped after {took:?}");
    }

    // Without an endpoint override (AWS itself) a region must be found somewhere.
    let (status, stderr, _) = run(
        "landfall",
        &["reconcile"],
        vec![("LANDFALL_S3_REGION", ""), ("LANDFALL_S3_ENDPOINT", "")],
    )
    .await;
    assert!(!status.success(), "{status}\n{stderr}");
    assert!(
        stderr.contains("no AWS region: set LANDFALL_S3_REGION"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
