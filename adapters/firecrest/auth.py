"""FirecREST credentials: OIDC client credentials, the secret from a file or a variable."""

from __future__ import annotations

import msgspec


class Auth(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """OIDC client credentials; the secret comes from a file or an environment variable."""

    client_id: str
    token_url: str
    client_secret_file: str | None = None
    client_secret_env: str | None = None


