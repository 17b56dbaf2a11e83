"""[history] in the config file: durations in words, the database URL checked, the default
database next to the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import ConfigError, load, parse_duration, validate


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800), ("2w", 1209600), ("45", 45), (1.5, 1.5), ("0.5h", 1800),
])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1 hour", "h", "-1h", "0s", "1y", True])
def test_bad_durations_are_refused(bad: str | float) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_every_history_problem_is_named() -> None:
    with pytest.raises(ConfigError) as e:
        validate({"history": {"retention": "soon", "interval": "-5", "url": "mysql://db/x"}})
    text = str(e.value)
    assert "history.retention" in text and "'soon'" in text
    assert "history.interval" in text
    assert "history.url: must start with sqlite:" in text
    with pytest.raises(ConfigError, match=r"history\.url: names no file"):
        validate({"history": {"url": "sqlite:///"}})
    with pytest.raises(ConfigError, match="batch"):
        validate({"history": {"batch": 0}})


def test_the_database_is_next_to_the_config_file_by_default(tmp_path: Path) -> None:
    cfg = tmp_path / "superfed.toml"
    cfg.write_text("")
    s = load(cfg)
    assert s.history.active and s.history.url == f"sqlite://{tmp_path.resolve()}/history.db"
    cfg.write_text('[history]\nurl = "sqlite:data/h.db"\nretention = "2d"\n')
    s = load(cfg)
    assert s.history.url == f"sqlite://{tmp_path.resolve()}/data/h.db" and s.history.retention_s == 2 * 86400
    cfg.write_text('[history]\nurl = "postgresql://superfed@db.example/superfed"\n')
    assert load(cfg).history.url == "postgresql://superfed@db.example/superfed"
    cfg.write_text("[history]\nenabled = false\n")
    assert not load(cfg).history.active
    # settings made in code, with no file: every job stays in Redis unless a URL is given
    assert not validate({}).history.active
