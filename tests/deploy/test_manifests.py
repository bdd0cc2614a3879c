"""The deployment files in ``deploy/``, validated by parsing (no Docker, no cluster).

* docker-compose.yml: services, start order, health checks, one image, no inline secrets,
  Redis durability settings;
* Dockerfile: multi-stage, pinned bases, non-root, ``ENTRYPOINT ["automations"]``, only
  existing sources copied, and nothing the build needs excluded by .dockerignore;
* Kubernetes: every built-in object against the official JSON schema (kubernetes-validate,
  offline, strict so a misspelt field fails), the KEDA objects by hand, probes, resources,
  security context, selectors and the Secret template;
* configuration: every ``AUTOMATIONS_*`` key in the ConfigMap, the Secret template and the
  env example is a real setting, and their values pass ``Settings`` validation.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra")

from shared.cli.processes import worker_argv  # noqa: E402
from shared.infra.config import ENV_PREFIX, Settings  # noqa: E402
from shared.infra.queues import ALL_QUEUES, QUEUE_EVENTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
ENV_EXAMPLE = DEPLOY / "automations.env.example"

APP_SERVICES = ("migrate", "gateway", "stream", "worker", "chat-runner", "beat")
SECRET_KEYS = {
    "AUTOMATIONS_DATABASE_URL",
    "AUTOMATIONS_BROKER_URL",
    "AUTOMATIONS_ENCRYPTION_KEYS",
}
PLACEHOLDER = "REPLACE_ME"
#: oldest Kubernetes minor these manifests promise to work on (autoscaling/v2, policy/v1 PDB)
K8S_MIN_VERSION = "1.27.0"
DATA_DIR = "/var/lib/automations"
GATEWAY_PORT = 8080


# --- helpers ---------------------------------------------------------------------------------


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in k8s_files() for doc in load_yaml_docs(path)]


def objects_of(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_objects() if doc["kind"] == kind}


def deployment(name: str) -> dict[str, Any]:
    return objects_of("Deployment")[f"automations-{name}"]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, doc in k8s_objects():
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield f"{name}/{container['name']}", container


def only_container(name: str) -> dict[str, Any]:
    (container,) = deployment(name)["spec"]["template"]["spec"]["containers"]
    return container


def parse_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        values[key.strip()] = value
    return values


def settings_from(values: dict[str, str]) -> Settings:
    """Validate AUTOMATIONS_* values exactly as the processes would read them."""
    kwargs = {}
    for key, value in values.items():
        if key.startswith(ENV_PREFIX):
            kwargs[key.removeprefix(ENV_PREFIX).lower()] = value
    return Settings(**kwargs)


def assert_known_settings(keys: set[str], where: str) -> None:
    # Settings ignores unknown variables, so a typo would be silently dropped: catch it here.
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    unknown = {k for k in keys if k.startswith(ENV_PREFIX)} - known
    assert not unknown, f"{where}: not settings of the service: {sorted(unknown)}"


def looks_like_real_key(value: str) -> bool:
    import base64
    import binascii

    for part in value.split(","):
        try:
            if len(base64.b64decode(part.strip(), validate=True)) == 32:
                return True
        except (binascii.Error, ValueError):
            continue
    return False


# --- docker-compose.yml ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (doc,) = load_yaml_docs(COMPOSE)
    return doc


def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"postgres", "redis", *APP_SERVICES}


def test_compose_backing_services(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert re.fullmatch(r"postgres:15([.-].*)?", postgres["image"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in json.dumps(postgres["healthcheck"]["test"])

    redis = compose["services"]["redis"]
    assert re.fullmatch(r"redis:7([.-].*)?", redis["image"])
    command = redis["command"]
    args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v.endswith(":/data") for v in redis["volumes"]), "AOF needs a volume"
    assert "ping" in json.dumps(redis["healthcheck"]["test"])

    for name in ("pgdata", "redisdata"):
        assert name in compose["volumes"]


def test_compose_app_services_share_one_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, images
    (image,) = images
    assert not image.endswith(":latest") and ":" in image
    for name in APP_SERVICES:
        build = services[name].get("build")
        if build is not None:
            assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
                DOCKERFILE.resolve()
            )


def test_compose_commands_are_cli_commands(compose: dict[str, Any]) -> None:
    from shared.cli import main

    expected = {"migrate": ["db", "upgrade"], "gateway": ["gateway"], "beat": ["beat"]}
    for name in APP_SERVICES:
        command = compose["services"][name]["command"]
        assert isinstance(command, list), f"{name}: use the exec form"
        assert command[0] in main.commands, f"{name}: unknown command {command[0]!r}"
        if name in expected:
            assert command == expected[name]
    assert compose["services"]["worker"]["command"][0] == "worker"


def test_compose_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"].get("restart") == "no"
    for name in ("gateway", "stream", "worker", "beat"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name


def test_compose_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", "gateway", "worker"):
        assert services[name]["healthcheck"]["test"], name

    gateway = services["gateway"]
    assert f"127.0.0.1:{GATEWAY_PORT}/readyz" in json.dumps(gateway["healthcheck"]["test"])
    assert any(str(p).endswith(f":{GATEWAY_PORT}") for p in gateway["ports"])

    worker_test = " ".join(services["worker"]["healthcheck"]["test"])
    # $$ is compose's escape for a literal $ evaluated by the container's shell
    assert "inspect ping -d celery@$$HOSTNAME" in worker_test
    assert services["worker"]["healthcheck"]["test"][0] == "CMD-SHELL"


def test_compose_runs_two_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    workers = [s for s in services.values() if s.get("command", [None])[0] == "worker"]
    replicas = sum(s.get("deploy", {}).get("replicas", 1) for s in workers)
    assert replicas >= 2


def test_compose_stop_grace_covers_graceful_shutdown(compose: dict[str, Any]) -> None:
    def seconds(value: str) -> int:
        match = re.fullmatch(r"(\d+)s", value)
        assert match, value
        return int(match.group(1))

    services = compose["services"]
    assert seconds(services["gateway"]["stop_grace_period"]) > gunicorn_graceful_timeout()
    assert seconds(services["worker"]["stop_grace_period"]) >= 30


def test_compose_has_no_inline_secrets(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        leaked = {k for k in env if k in SECRET_KEYS or "PASSWORD" in k}
        assert not leaked, f"{name}: secrets belong in the env file: {leaked}"
    for name in APP_SERVICES:
        assert compose["services"][name]["env_file"], name
    text = COMPOSE.read_text()
    assert "postgresql+psycopg2://" not in text
    assert not re.search(r"redis://[^\s]*:[^\s@]+@", text)


def test_env_example_is_valid_configuration(compose: dict[str, Any]) -> None:
    env_files = {f for name in APP_SERVICES for f in compose["services"][name]["env_file"]}
    assert env_files == {"automations.env"}, env_files
    values = parse_env_file(ENV_EXAMPLE)
    assert set(values) >= SECRET_KEYS
    assert_known_settings(set(values), ENV_EXAMPLE.name)
    settings = settings_from(values)
    assert settings.database_url.startswith("postgresql+psycopg2://")
    assert settings.effective_broker_url.startswith("redis://")
    assert settings.bind.endswith(f":{GATEWAY_PORT}")
    assert str(settings.data_dir) == DATA_DIR
    assert settings.worker_concurrency > 0, "set it: the default counts the host's CPUs"
    # the example must not carry usable secrets
    assert PLACEHOLDER in values["AUTOMATIONS_DATABASE_URL"]
    assert PLACEHOLDER in values["POSTGRES_PASSWORD"]
    assert not looks_like_real_key(values["AUTOMATIONS_ENCRYPTION_KEYS"])


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, args = pending.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "dangling line continuation"
    return instructions


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def test_dockerfile_bases_are_pinned_slim_python() -> None:
    instructions = dockerfile_instructions()
    build_args = {}
    for keyword, args in instructions:
        if keyword == "ARG" and "=" in args:
            name, _, default = args.partition("=")
            build_args[name] = default
    froms = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage build expected"
    stage_names = {
        args.split()[-1] for keyword, args in instructions if keyword == "FROM" and " AS " in args
    }
    for image in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: build_args[m.group(1)], image)
        if image in stage_names:
            continue
        assert image.startswith("python:3.11-slim"), image
        assert ":" in image and not image.endswith(":latest"), image


def test_dockerfile_runtime_stage() -> None:
    final = dockerfile_stages()[-1]
    keywords = [k for k, _ in final]
    users = [args for k, args in final if k == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    # numeric, so Kubernetes' runAsNonRoot can verify it; and the manifests agree
    assert user.isdigit()
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsUser"] == int(user), name

    assert json.loads(dict(final)["ENTRYPOINT"]) == ["automations"]
    assert json.loads(dict(final)["CMD"]) == ["gateway"]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert any(k == "COPY" and "--from=" in a for k, a in final) or any(
        k == "RUN" and "from=build" in a for k, a in final
    ), "the runtime stage installs the wheels built in the build stage"


def test_entrypoint_is_the_console_script() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["automations"] == "shared.cli:main"


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def is_ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        candidates = [pattern, pattern.removeprefix("**/")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, c) for p in prefixes for c in candidates):
            ignored = not negate
    return ignored


def test_dockerfile_copies_existing_sources_not_ignored() -> None:
    patterns = dockerignore_patterns()
    assert is_ignored(".venv", patterns) and is_ignored(".git", patterns)
    assert is_ignored("deploy/automations.env", patterns)
    copied = []
    for keyword, args in dockerfile_instructions():
        if keyword != "COPY" or "--from=" in args:
            continue
        *sources, _dest = shlex.split(args)
        copied += [s for s in sources if not s.startswith("--")]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        assert not is_ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    # every package the wheel is built from is in the image
    for package in ("shared", "webhook_gateway", "worker", "migrations"):
        assert package in copied, package


# --- Kubernetes ------------------------------------------------------------------------------


def test_every_kubernetes_file_parses_and_has_identity() -> None:
    objects = k8s_objects()
    assert objects
    for path, doc in objects:
        assert isinstance(doc, dict), path.name
        assert doc.get("apiVersion") and doc.get("kind"), path.name
        assert doc["metadata"].get("name"), path.name
        assert "namespace" not in doc["metadata"], f"{path.name}: keep manifests namespace-agnostic"
    kinds = {doc["kind"] for _, doc in objects}
    assert kinds >= {
        "ConfigMap",
        "Secret",
        "Job",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ScaledObject",
    }


BUILTIN_GROUPS = ("v1", "apps/v1", "batch/v1", "autoscaling/v2", "policy/v1")


@pytest.mark.parametrize("version", [K8S_MIN_VERSION, "latest"])
def test_kubernetes_objects_match_their_schemas(version: str) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate not installed")
    if version == "latest":
        version = kv.latest_version()
    checked, errors = 0, []
    for path, doc in k8s_objects():
        if doc["apiVersion"] not in BUILTIN_GROUPS:
            continue  # CRDs (KEDA): checked by hand below
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            where = ".".join(str(p) for p in exc.absolute_path)
            errors.append(
                f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}"
            )
        checked += 1
    assert not errors, f"Kubernetes {version}:\n" + "\n".join(errors)
    assert checked >= 10


def test_kustomization_lists_existing_files_and_leaves_out_templates() -> None:
    (kustomization,) = load_yaml_docs(K8S / "kustomization.yaml")
    resources = kustomization["resources"]
    for resource in resources:
        assert (K8S / resource).is_file(), resource
    # the Secret template (placeholders), the per-release Job and the optional CRD stay out
    assert "secret.example.yaml" not in resources
    assert "migrate-job.yaml" not in resources
    assert "keda-scaledobject.yaml" not in resources
    (image,) = kustomization["images"]
    assert image["name"] == "chat-automations"


def test_one_image_everywhere_and_pinned() -> None:
    images = {container["image"] for _, container in containers()}
    assert len(images) == 1, images
    (image,) = images
    assert ":" in image and not image.endswith(":latest")


def test_every_container_has_resources_and_a_locked_down_context() -> None:
    for name, spec in pod_specs():
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True, name
        assert spec.get("automountServiceAccountToken") is False, name
        mounts_by_volume = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            where = f"{name}/{container['name']}"
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            for path in ("/tmp", DATA_DIR):
                assert path in mounts, f"{where}: {path} must be writable"
                assert "emptyDir" in mounts_by_volume[mounts[path]], where
            refs = [next(iter(src.values()))["name"] for src in container["envFrom"]]
            assert refs == ["automations-config", "automations-secrets"], where


def test_commands_are_cli_commands() -> None:
    from shared.cli import main

    expected = {
        "automations-migrate": ["db", "upgrade"],
        "automations-gateway": ["gateway"],
        "automations-stream": ["stream", "--bind", "0.0.0.0:8081", "--threads", "500"],
        "automations-worker": ["worker", "-Q", "events,maintenance,notifications"],
        "automations-chat-runner": ["worker", "-Q", "chats"],
        "automations-beat": ["beat"],
    }
    seen = {}
    for name, spec in pod_specs():
        (container,) = spec["containers"]
        assert "command" not in container, f"{name}: keep the image's ENTRYPOINT"
        assert container["args"][0] in main.commands
        seen[name] = container["args"]
    assert seen == expected


def test_gateway_probes_service_and_shutdown() -> None:
    gateway = deployment("gateway")
    spec = gateway["spec"]["template"]["spec"]
    container = only_container("gateway")
    (port,) = [p for p in container["ports"] if p["name"] == "http"]
    assert port["containerPort"] == GATEWAY_PORT

    def probe_target(probe: dict[str, Any]) -> tuple[str, int]:
        target = probe["httpGet"]["port"]
        if isinstance(target, str):
            assert target == port["name"]
            target = port["containerPort"]
        return probe["httpGet"]["path"], target

    # database only: the gateway keeps answering 202 while Redis is down (the sweeper
    # publishes later), so a Redis outage must not take it out of the Service
    assert probe_target(container["readinessProbe"]) == ("/readyz?check=database", GATEWAY_PORT)
    assert probe_target(container["livenessProbe"]) == ("/healthz", GATEWAY_PORT)
    assert probe_target(container.get("startupProbe", container["livenessProbe"]))[0] == (
        "/healthz"
    )

    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    service = objects_of("Service")["automations-gateway"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], GATEWAY_PORT)

    hpa = objects_of("HorizontalPodAutoscaler")["automations-gateway"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "automations-gateway",
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2

    pdb = objects_of("PodDisruptionBudget")["automations-gateway"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    pre_stop_seconds = int(pre_stop[-1]) if pre_stop[0] == "sleep" else 0
    grace = spec["terminationGracePeriodSeconds"]
    assert grace > pre_stop_seconds + gunicorn_graceful_timeout()

    config = objects_of("ConfigMap")["automations-config"]["data"]
    assert config["AUTOMATIONS_BIND"].endswith(f":{GATEWAY_PORT}")
    assert not config["AUTOMATIONS_BIND"].startswith("127.")


def test_metrics_are_scraped_on_a_port_the_service_does_not_expose() -> None:
    """/metrics is not public (issue 16): gunicorn's master serves it on the separate
    AUTOMATIONS_METRICS_BIND port, which the pod annotations point at and the Service (hence
    the Ingress) does not expose; /metrics on the gateway's port then answers 404."""
    config = objects_of("ConfigMap")["automations-config"]["data"]
    settings = settings_from(config)
    assert settings.metrics_bind, "set AUTOMATIONS_METRICS_BIND (or a Secret-backed token)"
    metrics_port = int(settings.metrics_bind.rpartition(":")[2])
    assert metrics_port != GATEWAY_PORT
    container = only_container("gateway")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == metrics_port
    annotations = deployment("gateway")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(metrics_port)
    assert annotations["prometheus.io/path"] == "/metrics"
    for service in objects_of("Service").values():
        for port in service["spec"]["ports"]:
            assert port["targetPort"] not in ("metrics", metrics_port), service["metadata"]
    # the token, when used instead, is a secret: never in the ConfigMap
    assert "AUTOMATIONS_METRICS_TOKEN" not in config


def test_compose_does_not_publish_metrics(compose: dict[str, Any]) -> None:
    settings = settings_from(parse_env_file(ENV_EXAMPLE))
    assert settings.metrics_bind and not settings.metrics_token
    metrics_port = settings.metrics_bind.rpartition(":")[2]
    gateway = compose["services"]["gateway"]
    published = [str(p).rpartition(":")[2] for p in gateway.get("ports", [])]
    assert metrics_port not in published
    assert metrics_port in [str(p) for p in gateway.get("expose", [])]


def test_worker_liveness_is_a_celery_ping_to_this_pod() -> None:
    container = only_container("worker")
    probe = container["livenessProbe"]
    command = probe["exec"]["command"]
    assert command[:2] == ["sh", "-c"], "the shell expands $HOSTNAME"
    script = command[2]
    assert "celery -A worker.app inspect ping" in script
    assert re.search(r'-d "?celery@\$\{?HOSTNAME\}?"?', script)
    assert "--timeout" in script
    assert probe["timeoutSeconds"] > 5
    # celery's default node name is celery@<hostname>: the worker must not override it
    argv = worker_argv(Settings(), tuple(container["args"][1:]))
    assert "-n" not in argv and "--hostname" not in argv
    assert not any(a.startswith("--hostname") for a in argv)
    assert "readinessProbe" not in container, "no Service routes to workers"
    assert deployment("worker")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_worker_scales_on_the_events_queue() -> None:
    (scaled,) = objects_of("ScaledObject").values()
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "automations-worker"
    assert scaled["spec"]["minReplicaCount"] >= 1, "workers also serve the maintenance queue"
    assert scaled["spec"]["maxReplicaCount"] >= scaled["spec"]["minReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == QUEUE_EVENTS
    assert QUEUE_EVENTS in ALL_QUEUES
    assert int(trigger["metadata"]["listLength"]) > 0
    for value in trigger["metadata"].values():
        assert isinstance(value, str), "KEDA metadata values are strings"

    auth_name = trigger["authenticationRef"]["name"]
    auth = objects_of("TriggerAuthentication")[auth_name]
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    secrets = objects_of("Secret")
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["parameter"] in ("address", "host", "port", "username", "password")
        assert ref["key"] in secrets[ref["name"]]["stringData"], ref
    # no second autoscaler fights KEDA's
    hpa_targets = [
        h["spec"]["scaleTargetRef"]["name"] for h in objects_of("HorizontalPodAutoscaler").values()
    ]
    assert "automations-worker" not in hpa_targets


def test_beat_is_a_single_recreated_replica() -> None:
    beat = deployment("beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_migration_job_runs_db_upgrade_once() -> None:
    (job,) = objects_of("Job").values()
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] in ("Never", "OnFailure")
    assert spec["containers"][0]["args"] == ["db", "upgrade"]
    assert job["spec"]["backoffLimit"] >= 1


def test_selectors_match_pod_labels() -> None:
    for name, dep in objects_of("Deployment").items():
        selector = dep["spec"]["selector"]["matchLabels"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
    components = [
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for d in objects_of("Deployment").values()
    ]
    assert len(components) == len(set(components)), "selectors must not overlap"


def test_configmap_and_secret_split_and_validate() -> None:
    config = objects_of("ConfigMap")["automations-config"]["data"]
    secret = objects_of("Secret")["automations-secrets"]
    assert "data" not in secret, "a template: readable stringData placeholders only"
    secret_values = secret["stringData"]

    assert set(secret_values) == SECRET_KEYS
    assert not SECRET_KEYS & set(config), "secrets belong in the Secret"
    assert_known_settings(set(config) | set(secret_values), "kubernetes")
    for key, value in secret_values.items():
        assert PLACEHOLDER in value, f"{key}: the template must not carry a real value"
        assert not looks_like_real_key(value), key

    settings = settings_from(config)  # raises on any invalid value
    assert settings.task_time_limit_seconds < settings.broker_visibility_timeout_seconds
    assert settings.worker_concurrency > 0, "set it: the default counts the node's CPUs"
    assert str(settings.data_dir) == DATA_DIR
    assert all(isinstance(v, str) for v in config.values()), "ConfigMap values are strings"

    # the URLs in the template are the shape the service accepts (placeholders aside)
    Settings(
        database_url=secret_values["AUTOMATIONS_DATABASE_URL"],
        broker_url=secret_values["AUTOMATIONS_BROKER_URL"],
    )

    for path, doc in k8s_objects():
        if doc["kind"] == "Secret":
            assert "data" not in doc, path.name
            for value in doc["stringData"].values():
                assert PLACEHOLDER in value, f"{path.name}: {doc['metadata']['name']}"


def gunicorn_graceful_timeout() -> int:
    # parsed, not imported: importing gunicorn_conf reads the environment and makes a temp dir
    text = (ROOT / "webhook_gateway" / "gunicorn_conf.py").read_text()
    match = re.search(r"^graceful_timeout\s*=\s*(\d+)", text, re.MULTILINE)
    assert match, "gunicorn_conf.graceful_timeout not found"
    return int(match.group(1))


def test_live_streams_have_a_deployment_of_their_own(compose: dict[str, Any]) -> None:
    """Open streams hold a thread each: they are served by `automations stream`, never by the
    gateway's threads (docs/operations.md, "Live streams")."""
    container = only_container("stream")
    args = container["args"]
    assert args[0] == "stream"
    bind = args[args.index("--bind") + 1]
    port = int(bind.rpartition(":")[2])
    assert not bind.startswith("127.") and port != GATEWAY_PORT
    (http,) = [p for p in container["ports"] if p["name"] == "http"]
    assert http["containerPort"] == port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz?check=database"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    service = objects_of("Service")["automations-stream"]
    labels = deployment("stream")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in ("http", port)
    assert deployment("stream")["spec"]["replicas"] >= 2

    stream = compose["services"]["stream"]
    assert stream["command"][:3] == ["stream", "--bind", "0.0.0.0:8081"]
    assert any(str(p).endswith(":8081") for p in stream["ports"])
    assert "8081/readyz" in json.dumps(stream["healthcheck"]["test"])


def _queues(args: list[str]) -> set[str]:
    argv = worker_argv(Settings(), tuple(args[1:]))
    return set(argv[argv.index("-Q") + 1].split(","))


def test_every_queue_has_a_consumer_and_turns_run_apart_from_events(
    compose: dict[str, Any],
) -> None:
    """The fleet consumes every queue, and the chat runner (queue ``chats``) runs in its own
    Deployment / service, so slow model calls never hold the event pipeline's workers."""
    k8s = {
        name: _queues(spec["containers"][0]["args"])
        for name, spec in pod_specs()
        if spec["containers"][0]["args"][0] == "worker"
    }
    assert set().union(*k8s.values()) == set(ALL_QUEUES)
    assert k8s["automations-chat-runner"] == {"chats"}
    assert "chats" not in k8s["automations-worker"]
    services = compose["services"]
    workers = {
        name: _queues(service["command"])
        for name, service in services.items()
        if service.get("command", [None])[0] == "worker"
    }
    assert set().union(*workers.values()) == set(ALL_QUEUES)
    assert workers["chat-runner"] == {"chats"} and "chats" not in workers["worker"]
