"""Site profiles, and the translation of a portable job into a site's own vocabulary (pure).

A *profile* describes one system of a site the way its facility publishes it: the node types
(cores, GPUs, memory per node and the word that selects them, e.g. NERSC's ``-C cpu``), the
queues or QOS with their limits, the attributes the facility requires (with the value used
when a job gives none, e.g. ALCF's ``filesystems``) and the custom attributes a user may pass
through.  A *vocabulary* (one per adapter kind, defined next to its adapter) says where each
portable notion goes in that adapter's input: a queue is a QOS at NERSC (``--qos``), a
partition at CSCS, a queue at ALCF.

``translate`` turns a PSI/J spec into the spec the adapter will be given, or says in words why
this system cannot take it.  No I/O, no clock: placement, the preview, the intake check and
the submission all get the same answer for the same inputs.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from adapters.psij import JobSpec

Word = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$")]
Seconds = Annotated[int, msgspec.Meta(ge=0, le=366 * 24 * 3600)]
GIB = 1024**3


class NodeType(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: Word
    cores: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    gpus: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 0
    memory_gb: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    # the site's word that selects this node type (NERSC: the -C constraint); None: the
    # queue alone decides (ALCF Polaris, CSCS Daint have one node type)
    constraint: Word | None = None


class Band(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A routing queue's size band: jobs of up to ``max_nodes`` nodes get ``max_walltime``."""

    max_nodes: Annotated[int, msgspec.Meta(ge=1)]
    max_walltime: Seconds


class Queue(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: Word
    min_nodes: Annotated[int, msgspec.Meta(ge=1)] = 1
    max_nodes: Annotated[int, msgspec.Meta(ge=1)]
    min_walltime: Seconds = 0
    max_walltime: Seconds
    node_types: list[Word] = []  # empty: every node type of the system
    purpose: str = ""
    # chosen for portable jobs (false: only when a job names it, e.g. premium, preempt)
    auto: bool = True
    bands: list[Band] = []  # routing queue size bands (Polaris prod: small, medium, large)

    def walltime_limit(self, nodes: int) -> int:
        for b in self.bands:
            if nodes <= b.max_nodes:
                return min(b.max_walltime, self.max_walltime)
        return self.max_walltime


class SystemProfile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    # queues in the order a portable job tries them (cheapest / default first)
    node_types: Annotated[list[NodeType], msgspec.Meta(min_length=1)]
    queues: Annotated[list[Queue], msgspec.Meta(min_length=1)]
    # attributes the facility requires, with the value filled in when a job gives none
    defaults: dict[Word, Annotated[str, msgspec.Meta(max_length=256)]] = {}
    # custom attribute keys a user may pass through (the keys of `defaults` may always be set)
    passthrough: list[Word] = []
    # walltime given to a job that asks none (seconds)
    default_walltime: Annotated[int, msgspec.Meta(ge=60)] = 1800


class Vocabulary(msgspec.Struct, frozen=True, kw_only=True):
    """Where an adapter takes each portable notion. ``queue``: ``"queue_name"`` (the spec's
    own field) or the custom attribute key that carries it; ``constraint``: the custom
    attribute key that selects a node type, None when the adapter has none."""

    queue: str
    queue_word: str  # how the facility calls it: qos, partition, queue
    constraint: str | None = None
    constraint_word: str = "-C"
    # broker flags the translation sets for the adapter (the SF API's ``queue_is_qos``: the
    # queue is rendered as --qos, not --partition)
    flags: dict[str, str] = {}


class Translation(msgspec.Struct, frozen=True):
    system: str
    queue: str
    node_type: str
    spec: JobSpec  # what the adapter is given
    summary: str  # "perlmutter: qos debug, -C cpu, 1 node, 10 min"


def problems(profile: SystemProfile, place: str) -> list[str]:
    """Cross-field checks msgspec cannot express, each as 'place: what is wrong'."""
    out: list[str] = []
    types = [n.name for n in profile.node_types]
    if len(set(types)) != len(types):
        out.append(f"{place}.node_types: a name is used twice")
    names = [q.name for q in profile.queues]
    if len(set(names)) != len(names):
        out.append(f"{place}.queues: a name is used twice")
    for i, q in enumerate(profile.queues):
        where = f"{place}.queues[{i}] ({q.name})"
        if q.min_nodes > q.max_nodes:
            out.append(f"{where}: min_nodes {q.min_nodes} is above max_nodes {q.max_nodes}")
        if q.min_walltime > q.max_walltime:
            out.append(f"{where}: min_walltime is above max_walltime")
        for t in q.node_types:
            if t not in types:
                out.append(f"{where}.node_types: no node type is named {t!r} (known: {', '.join(types)})")
    if not any(q.auto for q in profile.queues):
        out.append(f"{place}.queues: at least one queue must be open to portable jobs (auto = true)")
    return out


def duration_text(seconds: int) -> str:
    """10 min, 6 h, 1 h 30 min, 45 s."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h} h" if h else "", f"{m} min" if m else "", f"{s} s" if s else ""]
    return " ".join(p for p in parts if p) or "0 s"


def _per_node(spec: JobSpec) -> tuple[int, int, int]:
    """(processes, GPUs, cores) the job wants on each node."""
    r = spec.resources
    nodes = spec.nodes
    if r.processes_per_node:
        ppn = r.processes_per_node
    elif r.process_count:
        ppn = -(-r.process_count // nodes)
    else:
        ppn = 1
    return ppn, ppn * (r.gpu_cores_per_process or 0), ppn * (r.cpu_cores_per_process or 1)


def _node_types(spec: JobSpec, profile: SystemProfile) -> tuple[list[NodeType], str | None]:
    """The node types that can hold one node's share of the job, CPU-only first (a CPU job
    should not take a GPU node where a CPU node will do); or why none can."""
    _ppn, gpus, cores = _per_node(spec)
    mem = spec.resources.memory or 0
    fits = [n for n in profile.node_types if n.gpus >= gpus and n.cores >= cores and n.memory_gb * GIB >= mem]
    if fits:
        return sorted(fits, key=lambda n: n.gpus), None
    have = ", ".join(f"{n.name} ({n.cores} cores, {n.gpus} GPUs, {n.memory_gb} GB)" for n in profile.node_types)
    wants = [f"{gpus} GPUs" if gpus else "", f"{cores} cores" if cores > 1 else "", f"{mem // GIB} GB" if mem else ""]
    return [], f"asks {', '.join(w for w in wants if w)} per node; node types here: {have}"


def _queue_misfit(q: Queue, node: NodeType, nodes: int, walltime: int) -> str | None:
    if q.node_types and node.name not in q.node_types:
        return f"{q.name} does not run {node.name} nodes"
    if nodes < q.min_nodes or nodes > q.max_nodes:
        span = f"{q.min_nodes}-{q.max_nodes}" if q.min_nodes > 1 else f"at most {q.max_nodes}"
        return f"{q.name} takes {span} nodes"
    limit = q.walltime_limit(nodes)
    if walltime > limit:
        return f"{q.name} allows at most {duration_text(limit)} for {nodes} node{'s' if nodes != 1 else ''}"
    return None


def translate(spec: JobSpec, profile: SystemProfile, vocab: Vocabulary, system: str) -> Translation | list[str]:
    """The spec as ``system`` of this site takes it, or every reason it cannot."""
    reasons: list[str] = []
    a = spec.attributes
    allowed = set(profile.passthrough) | set(profile.defaults)
    for key in sorted(a.custom_attributes):
        if key not in allowed:
            reasons.append(
                f"custom attribute {key!r} is not passed through here (allowed: {', '.join(sorted(allowed)) or 'none'})"
            )
    nodes = spec.nodes
    walltime = a.duration if a.duration is not None else profile.default_walltime
    node_types, why = _node_types(spec, profile)
    if why:
        reasons.append(why)
    by_name = {q.name: q for q in profile.queues}
    if a.queue_name is not None and a.queue_name not in by_name:
        reasons.append(f"has no {vocab.queue_word} {a.queue_name!r} ({vocab.queue_word}s: {', '.join(by_name)})")
    if reasons:
        return reasons
    queues = [by_name[a.queue_name]] if a.queue_name is not None else [q for q in profile.queues if q.auto]
    misfits: list[str] = []
    for node in node_types:
        for q in queues:
            miss = _queue_misfit(q, node, nodes, walltime)
            if miss is None:
                return _apply(spec, profile, vocab, system, q, node, max(walltime, q.min_walltime))
            if miss not in misfits:
                misfits.append(miss)
    ask = f"{nodes} node{'s' if nodes != 1 else ''} for {duration_text(walltime)}"
    return [f"no {vocab.queue_word} takes {ask}: {'; '.join(misfits)}"]


def _apply(
    spec: JobSpec, profile: SystemProfile, vocab: Vocabulary, system: str, q: Queue, node: NodeType, walltime: int
) -> Translation:
    a = spec.attributes
    custom = dict(a.custom_attributes)
    filled = {k: v for k, v in profile.defaults.items() if k not in custom}
    custom.update(filled)
    queue_name: str | None = q.name
    if vocab.queue != "queue_name":
        custom[vocab.queue] = q.name
        queue_name = None
    custom.update(vocab.flags)
    words = [f"{vocab.queue_word} {q.name}"]
    if node.constraint and vocab.constraint:
        custom[vocab.constraint] = node.constraint
        words.append(f"{vocab.constraint_word} {node.constraint}")
    elif len(profile.node_types) > 1:
        words.append(f"{node.name} nodes")
    nodes = spec.nodes
    words.append(f"{nodes} node{'s' if nodes != 1 else ''}")
    raised = a.duration is not None and walltime > a.duration
    words.append(duration_text(walltime) + (" (the queue's minimum)" if raised else ""))
    words += [f"{k}={v}" for k, v in sorted(filled.items())]
    attrs = msgspec.structs.replace(a, duration=walltime, queue_name=queue_name, custom_attributes=custom)
    return Translation(
        system=system,
        queue=q.name,
        node_type=node.name,
        spec=msgspec.structs.replace(spec, attributes=attrs),
        summary=f"{system}: {', '.join(words)}",
    )
