"""Where the broker's tag rides: the Slurm comment and the job-name suffix."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters.tags import name_with_tag, tag_comment, tag_from_comment, tag_from_name

TAGS = st.from_regex(r"j[0-9a-f]{10,22}", fullmatch=True)


@given(name=st.none() | st.text(max_size=300), tag=TAGS)
def test_name_round_trip(name: str | None, tag: str) -> None:
    out = name_with_tag(name, tag)
    assert tag_from_name(out) == tag
    assert all(c.isalnum() or c in "_.+-" for c in out) and len(out) <= 80 + 4 + len(tag)


def test_comment_round_trip_and_strangers() -> None:
    assert tag_from_comment(tag_comment("j1")) == "j1"
    assert tag_from_comment("someone else's comment") is None and tag_from_comment(None) is None
    assert tag_from_name("plain") is None and tag_from_name("x.sf-") is None
    assert name_with_tag(None, "j1", default="superfed") == "superfed.sf-j1"
    assert name_with_tag("my job!", "j1") == "my_job_.sf-j1"


def test_the_comment_prefix_counts_only_at_the_start() -> None:
    # a user's own comment that mentions the prefix is not the broker's tag
    assert tag_from_comment("see superfed:j1") is None
    assert tag_from_comment("xsuperfed:j1") is None
    assert tag_from_comment("SUPERFED:j1") is None
    assert tag_from_comment("superfed:") is None and tag_from_comment("superfed:   ") is None
    assert tag_from_comment("superfed: j1 ") == "j1"
    assert tag_from_comment("superfed:j1 superfed:j2") == "j1 superfed:j2"  # taken as written, not searched
