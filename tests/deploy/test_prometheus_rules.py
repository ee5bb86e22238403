"""deploy/: the Prometheus config, recording and alerting rules, and the Grafana dashboard.

promtool checks the config and the rules and runs the rule unit tests (tests/deploy/rules_test.yml); a real
Prometheus loads the rule files and evaluates every rule expression and every dashboard query. Every metric
the rules and the dashboard use must exist: gridflow_* in the code, level:metric:operation names in the
recording rules. promtool and prometheus come from Debian's `prometheus` package (`make deps`).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from activities.metrics import LifecycleMetrics
from events.metrics import BridgeMetrics
from gridflow.app.open_incidents import OpenIncidentsGauge
from tests.prometheus import api, binary, running_prometheus

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RECORDING_RULES = PROMETHEUS_DIR / "recording_rules.yml"
ALERTING_RULES = PROMETHEUS_DIR / "alerting_rules.yml"
RULE_FILES = (RECORDING_RULES, ALERTING_RULES)
RULES_TEST = Path(__file__).with_name("rules_test.yml")
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "gridflow.json"

JOBS = ("gridflow-worker", "gridflow-bridge", "gridflow-archiver")
# Values for Grafana's built-in variables when a dashboard query is sent to Prometheus directly.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1d"}
# Metrics from outside gridflow's code: Prometheus itself and the Temporal SDK's worker metrics.
EXTERNAL_METRICS = {
    "up",
    "temporal_worker_task_slots_available",
    "temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
    "temporal_activity_schedule_to_start_latency_seconds_bucket",
    "temporal_request_failure_total",
}
# Labels Prometheus adds to every scraped series (endpoint: deploy/prometheus/prometheus.yml).
TARGET_LABELS = {"job", "instance", "endpoint"}
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}


def run_promtool(*args: str) -> None:
    result = subprocess.run(
        [binary("promtool"), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules(RECORDING_RULES)}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variable(board: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [v for v in board["templating"]["list"] if v["name"] == name]
    assert found, f"the dashboard has no ${name} variable"
    return found[0]


def dashboard_exprs(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable; label_values(m, l) becomes a query."""
    exprs = [
        (f"panel {panel['title']!r} target {target['refId']}", target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["definition"])
            assert match, f"variable {var['name']}: unexpected query {var['definition']!r}"
            exprs.append((f"variable ${var['name']}", f"group by ({match[2]}) ({match[1]})"))
    return exprs


def substitute(expr: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        assert name in values, f"no value for ${name} in {expr!r}"
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def variants(board: dict[str, Any]) -> list[dict[str, str]]:
    """Variable values a user can pick: every rate window with All, then single and multiple selections."""
    windows = [option["value"] for option in variable(board, "window")["options"]]
    chosen = [{"district": ".*", "category": ".*", "window": window} for window in windows]
    chosen.append({"district": "d-huangpu", "category": "street_lamp", "window": windows[0]})
    chosen.append(
        {"district": "(d-huangpu|d-jingan)", "category": "(drain|street_lamp)", "window": windows[-1]}
    )
    return [{**GRAFANA_BUILTINS, **values} for values in chosen]


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names an expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[a-zA-Z_:][\w:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match[0].lower() in PROMQL_WORDS:
            continue  # a function or an aggregation, or a keyword
        names.add(match[0])
    return names


def exported_metrics() -> dict[str, set[str]]:
    """Every series name gridflow's code exports, with its label names (buckets also have `le`)."""
    registry = CollectorRegistry()
    lifecycle, open_incidents = LifecycleMetrics(registry), OpenIncidentsGauge(registry)
    bridge = BridgeMetrics(registry)
    metrics = [*vars(lifecycle).values(), *vars(bridge).values(), *vars(open_incidents).values()]
    exported: dict[str, set[str]] = {}
    for metric in metrics:
        if not isinstance(metric, MetricWrapperBase):
            continue
        labels = set(metric._labelnames) | TARGET_LABELS
        for family in metric.describe():
            if family.type == "counter":
                exported[family.name + "_total"] = labels
            elif family.type == "histogram":
                exported[family.name + "_bucket"] = labels | {"le"}
                exported[family.name + "_count"] = labels
                exported[family.name + "_sum"] = labels
            else:
                exported[family.name] = labels
    return exported


# ---------------------------------------------------------------- promtool


def test_promtool_check_config() -> None:
    run_promtool("check", "config", str(CONFIG))


def test_promtool_check_rules() -> None:
    run_promtool("check", "rules", *map(str, RULE_FILES))


def test_promtool_rule_unit_tests() -> None:
    run_promtool("test", "rules", str(RULES_TEST))


# ---------------------------------------------------------------- the files themselves


def test_config_scrapes_both_jobs_and_loads_both_rule_files() -> None:
    config = load_yaml(CONFIG)
    assert config["global"]["scrape_interval"] == "15s"
    assert sorted(config["rule_files"]) == sorted(path.name for path in RULE_FILES)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(JOBS)
    worker_targets = [t for group in jobs["gridflow-worker"]["static_configs"] for t in group["targets"]]
    assert "127.0.0.1:9464" in worker_targets
    assert jobs["gridflow-bridge"]["static_configs"][0]["targets"] == ["127.0.0.1:9465"]


def test_every_alert_has_severity_annotations_and_a_firing_and_a_silent_test() -> None:
    alerts = rules(ALERTING_RULES)
    assert alerts
    cases: dict[str, list[bool]] = {}
    for group in load_yaml(RULES_TEST)["tests"]:
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(bool(case.get("exp_alerts")))
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), name
        assert True in cases.get(name, []), f"{name}: no promtool test where it fires"
        assert False in cases.get(name, []), f"{name}: no promtool test where it stays silent"


def test_recording_rules_follow_the_naming_convention() -> None:
    for rule in rules(RECORDING_RULES):
        level, metric, operations = rule["record"].split(":")
        assert level and metric and operations, rule["record"]
        assert level == "gridflow" or metric.startswith("gridflow_"), rule["record"]


def test_every_metric_used_exists() -> None:
    """gridflow_* series exist in the code with the labels used; colon names are recording rules."""
    exported = exported_metrics()
    recorded = recorded_names()
    board = dashboard()
    exprs = [(f"rule {r.get('record') or r['alert']}", r["expr"]) for path in RULE_FILES for r in rules(path)]
    # Every rate window the dashboard offers must have its recording rules.
    exprs += [
        (where, substitute(expr, values))
        for where, expr in dashboard_exprs(board)
        for values in variants(board)
    ]
    problems = []
    for where, expr in dict.fromkeys(exprs):
        for name in metric_names(expr):
            if ":" in name:
                if name not in recorded:
                    problems.append(f"{where}: no recording rule {name}")
            elif name.startswith("gridflow_"):
                if name not in exported:
                    problems.append(f"{where}: gridflow exports no metric {name}")
            elif name not in EXTERNAL_METRICS:
                problems.append(f"{where}: unknown metric {name}")
        for name, matchers in re.findall(r"(?<![\w:])(gridflow_\w+)\{([^}]*)\}", expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                if name in exported and label not in exported[name]:
                    problems.append(f"{where}: {name} has no label {label}")
        for labels, name in re.findall(r"by \(([^)]*)\) \((?:rate|increase)\((gridflow_\w+)\[", expr):
            for label in (label.strip() for label in labels.split(",")):
                if name in exported and label not in exported[name]:
                    problems.append(f"{where}: {name} has no label {label}")
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_dashboard_structure() -> None:
    board = dashboard()
    assert board["uid"] == "gridflow"
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for name in ("district", "category"):
        var = variable(board, name)
        assert var["multi"] and var["includeAll"] and var["allValue"] == ".*"
    assert [o["value"] for o in variable(board, "window")["options"]] == ["5m", "1h", "1d"]
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_dashboard_stat_thresholds_at_the_targets() -> None:
    targets = {
        "Response rate": 0.99,
        "Resolution rate": 0.99,
        "Satisfaction rate": 0.95,
        "On-time rate": 0.95,
        "Grid containment": 0.6,
        "Street containment": 0.85,
        "District containment": 0.95,
        "On-time closure": 0.95,
        "Dispatch accuracy": 0.95,
        "Resident-stated resolution": 0.95,
    }
    stats = {panel["title"]: panel for panel in panels(dashboard()) if panel["type"] == "stat"}
    for title, target in targets.items():
        defaults = stats[title]["fieldConfig"]["defaults"]
        assert defaults["unit"] == "percentunit", title
        steps = defaults["thresholds"]["steps"]
        assert steps[0] == {"color": "red", "value": None}, title
        assert steps[-1] == {"color": "green", "value": target}, title


def test_grafana_provisioning() -> None:
    datasources = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["jsonData"]["timeInterval"] == "15s"
    providers = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "gridflow.yml")
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


# ---------------------------------------------------------------- a real Prometheus


@pytest.fixture(scope="module")
def prometheus() -> Iterator[str]:
    """A real Prometheus on a free port, loading the rule files; yields its base URL."""
    config = {"global": {"evaluation_interval": "15s"}, "rule_files": [str(path) for path in RULE_FILES]}
    with running_prometheus(config) as url:
        yield url


def test_prometheus_loads_every_rule(prometheus: str) -> None:
    loaded = api(prometheus, "/api/v1/rules")
    assert loaded["status"] == "success", loaded
    names = {rule["name"] for group in loaded["data"]["groups"] for rule in group["rules"]}
    expected = {rule.get("record") or rule["alert"] for path in RULE_FILES for rule in rules(path)}
    assert names == expected


def test_every_rule_expression_is_accepted(prometheus: str) -> None:
    failures = []
    for path in RULE_FILES:
        for rule in rules(path):
            answer = api(prometheus, "/api/v1/query", {"query": rule["expr"]})
            if answer["status"] != "success":
                failures.append(f"{rule.get('record') or rule['alert']}: {answer.get('error')}")
    assert not failures, "\n".join(failures)


def test_every_dashboard_query_is_accepted(prometheus: str) -> None:
    board = dashboard()
    queries = {
        substitute(expr, values): where
        for where, expr in dashboard_exprs(board)
        for values in variants(board)
    }
    failures = []
    for query, where in queries.items():
        answer = api(prometheus, "/api/v1/query", {"query": query})
        if answer["status"] != "success":
            failures.append(f"{where}: {answer.get('error')}\n  {query}")
    assert not failures, "\n".join(failures)
