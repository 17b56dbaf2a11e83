"""The broker's RQ task functions, by the names RQ jobs carry: the only code a worker runs for
a job (``queues.refusal`` checks the name before anything is looked up or imported).

Each takes the worker's runtime, the job's one argument (an id, never an object: what sits in
Redis stays small and readable) and the worker's name (its claim on the job, see
broker/worker.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from broker import queues
from broker.tasks import cancel, submit
from broker.tasks.runtime import Runtime

Task = Callable[[Runtime, str, str], Awaitable[str]]

TASKS: dict[str, Task] = {queues.SUBMIT_FN: submit.run, queues.CANCEL_FN: cancel.run}
