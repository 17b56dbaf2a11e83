"""POST /api/v1/jobs with each job-script attack of issue 11 (items 2, 3 and 9's field parts):
a 422 naming the field, and nothing written to Redis (no job record, no index, no RQ job).

Each case is a value that, before validation, reached the Slurm script unescaped (or charged
another account, or overrode the broker's tag); the adapters' own regression tests (tests/
adapters/test_script_injection.py) show what each one did there."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from adapters import validation as v
from tests.api.conftest import auth

SPEC: dict[str, Any] = {"executable": "/bin/true", "resources": {"node_count": 1}, "attributes": {"duration": 600}}
INJECT = "\n#SBATCH --account=evil\ntouch x\n"
CA = "spec.attributes.custom_attributes"


def _with(**fields: Any) -> dict[str, Any]:
    spec = {**SPEC, **{k: val for k, val in fields.items() if k != "attributes"}}
    if "attributes" in fields:
        spec["attributes"] = {**SPEC["attributes"], **fields["attributes"]}
    return spec


def _custom(key: str, value: str) -> dict[str, Any]:
    return _with(attributes={"custom_attributes": {key: value}})


# (case id, spec, the field the 422 must name)
ATTACKS: list[tuple[str, dict[str, Any], str]] = [
    ("newline-in-directory", _with(directory="/scratch" + INJECT), "spec.directory"),
    ("newline-in-stdout-path", _with(stdout_path="out.txt" + INJECT), "spec.stdout_path"),
    ("newline-in-stderr-path", _with(stderr_path="err.txt" + INJECT), "spec.stderr_path"),
    ("blank-in-path", _with(stdout_path="out.txt --account=evil"), "spec.stdout_path"),
    ("newline-in-queue-name", _with(attributes={"queue_name": "debug" + INJECT}), "spec.attributes.queue_name"),
    ("newline-in-reservation", _with(attributes={"reservation_id": "r1" + INJECT}), "spec.attributes.reservation_id"),
    ("newline-in-custom-key", _custom("slurm.constraint" + INJECT, "cpu"), CA),
    ("newline-in-custom-value", _custom("slurm.constraint", "cpu" + INJECT), CA),
    ("blank-in-custom-value", _custom("slurm.constraint", "cpu --account=evil"), CA),
    ("env-name-with-commands", _with(environment={"A=1; touch x; B": "1"}), "spec.environment"),
    ("env-name-trailing-newline", _with(environment={"A\n": "1"}), "spec.environment"),
    ("env-name-the-shell-sets", _with(environment={"_": "1"}), "spec.environment"),
    ("newline-in-env-value", _with(environment={"A": "1\ntouch x"}), "spec.environment"),
    ("newline-in-argument", _with(arguments=["a", "b\ntouch x"]), "spec.arguments"),
    ("newline-in-executable", _with(executable="/bin/true\ntouch x"), "spec.executable"),
    ("newline-in-name", _with(name="run\n#SBATCH --account=evil"), "spec.name"),
    ("nul-in-argument", _with(arguments=["a\x00b"]), "spec.arguments"),
    ("cr-in-directory", _with(directory="/scratch\r"), "spec.directory"),
    ("line-separator-in-env-value", _with(environment={"A": "1\u2028touch x"}), "spec.environment"),
    ("slurm-comment-overrides-tag", _custom("slurm.comment", "superfed:someone-else"), f"{CA}.slurm.comment"),
    ("slurm-account", _custom("slurm.account", "evil"), f"{CA}.slurm.account"),
    ("slurm-account-prefix", _custom("slurm.acc", "evil"), f"{CA}.slurm.acc"),
    ("slurm-output", _custom("slurm.output", "/home/other/x"), f"{CA}.slurm.output"),
    ("slurm-job-name", _custom("slurm.job-name", "x"), f"{CA}.slurm.job-name"),
    ("slurm-export", _custom("slurm.export", "ALL,LD_PRELOAD=/tmp/x"), f"{CA}.slurm.export"),
    ("slurm-short-option", _custom("slurm.A", "evil"), f"{CA}.slurm.A"),
    ("pbs-account", _custom("pbs.A", "evil"), f"{CA}.pbs.A"),
    ("bare-account-attribute", _custom("account", "evil"), f"{CA}.account"),
    ("spec-account-of-another-project", _with(attributes={"account": "m2"}), "spec.attributes.account"),
    ("oversized-env-key", _with(environment={"A" * 900_000: "1"}), "spec.environment"),
    ("oversized-env-value", _with(environment={"A": "x" * (v.MAX_ENV_VALUE + 1)}), "spec.environment"),
    ("too-many-env", _with(environment={f"V{i}": "1" for i in range(v.MAX_ENV + 1)}), "spec.environment"),
    ("oversized-argument", _with(arguments=["x" * (v.MAX_ARGUMENT + 1)]), "spec.arguments"),
    ("too-many-arguments", _with(arguments=["x"] * (v.MAX_ARGUMENTS + 1)), "spec.arguments"),
    ("oversized-name", _with(name="x" * (v.MAX_NAME + 1)), "spec.name"),
    ("oversized-path", _with(directory="/" + "x" * v.MAX_PATH), "spec.directory"),
    ("too-many-custom", _with(attributes={"custom_attributes": {f"k{i}": "1" for i in range(v.MAX_CUSTOM + 1)}}),
     CA),
    ("oversized-spec", _with(arguments=["x" * 4000] * 20), "spec"),
]  # fmt: skip


def _stored(url: str) -> list[bytes]:
    """Every key a job would write: its record, its indexes, its RQ job and queue entry."""
    r = redis.Redis.from_url(url)
    try:
        return sorted(k for k in r.scan_iter("*") if b":job" in k or k.startswith(b"rq:"))
    finally:
        r.close()


@pytest.mark.parametrize(("spec", "field"), [(s, f) for _, s, f in ATTACKS], ids=[c for c, _, _ in ATTACKS])
def test_attack_is_a_422_naming_the_field_and_stores_nothing(
    client: TestClient, clean_redis: str, spec: dict[str, Any], field: str
) -> None:
    before = _stored(clean_redis)
    r = client.post("/api/v1/jobs", json={"project": "m1", "spec": spec}, headers=auth("submitter"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    assert field in problem["detail"]
    assert _stored(clean_redis) == before == []
    # the placement preview refuses it the same way
    r = client.post("/api/v1/placement", json={"project": "m1", "spec": spec}, headers=auth("submitter"))
    assert r.status_code == 422 and any(e["field"].startswith(field) for e in r.json()["errors"]), r.text


@pytest.mark.parametrize("project", ["m1\n", "m1\r", "m1\x00", "m1 ", "../m1"])
def test_project_with_a_trailing_newline_or_control_is_refused(
    client: TestClient, clean_redis: str, project: str
) -> None:
    r = client.post("/api/v1/jobs", json={"project": project, "spec": SPEC}, headers=auth("submitter"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "project", r.text
    assert _stored(clean_redis) == []


def test_what_a_job_may_contain_is_accepted(client: TestClient, clean_redis: str) -> None:
    """The limits are not so tight that an ordinary job with quotes, '$' and blanks fails."""
    spec = _with(
        name="my run (v2)",
        arguments=["-c", "echo \"$HOME\" 'it''s' `date` ; exit 0", "#SBATCH --account=x"],
        environment={"OMP_NUM_THREADS": "8", "_X1": "a b; $(c)"},
        directory="/scratch/u/run-1",
        stdout_path="/scratch/u/run-1/%j.out",
        attributes={
            "account": "m1",
            "queue_name": "debug",
            "custom_attributes": {"slurm.constraint": "cpu|gpu", "filesystems": "home:eagle", "slurm.requeue": ""},
        },
    )
    r = client.post("/api/v1/jobs", json={"project": "m1", "spec": spec}, headers=auth("submitter"))
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["environment"]["_X1"] == "a b; $(c)"
    assert len(_stored(clean_redis)) > 0


def test_error_messages_say_what_is_allowed_not_a_regex(client: TestClient) -> None:
    r = client.post(
        "/api/v1/jobs", json={"project": "m1", "spec": _with(directory="/a b")}, headers=auth("submitter")
    )
    message = r.json()["errors"][0]["message"]
    assert "regex" not in message and "no blanks" in message, message


def test_schema_shows_the_constraints(client: TestClient) -> None:
    schema = client.get("/schema/openapi.json").json()
    spec = schema["components"]["schemas"]["JobSpec"]["properties"]
    env = spec["environment"]
    assert env["maxProperties"] == v.MAX_ENV and env["propertyNames"]["pattern"] == v.ENV_NAME
    assert env["additionalProperties"]["maxLength"] == v.MAX_ENV_VALUE
    assert spec["arguments"]["maxItems"] == v.MAX_ARGUMENTS
    assert spec["arguments"]["items"]["maxLength"] == v.MAX_ARGUMENT
    custom = schema["components"]["schemas"]["JobAttributes"]["properties"]["custom_attributes"]
    assert custom["maxProperties"] == v.MAX_CUSTOM and custom["propertyNames"]["pattern"] == v.CUSTOM_KEY
    dirs = [s for s in spec["directory"]["anyOf"] if s.get("type") == "string"]
    assert dirs and dirs[0]["pattern"] == v.PATH and dirs[0]["maxLength"] == v.MAX_PATH
