"""The configuration file: examples valid, every problem reported with its place."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from broker.cli import main
from broker.config import ConfigError, load, validate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["demo.toml", "three-facilities.toml"])
def test_examples_are_valid(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    s = load(ROOT / "config" / name)
    assert {x.kind for x in s.sites} == {"sfapi", "firecrest", "iri"}
    assert main(["config", "check", str(ROOT / "config" / name)]) == 0
    assert "ok (3 sites" in capsys.readouterr().out
    assert main(["config", "check", str(ROOT / "config" / name), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sites"] == [x.name for x in s.sites]


def test_the_iri_v2_example_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    [site] = load(ROOT / "config" / "iri-v2.toml").sites
    assert (site.kind, site.api_version) == ("iri", "v2")
    assert main(["config", "check", str(ROOT / "config" / "iri-v2.toml")]) == 0
    assert "ok (1 site" in capsys.readouterr().out


def test_api_version_only_where_the_kind_has_versions() -> None:
    """Catches: an api_version accepted for a kind that ignores it, or a bad one for IRI."""
    base = {"name": "a", "url": "https://x", "systems": ["s"]}
    with pytest.raises(ConfigError) as exc:
        validate({"sites": [
            {**base, "kind": "sfapi", "api_version": "v2", "auth": {"access_token_env": "T"}},
            {**base, "name": "b", "kind": "iri", "api_version": "v3", "auth": {"token_env": "T"}},
        ]})
    problems = "\n".join(exc.value.problems)
    assert "sites[0].api_version: sfapi sites speak one API version" in problems
    assert "sites[1].api_version" in problems
    ok = validate({"sites": [{**base, "kind": "iri", "api_version": "v1", "auth": {"token_env": "T"}}]})
    assert ok.sites[0].api_version == "v1"


def test_every_problem_with_its_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[sites]]\nname="X"\nkind="slurm"\nurl="ftp://a"\nsystems=[]\n'
        '[[sites]]\nname="ok"\nkind="iri"\nurl="http://a"\nsystems=["p"]\nweight=-1\nauth={token_file="t",token_env="T"}\n'
        '[[sites]]\nname="ok"\nkind="sfapi"\nurl="http://b"\nsystems=["p","p"]\nauth={bogus=1}\n'
        '[placement]\nstrategy="fastest"\n[api]\nmax_body_bytes="big"\n'
    )
    with pytest.raises(ConfigError) as exc:
        load(bad)
    text = "\n".join(exc.value.problems)
    for place in [
        "sites[0].name",
        "sites[0].kind",
        "sites[0].url",
        "sites[0].systems",
        "sites[1].weight",
        "sites[1].auth",
        "sites[2].systems",
        "sites[2].auth",
        "placement.strategy",
        "api.max_body_bytes",
        "the name 'ok' is used by more than one site",
    ]:
        assert place in text, (place, text)
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "problem(s)" in err and "sites[0].url: must be an http:// or https:// URL" in err
    assert main(["config", "check", str(bad), "--json"]) == 1  # the same problems, as a list for a script
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and "sites[0].url: must be an http:// or https:// URL" in report["problems"]


def test_unknown_keys_and_token_sources() -> None:
    with pytest.raises(ConfigError, match="typo"):
        validate({"typo": 1})
    with pytest.raises(ConfigError, match=r"tokens\[0\].*exactly one of"):
        validate({"tokens": [{"name": "t", "role": "viewer", "token": "a", "env": "B"}]})
    with pytest.raises(ConfigError, match=r"placement\.priority: no site is named 'nowhere'"):
        validate({"placement": {"priority": ["nowhere"]}})


def test_unreadable_and_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
    (tmp_path / "x.toml").write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path / "x.toml")


def test_relative_secret_files_resolve_against_the_config(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        '[[sites]]\nname="a"\nkind="iri"\nurl="http://a"\nsystems=["p"]\nauth={token_file="keys/t"}\n'
    )
    s = load(tmp_path / "c.toml")
    # the site names the credential its inline file became; that credential holds the absolute path
    assert s.sites[0].auth == {"token_credential": "a.token"}
    assert s.credentials["a.token"].file == str((tmp_path / "keys/t").resolve())
    assert s.credentials["a.token"].hosts == ["a"]


def test_weak_bootstrap_tokens_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11 (7): sha256("test") in an example passed `config check`; now every well-known
    value, as a token or its digest, and any short token is refused with its place."""
    import hashlib

    digest_of_test = hashlib.sha256(b"test").hexdigest()
    cases = [
        ({"sha256": digest_of_test}, "tokens[0].sha256"),
        ({"token": "test"}, "tokens[0].token"),
        ({"token": "sf_demo_admin_change_me"}, "well-known"),
        ({"token": "short-but-odd"}, "shorter than 16"),
    ]
    for source, words in cases:
        with pytest.raises(ConfigError, match=re.escape(words)):
            validate({"tokens": [{"name": "t", "role": "admin", **source}]})
    cfg = tmp_path / "weak.toml"
    cfg.write_text(f'[[tokens]]\nname = "admin"\nrole = "admin"\nsha256 = "{digest_of_test}"\n')
    assert main(["config", "check", str(cfg)]) == 1
    assert "tokens[0].sha256 (admin)" in capsys.readouterr().err
    # a long random token (or its digest) is fine
    validate({"tokens": [{"name": "t", "role": "admin", "token": "sf_Zq3v9w1XkP0aBcDeFgHiJkLm"}]})


def test_patterns_refuse_a_trailing_newline() -> None:
    """Issue 11 (9): `$` matches before a final newline; every pattern must refuse "name\\n"."""
    import msgspec

    from broker.api.admin import TokenCreate
    from broker.schemas import JobCreate

    spec = {"executable": "/bin/true"}
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"project": "m1\n", "spec": spec}, JobCreate)
    msgspec.convert({"project": "m1", "spec": spec}, JobCreate)
    for body in ({"name": "x\n", "role": "viewer"}, {"name": "x", "role": "viewer", "projects": ["m1\n"]}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(body, TokenCreate)
    with pytest.raises(ConfigError):
        validate({"namespace": "superfed\n"})
    with pytest.raises(ConfigError):
        validate({"sites": [{"name": "alpha\n", "kind": "iri", "url": "http://a", "systems": ["p"],
                             "auth": {"token_env": "T"}}]})
