"""deploy/k8s/: the Kustomize manifests, checked without a cluster.

A Python rendering of the kustomization (its resources, configMapGenerator and namespace) is validated
against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: no unknown fields) and checked for
what a production rollout needs: probes, resources, non-root security contexts, every referenced
ConfigMap and Secret present with the keys used, file settings that point into mounted volumes, an HPA on
the worker Deployment, PDBs and Services that select real pods, and ServiceMonitors that give the job and
endpoint labels the Prometheus rules use. Where `kubectl` is installed its `kustomize` renders the same
objects.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import kubernetes_validate.utils  # type: ignore[import-untyped]
import pytest
import yaml
from sqlalchemy.engine import make_url

from gridflow.app.codec import Keyring, KeyringError
from gridflow.app.settings import Settings, env_name
from gridflow.domain.rules import load_rule_set

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
SERVICEMONITOR = K8S / "components" / "servicemonitor"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"

Manifest = dict[str, Any]
EXPECTED_KINDS = Counter(
    {
        "Namespace": 1,
        "ServiceAccount": 1,
        "ConfigMap": 2,
        "Secret": 4,
        "Deployment": 3,
        "Service": 3,
        "HorizontalPodAutoscaler": 1,
        "PodDisruptionBudget": 3,
    }
)
SETTINGS = {env_name(name) for name in Settings.model_fields}
# The worker and the bridge are probed on their metrics; the archiver's readiness is its own /readyz
# (in its group, the database writable), its liveness the endpoint answering.
PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
PROBE_PATHS = {
    "gridflow-worker": dict.fromkeys(PROBES, "/metrics"),
    "gridflow-bridge": dict.fromkeys(PROBES, "/metrics"),
    "gridflow-archiver": {
        "readinessProbe": "/readyz",
        "livenessProbe": "/healthz",
        "startupProbe": "/healthz",
    },
}


def load_documents(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]


def parse_env_file(path: Path) -> dict[str, str]:
    """A Kustomize `envs` file: KEY=VALUE lines, # comments and blank lines ignored."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value
    return values


def render(directory: Path = K8S) -> list[Manifest]:
    """What `kustomize build` makes of the kustomization, minus the generated names' hash suffixes."""
    kustomization = load_documents(directory / "kustomization.yaml")[0]
    objects: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        objects.extend(load_documents(directory / resource))
    for generator in kustomization.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env_file in generator.get("envs", []):
            data.update(parse_env_file(directory / env_file))
        for file in generator.get("files", []):
            key, _, source = file.rpartition("=")
            data[key or Path(source).name] = (directory / source).read_text(encoding="utf-8")
        objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        )
    namespace = kustomization.get("namespace")
    for manifest in objects:
        if namespace and manifest["kind"] != "Namespace":
            manifest["metadata"]["namespace"] = namespace
    return objects


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    return render()


def of_kind(objects: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {manifest["metadata"]["name"]: manifest for manifest in objects if manifest["kind"] == kind}


def containers(deployment: Manifest) -> list[Manifest]:
    found: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    return found


def secret_keys(secret: Manifest) -> set[str]:
    return set(secret.get("stringData", {})) | set(secret.get("data", {}))


def config_refs(deployment: Manifest) -> Iterator[tuple[str, str, str | None]]:
    """(ConfigMap|Secret, name, key or None) of everything a Deployment's pods read."""
    pod = deployment["spec"]["template"]["spec"]
    for container in pod["containers"]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                yield "ConfigMap", source["configMapRef"]["name"], None
            if "secretRef" in source:
                yield "Secret", source["secretRef"]["name"], None
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {})
            if "configMapKeyRef" in reference:
                yield "ConfigMap", reference["configMapKeyRef"]["name"], reference["configMapKeyRef"]["key"]
            if "secretKeyRef" in reference:
                yield "Secret", reference["secretKeyRef"]["name"], reference["secretKeyRef"]["key"]
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            items = volume["configMap"].get("items") or [{"key": None}]
            for item in items:
                yield "ConfigMap", volume["configMap"]["name"], item["key"]
        if "secret" in volume:
            items = volume["secret"].get("items") or [{"key": None}]
            for item in items:
                yield "Secret", volume["secret"]["secretName"], item["key"]


def mounted_files(deployment: Manifest, objects: list[Manifest]) -> set[str]:
    """Every file path a Deployment's (first) container sees from its ConfigMap and Secret volumes."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    files: set[str] = set()
    for mount in containers(deployment)[0].get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            source, keys = (
                volume["configMap"],
                set(of_kind(objects, "ConfigMap")[volume["configMap"]["name"]]["data"]),
            )
        elif "secret" in volume:
            source, keys = (
                volume["secret"],
                secret_keys(of_kind(objects, "Secret")[volume["secret"]["secretName"]]),
            )
        else:
            continue
        paths = {item["path"] for item in source["items"]} if source.get("items") else keys
        files |= {str(PurePosixPath(mount["mountPath"]) / path) for path in paths}
    return files


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# ------------------------------------------------------------------------------------- parsing


def test_every_manifest_parses_and_names_itself() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        if path.name == "rules.yaml":  # the rules file the ConfigMap carries (checked below)
            assert load_documents(path)
            continue
        for document in load_documents(path):
            assert {"apiVersion", "kind"} <= set(document), path
            if document["kind"] not in ("Kustomization", "Component"):
                assert document["metadata"]["name"], path


def test_the_render_produces_the_expected_objects(rendered: list[Manifest]) -> None:
    assert Counter(manifest["kind"] for manifest in rendered) == EXPECTED_KINDS
    names = [(manifest["kind"], manifest["metadata"]["name"]) for manifest in rendered]
    assert len(names) == len(set(names))
    assert {
        manifest["metadata"].get("namespace") for manifest in rendered if manifest["kind"] != "Namespace"
    } == {"gridflow"}
    assert set(of_kind(rendered, "Namespace")) == {"gridflow"}


def test_every_object_is_valid_against_the_kubernetes_schemas(rendered: list[Manifest]) -> None:
    versions = sorted(
        set(kubernetes_validate.utils.all_versions()), key=lambda v: tuple(map(int, v.split(".")))
    )
    for version in (versions[0], versions[-1]):
        for manifest in rendered:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                name = f"{manifest['kind']}/{manifest['metadata']['name']}"
                pytest.fail(
                    f"{name} is invalid for Kubernetes {version}: {error.message} at {list(error.path)}"
                )


def test_kubectl_kustomize_renders_the_same_objects(rendered: list[Manifest], tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the Python rendering above stands in for kustomize")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [document for document in yaml.safe_load_all(result.stdout) if document]

    def identity(manifest: Manifest) -> tuple[str, str]:
        name = manifest["metadata"]["name"]
        if manifest["kind"] == "ConfigMap":  # generated: name-<hash>
            name = re.sub(r"-[a-z0-9]{10}$", "", name)
        return manifest["kind"], name

    assert sorted(map(identity, built)) == sorted(map(identity, rendered))
    generated = {identity(m)[1]: m["data"] for m in built if m["kind"] == "ConfigMap"}
    assert generated == {m["metadata"]["name"]: m["data"] for m in rendered if m["kind"] == "ConfigMap"}
    # The component renders too, from an overlay beside the base as a user would write it.
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    relative = Path(os.path.relpath(K8S, overlay))  # kustomize refuses absolute paths
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {"resources": [str(relative)], "components": [str(relative / "components/servicemonitor")]}
        )
    )
    with_monitors = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60, check=False
    )
    assert with_monitors.returncode == 0, with_monitors.stderr
    kinds = Counter(document["kind"] for document in yaml.safe_load_all(with_monitors.stdout) if document)
    assert kinds == EXPECTED_KINDS + Counter({"ServiceMonitor": 3})


# ---------------------------------------------------------------------------------- Deployments


def test_deployments_have_probes_resources_and_run_as_non_root(rendered: list[Manifest]) -> None:
    deployments = of_kind(rendered, "Deployment")
    assert set(deployments) == {"gridflow-worker", "gridflow-bridge", "gridflow-archiver"}
    image_user = re.findall(r"^USER (\d+)", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)[-1]
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert str(pod["securityContext"]["runAsUser"]) == image_user  # the image's own user
        assert pod["automountServiceAccountToken"] is False
        assert pod["terminationGracePeriodSeconds"] > 30  # the bridge drains for up to 30 s
        for container in pod["containers"]:
            ports = {port["name"]: port["containerPort"] for port in container["ports"]}
            for probe in PROBES:
                check = container[probe]["httpGet"]
                assert check["path"] == PROBE_PATHS[name][probe] and check["port"] in ports, (name, probe)
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["image"].startswith("gridflow:")
            env = {variable["name"]: variable for variable in container["env"]}
            assert set(env) <= SETTINGS, name
            # The probed port is the one the process serves its metrics on.
            assert (
                int(env["GRIDFLOW_METRICS_PORT"]["value"])
                == ports[container["readinessProbe"]["httpGet"]["port"]]
            )
    assert containers(deployments["gridflow-worker"])[0]["args"] == ["worker"]
    assert containers(deployments["gridflow-bridge"])[0]["args"] == ["bridge"]
    assert containers(deployments["gridflow-archiver"])[0]["args"] == ["archiver"]


def test_every_configmap_and_secret_a_deployment_reads_exists_with_its_keys(rendered: list[Manifest]) -> None:
    available = {"ConfigMap": of_kind(rendered, "ConfigMap"), "Secret": of_kind(rendered, "Secret")}
    kustomization = load_documents(KUSTOMIZATION)[0]
    generated = {generator["name"] for generator in kustomization["configMapGenerator"]}
    referenced = set()
    for deployment in of_kind(rendered, "Deployment").values():
        for kind, name, key in config_refs(deployment):
            referenced.add((kind, name))
            assert name in available[kind], f"{deployment['metadata']['name']} reads a missing {kind} {name}"
            if key is not None:
                keys = set(available[kind][name].get("data", {})) | secret_keys(available[kind][name])
                assert key in keys, f"{kind} {name} has no key {key}"
    assert {name for kind, name in referenced if kind == "ConfigMap"} == generated
    assert {name for kind, name in referenced if kind == "Secret"} == set(available["Secret"])


def test_the_settings_configmap_holds_only_settings_and_its_files_are_mounted(
    rendered: list[Manifest],
) -> None:
    settings = of_kind(rendered, "ConfigMap")["gridflow-settings"]["data"]
    assert set(settings) <= SETTINGS
    assert settings["GRIDFLOW_METRICS_HOST"] == "0.0.0.0"
    assert not {"GRIDFLOW_KAFKA_SASL_PASSWORD", "GRIDFLOW_CODEC_KEYS", "GRIDFLOW_TEMPORAL_API_KEY"} & set(
        settings
    )
    file_settings = {
        name: value
        for name, value in settings.items()
        if name.endswith(("_CA", "_CERT", "_KEY", "_CAFILE", "_CERTFILE", "_KEYFILE", "RULES_FILE"))
    }
    assert file_settings, "the example configures TLS files and a rules file"
    worker = of_kind(rendered, "Deployment")["gridflow-worker"]
    bridge = of_kind(rendered, "Deployment")["gridflow-bridge"]
    for name, path in file_settings.items():
        assert path in mounted_files(worker, rendered), f"{name}={path} is not mounted in the worker"
        if name != "GRIDFLOW_RULES_FILE":  # the bridge loads no rules
            assert path in mounted_files(bridge, rendered), f"{name}={path} is not mounted in the bridge"


def test_the_archiver_reads_postgresql_with_tls_its_password_from_a_secret(rendered: list[Manifest]) -> None:
    settings = of_kind(rendered, "ConfigMap")["gridflow-settings"]["data"]
    url = make_url(settings["GRIDFLOW_ARCHIVE_URL"])
    assert url.drivername == "postgresql+psycopg" and url.password is None
    assert url.query["sslmode"] == "verify-full"
    archiver = of_kind(rendered, "Deployment")["gridflow-archiver"]
    assert url.query["sslrootcert"] in mounted_files(archiver, rendered), "the server's CA is not mounted"
    env = {variable["name"]: variable for variable in containers(archiver)[0]["env"]}
    password = env["GRIDFLOW_ARCHIVE_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert (password["name"], password["key"]) == ("gridflow-archive", "password")
    assert "GRIDFLOW_ARCHIVE_PASSWORD" not in settings
    assert settings["GRIDFLOW_ARCHIVER_GROUP"] != settings["GRIDFLOW_CONSUMER_GROUP"]
    # Its replicas share the events topic's partitions: more would sit idle.
    assert 1 <= archiver["spec"]["replicas"] <= int(settings["GRIDFLOW_TOPIC_PARTITIONS"])


def test_the_rules_configmap_is_a_valid_rules_file() -> None:
    kustomization = load_documents(KUSTOMIZATION)[0]
    (rules,) = [g for g in kustomization["configMapGenerator"] if g["name"] == "gridflow-rules"]
    for file in rules["files"]:
        rule_set = load_rule_set(K8S / file.rpartition("=")[2])
        assert rule_set.rules


def test_the_example_secrets_hold_placeholders_only(rendered: list[Manifest]) -> None:
    for name, secret in of_kind(rendered, "Secret").items():
        assert "data" not in secret, f"{name}: use stringData placeholders, never encoded values"
        assert secret["metadata"]["annotations"]["gridflow/example"].startswith("placeholder")
        for key, value in secret["stringData"].items():
            assert "REPLACE-ME" in value, f"{name}.{key} is not a placeholder"
    assert "EXAMPLE SECRETS" in (K8S / "secrets.example.yaml").read_text(encoding="utf-8")


def test_the_worker_and_the_bridge_cannot_start_without_the_codec_keys_from_their_secret(
    rendered: list[Manifest],
) -> None:
    deployments = of_kind(rendered, "Deployment")
    for name in ("gridflow-worker", "gridflow-bridge"):
        env = {variable["name"]: variable for variable in containers(deployments[name])[0]["env"]}
        reference = env["GRIDFLOW_CODEC_KEYS"]["valueFrom"]["secretKeyRef"]
        assert (reference["name"], reference["key"]) == ("gridflow-codec", "keys"), name
        # Said outright (false is the default): a missing Secret or key keeps the pod from starting.
        assert reference["optional"] is False, name
    settings = of_kind(rendered, "ConfigMap")["gridflow-settings"]["data"]
    assert "GRIDFLOW_ALLOW_PLAINTEXT" not in settings
    assert not any("GRIDFLOW_ALLOW_PLAINTEXT" in yaml.safe_dump(manifest) for manifest in rendered)
    # The example's placeholder is no key: gridflow refuses it, and says how to make a real one.
    placeholder = of_kind(rendered, "Secret")["gridflow-codec"]["stringData"]["keys"]
    with pytest.raises(KeyringError, match="gridflow codec keygen"):
        Keyring.parse(placeholder)
    documented = (K8S / "secrets.example.yaml").read_text(encoding="utf-8")
    assert "optional: false" in documented and "gridflow codec keygen" in documented


# ------------------------------------------------------------------------ scaling and disruption


def test_the_hpa_scales_the_worker_deployment(rendered: list[Manifest]) -> None:
    (hpa,) = of_kind(rendered, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    worker = of_kind(rendered, "Deployment")[target["name"]]
    assert worker["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    assert "replicas" not in worker["spec"], "the HPA owns the worker's replica count"
    assert 1 < hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    # CPU utilization needs CPU requests to measure against.
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
    assert all("cpu" in c["resources"]["requests"] for c in containers(worker))


def test_bridges_are_no_more_than_the_partitions(rendered: list[Manifest]) -> None:
    bridge = of_kind(rendered, "Deployment")["gridflow-bridge"]
    partitions = int(of_kind(rendered, "ConfigMap")["gridflow-settings"]["data"]["GRIDFLOW_TOPIC_PARTITIONS"])
    assert 1 < bridge["spec"]["replicas"] <= partitions


def test_pdbs_and_services_select_the_pods_of_one_deployment_each(rendered: list[Manifest]) -> None:
    pods = {
        name: d["spec"]["template"]["metadata"]["labels"]
        for name, d in of_kind(rendered, "Deployment").items()
    }
    for name, deployment in of_kind(rendered, "Deployment").items():
        assert selects(deployment["spec"]["selector"]["matchLabels"], pods[name])
    covered = []
    for name, pdb in of_kind(rendered, "PodDisruptionBudget").items():
        matched = [d for d, labels in pods.items() if selects(pdb["spec"]["selector"]["matchLabels"], labels)]
        assert len(matched) == 1, f"PDB {name} selects {matched}"
        covered += matched
        assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])
    assert sorted(covered) == sorted(pods)
    for name, service in of_kind(rendered, "Service").items():
        matched = [d for d, labels in pods.items() if selects(service["spec"]["selector"], labels)]
        assert matched == [name], f"Service {name} selects {matched}"
        ports = {p["name"] for p in containers(of_kind(rendered, "Deployment")[name])[0]["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports


# ------------------------------------------------------------------------------------ monitoring


def test_servicemonitors_give_the_job_and_endpoint_labels_the_rules_use(rendered: list[Manifest]) -> None:
    component = load_documents(SERVICEMONITOR / "kustomization.yaml")[0]
    assert component["kind"] == "Component"
    monitors = {
        m["metadata"]["name"]: m
        for resource in component["resources"]
        for m in load_documents(SERVICEMONITOR / resource)
    }
    prometheus = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert set(monitors) == set(jobs) == set(of_kind(rendered, "Service"))
    for name, monitor in monitors.items():
        assert monitor["kind"] == "ServiceMonitor" and monitor["metadata"]["namespace"] == "gridflow"
        # The job label is the Service's name; the endpoint label the port's name.
        (service,) = [
            s
            for s in of_kind(rendered, "Service").values()
            if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert service["metadata"]["name"] == name
        ports = {port["port"] for port in monitor["spec"]["endpoints"]}
        assert ports <= {port["name"] for port in service["spec"]["ports"]}
        if name not in jobs:
            continue
        endpoints = {group.get("labels", {}).get("endpoint") for group in jobs[name]["static_configs"]}
        if endpoints != {None}:
            assert ports == endpoints, name
