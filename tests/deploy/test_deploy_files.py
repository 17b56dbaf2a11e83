"""deploy/check.py: the deployment files pass their checks, and each check catches a broken copy
(every breakage below is a mistake one edit makes; each must be named in the problems)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_check", ROOT / "deploy" / "check.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["deploy_check"] = mod
    spec.loader.exec_module(mod)
    return mod


check = _load()


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    """A copy of deploy/ (beside the sources the Containerfile copies, as in the repository)."""
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("secrets", "__pycache__"))
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy(ROOT / name, tmp_path / name)
    for d in ("broker", "adapters", "simulators", "psij-descriptors"):
        (tmp_path / d).mkdir()
    return tmp_path / "deploy"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name}: the test is out of date"
    path.write_text(text.replace(old, new, 1))


def _has(problems: list[str], *needles: str) -> None:
    for needle in needles:
        assert any(needle in p for p in problems), f"no problem mentions {needle!r}: {problems}"


@pytest.mark.parametrize("name", list(check.CHECKS))
def test_the_deployment_files_pass(name: str) -> None:
    if name == "systemd/" and shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    assert check.CHECKS[name]() == []


def test_containerfile_breakages_are_caught(deploy: Path) -> None:
    ctx = deploy.parent
    f = deploy / "Containerfile"
    assert check.check_containerfile(f, ctx) == []
    _edit(f, "USER 10001:10001", "# no user")
    _edit(f, "COPY adapters ./adapters", "COPY adaptors ./adapters")
    _edit(f, "COPY --from=build /opt", "COPY --from=builder /opt")
    _edit(f, '"--port", "8000"]', '"--prot", "8000"]')
    _has(check.check_containerfile(f, ctx), "sets no USER", "'adaptors' is not in the build context",
         "--from=builder: no earlier stage", "superfed refuses it")
    _edit(f, "# no user", "USER root")
    _has(check.check_containerfile(f, ctx), "runs as root")
    one_stage = "\n".join(ln for ln in f.read_text().splitlines() if "AS run" not in ln)
    f.write_text(one_stage.replace("CMD [", "CMD superfed serve #["))
    _has(check.check_containerfile(f, ctx), "not multi-stage", "not in exec form")
    # a source .dockerignore leaves out of the context
    _edit(ctx / ".dockerignore", "!broker/\n", "")
    _has(check.check_containerfile(f, ctx), "'broker' is left out by .dockerignore")


def test_compose_breakages_are_caught(deploy: Path) -> None:
    f = deploy / "compose.yaml"
    (deploy / "compose" / "secrets").mkdir(exist_ok=True)
    assert check.check_compose(f) == []
    _edit(f, "    image: docker.io/library/redis:7.2-bookworm", "    imag: docker.io/library/redis:7.2-bookworm")
    _has(check.check_compose(f), "services/redis: Unevaluated properties are not allowed ('imag' was unexpected)")
    f.write_text((ROOT / "deploy" / "compose.yaml").read_text())
    _edit(f, "  secrets: [redis_url, admin_token]", "  secrets: [redis_url, admin_tokens]")
    _edit(f, "    depends_on: [prometheus]", "    depends_on: [prometheos]")
    _edit(f, "    file: ./compose/prometheus.yml", "    file: ./compose/prometheus.yaml")
    _edit(f, '"--host", "0.0.0.0", "--port", "8000"]\n    # loopback',
          '"--hots", "0.0.0.0", "--port", "8000"]\n    # loopback')
    _edit(f, "      - redis-data:/data", "      - redis-dat:/data")
    _edit(f, "    file: ./compose/secrets/admin-token", "    file: ./compose/secrets/admin-tokn")
    _has(check.check_compose(f), "secrets 'admin_tokens' is not declared", "depends_on 'prometheos'",
         "prometheus.yaml does not exist", "superfed refuses it", "volume 'redis-dat' is not declared",
         "admin-tokn is not made by compose/make-secrets.sh")
    f.write_text((ROOT / "deploy" / "compose.yaml").read_text())
    _edit(deploy / "compose" / "superfed.toml", 'redis_url_file = "/run/secrets/redis_url"',
          'redis_url = "http://redis:6379"')
    _has(check.check_compose(f), "superfed.toml: redis_url: must be redis://")


def test_kubernetes_breakages_are_caught(deploy: Path) -> None:
    k = deploy / "kubernetes"
    assert check.check_kubernetes(k) == []
    _edit(k / "api.yaml", "  replicas: 2", '  replicas: "two"')
    _edit(k / "worker.yaml", "          imagePullPolicy: IfNotPresent", "          imagePullPolicyy: IfNotPresent")
    _edit(k / "config.yaml", 'file = "/etc/superfed/credentials/cscs-secret"',
          'file = "/etc/superfed/credentials/cscs.secret"')
    _edit(k / "api.yaml", "              path: /readyz", "              path: /ready")
    _edit(k / "api.yaml", "      targetPort: http", "      targetPort: web")
    pdb = "  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: superfed\n"
    _edit(k / "worker.yaml", pdb + "      app.kubernetes.io/component: worker",
          pdb + "      app.kubernetes.io/component: workers")
    _edit(k / "secrets.yaml", 'url: "redis+sentinel://superfed:REPLACE-DATA-PASSWORD@', 'url: "redis+sentinel://superfed:REPLACE-DATA-PASSWORD@,')
    _has(check.check_kubernetes(k), "Deployment/superfed-api: spec.replicas: 'two' is not of type 'integer'",
         "imagePullPolicyy", "credentials.cscs-secret.file = '/etc/superfed/credentials/cscs.secret', but no Secret",
         "readiness probe must be GET /readyz", "targetPort 'web' is no port", "PodDisruptionBudget/superfed-worker",
         "the Redis URL in superfed-redis/url")


def test_kubernetes_cross_references_and_kustomization(deploy: Path) -> None:
    k = deploy / "kubernetes"
    _edit(k / "worker.yaml", "            secretName: superfed-tokens", "            secretName: superfed-token")
    _edit(k / "config.yaml", 'redis_url_file = "/etc/superfed/redis/url"', 'redis_url_file = "/etc/superfed/redis/uri"')
    problems = check.check_kubernetes(k)
    _has(problems, "no Secret 'superfed-token'", "redis_url_file = '/etc/superfed/redis/uri', but no Secret")
    if shutil.which("kubectl"):
        (k / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n"
                                      "  namespace: superfed\n")
        _has(check.check_kubernetes(k), "ConfigMap/extra is in a file it does not list")
        _edit(k / "kustomization.yaml", "  - worker.yaml", "  - workers.yaml")
        _has(check.check_kubernetes(k), "kubectl kustomize kubernetes")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_breakages_are_caught(deploy: Path) -> None:
    d = deploy / "systemd"
    assert check.check_systemd(d) == []
    _edit(d / "superfed-api.service", "Restart=always", "Restart=sometimes")
    _edit(d / "superfed-api.service", "KillSignal=SIGTERM", "KilSignal=SIGTERM")
    _edit(d / "superfed-worker@.service", "worker --config", "worker --conf1g")
    _has(check.check_systemd(d), "superfed-api.service:10: Failed to parse service restart specifier",
         "Unknown key 'KilSignal'", "superfed-worker@.service: ExecStart: superfed refuses")
    api = d / "superfed-api.service"
    api.write_text("\n".join(ln for ln in api.read_text().splitlines() if not ln.startswith("ExecStart=")))
    _has(check.check_systemd(d), "has no ExecStart=")
