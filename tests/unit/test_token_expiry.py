"""A token's expiry: live strictly before ``expires_at``, dead from that instant on."""

from __future__ import annotations

from broker.store.tokens import TokenRecord, live


def rec(expires_at: float | None) -> TokenRecord:
    return TokenRecord(id="t1", name="t", role="viewer", projects=["*"], created_at=0.0, expires_at=expires_at)


def test_expiry_is_exclusive_and_measured_at_the_given_time() -> None:
    assert live(rec(None), now=10**12)
    assert live(rec(100.0), now=99.999)
    assert not live(rec(100.0), now=100.0)  # at the instant it expires, it is dead
    assert not live(rec(100.0), now=150.0)
    # the time given is the time used (not the clock): a token that expired long ago in real time
    assert live(rec(1000.0), now=50.0)
