"""landfall's own rules for its rendered Kubernetes manifests (run by scripts/validate-deploy).

The schema validators check that each object is well-formed; these checks say whether the
manifests do what docs/DEPLOY.md promises: probes on the health port, drain time shorter than
the grace period, hardened pods, Secret references only, a disruption budget and a queue-length
scaler for every service, and network policies that deny by default and let landfall's pods
reach only its servers.

CronJobs (the extractor's, one per dataset) are held to the same pod rules as the Deployments
(hardened pod and container, resources, the landfall ServiceAccount, Secret references only,
the kustomization's image, mounted CA files, the recommended labels) but need no probes, PDB or
scaler. Each must also never overlap itself (concurrencyPolicy: Forbid), so a stuck run needs an
end (jobTemplate activeDeadlineSeconds), and say its time zone (timeZone) and how late a missed
run may start (startingDeadlineSeconds). It runs a one-shot binary (`extractor` or `landfall`),
not a service. An extractor CronJob takes both database URLs from the Secret, names one dataset
(LANDFALL_EXTRACT_DATASET; with --datasets DIR, one that has a dataset.toml and an extract.toml
there) that no other CronJob extracts, leaves LANDFALL_EXTRACT_DATE unset (each run extracts its
own day), and its pods carry `app.kubernetes.io/name: extractor`, which its network policy
selects: the policies that select them must allow PostgreSQL, must not open RabbitMQ's ports
(the extractor uses no broker) and must admit no ingress.

Egress: every rule of every NetworkPolicy may open only landfall's ports (ALLOWED_EGRESS: DNS
53 over UDP or TCP; RabbitMQ 5672 (5671 with TLS), PostgreSQL 5432, S3 443 or MinIO 9000, the collector 4317,
over TCP), one port at a time (no `endPort` range, no rule without ports). With --overlay (a
kustomization that gets applied, not the base), every rule must also name its destinations:
a `to:` whose peers select less than everything (no ipBlock of /0, no peer matching every pod of
every namespace). The base limits ports only, since it cannot know where the servers run;
the overlays narrow each rule (docs/DEPLOY.md, "Network policies").

Images: with --kustomization FILE (the kustomization.yaml that was rendered), every container of
every pod template (Deployments, Jobs, CronJobs; init containers too) must run the image that
FILE's `images:` sets (`newName` and `newTag`, or `digest`). An overlay must set one; when an
earlier layer already rewrote the name, the overlay's entry matches nothing and its tag never
reaches a pod, which is what this catches.

Shared configuration: the ConfigMap every pod reads must not set a variable whose default
depends on the service (PER_SERVICE_DEFAULTS): one shared value would override each service's
tuned default.

Files named in URLs: an `sslrootcert=` or `cacertfile=` path in a container's environment must
lie in a volume mounted into that container.

Usage: python k8s_policy.py RENDERED.yaml [NAME] [--overlay] [--kustomization FILE] [--datasets DIR]
(prints each problem; exit 1 if any)
"""

import ipaddress
import os
import re
import sys

import yaml

SERVICES = {"ingester", "stager", "transformer", "quality-checker", "exporter"}
# The image's binaries that run once and exit, and so may be scheduled by a CronJob.
ONE_SHOT_BINARIES = {"extractor", "landfall"}
EXTRACTOR = "extractor"
SECRET_NAME = "landfall-secrets"
SECRET_KEYS = {
    "LANDFALL_DATABASE_URL",
    "LANDFALL_AMQP_URL",
    "LANDFALL_SOURCE_DATABASE_URL",
    "LANDFALL_S3_ACCESS_KEY_ID",
    "LANDFALL_S3_SECRET_ACCESS_KEY",
}
# The extractor's per-run settings: each CronJob sets its own dataset, and a scheduled run
# extracts its own day. In the shared ConfigMap they would apply to every extractor.
EXTRACT_DATASET = "LANDFALL_EXTRACT_DATASET"
EXTRACT_DATE = "LANDFALL_EXTRACT_DATE"
AMQP_PORTS = {5671, 5672}
POSTGRES_PORT = 5432
RECOMMENDED_LABELS = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
]
# Variables whose default differs between the services (shared/runtime/src/config.rs,
# PER_SERVICE_DEFAULTS; tests/tests/deploy.rs checks that this list is that one).
PER_SERVICE_DEFAULTS = [
    "LANDFALL_PREFETCH",
    "LANDFALL_CONSUME_BATCH",
    "LANDFALL_DATABASE_ROLE",
    "OTEL_SERVICE_NAME",
]
# Query parameters of LANDFALL_DATABASE_URL / LANDFALL_AMQP_URL that name a file in the pod.
FILE_PARAMETERS = re.compile(r"[?&](sslrootcert|sslcert|sslkey|cacertfile|certfile|keyfile)=([^&\s]+)")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$")
HEALTH_PORT = 8080
# Seconds between the end of the drain and SIGKILL that a pod must keep in reserve.
DRAIN_MARGIN_S = 5
# port -> the protocols landfall's pods may use to it (DNS: UDP, and TCP for large answers).
ALLOWED_EGRESS = {
    53: {"UDP", "TCP"},
    5672: {"TCP"},
    5671: {"TCP"},
    5432: {"TCP"},
    443: {"TCP"},
    9000: {"TCP"},
    4317: {"TCP"},
}
DNS_PORT = 53


class Report:
    def __init__(self, source):
        self.source = source
        self.problems = []

    def problem(self, where, text):
        self.problems.append(f"{self.source}: {where}: {text}")


def load(path):
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def dig(obj, *keys):
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def where(obj):
    return f"{obj.get('kind')}/{dig(obj, 'metadata', 'name')}"


def check_labels(report, obj, labels, what):
    missing = [label for label in RECOMMENDED_LABELS if label not in (labels or {})]
    if missing:
        report.problem(where(obj), f"{what} lack the recommended labels {', '.join(missing)}")


def check_probe(report, obj, container, kind, path):
    probe = container.get(kind)
    name = container.get("name")
    if not probe:
        report.problem(where(obj), f"container {name} has no {kind}")
        return
    get = probe.get("httpGet")
    if not get:
        report.problem(where(obj), f"container {name}: {kind} is not an httpGet probe")
        return
    if get.get("path") != path:
        report.problem(where(obj), f"container {name}: {kind} path is {get.get('path')!r}, expected {path}")
    if get.get("port") != HEALTH_PORT:
        report.problem(
            where(obj),
            f"container {name}: {kind} port is {get.get('port')!r}, expected {HEALTH_PORT} "
            "(LANDFALL_HEALTH_ADDR)",
        )


def from_secret(env, key):
    """Whether variable `key` comes from the Secret: directly (secretKeyRef), or as a value
    built on an earlier variable that does (`$(LANDFALL_DATABASE_URL_FROM_SECRET)?sslmode=…`:
    Kubernetes expands a reference to a variable defined before it in the list)."""
    item = env.get(key) or {}
    if dig(item, "valueFrom", "secretKeyRef"):
        return True
    value = item.get("value")
    if not isinstance(value, str):
        return False
    names = list(env)
    match = re.match(r"^\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value)
    return bool(
        match
        and match.group(1) in env
        and names.index(match.group(1)) < names.index(key)
        and dig(env[match.group(1)], "valueFrom", "secretKeyRef")
    )


def check_secret_refs(report, obj, container):
    name = container.get("name")
    for source in container.get("envFrom") or []:
        if "secretRef" in source and dig(source, "secretRef", "name") != SECRET_NAME:
            report.problem(where(obj), f"container {name} reads a Secret other than {SECRET_NAME}")
    env = {item.get("name"): item for item in container.get("env") or []}
    for item in env.values():
        ref = dig(item, "valueFrom", "secretKeyRef")
        if ref and ref.get("name") != SECRET_NAME:
            report.problem(where(obj), f"container {name}: {item['name']} comes from Secret {ref.get('name')!r}")
        if item.get("name") in SECRET_KEYS and "value" in item and not from_secret(env, item["name"]):
            report.problem(where(obj), f"container {name}: {item['name']} has a literal value; use secretKeyRef")
    check_mounted_files(report, obj, container, env)
    return env


def check_mounted_files(report, obj, container, env):
    """A CA bundle or key named in a URL must be in a volume mounted into the container."""
    mounts = [m.get("mountPath", "").rstrip("/") + "/" for m in container.get("volumeMounts") or []]
    for item in env.values():
        for parameter, path in FILE_PARAMETERS.findall(str(item.get("value", ""))):
            if not any(path.startswith(mount) for mount in mounts):
                report.problem(
                    where(obj),
                    f"container {container.get('name')}: {item['name']} names {parameter}={path}, "
                    "which no volume mounted into the container holds",
                )
            if parameter == "sslrootcert" and "sslmode=verify-full" not in item["value"]:
                report.problem(
                    where(obj),
                    f"container {container.get('name')}: {item['name']} has sslrootcert without "
                    "sslmode=verify-full (the certificate would not be checked against the host name)",
                )


def check_pod_security(report, obj, pod):
    context = pod.get("securityContext") or {}
    if context.get("runAsNonRoot") is not True:
        report.problem(where(obj), "pod securityContext.runAsNonRoot is not true")
    if dig(context, "seccompProfile", "type") != "RuntimeDefault":
        report.problem(where(obj), "pod seccompProfile is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        report.problem(where(obj), "pod does not set automountServiceAccountToken: false")
    for container in pod.get("containers") or []:
        name = container.get("name")
        sc = container.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            report.problem(where(obj), f"container {name}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            report.problem(where(obj), f"container {name}: readOnlyRootFilesystem is not true")
        if "ALL" not in (dig(sc, "capabilities", "drop") or []):
            report.problem(where(obj), f"container {name}: capabilities do not drop ALL")
        if sc.get("privileged"):
            report.problem(where(obj), f"container {name} is privileged")
        resources = container.get("resources") or {}
        for needed in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory")):
            if dig(resources, *needed) is None:
                report.problem(where(obj), f"container {name} has no resources.{'.'.join(needed)}")


def config_of(objects, report):
    maps = [o for o in objects if o.get("kind") == "ConfigMap" and dig(o, "metadata", "name", ).startswith("landfall-config")]
    if len(maps) != 1:
        report.problem("ConfigMap/landfall-config", f"expected exactly one, found {len(maps)}")
        return {}
    data = maps[0].get("data") or {}
    for key, value in data.items():
        if key in PER_SERVICE_DEFAULTS:
            report.problem(
                where(maps[0]),
                f"{key}={value} is shared by every service and overrides each one's own default; "
                "set it in the Deployment of the service that needs another value",
            )
        if key in SECRET_KEYS:
            report.problem(where(maps[0]), f"{key} is a secret and must come from {SECRET_NAME}, not the ConfigMap")
        if key == EXTRACT_DATASET:
            report.problem(
                where(maps[0]),
                f"{key}={value} is shared by every extractor CronJob; set it in each CronJob's env",
            )
        if key == EXTRACT_DATE:
            report.problem(
                where(maps[0]),
                f"{key}={value} would make every scheduled extract write that one day; leave it unset",
            )
        if "://" in str(value) and "@" in str(value).split("://", 1)[1].split("/", 1)[0]:
            report.problem(where(maps[0]), f"{key} holds a URL with credentials")
    return data


def check_deployment(report, obj, config, scaled_targets, budgets):
    name = dig(obj, "metadata", "name")
    spec = obj.get("spec") or {}
    pod = dig(spec, "template", "spec") or {}
    check_labels(report, obj, dig(obj, "metadata", "labels"), "metadata.labels")
    check_labels(report, obj, dig(spec, "template", "metadata", "labels"), "pod template labels")
    if name not in SERVICES:
        report.problem(where(obj), f"is not one of the services {sorted(SERVICES)}")
    if "replicas" in spec:
        report.problem(where(obj), "sets spec.replicas, which KEDA owns (each apply would reset the scale)")
    if pod.get("serviceAccountName") != "landfall":
        report.problem(where(obj), "does not run as the landfall ServiceAccount")
    grace_ms = int(config.get("LANDFALL_SHUTDOWN_GRACE_MS", "25000"))
    period = pod.get("terminationGracePeriodSeconds", 30)
    if not isinstance(period, int) or period * 1000 < grace_ms + DRAIN_MARGIN_S * 1000:
        report.problem(
            where(obj),
            f"terminationGracePeriodSeconds {period!r} leaves less than {DRAIN_MARGIN_S} s after the "
            f"{grace_ms} ms drain (LANDFALL_SHUTDOWN_GRACE_MS)",
        )
    check_pod_security(report, obj, pod)
    containers = pod.get("containers") or []
    if len(containers) != 1:
        report.problem(where(obj), f"has {len(containers)} containers, expected 1")
    for container in containers:
        command = container.get("command") or []
        if command[:1] != [name]:
            report.problem(where(obj), f"container runs {command!r}, expected the {name} binary")
        check_probe(report, obj, container, "livenessProbe", "/healthz")
        check_probe(report, obj, container, "readinessProbe", "/readyz")
        ports = [p.get("containerPort") for p in container.get("ports") or []]
        if HEALTH_PORT not in ports:
            report.problem(where(obj), f"container does not declare port {HEALTH_PORT}")
        env = check_secret_refs(report, obj, container)
        for key in ("LANDFALL_DATABASE_URL", "LANDFALL_AMQP_URL"):
            if not from_secret(env, key):
                report.problem(where(obj), f"{key} is not taken from Secret {SECRET_NAME}")
    if name not in scaled_targets:
        report.problem(where(obj), "has no KEDA ScaledObject")
    template_labels = dig(spec, "template", "metadata", "labels") or {}
    if not any(all(template_labels.get(k) == v for k, v in selector.items()) for selector in budgets):
        report.problem(where(obj), "no PodDisruptionBudget selects its pods")


def check_scaled_object(report, obj, config, deployments, authentications):
    spec = obj.get("spec") or {}
    target = dig(spec, "scaleTargetRef", "name")
    if target not in deployments:
        report.problem(where(obj), f"scales {target!r}, which is not a Deployment here")
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
        report.problem(where(obj), f"replica bounds {low!r}..{high!r} are not 1 <= min <= max")
    prefix = config.get("LANDFALL_AMQP_PREFIX", "landfall")
    triggers = spec.get("triggers") or []
    if not triggers:
        report.problem(where(obj), "has no trigger")
    for trigger in triggers:
        meta = trigger.get("metadata") or {}
        if trigger.get("type") != "rabbitmq":
            report.problem(where(obj), f"trigger type {trigger.get('type')!r}, expected rabbitmq")
            continue
        if meta.get("queueName") != f"{prefix}.{target}":
            report.problem(
                where(obj),
                f"queueName {meta.get('queueName')!r}, expected {prefix}.{target} (LANDFALL_AMQP_PREFIX.service)",
            )
        if meta.get("mode") != "QueueLength":
            report.problem(where(obj), f"mode {meta.get('mode')!r}, expected QueueLength")
        if not str(meta.get("value", "")).isdigit() or int(meta["value"]) < 1:
            report.problem(where(obj), f"value {meta.get('value')!r} is not a positive whole number")
        if "host" in meta:
            report.problem(where(obj), "puts the broker URL in metadata.host; use the TriggerAuthentication")
        if dig(trigger, "authenticationRef", "name") not in authentications:
            report.problem(where(obj), "authenticationRef names no TriggerAuthentication here")


def check_trigger_authentication(report, obj):
    refs = dig(obj, "spec", "secretTargetRef") or []
    if not any(
        r.get("parameter") == "host" and r.get("name") == SECRET_NAME and r.get("key") == "LANDFALL_AMQP_URL"
        for r in refs
    ):
        report.problem(where(obj), f"does not read the host from {SECRET_NAME}/LANDFALL_AMQP_URL")


def check_job(report, obj):
    pod = dig(obj, "spec", "template", "spec") or {}
    check_labels(report, obj, dig(obj, "spec", "template", "metadata", "labels"), "pod template labels")
    check_pod_security(report, obj, pod)
    for container in pod.get("containers") or []:
        if (container.get("command") or [])[:2] != ["landfall", "migrate"]:
            report.problem(where(obj), f"runs {container.get('command')!r}, expected ['landfall', 'migrate']")
        env = check_secret_refs(report, obj, container)
        if not from_secret(env, "LANDFALL_DATABASE_URL"):
            report.problem(where(obj), f"LANDFALL_DATABASE_URL is not taken from Secret {SECRET_NAME}")


def check_cron_job(report, obj, datasets_dir):
    """A CronJob: the Deployments' pod rules without probes, PDB or scaler, plus what a
    scheduled one-shot needs. Returns the dataset it extracts (None if it is no extractor)."""
    spec = obj.get("spec") or {}
    job = dig(spec, "jobTemplate", "spec") or {}
    template = job.get("template") or {}
    pod = template.get("spec") or {}
    check_labels(report, obj, dig(obj, "metadata", "labels"), "metadata.labels")
    check_labels(report, obj, dig(template, "metadata", "labels"), "pod template labels")
    if spec.get("concurrencyPolicy") != "Forbid":
        report.problem(
            where(obj),
            f"concurrencyPolicy is {spec.get('concurrencyPolicy', 'Allow (the default)')!r}, expected Forbid "
            "(two runs at once would write the same files)",
        )
    if not spec.get("timeZone"):
        report.problem(where(obj), "sets no timeZone (the schedule would follow the controller's zone)")
    deadline = spec.get("startingDeadlineSeconds")
    if not isinstance(deadline, int) or deadline < 1:
        report.problem(where(obj), f"startingDeadlineSeconds {deadline!r} is not a positive whole number")
    active = job.get("activeDeadlineSeconds")
    if not isinstance(active, int) or active < 1:
        report.problem(
            where(obj),
            f"jobTemplate activeDeadlineSeconds {active!r} is not a positive whole number (with "
            "concurrencyPolicy Forbid, a run that never ends would stop every later one)",
        )
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        report.problem(
            where(obj),
            f"restartPolicy {pod.get('restartPolicy', 'Always (the default)')!r}: a Job's pods take Never or OnFailure",
        )
    if pod.get("serviceAccountName") != "landfall":
        report.problem(where(obj), "does not run as the landfall ServiceAccount")
    check_pod_security(report, obj, pod)
    containers = pod.get("containers") or []
    if len(containers) != 1:
        report.problem(where(obj), f"has {len(containers)} containers, expected 1")
    dataset = None
    for container in containers:
        command = container.get("command") or []
        binary = command[0] if command else None
        if binary not in ONE_SHOT_BINARIES:
            report.problem(
                where(obj),
                f"container runs {command!r}, expected one of the one-shot binaries {sorted(ONE_SHOT_BINARIES)}",
            )
        env = check_secret_refs(report, obj, container)
        if not from_secret(env, "LANDFALL_DATABASE_URL"):
            report.problem(where(obj), f"LANDFALL_DATABASE_URL is not taken from Secret {SECRET_NAME}")
        if binary != EXTRACTOR:
            continue
        if dig(template, "metadata", "labels", "app.kubernetes.io/name") != EXTRACTOR:
            report.problem(
                where(obj),
                f"runs the extractor, but its pods are not labelled app.kubernetes.io/name: {EXTRACTOR} "
                "(the label its network policy selects)",
            )
        if not from_secret(env, "LANDFALL_SOURCE_DATABASE_URL"):
            report.problem(where(obj), f"LANDFALL_SOURCE_DATABASE_URL is not taken from Secret {SECRET_NAME}")
        if EXTRACT_DATE in env:
            report.problem(
                where(obj),
                f"sets {EXTRACT_DATE}: every scheduled run would extract that one day; leave it unset "
                "(each run extracts its own UTC day)",
            )
        dataset = (env.get(EXTRACT_DATASET) or {}).get("value")
        if not isinstance(dataset, str) or not dataset:
            report.problem(where(obj), f"runs the extractor without a literal {EXTRACT_DATASET}")
            dataset = None
        elif datasets_dir:
            folder = os.path.join(datasets_dir, dataset)
            if not os.path.isfile(os.path.join(folder, "dataset.toml")):
                report.problem(where(obj), f"extracts dataset {dataset!r}, which {datasets_dir} does not have")
            elif not os.path.isfile(os.path.join(folder, "extract.toml")):
                report.problem(
                    where(obj),
                    f"extracts dataset {dataset!r}, which has no extract.toml (the tables to read) in {folder}",
                )
    return dataset


def selects(selector, labels):
    """Whether a label selector (matchLabels and matchExpressions) selects these labels."""
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def check_extractor_network(report, cron_job, policies):
    """The network policies that select an extractor's pods: PostgreSQL (both databases) open,
    no RabbitMQ (it uses none) and no ingress (it serves nothing)."""
    labels = dig(cron_job, "spec", "jobTemplate", "spec", "template", "metadata", "labels") or {}
    chosen = [p for p in policies if selects(dig(p, "spec", "podSelector"), labels)]
    egress_ports = set()
    for policy in chosen:
        types = dig(policy, "spec", "policyTypes") or []
        rules = dig(policy, "spec", "egress") or []
        for rule in rules:
            for port in rule.get("ports") or []:
                egress_ports.add(port.get("port"))
                if port.get("port") in AMQP_PORTS:
                    report.problem(
                        where(policy),
                        f"opens {port.get('port')} (RabbitMQ) to the pods of {where(cron_job)}, which use no broker",
                    )
        if "Ingress" in types and dig(policy, "spec", "ingress"):
            report.problem(where(policy), f"admits ingress to the pods of {where(cron_job)}, which serve nothing")
    if POSTGRES_PORT not in egress_ports:
        report.problem(
            where(cron_job),
            f"no network policy lets its pods reach PostgreSQL ({POSTGRES_PORT}); "
            "landfall-extractor-egress selects app.kubernetes.io/name: extractor",
        )


def pod_templates(obj):
    """The pod spec of a workload, wherever its kind keeps it."""
    if obj.get("kind") == "CronJob":
        return dig(obj, "spec", "jobTemplate", "spec", "template", "spec")
    if obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return dig(obj, "spec", "template", "spec")
    if obj.get("kind") == "Pod":
        return obj.get("spec")
    return None


def expected_images(kustomization):
    """{name in the base: the reference it must render as} from a kustomization's `images:`."""
    with open(kustomization, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle) or {}
    expected = {}
    for image in spec.get("images") or []:
        name = image.get("newName") or image.get("name")
        if image.get("digest"):
            expected[image.get("name")] = f"{name}@{image['digest']}"
        elif image.get("newTag") is not None:
            expected[image.get("name")] = f"{name}:{image['newTag']}"
    return expected


def check_images(report, objects, kustomization, overlay):
    expected = expected_images(kustomization)
    if overlay and not expected:
        report.problem("images", f"{kustomization} sets no image (newTag or digest) for the overlay")
        return
    wanted = set(expected.values())
    for obj in objects:
        pod = pod_templates(obj) or {}
        for container in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            image = container.get("image")
            if expected and image not in wanted:
                report.problem(
                    where(obj),
                    f"container {container.get('name')} runs {image}, not the kustomization's "
                    f"{' or '.join(sorted(wanted))} (its `images:` entry matched nothing: was the "
                    "name already rewritten by an earlier layer?)",
                )


def check_service_account(report, account):
    role = dig(account, "metadata", "annotations", "eks.amazonaws.com/role-arn")
    if role is not None and not ROLE_ARN.match(str(role)):
        report.problem(where(account), f"eks.amazonaws.com/role-arn {role!r} is not an IAM role ARN")


def peer_allows_everything(peer):
    """A `to:` peer that selects every destination: an ipBlock of /0, or every pod of every
    namespace (an empty namespaceSelector with no or an empty podSelector)."""
    block = peer.get("ipBlock")
    if block is not None:
        try:
            return ipaddress.ip_network(str(block.get("cidr")), strict=False).prefixlen == 0
        except ValueError:
            return False  # a malformed CIDR is the schema check's to report
    return peer.get("namespaceSelector") == {} and not peer.get("podSelector")


def describe_ports(ports):
    return ", ".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "every port"


def check_egress_rule(report, policy, rule, overlay):
    ports = rule.get("ports") or []
    if not ports:
        report.problem(where(policy), "has an egress rule without ports (every port is open)")
    for port in ports:
        number, protocol = port.get("port"), port.get("protocol", "TCP")
        if number not in ALLOWED_EGRESS:
            report.problem(where(policy), f"allows egress to port {number!r}")
        elif protocol not in ALLOWED_EGRESS[number]:
            report.problem(where(policy), f"allows egress to port {number} over {protocol}")
        if "endPort" in port:
            report.problem(where(policy), f"allows egress to the port range {number}..{port['endPort']}")
    if not overlay:
        return
    dns = bool(ports) and all(p.get("port") == DNS_PORT for p in ports)
    peers = rule.get("to") or []
    if not peers:
        what = "the cluster's DNS (kube-dns)" if dns else "its servers"
        report.problem(
            where(policy),
            f"egress rule to {describe_ports(ports)} has no `to:`, so it reaches any address on "
            f"those ports; narrow it to {what} in the overlay",
        )
    for peer in peers:
        if peer_allows_everything(peer):
            report.problem(where(policy), f"egress rule to {describe_ports(ports)} allows every destination: {peer}")


def check_network_policies(report, policies, overlay):
    deny = [
        p for p in policies
        if dig(p, "spec", "podSelector") == {}
        and set(dig(p, "spec", "policyTypes") or []) == {"Ingress", "Egress"}
        and not dig(p, "spec", "ingress") and not dig(p, "spec", "egress")
    ]
    if not deny:
        report.problem("NetworkPolicy", "no default-deny policy (empty podSelector, Ingress and Egress, no rules)")
    for policy in policies:
        for rule in dig(policy, "spec", "egress") or []:
            check_egress_rule(report, policy, rule, overlay)
        for rule in dig(policy, "spec", "ingress") or []:
            ports = [p.get("port") for p in rule.get("ports") or []]
            if ports != [HEALTH_PORT]:
                report.problem(where(policy), f"allows ingress to {ports or 'every port'}, expected only {HEALTH_PORT}")
            if not rule.get("from"):
                report.problem(where(policy), "allows ingress from anywhere")


def check(objects, source, overlay=False, kustomization=None, datasets_dir=None):
    report = Report(source)
    if kustomization:
        check_images(report, objects, kustomization, overlay)
    kinds = {}
    for obj in objects:
        kinds.setdefault(obj.get("kind"), []).append(obj)
    for secret in kinds.get("Secret", []):
        report.problem(where(secret), "a Secret in the manifests: secret values must not live in git")
    if not kinds.get("Namespace"):
        report.problem("Namespace", "missing")
    config = config_of(objects, report)
    deployments = {dig(d, "metadata", "name"): d for d in kinds.get("Deployment", [])}
    missing = SERVICES - set(deployments)
    if missing:
        report.problem("Deployment", f"missing for {', '.join(sorted(missing))}")
    scaled = kinds.get("ScaledObject", [])
    scaled_targets = {dig(s, "spec", "scaleTargetRef", "name") for s in scaled}
    authentications = {dig(a, "metadata", "name") for a in kinds.get("TriggerAuthentication", [])}
    budgets = [dig(b, "spec", "selector", "matchLabels") or {} for b in kinds.get("PodDisruptionBudget", [])]
    for deployment in deployments.values():
        check_deployment(report, deployment, config, scaled_targets, budgets)
    for scaled_object in scaled:
        check_scaled_object(report, scaled_object, config, deployments, authentications)
    for authentication in kinds.get("TriggerAuthentication", []):
        check_trigger_authentication(report, authentication)
    jobs = kinds.get("Job", [])
    if not any(dig(j, "metadata", "name") == "landfall-migrate" for j in jobs):
        report.problem("Job/landfall-migrate", "missing")
    for job in jobs:
        check_job(report, job)
    extracted = {}
    for cron_job in kinds.get("CronJob", []):
        dataset = check_cron_job(report, cron_job, datasets_dir)
        if dataset is None:
            continue
        if dataset in extracted:
            report.problem(
                where(cron_job),
                f"extracts dataset {dataset!r}, as {where(extracted[dataset])} does: two CronJobs of "
                "one dataset can run at once (concurrencyPolicy holds within one CronJob only)",
            )
        extracted.setdefault(dataset, cron_job)
        check_extractor_network(report, cron_job, kinds.get("NetworkPolicy", []))
    for account in kinds.get("ServiceAccount", []):
        check_service_account(report, account)
    check_network_policies(report, kinds.get("NetworkPolicy", []), overlay)
    return report.problems


def main():
    args = sys.argv[1:]
    kustomization = None
    if "--kustomization" in args:
        at = args.index("--kustomization")
        kustomization = args[at + 1]
        del args[at:at + 2]
    datasets_dir = None
    if "--datasets" in args:
        at = args.index("--datasets")
        datasets_dir = args[at + 1]
        del args[at:at + 2]
    overlay = "--overlay" in args
    args = [a for a in args if a != "--overlay"]
    path = args[0]
    source = args[1] if len(args) > 1 else path
    try:
        objects = load(path)
    except yaml.YAMLError as error:
        print(f"{source}: not YAML: {error}")
        return 1
    problems = check(objects, source, overlay, kustomization, datasets_dir)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
