"""Secrets read from a file or an environment variable, never shown.

A ``Secret`` has no readable repr or str, so it cannot leak through a log line, an error
message or a traceback's locals by accident; ``reveal()`` is the one way out.
"""

from __future__ import annotations

import os
from pathlib import Path

from adapters.errors import AuthFailed


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secrets are not pickled")


def load_secret(*, file: str | None = None, env: str | None = None, what: str = "secret") -> Secret:
    """Read a secret from ``file`` (stripped) or the variable ``env``. The error names the
    file or variable, never the value."""
    if file:
        path = Path(file).expanduser()
        try:
            return Secret(path.read_text().strip())
        except OSError as exc:
            raise AuthFailed(f"cannot read {what} from file {str(path)!r}: {exc.strerror}") from None
    if env:
        value = os.environ.get(env)
        if not value:
            raise AuthFailed(f"{what}: environment variable {env!r} is not set")
        return Secret(value.strip())
    raise AuthFailed(f"no {what} configured (set a file or an environment variable)")
