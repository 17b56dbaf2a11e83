"""IRI credentials: a bearer token from a file or a variable."""

from __future__ import annotations

import msgspec


class Auth(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A bearer token (ALCF: a Globus access token) read from a file or a variable.  The file
    is read again on a 401, so a token refreshed on disk (e.g. by ALCF's helper script) is
    picked up without a restart."""

    token_file: str | None = None
    token_env: str | None = None

    def __post_init__(self) -> None:
        if bool(self.token_file) == bool(self.token_env):
            raise ValueError("set exactly one of token_file or token_env")


