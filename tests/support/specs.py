"""Where the facilities' published specs (OpenAPI files, sample answers) are: one setting.

``SUPERFED_SPECS`` names the directory; by default it is ``shared/specs`` beside the repo
(``<repo>/../shared/specs``), where this workspace and CI keep them. A test that needs a spec
asks ``spec_path()``: when the file is absent the test is skipped with one line naming the
setting, so a clone of the repo alone still runs everything else. ``SUPERFED_REQUIRE_SPECS=1``
(set by ``.ci/run``) turns that skip into a failure, so CI cannot pass without them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPECS = Path(os.environ.get("SUPERFED_SPECS") or REPO.parent / "shared" / "specs")
REQUIRED = os.environ.get("SUPERFED_REQUIRE_SPECS", "") not in ("", "0")
MISSING = f"the facilities' specs are not at {SPECS} (set SUPERFED_SPECS to their directory)"


HERE = str(Path(__file__).relative_to(REPO))  # where a skip for want of the specs is reported


def spec_path(relpath: str) -> Path:
    """``SPECS / relpath``; skips the calling test when it is absent (fails if required)."""
    path = SPECS / relpath
    if not path.exists():
        if REQUIRED:
            pytest.fail(f"{MISSING}: {relpath} is missing and SUPERFED_REQUIRE_SPECS is set", pytrace=False)
        pytest.skip(MISSING)
    return path


SKIP_LINE = spec_path.__code__.co_firstlineno
