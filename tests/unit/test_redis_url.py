"""``redis_url`` forms (broker/store/connect.py): the Sentinel URL taken apart, the config's
checks of it, ``redis_url_file``, and passwords kept out of messages. Pure logic: the clients
against real sentinels are tests/api/test_sentinel.py and the sentinel-failover drill."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import ConfigError, load, validate
from broker.config_export import render
from broker.store import connect
from broker.store.redis_auth import redacted


def test_a_sentinel_url_is_taken_apart() -> None:
    t = connect.parse_sentinel(
        "redis+sentinel://superfed:p%40ss@s1.internal:26380,s2.internal,[::1]:26381/mymaster/3"
        "?sentinel_password=s%26cret&sentinel_username=watcher")
    assert t.sentinels == [("s1.internal", 26380), ("s2.internal", 26379), ("::1", 26381)]
    assert (t.service, t.db, t.username, t.password) == ("mymaster", 3, "superfed", "p@ss")
    assert (t.sentinel_username, t.sentinel_password, t.ssl) == ("watcher", "s&cret", False)


def test_sentinel_url_defaults_and_tls() -> None:
    t = connect.parse_sentinel("rediss+sentinel://:secret@h/svc")
    assert (t.db, t.username, t.password, t.sentinel_password, t.ssl) == (0, None, "secret", None, True)
    bare = connect.parse_sentinel("redis+sentinel://onlypassword@h:1/svc")
    assert (bare.username, bare.password) == (None, "onlypassword")
    assert connect.is_sentinel("REDIS+SENTINEL://h/s") and not connect.is_sentinel("redis://h/0")


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel:///svc", "names no sentinel"),
    ("redis+sentinel://h1,h2", "names no service"),
    ("redis+sentinel://h1,h2/", "names no service"),
    ("redis+sentinel://h1/svc/x", "/SERVICE/DB"),
    ("redis+sentinel://h1/svc/0/1", "/SERVICE/DB"),
    ("redis+sentinel://h1:0/svc", "port"),
    ("redis+sentinel://h1:99999/svc", "port"),
    ("redis+sentinel://h1:ab/svc", "port"),
    ("redis+sentinel://h 1/svc", "not a host"),
    ("redis+sentinel://[::1/svc", "brackets"),
    ("redis+sentinel://h1/svc?password=x", "unknown parameter"),
    ("redis+sentinel://h1/svc#frag", "fragment"),
])
def test_bad_sentinel_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        connect.parse_sentinel(url)
    assert says in (connect.url_problem(url) or "")


@pytest.mark.parametrize("url", ["redis://u:p@h:6379/0", "rediss://h/0", "unix:///run/redis.sock",
                                 "redis+sentinel://a:1,b:2/svc/0"])
def test_good_urls_pass(url: str) -> None:
    assert connect.url_problem(url) is None
    validate({"redis_url": url})


@pytest.mark.parametrize(("url", "says"), [("http://h:6379", "must be redis://"), ("h:6379", "must be redis://"),
                                           ("redis://h:port/0", "not a valid URL"), ("redis:///0", "names no host")])
def test_the_config_refuses_a_bad_redis_url(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=f"redis_url: .*{says}"):
        validate({"redis_url": url})


def test_passwords_never_reach_messages() -> None:
    url = "redis+sentinel://superfed:hunter22@a:1,b:2/svc/0?sentinel_username=w&sentinel_password=swordfish"
    shown = redacted(url)
    assert "hunter22" not in shown and "swordfish" not in shown
    assert shown == "redis+sentinel://superfed:***@a:1,b:2/svc/0?sentinel_username=w&sentinel_password=***"
    with pytest.raises(ValueError) as err:
        connect.parse_sentinel("redis+sentinel://u:hunter22@a:1,b:x/svc")
    assert "hunter22" not in str(err.value)


def test_redis_url_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "url").write_text("redis+sentinel://u:pw@a:1,b:2/svc/0\n")
    cfg = tmp_path / "superfed.toml"
    cfg.write_text('redis_url_file = "secrets/url"\nallowed_site_hosts = []\n')
    s = load(cfg)
    assert s.redis_url == "redis+sentinel://u:pw@a:1,b:2/svc/0"
    assert s.redis_url_file == str(tmp_path / "secrets" / "url")
    exported = render(s, [])
    assert "pw@" not in exported and "redis_url_file" in exported  # the secret stays in its file


def test_redis_url_file_problems(tmp_path: Path) -> None:
    cfg = tmp_path / "superfed.toml"
    cfg.write_text('redis_url_file = "missing"\n')
    with pytest.raises(ConfigError, match="redis_url_file: cannot read"):
        load(cfg)
    (tmp_path / "bad").write_text("http://nope\n")
    cfg.write_text('redis_url_file = "bad"\n')
    with pytest.raises(ConfigError, match=r"redis_url_file: the URL in .* must be redis://"):
        load(cfg)
    with pytest.raises(ConfigError, match="not both"):
        validate({"redis_url": "redis://h/0", "redis_url_file": "x"})


def test_every_redis_client_is_made_in_connect() -> None:
    """A client made anywhere else would miss the Sentinel URL form, the retries and the
    re-check of the primary (redis_auth's probe is the one exception: it must not log in)."""
    import re

    root = Path(__file__).resolve().parents[2]
    allowed = {"broker/store/connect.py", "broker/store/redis_auth.py"}
    maker = re.compile(r"\b(Redis|StrictRedis|ConnectionPool|BlockingConnectionPool|Sentinel|from_url)\(")
    found = []
    for base in ("broker", "adapters", "simulators"):
        for f in sorted((root / base).rglob("*.py")):
            rel = f.relative_to(root).as_posix()
            if rel in allowed:
                continue
            for n, line in enumerate(f.read_text().splitlines(), start=1):
                code = line.split("#", 1)[0]
                if maker.search(code):
                    found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "Redis clients made outside broker/store/connect.py:\n" + "\n".join(found)
