"""landfall's rules for deploy/compose.yaml (run by scripts/validate-deploy, after dclint has
checked the file against the Compose specification's JSON schema).

Checks that the stack starts in a safe order and that its parts agree with each other:
  - every service has an image or a build;
  - every long-running service has a healthcheck, unless it says why not (`x-healthcheck-exempt`);
  - every depends_on uses the long form with a condition that can hold: service_healthy only on
    a service with a healthcheck, service_completed_successfully only on a one-shot service;
    no dependency on a missing service, no cycle;
  - every landfall container runs one of the image's binaries, waits for the migration, gets
    the required variables (the extractor: both database URLs and a dataset, no broker), and
    has a stop grace period longer than its drain time; the extractor, if there is one, runs
    once (restart "no") and only on request (a `profiles` entry, so `up` does not start it);
  - MinIO's AMQP target publishes to the exchange the ingester binds (LANDFALL_NOTIFY_EXCHANGE)
    with a matching declaration (durable topic), and minio-init's rule uses that target's ARN
    and the landing prefix;
  - every file the stack mounts or builds from exists;
  - Prometheus (its mounted prometheus.yml) scrapes only services of the stack, and RabbitMQ's
    metrics port (15692) only on a broker that mounts an enabled_plugins file enabling
    rabbitmq_prometheus.

With --schema FILE (the Compose specification's JSON schema, as shipped in dclint), it also lists
every schema violation with its path; dclint reports only the first, without naming the field.

Usage: python compose_check.py deploy/compose.yaml [--schema compose.schema.json]
(prints each problem; exit 1 if any)
"""

import os
import re
import sys

import yaml

# The queue services, which the stack must run; the extractor (one-shot, optional) and the
# `landfall` command are the image's other binaries.
SERVICE_BINARIES = {"ingester", "stager", "transformer", "quality-checker", "exporter"}
EXTRACTOR = "extractor"
BINARIES = SERVICE_BINARIES | {EXTRACTOR, "landfall"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
REQUIRED_ENV = {"LANDFALL_DATABASE_URL", "LANDFALL_AMQP_URL", "LANDFALL_BUCKET"}
# The extractor reads the shop's database and writes files: no broker.
EXTRACTOR_ENV = {"LANDFALL_DATABASE_URL", "LANDFALL_SOURCE_DATABASE_URL", "LANDFALL_BUCKET", "LANDFALL_EXTRACT_DATASET"}


def duration_seconds(text):
    """Compose durations such as `30s`, `1m30s`, `500ms`."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    return sum(float(n) * units[u] for n, u in parts)


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def is_landfall(service):
    return str(service.get("image", "")).startswith("landfall:")


def has_healthcheck(service):
    check = service.get("healthcheck")
    return bool(check) and not check.get("disable") and bool(check.get("test"))


def is_one_shot(service):
    return str(service.get("restart", "no")) == "no"


def check(compose, base_dir):
    problems = []
    services = compose.get("services") or {}

    def problem(name, text):
        problems.append(f"compose service {name}: {text}")

    for name, service in services.items():
        if not service.get("image") and not service.get("build"):
            problem(name, "has neither image nor build")
        if not is_one_shot(service) and not has_healthcheck(service) and not service.get("x-healthcheck-exempt"):
            problem(name, "is long-running but has no healthcheck (or x-healthcheck-exempt saying why)")
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            problem(name, "depends_on is a list; use the long form with a condition")
            depends = {}
        for target, spec in depends.items():
            condition = (spec or {}).get("condition")
            if target not in services:
                problem(name, f"depends on {target}, which is not a service")
                continue
            if condition not in CONDITIONS:
                problem(name, f"depends on {target} with condition {condition!r}")
            elif condition == "service_healthy" and not has_healthcheck(services[target]):
                problem(name, f"waits for {target} to be healthy, but {target} has no healthcheck")
            elif condition == "service_completed_successfully" and not is_one_shot(services[target]):
                problem(name, f"waits for {target} to complete, but {target} restarts (not a one-shot)")
        build = service.get("build")
        if build:
            context = os.path.normpath(os.path.join(base_dir, build.get("context", ".")))
            dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
            if not os.path.isfile(dockerfile):
                problem(name, f"builds from {dockerfile}, which does not exist")
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                path = os.path.normpath(os.path.join(base_dir, source))
                if not os.path.exists(path):
                    problem(name, f"mounts {source}, which does not exist ({path})")
    problems += check_cycles(services)
    problems += check_landfall_services(services)
    problems += check_minio(services)
    problems += check_prometheus(services, base_dir)
    return problems


def check_cycles(services):
    state = {}

    def visit(name, path):
        if state.get(name) == "done":
            return None
        if state.get(name) == "visiting":
            return path + [name]
        state[name] = "visiting"
        for target in (services.get(name) or {}).get("depends_on") or {}:
            if target in services:
                cycle = visit(target, path + [name])
                if cycle:
                    return cycle
        state[name] = "done"
        return None

    for name in services:
        cycle = visit(name, [])
        if cycle:
            return [f"compose: depends_on cycle {' -> '.join(cycle)}"]
    return []


def check_landfall_services(services):
    problems = []
    landfall = {n: s for n, s in services.items() if is_landfall(s)}
    running = set()
    for name, service in landfall.items():
        command = service.get("command") or []
        binary = command[0] if command else None
        if binary not in BINARIES:
            problems.append(f"compose service {name}: runs {binary!r}, which the landfall image does not have")
            continue
        env = environment(service)
        missing = (EXTRACTOR_ENV if binary == EXTRACTOR else REQUIRED_ENV) - set(env)
        if missing:
            problems.append(f"compose service {name}: missing {', '.join(sorted(missing))}")
        if binary == "landfall":
            continue
        if binary == EXTRACTOR:
            if not is_one_shot(service):
                problems.append(f"compose service {name}: the extractor runs once; restart must be \"no\"")
            if not service.get("profiles"):
                problems.append(
                    f"compose service {name}: the extractor has no `profiles`, so every `up` would extract"
                )
        running.add(binary)
        grace_ms = int(env.get("LANDFALL_SHUTDOWN_GRACE_MS") or 25000)
        stop = duration_seconds(service.get("stop_grace_period", "10s"))
        if stop is None or stop * 1000 <= grace_ms:
            problems.append(
                f"compose service {name}: stop_grace_period {service.get('stop_grace_period', '10s (default)')} "
                f"does not exceed the {grace_ms} ms drain (LANDFALL_SHUTDOWN_GRACE_MS)"
            )
        migrations = [
            target for target, spec in (service.get("depends_on") or {}).items()
            if (spec or {}).get("condition") == "service_completed_successfully"
            and (services.get(target, {}).get("command") or [])[:2] == ["landfall", "migrate"]
        ]
        if not migrations and env.get("LANDFALL_MIGRATE_ON_START", "true") == "false":
            problems.append(
                f"compose service {name}: LANDFALL_MIGRATE_ON_START=false but it does not wait for `landfall migrate`"
            )
    missing = SERVICE_BINARIES - running
    if missing:
        problems.append(f"compose: no service runs {', '.join(sorted(missing))}")
    return problems


def check_minio(services):
    problems = []
    minio = services.get("minio")
    init = services.get("minio-init")
    ingesters = [s for s in services.values() if is_landfall(s) and (s.get("command") or [None])[0] == "ingester"]
    if not minio or not init or not ingesters:
        return ["compose: expected services minio, minio-init and an ingester"]
    env = environment(minio)
    targets = {
        key[len("MINIO_NOTIFY_AMQP_ENABLE_"):]
        for key, value in env.items()
        if key.startswith("MINIO_NOTIFY_AMQP_ENABLE_") and value == "on"
    }
    if len(targets) != 1:
        return [f"compose service minio: expected one enabled AMQP target, found {sorted(targets)}"]
    target = targets.pop()

    def setting(name):
        return env.get(f"MINIO_NOTIFY_AMQP_{name}_{target}")

    ingester_env = environment(ingesters[0])
    prefix = ingester_env.get("LANDFALL_AMQP_PREFIX", "landfall")
    exchange = ingester_env.get("LANDFALL_NOTIFY_EXCHANGE", f"{prefix}.s3")
    expected = {
        "EXCHANGE": exchange,
        "EXCHANGE_TYPE": "topic",
        "DURABLE": "on",
        "DELIVERY_MODE": "2",
    }
    for name, value in expected.items():
        if setting(name) != value:
            problems.append(
                f"compose service minio: MINIO_NOTIFY_AMQP_{name}_{target} is {setting(name)!r}, expected {value!r}"
            )
    for name in ("AUTO_DELETED", "INTERNAL"):
        if setting(name) not in (None, "off"):
            problems.append(f"compose service minio: MINIO_NOTIFY_AMQP_{name}_{target} must be off (landfall's declaration)")
    if not (setting("URL") or "").startswith("amqp"):
        problems.append(f"compose service minio: MINIO_NOTIFY_AMQP_URL_{target} is not an AMQP URL")
    script = " ".join(str(part) for part in (init.get("command") or []))
    arn = f"arn:minio:sqs::{target}:amqp"
    landing = ingester_env.get("LANDFALL_LANDING_PREFIX", "landing/")
    event_add = re.search(r"mc event add (\S+) (\S+)(.*)", script)
    if not event_add:
        problems.append("compose service minio-init: no `mc event add`")
    else:
        bucket = event_add.group(1).split("/", 1)[-1]
        if event_add.group(2) != arn:
            problems.append(f"compose service minio-init: event target {event_add.group(2)}, expected {arn}")
        if bucket != ingester_env.get("LANDFALL_BUCKET"):
            problems.append(f"compose service minio-init: notifications on bucket {bucket}, landfall uses {ingester_env.get('LANDFALL_BUCKET')}")
        if f"--prefix {landing}" not in event_add.group(3):
            problems.append(f"compose service minio-init: the event rule does not use --prefix {landing}")
        if "--event put" not in event_add.group(3):
            problems.append("compose service minio-init: the event rule does not select put events")
    return problems


def mounted_file(service, base_dir, target):
    """The host path of the file `service` mounts at `target` (short volume syntax), or None."""
    for volume in service.get("volumes") or []:
        if not isinstance(volume, str):
            continue
        parts = volume.split(":")
        if len(parts) >= 2 and parts[1] == target and parts[0].startswith("."):
            return os.path.normpath(os.path.join(base_dir, parts[0]))
    return None


def check_prometheus(services, base_dir):
    prometheus = services.get("prometheus")
    if not prometheus:
        return []
    config_path = mounted_file(prometheus, base_dir, "/etc/prometheus/prometheus.yml")
    if not config_path:
        return ["compose service prometheus: mounts no prometheus.yml at /etc/prometheus/prometheus.yml"]
    if not os.path.isfile(config_path):
        return []  # reported as a missing mount above
    with open(config_path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    problems = []
    for job in config.get("scrape_configs") or []:
        name = job.get("job_name")
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                host, _, port = str(target).rpartition(":")
                if host in ("127.0.0.1", "localhost"):
                    continue
                if host not in services:
                    problems.append(f"prometheus.yml job {name}: target {target} is not a service of the stack")
                    continue
                if port == "15692":
                    plugins = mounted_file(services[host], base_dir, "/etc/rabbitmq/enabled_plugins")
                    text = ""
                    if plugins and os.path.isfile(plugins):
                        with open(plugins, encoding="utf-8") as handle:
                            text = handle.read()
                    if "rabbitmq_prometheus" not in text:
                        problems.append(
                            f"prometheus.yml job {name}: scrapes {target}, but compose service {host} mounts no "
                            "/etc/rabbitmq/enabled_plugins enabling rabbitmq_prometheus"
                        )
    return problems


def schema_problems(compose, schema_path):
    import json

    import jsonschema

    with open(schema_path, encoding="utf-8") as handle:
        schema = json.load(handle)
    validator = jsonschema.Draft7Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(compose), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        problems.append(f"compose schema: {where}: {error.message}")
    return problems


def main():
    path = sys.argv[1]
    with open(path, encoding="utf-8") as handle:
        compose = yaml.safe_load(handle)
    problems = []
    if "--schema" in sys.argv:
        problems += schema_problems(compose, sys.argv[sys.argv.index("--schema") + 1])
    problems += check(compose, os.path.dirname(os.path.abspath(path)))
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
