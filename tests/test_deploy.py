"""Deployment: docker-compose.yml, the Dockerfile, and the nightly ingest wrapper (issue 7).

There is no Docker engine here, so the compose file is checked against the official Compose
Specification JSON schema (tests/fixtures/compose-spec.json, from the compose-spec project,
Apache-2.0; see tests/fixtures/compose-spec.README.md), by a real `docker compose config`
when a Compose binary happens to be installed, and for the promises the README makes about
it. The wrapper, ingest/ragkb-nightly, is run for real against real `ragkb ingest` runs on a
few small files; each run that embeds loads the model (5-10 s), so the test that runs ragkb
more than twice is marked slow.
"""

from __future__ import annotations

import configparser
import fcntl
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ragkb.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "fixtures" / "compose-spec.json"
INGEST = ROOT / "ingest"
NIGHTLY = INGEST / "ragkb-nightly"
SCHEDULE = INGEST / "ragkb-schedule"
VENV_BIN = Path(sys.executable).parent

QDRANT_SERVICES = ("qdrant", "qdrant-2", "qdrant-3")
RAGKB_SERVICES = ("ragkb", "ingest")
# Variables read by ingest/ragkb-nightly and ingest/ragkb-schedule rather than by ragkb.
WRAPPER_VARS = {
    "RAGKB_BIN", "RAGKB_PYTHON", "RAGKB_NIGHTLY_DIR", "RAGKB_REPORT_DIR", "RAGKB_NIGHTLY_LOG",
    "RAGKB_NIGHTLY_LOCK", "RAGKB_NIGHTLY_TIMEOUT", "RAGKB_REPORT_KEEP_DAYS", "RAGKB_NIGHTLY_LOG_MAX_KB",
    "RAGKB_NIGHTLY_QUIET", "RAGKB_NIGHTLY_ARGS", "RAGKB_INGEST_AT", "RAGKB_INGEST_ON_START", "RAGKB_NIGHTLY",
}  # fmt: skip
# RAGKB_* variables that select ragkb's config file rather than a Settings field.
RAGKB_META_VARS = {"RAGKB_CONFIG"}

BASE_ENV = {"QDRANT__SERVICE__API_KEY": "test-key-0123456789"}
CLUSTER_ENV = {**BASE_ENV, "RAGKB_SHARD_NUMBER": "6", "RAGKB_REPLICATION_FACTOR": "2"}


# --- compose helpers -------------------------------------------------------------------------
_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


class MissingVariable(ValueError):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expr = match.group("braced") if match.group("braced") is not None else match.group("plain")
        name = re.match(r"[A-Za-z_][A-Za-z0-9_]*", expr)
        assert name, f"bad variable expression {expr!r}"
        key, rest = name.group(0), expr[name.end() :]
        current = env.get(key)
        if rest.startswith(":-"):
            return current if current else rest[2:]
        if rest.startswith("-"):
            return current if current is not None else rest[1:]
        if rest.startswith(":?"):
            if not current:
                raise MissingVariable(f"{key}: {rest[2:]}")
            return current
        if rest.startswith("?"):
            if current is None:
                raise MissingVariable(f"{key}: {rest[1:]}")
            return current
        assert rest == "", f"unsupported variable expression {expr!r}"
        return current or ""

    return _VAR.sub(one, value)


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    return interpolate(raw_compose, BASE_ENV)


def active_services(doc: dict[str, Any], profiles: set[str]) -> dict[str, Any]:
    return {name: svc for name, svc in doc["services"].items() if not svc.get("profiles") or set(svc["profiles"]) & profiles}


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def service_networks(service: dict[str, Any]) -> set[str]:
    networks = service.get("networks") or {}
    return set(networks if isinstance(networks, list) else networks.keys())


def compose_binary() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


# --- docker-compose.yml ----------------------------------------------------------------------
def test_compose_validates_against_the_compose_spec_schema(raw_compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema.get("title") == "Compose Specification"
    validator = jsonschema.Draft7Validator(schema)
    for label, doc in (
        ("as written", raw_compose),
        ("interpolated", interpolate(raw_compose, BASE_ENV)),
        ("interpolated for the cluster", interpolate(raw_compose, CLUSTER_ENV)),
    ):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{label}: " + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


def test_compose_is_accepted_by_docker_compose_when_installed(tmp_path: Path) -> None:
    binary = compose_binary()
    if binary is None:
        pytest.skip("no docker compose binary here (the schema test above still ran)")
    env = {**os.environ, **BASE_ENV}
    base = [*binary, "--project-directory", str(ROOT), "-f", str(COMPOSE)]
    done = subprocess.run([*base, "config", "-q"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    default = subprocess.run([*base, "config", "--services"], env=env, capture_output=True, text=True)
    cluster = subprocess.run([*base, "--profile", "cluster", "config", "--services"], env=env, capture_output=True, text=True)
    assert set(default.stdout.split()) == {"qdrant", "ollama", "ragkb", "ingest"}
    assert set(cluster.stdout.split()) == {"qdrant", "qdrant-2", "qdrant-3", "ollama", "ragkb", "ingest"}
    missing_key = {k: v for k, v in os.environ.items() if k != "QDRANT__SERVICE__API_KEY"}
    refused = subprocess.run([*base, "config", "-q"], env=missing_key, capture_output=True, text=True)
    assert refused.returncode != 0 and "QDRANT__SERVICE__API_KEY" in refused.stderr


def test_only_the_service_publishes_ports(compose: dict[str, Any]) -> None:
    published = {name: svc["ports"] for name, svc in compose["services"].items() if svc.get("ports")}
    assert list(published) == ["ragkb"]
    api, ui = published["ragkb"]
    assert str(api).startswith("127.0.0.1:") and str(api).endswith(":8000")
    assert str(ui).startswith("127.0.0.1:") and str(ui).endswith(":8501")
    for name, svc in compose["services"].items():
        assert "network_mode" not in svc, f"{name} must stay on the compose networks"


def test_private_network_is_internal_and_only_the_service_is_also_public(compose: dict[str, Any]) -> None:
    networks = compose["networks"]
    assert networks["backend"]["internal"] is True
    assert not (networks["frontend"] or {}).get("internal")
    services = compose["services"]
    for name in (*QDRANT_SERVICES, "ollama", "ingest"):
        assert service_networks(services[name]) == {"backend"}, name
    assert service_networks(services["ragkb"]) == {"backend", "frontend"}
    # The model download is the only thing with a way out, and it runs only when asked for.
    assert service_networks(services["ollama-pull"]) == {"egress"}
    assert services["ollama-pull"]["profiles"] == ["pull"]
    outside = {name for name, svc in services.items() if service_networks(svc) - {"backend"}}
    assert outside == {"ragkb", "ollama-pull"}


def test_default_stack_and_cluster_profile(raw_compose: dict[str, Any]) -> None:
    default = active_services(interpolate(raw_compose, BASE_ENV), set())
    assert set(default) == {"qdrant", "ollama", "ragkb", "ingest"}

    doc = interpolate(raw_compose, CLUSTER_ENV)
    cluster = active_services(doc, {"cluster"})
    nodes = {name: svc for name, svc in cluster.items() if svc["image"].startswith("qdrant/qdrant:")}
    assert sorted(nodes) == list(QDRANT_SERVICES)
    storages = set()
    for name, svc in nodes.items():
        env = env_of(svc)
        assert env["QDRANT__CLUSTER__ENABLED"] == "true", name
        assert env["QDRANT__CLUSTER__P2P__PORT"] == "6335", name
        assert env["QDRANT__TELEMETRY_DISABLED"] == "true", name
        command = svc["command"]
        assert command[0] == "./qdrant"
        assert command[command.index("--uri") + 1] == f"http://{name}:6335"
        if name == "qdrant":
            assert "--bootstrap" not in command
        else:
            assert command[command.index("--bootstrap") + 1] == "http://qdrant:6335"
            assert svc["depends_on"]["qdrant"]["condition"] == "service_healthy"
        storage = [v for v in svc["volumes"] if str(v).endswith(":/qdrant/storage")]
        assert len(storage) == 1, name
        storages.add(storage[0].split(":")[0])
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
    assert len(storages) == 3, "each node needs its own storage volume"
    for name in RAGKB_SERVICES:
        env = env_of(doc["services"][name])
        assert env["RAGKB_QDRANT_URL"] == "http://qdrant:6333"
        assert (env["RAGKB_SHARD_NUMBER"], env["RAGKB_REPLICATION_FACTOR"]) == ("6", "2")


def test_qdrant_api_key_comes_from_the_environment(raw_compose: dict[str, Any]) -> None:
    for name in QDRANT_SERVICES:
        raw = env_of(raw_compose["services"][name])["QDRANT__SERVICE__API_KEY"]
        assert raw.startswith("${QDRANT__SERVICE__API_KEY:?"), name
    for name in RAGKB_SERVICES:
        raw = env_of(raw_compose["services"][name])["RAGKB_QDRANT_API_KEY"]
        assert raw.startswith("${QDRANT__SERVICE__API_KEY:?"), name
    with pytest.raises(MissingVariable):
        interpolate(raw_compose, {})
    doc = interpolate(raw_compose, BASE_ENV)
    assert env_of(doc["services"]["qdrant"])["QDRANT__SERVICE__API_KEY"] == BASE_ENV["QDRANT__SERVICE__API_KEY"]
    assert env_of(doc["services"]["ragkb"])["RAGKB_QDRANT_API_KEY"] == BASE_ENV["QDRANT__SERVICE__API_KEY"]


def test_ragkb_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    ui, ingest = services["ragkb"], services["ingest"]
    assert ui["command"] == ["ragkb", "serve", "--host", "0.0.0.0", "--port", "8000", "--ui-port", "8501"]
    assert "/readyz" in " ".join(ui["healthcheck"]["test"])
    assert env_of(ui)["RAGKB_USERS_FILE"] == "/data/users.toml"  # a 0.0.0.0 bind needs users
    assert ingest["command"] == ["ragkb-schedule"]
    assert ingest["healthcheck"] == {"disable": True}, "the image's UI healthcheck must not apply to ingest"
    fields = {f"RAGKB_{name.upper()}" for name in Settings.model_fields}
    for name in RAGKB_SERVICES:
        svc = services[name]
        assert svc["build"]["dockerfile"] == "Dockerfile" and svc["image"] == ui["image"]
        env = env_of(svc)
        assert env["RAGKB_HOME"] == "/data"
        assert env["RAGKB_OLLAMA_URL"] == "http://ollama:11434"
        assert env["RAGKB_LLM_MODEL"] == "llama3.2:3b"
        unknown = {k for k in env if k.startswith("RAGKB_")} - fields - WRAPPER_VARS - RAGKB_META_VARS
        assert not unknown, f"{name} sets variables ragkb does not read: {unknown}"
        assert "/data" in {str(v).split(":")[1] for v in svc["volumes"] if isinstance(v, str)}
        assert {"/etc/ragkb", "/docs"} <= {v["target"] for v in svc["volumes"] if isinstance(v, dict)}
        assert all(v["read_only"] for v in svc["volumes"] if isinstance(v, dict))
        assert svc["cap_drop"] == ["ALL"]
    # ragkb reads its toml from the mounted config folder.
    assert env_of(ingest)["RAGKB_CONFIG"].startswith("/etc/ragkb/")


def test_images_are_pinned_and_qdrant_matches_the_client(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
    server = re.fullmatch(r"qdrant/qdrant:v(\d+)\.(\d+)\.(\d+)", compose["services"]["qdrant"]["image"])
    assert server, compose["services"]["qdrant"]["image"]
    client = version("qdrant-client").split(".")
    # qdrant-client warns unless the server's minor version is within one of its own.
    assert int(server.group(1)) == int(client[0]) and abs(int(server.group(2)) - int(client[1])) <= 1


def test_ollama_services_and_model_pull(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["ollama"]["image"] == services["ollama-pull"]["image"]
    assert services["ollama"]["image"].startswith("ollama/ollama:")
    assert "ollama-models:/root/.ollama" in services["ollama"]["volumes"]
    assert "ollama-models:/root/.ollama" in services["ollama-pull"]["volumes"]
    pull_env = env_of(services["ollama-pull"])
    assert pull_env["RAGKB_LLM_MODEL"] == env_of(services["ragkb"])["RAGKB_LLM_MODEL"] == "llama3.2:3b"
    script = " ".join(services["ollama-pull"]["command"])
    assert 'ollama pull "$RAGKB_LLM_MODEL"' in script
    custom = interpolate(yaml.safe_load(COMPOSE.read_text()), {**BASE_ENV, "RAGKB_LLM_MODEL": "qwen2.5:7b"})
    assert env_of(custom["services"]["ollama-pull"])["RAGKB_LLM_MODEL"] == "qwen2.5:7b"
    assert env_of(custom["services"]["ragkb"])["RAGKB_LLM_MODEL"] == "qwen2.5:7b"


# --- Dockerfile ------------------------------------------------------------------------------
def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert any(re.match(r"ARG PYTHON_IMAGE=python:3\.11-slim", line) for line in instructions)
    assert [line for line in instructions if line.startswith("FROM")][-1] == "FROM ${PYTHON_IMAGE}"
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
    run = " ".join(line for line in instructions if line.startswith("RUN"))
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in run and '".[llamacpp]"' in run
    assert "pip uninstall -y torchvision" in run
    users = [line.split()[1] for line in instructions if line.startswith("USER")]
    assert users and users[-1] not in {"root", "0"}
    assert any("RAGKB_HOME=/data" in line for line in instructions if line.startswith("ENV"))
    health = [line for line in instructions if line.startswith("HEALTHCHECK")]
    assert len(health) == 1 and "/readyz" in health[0]
    assert instructions[-1] == 'CMD ["ragkb", "serve", "--host", "0.0.0.0", "--port", "8000", "--ui-port", "8501"]'


def _ignore_pattern_matches(candidate: str, pattern: str) -> bool:
    if fnmatch.fnmatchcase(candidate, pattern):
        return True
    if pattern.startswith("**/"):
        parts = candidate.split("/")
        return any(fnmatch.fnmatchcase("/".join(parts[i:]), pattern[3:]) for i in range(len(parts)))
    return False


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a folder covers its files."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(_ignore_pattern_matches(c, pattern) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_the_build_inputs_only() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    for needed in ("pyproject.toml", "README.md", "ragkb/cli.py", "ragkb/config.py", "ui/app.py", ".streamlit/config.toml", "ui/.streamlit/config.toml", "ingest/ragkb-nightly", "ingest/ragkb-schedule"):
        assert not dockerignored(needed, patterns), needed
    for secret in (".env", ".venv/bin/python", ".git/config", ".ragkb/manifest-ragkb.sqlite", "ragkb/__pycache__/cli.cpython-311.pyc",
                   "config/ragkb.toml", "docs/handbook.pdf", "data/beir/scifact/corpus.jsonl", "tests/test_deploy.py", "ragkb.egg-info/PKG-INFO"):  # fmt: skip
        assert dockerignored(secret, patterns), secret


# --- ingest/ deployment files ----------------------------------------------------------------
def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_systemd_units() -> None:
    timer = read_unit(INGEST / "ragkb-ingest.timer")
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["OnCalendar"]
    assert timer["Timer"]["Unit"] == "ragkb-ingest.service"
    assert timer["Install"]["WantedBy"] == "timers.target"

    text = (INGEST / "ragkb-ingest.service").read_text()
    service = read_unit(INGEST / "ragkb-ingest.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].endswith("/ingest/ragkb-nightly")
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["User"] != "root"
    assert "75" in service["SuccessExitStatus"].split()
    env = dict(line.split("=", 2)[1:] for line in text.splitlines() if line.startswith("Environment="))
    writable = service["ReadWritePaths"].split()
    for key in ("RAGKB_NIGHTLY_DIR", "RAGKB_NIGHTLY_LOG"):
        assert any(env[key].startswith(p.rstrip("/") + "/") for p in writable), f"{key}={env[key]} not in ReadWritePaths"
    home = Path(tomllib.loads((INGEST / "sources.example.toml").read_text())["home"])
    assert any(str(home).startswith(p.rstrip("/") + "/") for p in writable), "RAGKB_HOME of the example must be writable"

    if shutil.which("systemd-analyze"):
        done = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(INGEST / "ragkb-ingest.service"), str(INGEST / "ragkb-ingest.timer")],
            capture_output=True, text=True,
        )  # fmt: skip
        # The only complaint allowed: the install paths (/opt/ragkb) do not exist on this machine.
        problems = [line for line in done.stderr.splitlines() if line.strip() and "/opt/ragkb" not in line]
        assert not problems, done.stderr


def test_crontab_logrotate_and_paths_agree() -> None:
    lines = [line for line in (INGEST / "crontab.example").read_text().splitlines() if line.strip() and not line.startswith("#")]
    env = dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z_]+=", line))
    jobs = [line.split() for line in lines if not re.match(r"^[A-Z_]+=", line)]
    assert len(jobs) == 1 and len(jobs[0]) == 6 and jobs[0][5].endswith("/ingest/ragkb-nightly")
    assert env["RAGKB_CONFIG"] and env["RAGKB_NIGHTLY_QUIET"] == "1"
    logrotate = (INGEST / "logrotate.conf").read_text()
    unit_env = dict(
        line.split("=", 2)[1:] for line in (INGEST / "ragkb-ingest.service").read_text().splitlines() if line.startswith("Environment=")
    )
    assert env["RAGKB_NIGHTLY_LOG"] == unit_env["RAGKB_NIGHTLY_LOG"]
    assert f"{env['RAGKB_NIGHTLY_LOG']} {{" in logrotate
    directives = [line.split("#")[0].strip() for line in logrotate.splitlines()]
    assert "copytruncate" not in directives  # the wrapper reopens the log for each line


def test_sources_example_is_a_valid_ragkb_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    example = INGEST / "sources.example.toml"
    data = tomllib.loads(example.read_text())
    assert set(data) <= set(Settings.model_fields), set(data) - set(Settings.model_fields)
    for key in list(os.environ):
        if key.startswith("RAGKB_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAGKB_CONFIG", str(example))
    settings = Settings()
    assert settings.collection == "ragkb" and settings.qdrant_url
    assert len(settings.sources) >= 2
    assert any(source.groups for source in settings.sources)
    assert all(source.path.is_absolute() for source in settings.sources)


def test_scripts_are_valid_bash() -> None:
    for script in (NIGHTLY, SCHEDULE):
        assert os.access(script, os.X_OK), f"{script} must be executable"
        subprocess.run(["bash", "-n", str(script)], check=True)
        if shutil.which("shellcheck"):
            done = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
            assert done.returncode == 0, done.stdout


def test_schedule_next_run_and_bad_time() -> None:
    done = subprocess.run([str(SCHEDULE), "--next"], env={**os.environ, "RAGKB_INGEST_AT": "03:30", "TZ": "UTC"}, capture_output=True, text=True)
    assert done.returncode == 0 and re.fullmatch(r"\d{4}-\d\d-\d\dT03:30:00\+0000\n", done.stdout), done.stdout
    bad = subprocess.run([str(SCHEDULE), "--next"], env={**os.environ, "RAGKB_INGEST_AT": "25:00"}, capture_output=True, text=True)
    assert bad.returncode == 2 and "HH:MM" in bad.stderr


# --- the wrapper, with real ragkb runs -------------------------------------------------------
class KB:
    """A tmp knowledge base: source docs, ragkb.toml with [[sources]], RAGKB_HOME in tmp."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.docs = root / "docs"
        self.home = root / "home"
        self.docs.mkdir()
        (self.docs / "leave.md").write_text("# Parental leave\n\nEmployees get twenty days of paid parental leave.\n")
        (self.docs / "canteen.txt").write_text("The canteen opens at eight in the morning and closes at three.\n")
        self.config = root / "ragkb.toml"
        self.config.write_text(
            f'home = "{self.home}"\ncollection = "deploytest"\n\n[[sources]]\npath = "{self.docs}"\ngroups = ["staff"]\n'
        )
        # Defaults derived from ragkb's settings: <home>/nightly.
        self.nightly = self.home / "nightly"
        self.reports = self.nightly / "reports"
        self.log = self.nightly / "ragkb-nightly.log"
        self.lock = self.nightly / "ragkb-nightly.lock"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGKB_")}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # `ragkb` found on PATH
        env["RAGKB_CONFIG"] = str(self.config)
        env["RAGKB_NIGHTLY_QUIET"] = "1"
        env.update(extra)
        return env

    def run(self, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(NIGHTLY)], env=self.env(**extra), cwd=self.root, capture_output=True, text=True, timeout=300)

    def latest(self) -> dict[str, Any]:
        return json.loads((self.reports / "latest.json").read_text())

    def stamped(self) -> list[Path]:
        return sorted(p for p in self.reports.glob("*.json") if p.name != "latest.json")


@pytest.fixture
def kb(tmp_path: Path) -> KB:
    return KB(tmp_path)


def test_nightly_adds_then_reports_unchanged(kb: KB) -> None:
    first = kb.run()
    assert first.returncode == 0, first.stderr
    report = kb.latest()
    assert report["added"] == 2 and report["failed"] == [] and report["chunks"] >= 2
    assert report["status"] == "ok" and report["exit_code"] == 0 and report["collection"] == "deploytest"
    (stamped,) = kb.stamped()
    assert re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?\.json", stamped.name)
    assert json.loads(stamped.read_text()) == report
    assert not list(kb.reports.glob(".report.*")), "no temporary file left behind"

    second = kb.run()
    assert second.returncode == 0, second.stderr
    report = kb.latest()
    assert (report["added"], report["unchanged"], report["chunks"]) == (0, 2, 0)
    assert len(kb.stamped()) == 2, "one timestamped report per run, even within the same second"

    log = kb.log.read_text()
    assert "ok: added=2" in log and "ok: added=0 updated=0 unchanged=2" in log
    assert log.count("done: exit 0") == 2
    assert first.stderr == second.stderr == "", "quiet mode prints nothing when all is well"


@pytest.mark.slow
def test_nightly_lock_and_failed_files(kb: KB) -> None:
    assert kb.run().returncode == 0
    before = kb.latest()
    (kb.docs / "holidays.md").write_text("# Holidays\n\nThe office is closed between Christmas and New Year.\n")

    # An overlapping run: the wrapper's own lock is held -> 75 before ragkb even starts.
    with open(kb.lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = kb.run()
    assert busy.returncode == 75, busy.stderr
    assert "busy" in busy.stderr
    assert kb.latest() == before and len(kb.stamped()) == 1, "a locked run writes no report"

    # ragkb's own lock (e.g. a manual `ragkb ingest`) -> ragkb exits 75, and so does the wrapper.
    with open(kb.home / "ingest.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = kb.run()
    assert busy.returncode == 75, busy.stderr
    assert kb.latest() == before and len(kb.stamped()) == 1

    # Nothing was ingested while locked: the next run is the one that adds the new file.
    done = kb.run()
    assert done.returncode == 0, done.stderr
    assert (kb.latest()["added"], kb.latest()["unchanged"]) == (1, 2)

    (kb.docs / "empty.txt").write_bytes(b"")
    failed = kb.run()
    assert failed.returncode == 1, failed.stderr
    report = kb.latest()
    assert report["status"] == "failed_files" and report["exit_code"] == 1
    assert [Path(f["path"]).name for f in report["failed"]] == ["empty.txt"]
    assert report["failed"][0]["error"]
    assert "empty.txt" in kb.log.read_text()
    assert "empty.txt" in failed.stderr, "quiet mode still prints a run that did not succeed"


def test_nightly_config_errors_exit_2(kb: KB) -> None:
    bad = kb.root / "bad.toml"
    bad.write_text("home = [\n")
    state = kb.root / "state"
    done = kb.run(RAGKB_CONFIG=str(bad), RAGKB_NIGHTLY_DIR=str(state))
    assert done.returncode == 2, done.stderr
    report = json.loads((state / "reports" / "latest.json").read_text())
    assert report["status"] == "config_error" and report["exit_code"] == 2
    assert "configuration error" in report["error"]

    # A RAGKB_CONFIG that does not exist: refused (by the wrapper first, and by ragkb).
    done = kb.run(RAGKB_CONFIG=str(kb.root / "missing.toml"), RAGKB_NIGHTLY_DIR=str(state))
    assert done.returncode == 2
    assert "missing.toml" in json.loads((state / "reports" / "latest.json").read_text())["error"]

    # A valid file with no [[sources]]: ragkb has nothing to ingest.
    empty = kb.root / "nosources.toml"
    empty.write_text(f'home = "{kb.home}"\n')
    done = kb.run(RAGKB_CONFIG=str(empty))
    assert done.returncode == 2
    assert "nothing to ingest" in kb.latest()["error"]


def test_nightly_crash_without_json_is_reported(kb: KB) -> None:
    # ragkb killed before it could print its summary (here by RAGKB_NIGHTLY_TIMEOUT).
    done = kb.run(RAGKB_NIGHTLY_TIMEOUT="0.2")
    assert done.returncode == 70, done.stderr
    report = kb.latest()
    assert report["status"] == "crashed" and report["ragkb_exit_code"] == 124
    assert "timed out" in report["error"]
    assert "added" not in report


def test_nightly_without_ragkb_is_a_config_error(kb: KB) -> None:
    done = kb.run(RAGKB_BIN=str(kb.root / "no-such-ragkb"), RAGKB_NIGHTLY_DIR=str(kb.root / "state"))
    assert done.returncode == 2
    report = json.loads((kb.root / "state" / "reports" / "latest.json").read_text())
    assert report["status"] == "config_error" and "ragkb" in report["error"]
