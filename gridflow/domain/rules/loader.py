"""Reading rules files: precise errors that name the file, the rule and the field; reload on change."""

from __future__ import annotations

import logging
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gridflow.domain.rules.model import RuleSet

# The standard library's logger keeps the rules free of the application's logging set-up; the
# application renders these records (and their extra fields) like its own.
log = logging.getLogger(__name__)

BUILTIN_RULES = "default.yaml"
DEMO_RULES = "demo.yaml"


class RulesFileError(ValueError):
    """A rules file that cannot be used, with every problem found in it."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid rules file\n" + "\n".join(f"  {p}" for p in problems))


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _rule_name(raw: Any, loc: tuple[int | str, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(raw, dict):
        rules = raw.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            name = rules[loc[1]].get("name")
            return str(name) if name is not None else f"#{loc[1]}"
    return None


def _problems(raw: Any, error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required"
        elif item["type"] == "extra_forbidden":
            message = "is not a known field"
        rule = _rule_name(raw, loc)
        where = _field_path(loc) or "(file)"
        problems.append((f"rule {rule!r}: " if rule else "") + f"{where}: {message}")
    return problems


def parse_rule_set(text: str, source: str) -> RuleSet:
    """Validate the YAML text of a rules file; raise RulesFileError listing every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesFileError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise RulesFileError(source, ["(file): must be a mapping with a `rules:` list"])
    levels = raw.get("levels")
    context = {"levels": list(levels) if isinstance(levels, dict) else []}
    try:
        return RuleSet.model_validate(raw, context=context)
    except ValidationError as exc:
        raise RulesFileError(source, _problems(raw, exc)) from exc


def load_rule_set(path: str | Path) -> RuleSet:
    """Read and validate a rules file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesFileError(str(path), [f"cannot be read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise RulesFileError(str(path), [f"is not UTF-8 text: {exc}"]) from exc
    return parse_rule_set(text, str(path))


def builtin_rule_set(name: str = BUILTIN_RULES) -> RuleSet:
    """One of the rules files shipped with gridflow (`default.yaml`, or `demo.yaml` with short limits)."""
    text = resources.files("gridflow.domain.rules").joinpath(name).read_text(encoding="utf-8")
    return parse_rule_set(text, f"<built-in {name}>")


class RulesSource:
    """The rules a worker matches new incidents against.

    A file is re-read when it changes, so a new rules file applies to new incidents without a restart;
    a broken new version is refused with its errors logged, and the last good one stays in force.
    """

    def __init__(self, path: str | Path | None = None, *, builtin: str = BUILTIN_RULES) -> None:
        self._path = Path(path) if path else None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        # Refuse to start on a broken file: there is no last good version yet.
        # Stamp first, then read: a change made while reading is seen on the next look.
        self._stamp = self._file_stamp()
        self._rules = load_rule_set(self._path) if self._path else builtin_rule_set(builtin)

    @property
    def path(self) -> Path | None:
        """The rules file, or None for built-in rules."""
        return self._path

    def _file_stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def current(self) -> RuleSet:
        """The rules in force now, re-reading the file if it changed since the last look."""
        with self._lock:
            stamp = self._file_stamp()
            if self._path is not None and stamp is not None and stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._rules = load_rule_set(self._path)
                    log.info(
                        "rules reloaded",
                        extra={"rules_file": str(self._path), "rules_version": self._rules.version},
                    )
                except RulesFileError as exc:
                    log.error(
                        "rules file refused; the last good rules stay in force",
                        extra={
                            "rules_file": str(self._path),
                            "problems": exc.problems,
                            "rules_version": self._rules.version,
                        },
                    )
            return self._rules

    def replace(self, rules: RuleSet) -> None:
        """Put other rules in force (used by simulations and tests that compare rule sets)."""
        with self._lock:
            self._rules = rules
