//! The deployment files (deploy/: image and compose stack; k8s/: Kustomize base and overlays)
//! pass `scripts/validate-deploy`, and the validator really rejects broken manifests, naming
//! the problem. No Docker engine or cluster is involved: the script renders and validates
//! offline. Its first run installs the validators from PyPI and npm into
//! `${LANDFALL_TOOLS_DIR:-/var/tmp/landfall-tools}` (about a minute); later runs take seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use landfall_tests::datasets::copy_dir;

/// Generous: covers the one-time install of the validators on a fresh machine.
const VALIDATOR_DEADLINE: Duration = Duration::from_secs(900);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository root")
        .to_path_buf()
}

/// Runs `scripts/validate-deploy ARGS`, killing it if it outlives the deadline.
fn validate_deploy(args: &[&str]) -> (Output, String) {
    let script = repo_root().join("scripts/validate-deploy");
    let mut child = Command::new(&script)
        .args(args)
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {}: {error}", script.display()));
    // Drain the pipes on threads so a chatty run cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut text).map(|_| text)
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut text).map(|_| text)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for validate-deploy") {
            break status;
        }
        if started.elapsed() > VALIDATOR_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scripts/validate-deploy {args:?} did not finish within {VALIDATOR_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = Output {
        status,
        stdout: out.join().expect("stdout reader").expect("reading stdout"),
        stderr: err.join().expect("stderr reader").expect("reading stderr"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// A copy of the repository's k8s/ folder in a fresh temporary folder, removed on drop.
struct K8sCopy {
    dir: PathBuf,
}

impl K8sCopy {
    fn new(label: &str) -> K8sCopy {
        let dir = std::env::temp_dir().join(format!(
            "landfall-deploy-test-{label}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        copy_dir(&repo_root().join("k8s"), &dir.join("k8s"));
        K8sCopy { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("k8s")
    }

    /// Replaces `from` (which must occur exactly once) by `to` in one manifest of the copy.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.path().join(file);
        let text = std::fs::read_to_string(&path).expect("reading the manifest");
        assert_eq!(
            text.matches(from).count(),
            1,
            "{file} should hold {from:?} once"
        );
        std::fs::write(&path, text.replacen(from, to, 1)).expect("writing the manifest");
    }
}

impl Drop for K8sCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_deployment_files_pass_every_validator() {
    let (output, text) = validate_deploy(&[]);
    assert!(
        output.status.success(),
        "scripts/validate-deploy failed:\n{text}"
    );
    // Every step ran and passed (none was skipped for a missing tool or file).
    for step in [
        "kustomize",
        "kubernetes",
        "keda",
        "policy",
        "yamllint",
        "compose",
        "dockerfile",
    ] {
        assert!(
            text.contains(&format!("ok   {step}:")),
            "no passing `{step}` step in:\n{text}"
        );
    }
    // Both overlays were rendered and validated.
    assert!(
        text.contains("overlays/dev") && text.contains("overlays/prod"),
        "{text}"
    );
}

#[test]
fn a_deployment_with_a_replica_count_that_is_not_a_number_is_rejected() {
    let k8s = K8sCopy::new("replicas");
    k8s.edit(
        "base/stager.yaml",
        "  revisionHistoryLimit: 5\n",
        "  replicas: \"two\"\n  revisionHistoryLimit: 5\n",
    );
    let (output, text) = validate_deploy(&["--k8s", k8s.path().to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected the validator to fail:\n{text}"
    );
    assert!(text.contains("FAIL kubernetes:"), "{text}");
    assert!(
        text.contains("deployment/stager")
            && text.contains("spec.replicas: 'two' is not of type 'integer'"),
        "the schema error should name the object and the field:\n{text}"
    );
    // landfall's own rule: KEDA owns the replica count.
    assert!(
        text.contains("Deployment/stager: sets spec.replicas, which KEDA owns"),
        "{text}"
    );
    // The untouched parts still pass.
    for step in ["kustomize", "keda", "yamllint", "compose", "dockerfile"] {
        assert!(text.contains(&format!("ok   {step}:")), "{step}:\n{text}");
    }
}

#[test]
fn a_readiness_probe_without_its_port_is_rejected() {
    let k8s = K8sCopy::new("probe");
    k8s.edit(
        "base/transformer.yaml",
        "              path: /readyz\n              port: 8080\n",
        "              path: /readyz\n",
    );
    let (output, text) = validate_deploy(&["--k8s", k8s.path().to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected the validator to fail:\n{text}"
    );
    assert!(
        text.contains("FAIL kubernetes:")
            && text.contains("deployment/transformer")
            && text.contains("'port' is a required property"),
        "the schema error should name the object and the missing field:\n{text}"
    );
    assert!(
        text.contains(
            "Deployment/transformer: container transformer: readinessProbe port is None, expected 8080"
        ),
        "{text}"
    );
}

/// KEDA objects are not Kubernetes built-ins: kubernetes-validate cannot check them, and the
/// API server would accept a misspelt field and KEDA silently ignore it. The `keda` step must
/// catch both kinds of mistake, in every rendered kustomization.
#[test]
fn a_scaled_object_with_a_misspelt_field_or_a_wrong_type_is_rejected() {
    let k8s = K8sCopy::new("keda");
    // A misspelt field (KEDA would run with the default cool-down instead).
    k8s.edit(
        "base/keda.yaml",
        "  cooldownPeriod: 300\n  minReplicaCount: 1\n  maxReplicaCount: 2\n",
        "  coolDownPeriod: 300\n  minReplicaCount: 1\n  maxReplicaCount: 2\n",
    );
    // A wrong type: a duration string where KEDA wants whole seconds.
    k8s.edit(
        "base/keda.yaml",
        "    name: exporter\n  pollingInterval: 15\n",
        "    name: exporter\n  pollingInterval: \"15s\"\n",
    );
    let (output, text) = validate_deploy(&["--k8s", k8s.path().to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected the validator to fail:\n{text}"
    );
    assert!(text.contains("FAIL keda:"), "{text}");
    for rendered in ["base", "dev", "prod"] {
        assert!(
            text.contains(&format!(
                "{rendered}: ScaledObject/transformer: .spec.coolDownPeriod is not a field of ScaledObjectSpec"
            )),
            "the misspelt field should be named, with the object, in {rendered}:\n{text}"
        );
        assert!(
            text.lines().any(|line| line.contains(&format!(
                "{rendered}: ScaledObject/exporter: /spec/pollingInterval"
            )) && line.contains("integer")),
            "the wrong type should be named, with the object and the field, in {rendered}:\n{text}"
        );
    }
    // Only the KEDA check can see these: everything else still passes.
    for step in [
        "kustomize",
        "kubernetes",
        "policy",
        "yamllint",
        "compose",
        "dockerfile",
    ] {
        assert!(text.contains(&format!("ok   {step}:")), "{step}:\n{text}");
    }
}

/// The base limits egress by port only (it cannot know where the servers run); every overlay
/// must narrow each rule to its servers with `to:`. An overlay that forgets one, or opens a
/// port landfall does not use, must fail the `policy` step, while the base's port-only rules
/// stay accepted. The extractor's policy copies landfall-egress's rules (the overlays'
/// `replacements:`), so a rule left open there is open for the extractor too, and named.
#[test]
fn an_overlay_egress_rule_without_destinations_or_to_another_port_is_rejected() {
    let k8s = K8sCopy::new("egress");
    // dev forgets to narrow the PostgreSQL rule: 5432 would be open to any address.
    k8s.edit(
        "overlays/dev/egress-destinations.yaml",
        "- op: add\n  path: /spec/egress/2/to\n  value:\n    - namespaceSelector:\n        \
         matchLabels:\n          kubernetes.io/metadata.name: postgresql\n      \
         podSelector:\n        matchLabels:\n          app.kubernetes.io/name: postgresql\n",
        "",
    );
    // prod adds a rule to a port landfall never uses, even with a destination.
    k8s.edit(
        "overlays/prod/egress-destinations.yaml",
        "# END OF THE VALUES TO SET.",
        "- op: add\n  path: /spec/egress/-\n  value:\n    ports:\n      - port: 6379\n    \
         to:\n      - ipBlock:\n          cidr: 10.0.30.0/24\n# END OF THE VALUES TO SET.",
    );
    let (output, text) = validate_deploy(&["--k8s", k8s.path().to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected the validator to fail:\n{text}"
    );
    assert!(text.contains("FAIL policy:"), "{text}");
    assert!(
        text.contains(
            "dev: NetworkPolicy/landfall-egress: egress rule to 5432/TCP has no `to:`, \
             so it reaches any address"
        ),
        "the rule without destinations should be named, with the overlay and the port:\n{text}"
    );
    assert!(
        text.contains(
            "dev: NetworkPolicy/landfall-extractor-egress: egress rule to 5432/TCP has no `to:`, \
             so it reaches any address"
        ),
        "the extractor's copy of the PostgreSQL rule is as open, and named:\n{text}"
    );
    assert!(
        text.contains("prod: NetworkPolicy/landfall-egress: allows egress to port 6379"),
        "the extra port should be named, with the overlay:\n{text}"
    );
    // Only these rules are at fault: the other rules of both overlays name their destinations
    // (the rule added in prod is not one the extractor's policy copies), and the base may limit
    // by port alone.
    assert_eq!(
        text.lines()
            .filter(|line| line.contains("NetworkPolicy/"))
            .count(),
        3,
        "{text}"
    );
    // The broken rules are well-formed: only the policy check can see them.
    for step in [
        "kustomize",
        "kubernetes",
        "keda",
        "yamllint",
        "compose",
        "dockerfile",
    ] {
        assert!(text.contains(&format!("ok   {step}:")), "{step}:\n{text}");
    }
}

/// Runs `kubectl kustomize DIR` with the kubectl the validator uses: the one on PATH, else the
/// one `scripts/validate-deploy` installed into its tools folder (so call the validator first).
fn kustomize(dir: &Path) -> String {
    let on_path = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|output| output.status.success());
    let kubectl = if on_path {
        PathBuf::from("kubectl")
    } else {
        let tools = std::env::var("LANDFALL_TOOLS_DIR")
            .unwrap_or_else(|_| "/var/tmp/landfall-tools".into());
        Path::new(&tools).join("venv/bin/kubectl")
    };
    let output = Command::new(&kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|error| panic!("running {} kustomize: {error}", kubectl.display()));
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 manifests")
}

/// The `image:` of every container in rendered manifests.
fn rendered_images(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|line| {
            line.trim_start()
                .trim_start_matches("- ")
                .strip_prefix("image: ")
        })
        .map(|image| image.trim().trim_matches('"').to_owned())
        .collect()
}

/// A new release tag set in an overlay reaches every container it renders (five services, the
/// migration Job and the extractor's CronJob), and each overlay renders its own tag, not the
/// base's. Checked on the rendered output itself, and the validator agrees.
#[test]
fn each_overlay_renders_its_own_image_tag_on_every_container() {
    let k8s = K8sCopy::new("release");
    k8s.edit(
        "overlays/prod/kustomization.yaml",
        "newTag: \"0.1.0\"",
        "newTag: \"0.2.0-rc.1\"",
    );
    // First: it installs kubectl when the machine has none.
    let (output, text) = validate_deploy(&["--k8s", k8s.path().to_str().unwrap()]);
    assert!(output.status.success(), "{text}");
    for (overlay, tag) in [("dev", "dev"), ("prod", "0.2.0-rc.1")] {
        let images = rendered_images(&kustomize(&k8s.path().join("overlays").join(overlay)));
        assert_eq!(
            images.len(),
            7,
            "{overlay}: five Deployments, the Job and the CronJob: {images:?}"
        );
        let wanted = format!("registry.example.com/landfall/landfall:{tag}");
        assert!(
            images.iter().all(|image| *image == wanted),
            "{overlay}: {images:?}"
        );
    }
}

/// The two release bugs of issue 15 fail the `policy` step: the base rewriting the image name
/// (so the overlays' `images:` match nothing and run the base's tag), and the shared ConfigMap
/// setting a variable whose default differs per service (every one of
/// `runtime::config::PER_SERVICE_DEFAULTS`, so the validator's list cannot fall behind the
/// code's). A CA bundle named in a URL but not mounted fails too.
#[test]
fn an_overlay_tag_that_misses_the_pods_or_a_shared_per_service_setting_is_rejected() {
    let k8s = K8sCopy::new("release-bugs");
    // The old base: it rewrote `landfall` itself.
    k8s.edit(
        "base/kustomization.yaml",
        "configMapGenerator:",
        "images:\n  - name: landfall\n    newName: registry.example.com/landfall/landfall\n    \
         newTag: \"0.1.0\"\n\nconfigMapGenerator:",
    );
    k8s.edit(
        "overlays/prod/kustomization.yaml",
        "newTag: \"0.1.0\"",
        "newTag: \"0.2.0\"",
    );
    let shared: String = runtime::config::PER_SERVICE_DEFAULTS
        .iter()
        .map(|variable| format!("{variable}=8\n"))
        .collect();
    k8s.edit(
        "base/config.env",
        "LANDFALL_CONCURRENCY=2\n",
        &format!("LANDFALL_CONCURRENCY=2\n{shared}"),
    );
    k8s.edit(
        "overlays/prod/tls-deployments.yaml",
        "    mountPath: /etc/landfall/ca\n",
        "    mountPath: /etc/landfall/certs\n",
    );
    let (output, text) = validate_deploy(&["--k8s", k8s.path().to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected the validator to fail:\n{text}"
    );
    assert!(text.contains("FAIL policy:"), "{text}");
    for (overlay, tag) in [("dev", "dev"), ("prod", "0.2.0")] {
        for workload in [
            "Deployment/ingester: container ingester",
            "Deployment/exporter: container exporter",
            "Job/landfall-migrate: container migrate",
            "CronJob/extractor-ecommerce: container extractor",
        ] {
            assert!(
                text.contains(&format!(
                    "{overlay}: {workload} runs registry.example.com/landfall/landfall:0.1.0, not \
                     the kustomization's registry.example.com/landfall/landfall:{tag}"
                )),
                "{overlay}: {workload}:\n{text}"
            );
        }
    }
    for variable in runtime::config::PER_SERVICE_DEFAULTS {
        for rendered in ["base", "dev", "prod"] {
            assert!(
                text.lines().any(|line| line
                    .contains(&format!("{rendered}: ConfigMap/landfall-config"))
                    && line.contains(&format!("{variable}=8 is shared by every service"))),
                "{variable} in {rendered}:\n{text}"
            );
        }
    }
    assert!(
        text.contains(
            "prod: Deployment/stager: container stager: LANDFALL_DATABASE_URL names \
             sslrootcert=/etc/landfall/ca/rds-ca.pem, which no volume mounted into the container holds"
        ),
        "{text}"
    );
    for step in ["kustomize", "kubernetes", "keda", "yamllint"] {
        assert!(text.contains(&format!("ok   {step}:")), "{step}:\n{text}");
    }
}

/// The extractor runs as a CronJob per dataset: held to the Deployments' pod rules, but with
/// rules of its own. Runs of one dataset must never overlap (they would write the same files and
/// move the same watermarks), so `concurrencyPolicy` must be Forbid and a stuck run must have an
/// end; its shop database URL comes from the Secret; and its pods must not reach the broker,
/// which they never use (here: landfall-egress no longer leaves them out).
#[test]
fn an_extractor_cron_job_that_may_overlap_or_reach_the_broker_is_rejected() {
    let k8s = K8sCopy::new("cronjob");
    k8s.edit(
        "base/extractor-ecommerce.yaml",
        "  concurrencyPolicy: Forbid\n",
        "  concurrencyPolicy: Allow\n",
    );
    k8s.edit(
        "base/extractor-ecommerce.yaml",
        "      activeDeadlineSeconds: 3600\n",
        "",
    );
    // The shop database's URL written into the manifest instead of taken from the Secret.
    let from_secret = [
        "                - name: LANDFALL_SOURCE_DATABASE_URL",
        "                  valueFrom:",
        "                    secretKeyRef:",
        "                      name: landfall-secrets",
        "                      key: LANDFALL_SOURCE_DATABASE_URL",
        "",
    ]
    .join("\n");
    let literal = [
        "                - name: LANDFALL_SOURCE_DATABASE_URL",
        "                  value: postgres://reader:secret@shop.example:5432/shop",
        "",
    ]
    .join("\n");
    k8s.edit("base/extractor-ecommerce.yaml", &from_secret, &literal);
    // landfall-egress selects the extractor's pods again, RabbitMQ rule and all.
    k8s.edit(
        "base/networkpolicies.yaml",
        "    matchExpressions:\n      - key: app.kubernetes.io/name\n        \
         operator: NotIn\n        values: [\"extractor\"]\n",
        "",
    );
    let (output, text) = validate_deploy(&["--k8s", k8s.path().to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected the validator to fail:\n{text}"
    );
    assert!(text.contains("FAIL policy:"), "{text}");
    for rendered in ["base", "dev", "prod"] {
        for problem in [
            "CronJob/extractor-ecommerce: concurrencyPolicy is 'Allow', expected Forbid",
            "CronJob/extractor-ecommerce: jobTemplate activeDeadlineSeconds None is not a positive \
             whole number",
            "CronJob/extractor-ecommerce: container extractor: LANDFALL_SOURCE_DATABASE_URL has a \
             literal value; use secretKeyRef",
        ] {
            assert!(
                text.contains(&format!("{rendered}: {problem}")),
                "{rendered}: {problem}:\n{text}"
            );
        }
    }
    // The broker's port as each kustomization has it: 5672, and 5671 (TLS) in prod.
    for (rendered, port) in [("base", 5672), ("dev", 5672), ("prod", 5671)] {
        assert!(
            text.contains(&format!(
                "{rendered}: NetworkPolicy/landfall-egress: opens {port} (RabbitMQ) to the pods of \
                 CronJob/extractor-ecommerce, which use no broker"
            )),
            "{rendered}:\n{text}"
        );
    }
    // A CronJob needs no probes, PDB or scaler: none of those is asked of it.
    assert!(
        !text.contains("CronJob/extractor-ecommerce: container extractor has no"),
        "{text}"
    );
    // Well-formed objects: only the policy check can see these.
    for step in [
        "kustomize",
        "kubernetes",
        "keda",
        "yamllint",
        "compose",
        "dockerfile",
    ] {
        assert!(text.contains(&format!("ok   {step}:")), "{step}:\n{text}");
    }
}
