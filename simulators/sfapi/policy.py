"""Perlmutter's submission rules, as NERSC publishes them ("QOSes and Charges").

Each QOS is modelled as a partition of the simulated batch system (limits per job); ``debug``
comes first because it is NERSC's default QOS.  Every job must name the node architecture
with ``-C cpu`` or ``-C gpu``: without it NERSC's job-submit filter refuses the job.
"""

from __future__ import annotations

from simulators.common.scheduler import Partition

HOUR = 3600
# name, max nodes per job, max walltime (s), default walltime (s)
QOS_TABLE: tuple[tuple[str, int, int, int], ...] = (
    ("debug", 8, HOUR // 2, HOUR // 2),
    ("regular", 1792, 48 * HOUR, 48 * HOUR),
    ("shared", 1, 48 * HOUR, 48 * HOUR),
    ("interactive", 4, 4 * HOUR, HOUR),
    ("premium", 1792, 48 * HOUR, 48 * HOUR),
    ("preempt", 128, 48 * HOUR, 48 * HOUR),
    ("overrun", 1792, 48 * HOUR, 48 * HOUR),
)
ARCHITECTURES = frozenset({"cpu", "gpu"})
# what sbatch prints at NERSC when the job request fits no policy (no or an unknown -C)
NO_POLICY = (
    "sbatch: error: Job request does not match any supported policy.\n"
    "sbatch: error: Batch job submission failed: Unspecified error"
)


def perlmutter_qos(nodes: int) -> list[Partition]:
    return [Partition(name, min(limit, nodes), wall, default) for name, limit, wall, default in QOS_TABLE]


def constraint_problem(constraint: str | None) -> str | None:
    """sbatch's words when the constraint names no Perlmutter architecture; None when it does
    (``gpu&hbm80g`` names gpu)."""
    if not constraint:
        return NO_POLICY
    words = {w.strip() for w in constraint.replace("|", "&").split("&")}
    return None if words & ARCHITECTURES else NO_POLICY
