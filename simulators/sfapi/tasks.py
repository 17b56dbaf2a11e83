"""``/tasks``: the asynchronous results of sbatch, scancel and commands.

A task is ``new`` while it runs (there is no "running" state) and then ``completed``, with
``result`` a JSON document serialised into a string; ``cancelled`` after a DELETE.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get

from simulators.sfapi.wire import BASE, ApiError, fac, ok, require_user

TASK_LIST_LIMIT = 1000  # the newest tasks; the real list is bounded too


@get([f"{BASE}/tasks", f"{BASE}/tasks/"])
async def list_tasks(request: Request[Any, Any, Any]) -> Response[bytes]:
    require_user(request)
    f = fac(request)
    now = f.clock()
    newest = list(f.tasks.values())[-TASK_LIST_LIMIT:]
    return ok({"tasks": [t.view(now) for t in newest]})


@get(f"{BASE}/tasks/{{task_id:str}}")
async def get_task(request: Request[Any, Any, Any]) -> Response[bytes]:
    task_id = request.path_params["task_id"]
    require_user(request)
    f = fac(request)
    task = f.tasks.get(task_id)
    if task is None:
        raise ApiError(404, f"Task {task_id} not found")
    return ok(task.view(f.clock()))


@delete(f"{BASE}/tasks/{{task_id:str}}", status_code=200)
async def cancel_task(request: Request[Any, Any, Any]) -> Response[bytes]:
    task_id = request.path_params["task_id"]
    require_user(request)
    f = fac(request)
    task = f.tasks.get(task_id)
    if task is None:
        raise ApiError(404, f"Task {task_id} not found")
    view = task.view(f.clock())
    if view["status"] == "new":
        task.status, task.result = "cancelled", None
    return ok(task.view(f.clock()))


ROUTES = [list_tasks, get_task, cancel_task]
