"""Checks every deployment file in deploy/ on this machine, with no container engine and no
cluster: ``python deploy/check.py`` (exit 1 and one line per problem), also run by
tests/deploy/test_deploy_files.py, which shows that each check catches a broken file.

- ``Containerfile``: multi-stage, the final stage runs as a non-root USER, every COPY source is
  in the build context (and not left out by .dockerignore), ``COPY --from`` names an earlier
  stage, ENTRYPOINT/CMD in exec form with a command line ``superfed`` accepts.
- ``compose.yaml``: the Compose Specification's JSON schema (vendored:
  deploy/schemas/compose-spec.json, from compose-spec/compose-spec), then what the schema
  cannot see: the configs, secrets, volumes and services each service names are declared,
  the files they name exist (secrets: made by compose/make-secrets.sh), the build's
  Containerfile exists, each superfed command line parses, and the broker config it mounts
  passes ``superfed config check``'s validation.
- ``kubernetes/``: ``kubectl kustomize`` (offline) renders it; every object is valid against the
  Kubernetes 1.32 schemas, strictly (``kubernetes-validate``: unknown fields are errors); and
  the cross-references: Secrets and ConfigMaps a pod mounts exist, every file the broker's
  config names (``redis_url_file``, ``[credentials.NAME] file``, token files) is a key of a
  Secret mounted there, the Redis URL in that Secret is one the broker accepts, the Service and
  the PodDisruptionBudgets select pods of a Deployment, the API's probes are /readyz and
  /healthz on its named port, and container args parse.
- ``systemd/``: ``systemd-analyze verify`` on each unit (copied with the broker's path, which
  does not exist here, replaced by a stand-in executable); any warning is a problem, since
  systemd only warns about an unknown key or a value it cannot parse, then ignores the line.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
K8S_VERSION = "1.32.0"
SUPERFED_BIN = "/opt/superfed/.venv/bin/superfed"  # where the systemd units expect it

if str(ROOT) not in sys.path:  # run as a script: the broker's own parser and validators
    sys.path.insert(0, str(ROOT))


# -- shared ----------------------------------------------------------------------------------
def cli_problem(argv: list[str]) -> str | None:
    """Why ``superfed <argv>`` would not start (argparse's message), or None."""
    from broker.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
    return None


def config_problems(text: str, where: str) -> list[str]:
    """What ``superfed config check`` would say of a config file's text (files it names are
    not read: they exist only where it is deployed)."""
    from broker.config import ConfigError, validate

    try:
        validate(tomllib.loads(text), where)
    except tomllib.TOMLDecodeError as exc:
        return [f"{where}: not valid TOML: {exc}"]
    except ConfigError as exc:
        return [f"{where}: {p}" for p in exc.problems]
    return []


def _load_yaml_all(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# -- Containerfile ---------------------------------------------------------------------------
def _instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[int, str, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    if buf:
        out.append((start, "<unterminated>", buf))
    return out


def _ignored(rel: str, patterns: list[str]) -> bool:
    """.dockerignore's verdict for a path (its last matching pattern wins; ``!`` re-includes)."""
    import fnmatch

    verdict = False
    for pat in patterns:
        negate = pat.startswith("!")
        p = pat[1:] if negate else pat
        p = p.rstrip("/")
        if fnmatch.fnmatch(rel, p) or rel.startswith(p + "/") or (p.startswith("**/") and fnmatch.fnmatch(
                rel.rsplit("/", 1)[-1], p[3:])):
            verdict = not negate
    return verdict


def check_containerfile(path: Path = DEPLOY / "Containerfile", context: Path = ROOT) -> list[str]:
    where = path.name
    if not path.exists():
        return [f"{where}: missing"]
    ins = _instructions(path.read_text())
    problems = [f"{where}:{n}: unknown instruction {word}" for n, word, _ in ins if word not in {
        "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR",
        "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}]
    stages: list[str] = []
    final_user: str | None = None
    ignore_file = context / ".dockerignore"
    patterns = [ln.strip() for ln in ignore_file.read_text().splitlines()
                if ln.strip() and not ln.startswith("#")] if ignore_file.exists() else []
    for n, word, args in ins:
        if word == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            if not m:
                problems.append(f"{where}:{n}: FROM {args!r} is not 'FROM image [AS name]'")
                continue
            stages.append((m.group(2) or str(len(stages))).lower())
            final_user = None  # USER does not carry over into a new stage
        elif word == "USER":
            final_user = args.split(":")[0]
        elif word in ("COPY", "ADD"):
            parts = shlex.split(args)
            flags = [p for p in parts if p.startswith("--")]
            paths = [p for p in parts if not p.startswith("--")]
            if len(paths) < 2:
                problems.append(f"{where}:{n}: {word} needs a source and a destination")
                continue
            src_stage = next((f.split("=", 1)[1].lower() for f in flags if f.startswith("--from=")), None)
            if src_stage is not None:
                if src_stage not in stages[:-1]:
                    problems.append(f"{where}:{n}: COPY --from={src_stage}: no earlier stage has that name")
                continue
            for src in paths[:-1]:
                if not (context / src).exists():
                    problems.append(f"{where}:{n}: {word} source {src!r} is not in the build context {context}")
                elif _ignored(src.rstrip("/"), patterns):
                    problems.append(f"{where}:{n}: {word} source {src!r} is left out by .dockerignore")
        elif word in ("CMD", "ENTRYPOINT"):
            try:
                json.loads(args)
            except ValueError:
                problems.append(f"{where}:{n}: {word} is not in exec form (a JSON array): signals would go to a shell")
    if len(stages) < 2:
        problems.append(f"{where}: not multi-stage (one FROM): the build tools would ship in the image")
    if final_user is None:
        problems.append(f"{where}: the final stage sets no USER: it would run as root")
    elif final_user in ("root", "0"):
        problems.append(f"{where}: the final stage runs as {final_user}")
    entry = next((json.loads(a) for _, w, a in reversed(ins) if w == "ENTRYPOINT" and a.startswith("[")), None)
    cmd = next((json.loads(a) for _, w, a in reversed(ins) if w == "CMD" and a.startswith("[")), None)
    if entry == ["superfed"] and cmd is not None and (why := cli_problem(cmd)):
        problems.append(f"{where}: CMD {cmd}: superfed refuses it: {why}")
    return problems


# -- compose ---------------------------------------------------------------------------------
def check_compose(path: Path = DEPLOY / "compose.yaml",
                  schema_path: Path = DEPLOY / "schemas" / "compose-spec.json") -> list[str]:
    import jsonschema  # type: ignore[import-untyped]

    where = path.name
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return [f"{where}: cannot be read as YAML: {exc}"]
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = [f"{where}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
    if problems or not isinstance(doc, dict):
        return problems or [f"{where}: not a mapping"]
    base = path.parent
    services: dict[str, Any] = doc.get("services") or {}
    declared = {kind: set((doc.get(kind) or {}).keys()) for kind in ("configs", "secrets", "volumes")}
    script = base / "compose" / "make-secrets.sh"
    made_by_script = script.read_text() if script.exists() else ""
    for kind in ("configs", "secrets"):
        for name, spec in (doc.get(kind) or {}).items():
            f = (spec or {}).get("file")
            if f is None:
                continue
            target = (base / f).resolve()
            if kind == "secrets" and "/secrets/" in f:
                if Path(f).name not in made_by_script:
                    problems.append(f"{where}: secrets.{name}: {f} is not made by compose/make-secrets.sh")
            elif not target.exists():
                problems.append(f"{where}: {kind}.{name}: the file {f} does not exist")
    for sname, svc in services.items():
        place = f"{where}: services.{sname}"
        for kind in ("configs", "secrets"):
            for item in svc.get(kind) or []:
                ref = item if isinstance(item, str) else item.get("source")
                if ref not in declared[kind]:
                    problems.append(f"{place}: {kind} {ref!r} is not declared under top-level {kind}")
        for vol in svc.get("volumes") or []:
            src = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source")
            if src and not src.startswith((".", "/", "~")) and src not in declared["volumes"]:
                problems.append(f"{place}: volume {src!r} is not declared under top-level volumes")
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                problems.append(f"{place}: depends_on {dep!r}: no such service")
        build = svc.get("build")
        if isinstance(build, dict):
            ctx = (base / build.get("context", ".")).resolve()
            dockerfile = ctx / build.get("dockerfile", "Dockerfile")
            if not dockerfile.exists():
                problems.append(f"{place}: build: {dockerfile} does not exist")
        image = str(svc.get("image", ""))
        command = svc.get("command")
        if "superfed" in image and isinstance(command, list) and (why := cli_problem([str(c) for c in command])):
            problems.append(f"{place}: command {command}: superfed refuses it: {why}")
        for item in svc.get("configs") or []:
            if isinstance(item, dict) and str(item.get("target", "")).endswith("superfed.toml"):
                spec = (doc.get("configs") or {}).get(item.get("source")) or {}
                if spec.get("file") and (base / spec["file"]).exists():
                    problems += config_problems((base / spec["file"]).read_text(), f"{where}: {spec['file']}")
    return sorted(set(problems))


# -- Kubernetes ------------------------------------------------------------------------------
def _kustomize(directory: Path) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """``kubectl kustomize`` (offline), when kubectl is installed: (its objects, problems)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None or not (directory / "kustomization.yaml").exists():
        return None, []
    run = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        return None, [f"kubectl kustomize {directory.name}: {run.stderr.strip() or run.stdout.strip()}"]
    return [d for d in yaml.safe_load_all(run.stdout) if d], []


def _pod_specs(objs: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(o, o["spec"]["template"]) for o in objs if o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_kubernetes(directory: Path = DEPLOY / "kubernetes", version: str = K8S_VERSION) -> list[str]:
    import kubernetes_validate  # type: ignore[import-untyped]

    problems: list[str] = []
    files = sorted(p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
    objs: list[dict[str, Any]] = []
    for f in files:
        try:
            docs = _load_yaml_all(f)
        except yaml.YAMLError as exc:
            problems.append(f"{f.name}: not valid YAML: {exc}")
            continue
        for d in docs:
            if not isinstance(d, dict) or "kind" not in d:
                problems.append(f"{f.name}: a document that is not a Kubernetes object")
                continue
            name = f"{f.name}: {d.get('kind')}/{(d.get('metadata') or {}).get('name')}"
            try:
                # (a deep copy: the validator may fill in what it resolves)
                kubernetes_validate.validate(copy.deepcopy(d), version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(map(str, exc.path))
                problems.append(f"{name}: {path or '(top)'}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{name}: {exc.message}")
            objs.append(d)
    rendered, rendering = _kustomize(directory)
    problems += rendering
    if rendered is not None:
        want = {(o.get("kind"), o["metadata"].get("name")) for o in objs}
        got = {(o.get("kind"), o["metadata"].get("name")) for o in rendered}
        for kind, name in sorted(want - got, key=str):
            problems.append(f"kustomization.yaml: {kind}/{name} is in a file it does not list")
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    secrets = {n: set((s.get("stringData") or {}) | (s.get("data") or {}))
               for n, s in by_kind.get("Secret", {}).items()}
    pods = _pod_specs(objs)
    for owner, tmpl in pods:
        place = f"{owner['kind']}/{owner['metadata']['name']}"
        if not _selects(owner["spec"]["selector"].get("matchLabels", {}), tmpl["metadata"].get("labels", {})):
            problems.append(f"{place}: its selector does not match its pod template's labels")
        spec = tmpl["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for v in volumes.values():
            if "secret" in v and v["secret"]["secretName"] not in secrets:
                problems.append(f"{place}: volume {v['name']}: no Secret {v['secret']['secretName']!r}")
            if "configMap" in v and v["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                problems.append(f"{place}: volume {v['name']}: no ConfigMap {v['configMap']['name']!r}")
        for c in spec.get("containers", []):
            cplace = f"{place} container {c['name']}"
            if (why := cli_problem([str(a) for a in c.get("args", [])])) and c.get("args"):
                problems.append(f"{cplace}: args {c['args']}: superfed refuses them: {why}")
            mounts = c.get("volumeMounts", [])
            for m in mounts:
                if m["name"] not in volumes:
                    problems.append(f"{cplace}: mounts volume {m['name']!r}, which the pod does not have")
            files_here = _mounted_files(mounts, volumes, secrets, by_kind.get("ConfigMap", {}))
            problems += _broker_config_problems(cplace, files_here, by_kind)
            ports = {p.get("name") for p in c.get("ports", [])}
            for probe_name in ("readinessProbe", "livenessProbe"):
                probe = (c.get(probe_name) or {}).get("httpGet")
                if probe and isinstance(probe.get("port"), str) and probe["port"] not in ports:
                    problems.append(f"{cplace}: {probe_name} names port {probe['port']!r}, which it does not have")
            if (c.get("args") or [""])[0] == "serve":
                ready = ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path")
                alive = ((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path")
                if ready != "/readyz":
                    problems.append(f"{cplace}: the readiness probe must be GET /readyz (Redis reachable), not {ready}")
                if alive != "/healthz":
                    problems.append(f"{cplace}: the liveness probe must be GET /healthz (the process), not {alive}")
    for kind in ("Service", "PodDisruptionBudget"):
        for name, o in by_kind.get(kind, {}).items():
            sel = o["spec"].get("selector") or {}
            sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
            matched = [t for _, t in pods if _selects(sel, t["metadata"].get("labels", {}))]
            if not matched:
                problems.append(f"{kind}/{name}: its selector {sel} matches no Deployment's pods")
            if kind == "Service":
                names = {p.get("name") for t in matched for c in t["spec"]["containers"] for p in c.get("ports", [])}
                for p in o["spec"].get("ports", []):
                    if isinstance(p.get("targetPort"), str) and p["targetPort"] not in names:
                        problems.append(f"Service/{name}: targetPort {p['targetPort']!r} is no port of its pods")
    return problems


def _mounted_files(mounts: list[dict[str, Any]], volumes: dict[str, Any], secrets: dict[str, set[str]],
                   configmaps: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    """Each file a container sees from a Secret or ConfigMap: path -> (kind, name, key)."""
    out: dict[str, tuple[str, str, str]] = {}
    for m in mounts:
        v = volumes.get(m["name"]) or {}
        if "secret" in v:
            kind, name = "Secret", v["secret"]["secretName"]
            keys = secrets.get(name, set())
        elif "configMap" in v:
            kind, name = "ConfigMap", v["configMap"]["name"]
            keys = set((configmaps.get(name) or {}).get("data") or {})
        else:
            continue
        if m.get("subPath"):
            out[m["mountPath"]] = (kind, name, m["subPath"])
        else:
            for key in keys:
                out[f"{m['mountPath'].rstrip('/')}/{key}"] = (kind, name, key)
    return out


def _broker_config_problems(place: str, files: dict[str, tuple[str, str, str]],
                            by_kind: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The broker's config as this container sees it: valid, and every file it names there."""
    from broker.store.connect import url_problem

    def content(ref: tuple[str, str, str]) -> str | None:
        kind, name, key = ref
        o = by_kind.get(kind, {}).get(name) or {}
        return (o.get("stringData") or {}).get(key) or (o.get("data") or {}).get(key)

    config_path = next((p for p in files if p.endswith("/superfed.toml")), None)
    if config_path is None:
        return []
    text = content(files[config_path]) or ""
    problems = config_problems(text, f"{place}: {config_path}")
    if problems:
        return problems
    raw = tomllib.loads(text)
    named: list[tuple[str, str]] = []
    if raw.get("redis_url_file"):
        named.append(("redis_url_file", raw["redis_url_file"]))
    named += [(f"credentials.{n}.file", c["file"]) for n, c in (raw.get("credentials") or {}).items() if c.get("file")]
    named += [(f"tokens[{i}].file", t["file"]) for i, t in enumerate(raw.get("tokens") or []) if t.get("file")]
    base = config_path.rsplit("/", 1)[0]
    for what, f in named:
        full = f if f.startswith("/") else f"{base}/{f}"
        if full not in files:
            problems.append(f"{place}: {config_path} {what} = {f!r}, but no Secret or ConfigMap key is mounted there")
        elif files[full][0] != "Secret":
            problems.append(f"{place}: {config_path} {what} = {f!r} comes from a {files[full][0]}, not a Secret")
        elif what == "redis_url_file" and (why := url_problem((content(files[full]) or "").strip())):
            problems.append(f"{place}: the Redis URL in {files[full][1]}/{files[full][2]}: {why}")
    return problems


# -- systemd ---------------------------------------------------------------------------------
def check_systemd(directory: Path = DEPLOY / "systemd") -> list[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return ["systemd-analyze is not installed: cannot check the units (apt-get install systemd)"]
    problems: list[str] = []
    units = sorted(directory.glob("*.service"))
    if not units:
        return [f"{directory}: no unit files"]
    with tempfile.TemporaryDirectory() as tmp:
        stub = Path(tmp) / "superfed"  # stands in for the broker where the units expect it
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        for unit in units:
            text = unit.read_text()
            copy_ = Path(tmp) / unit.name
            copy_.write_text(text.replace(SUPERFED_BIN, str(stub)))
            run = subprocess.run([analyze, "verify", str(copy_)], capture_output=True, text=True, timeout=60,
                                 cwd=tmp)
            said = [ln for ln in (run.stderr + run.stdout).splitlines() if ln.strip()]
            for line in said:
                problems.append(f"systemd/{unit.name}: {line.replace(str(copy_), unit.name).replace(tmp + '/', '')}")
            if run.returncode != 0 and not said:
                problems.append(f"systemd/{unit.name}: systemd-analyze verify exited {run.returncode}")
            for line in text.splitlines():
                if line.startswith("ExecStart=") and SUPERFED_BIN in line:
                    # systemd's specifiers and $$ (the shell's pid) as they would be at run time
                    tail = line.split(SUPERFED_BIN, 1)[1].rstrip().rstrip("'\"")
                    tail = tail.replace("%H", "host").replace("%i", "1").replace("$$$$", "4242").replace("%%", "%")
                    args = shlex.split(tail)
                    if (why := cli_problem(args)):
                        problems.append(f"systemd/{unit.name}: ExecStart: superfed refuses {args}: {why}")
    return problems


CHECKS = {
    "Containerfile": check_containerfile,
    "compose.yaml": check_compose,
    "kubernetes/": check_kubernetes,
    "systemd/": check_systemd,
}


def main() -> int:
    failed = 0
    for name, fn in CHECKS.items():
        problems = fn()  # type: ignore[operator]
        print(f"{name}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        for p in problems:
            print(f"  {p}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
