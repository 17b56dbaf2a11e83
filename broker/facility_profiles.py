"""Site profiles that follow what each facility publishes, as config data (TOML-shaped dicts).

The demo writes these into its config; ``config/three-facilities.toml`` carries the same
values (a test keeps the two in step). Sources:

- NERSC Perlmutter: "QOSes and Charges" (docs.nersc.gov/jobs/policy): ``debug`` is the default
  QOS (at most 8 nodes, 30 min), ``regular`` (up to 48 h), ``shared`` (part of one node),
  ``interactive`` (4 nodes, 4 h, salloc only), ``premium`` (48 h, charged more), ``preempt``
  (48 h, at least 2 h); every job needs ``-C cpu`` (128 cores, 512 GB) or ``-C gpu`` (64 cores,
  4 A100, 256 GB).
- ALCF Polaris: "Running jobs" queue table: ``debug`` 1-2 nodes, ``debug-scaling`` 1-10 nodes
  (5 min-1 h), ``prod`` 10-496 nodes, a routing queue (small 10-24 nodes <= 3 h, medium 25-99
  <= 6 h, large 100-496 <= 24 h), ``preemptable`` 1-10 nodes 72 h, ``capacity`` 1-4 nodes
  168 h and ``demand`` by request; nodes of 32 cores, 4 A100, 512 GB; ``filesystems`` is
  required at qsub.
- CSCS Alps (Daint, Eiger): Slurm partitions ``normal`` (24 h) and ``debug`` (30 min, 2
  nodes), ``xfer`` for data transfer; Daint's GH200 nodes (4 Grace-Hopper modules: 288 cores,
  4 GPUs), Eiger's AMD Rome nodes (128 cores, 256 GB); every job is charged to an account.
"""

from __future__ import annotations

from typing import Any

HOUR = 3600
MIN = 60

# jobs a user may decorate with, at a Slurm site (never the account, tag or output paths)
_SLURM_PASSTHROUGH = ["slurm.mail-type", "slurm.mail-user", "slurm.signal"]

PERLMUTTER: dict[str, Any] = {
    "node_types": [
        {"name": "cpu", "cores": 128, "gpus": 0, "memory_gb": 512, "constraint": "cpu"},
        {"name": "gpu", "cores": 64, "gpus": 4, "memory_gb": 256, "constraint": "gpu"},
    ],
    "queues": [
        {"name": "debug", "max_nodes": 8, "max_walltime": 30 * MIN, "purpose": "development; NERSC's default QOS"},
        {"name": "regular", "max_nodes": 1792, "max_walltime": 48 * HOUR, "purpose": "production"},
        {"name": "shared", "max_nodes": 1, "max_walltime": 48 * HOUR, "auto": False, "purpose": "part of a node"},
        {"name": "interactive", "max_nodes": 4, "max_walltime": 4 * HOUR, "auto": False, "purpose": "salloc only"},
        {
            "name": "premium",
            "max_nodes": 1792,
            "max_walltime": 48 * HOUR,
            "auto": False,
            "purpose": "urgent; charged more",
        },
        {
            "name": "preempt",
            "max_nodes": 128,
            "min_walltime": 2 * HOUR,
            "max_walltime": 48 * HOUR,
            "auto": False,
            "purpose": "preemptible after 2 h; discounted",
        },
    ],
    "passthrough": _SLURM_PASSTHROUGH,
}

POLARIS: dict[str, Any] = {
    "node_types": [{"name": "a100", "cores": 32, "gpus": 4, "memory_gb": 512}],
    "queues": [
        {"name": "debug", "max_nodes": 2, "min_walltime": 5 * MIN, "max_walltime": HOUR, "purpose": "development"},
        {
            "name": "debug-scaling",
            "max_nodes": 10,
            "min_walltime": 5 * MIN,
            "max_walltime": HOUR,
            "purpose": "scaling tests; one job per user",
        },
        {
            "name": "prod",
            "min_nodes": 10,
            "max_nodes": 496,
            "min_walltime": 5 * MIN,
            "max_walltime": 24 * HOUR,
            "purpose": "production (routes to small, medium, large)",
            "bands": [
                {"max_nodes": 24, "max_walltime": 3 * HOUR},
                {"max_nodes": 99, "max_walltime": 6 * HOUR},
                {"max_nodes": 496, "max_walltime": 24 * HOUR},
            ],
        },
        {"name": "preemptable", "max_nodes": 10, "max_walltime": 72 * HOUR, "purpose": "may be preempted"},
        {"name": "capacity", "max_nodes": 4, "max_walltime": 168 * HOUR, "auto": False, "purpose": "by request"},
        {"name": "demand", "max_nodes": 56, "max_walltime": HOUR, "auto": False, "purpose": "by request"},
    ],
    "defaults": {"filesystems": "home:eagle"},
}

DAINT: dict[str, Any] = {
    "node_types": [{"name": "gh200", "cores": 288, "gpus": 4, "memory_gb": 512}],
    "queues": [
        {"name": "debug", "max_nodes": 2, "max_walltime": 30 * MIN, "purpose": "development"},
        {"name": "normal", "max_nodes": 1024, "max_walltime": 24 * HOUR, "purpose": "production"},
        {"name": "xfer", "max_nodes": 1, "max_walltime": 24 * HOUR, "auto": False, "purpose": "data transfer"},
    ],
    "passthrough": _SLURM_PASSTHROUGH,
}

EIGER: dict[str, Any] = {
    "node_types": [{"name": "zen2", "cores": 128, "gpus": 0, "memory_gb": 256}],
    "queues": [
        {"name": "debug", "max_nodes": 10, "max_walltime": 30 * MIN, "purpose": "development"},
        {"name": "normal", "max_nodes": 512, "max_walltime": 24 * HOUR, "purpose": "production"},
    ],
    "passthrough": _SLURM_PASSTHROUGH,
}
