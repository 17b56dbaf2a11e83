"""The staging area FirecREST v2 puts between a client and the cluster for large files: an
S3-like object store served by the simulator itself (no real S3), at presigned-style URLs
under ``/_sim/s3/`` on the simulator's own address.

Upload: the client PUTs each part (``partNumber``), gets an ``ETag`` back, then POSTs S3's
``CompleteMultipartUpload`` XML; the transfer job waiting for the object then writes it onto
the cluster.  Download: the transfer job puts the file in the store; the client GETs it.
A URL's token is its only credential, as with presigned URLs.  Bounded: MAX_OBJECT bytes per
object, MAX_STAGED bytes in all."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from litestar import Request, Response, get, post, put
from litestar.params import FromPath

from simulators.common.control import facility_of
from simulators.common.shell import IO, Shell, why

MAX_PART_SIZE = 2 << 20  # maxPartSize told to clients (small, so a few MiB take several parts)
MAX_OBJECT = 64 << 20
MAX_STAGED = 256 << 20
MAX_OBJECTS = 256  # staged objects kept (downloads stay until pushed out)
MAX_COMPLETE_BODY = 64 << 10
_PART = re.compile(r"<Part>(.*?)</Part>", re.S)
_NUMBER = re.compile(r"<PartNumber>\s*(\d{1,5})\s*</PartNumber>")
_ETAG = re.compile(r"<ETag>\s*([^<]*?)\s*</ETag>")


@dataclass
class StagedObject:
    token: str
    size: int  # declared (upload) or actual (download)
    parts: dict[int, bytes] = field(default_factory=dict)
    data: bytes | None = None  # complete
    job: tuple[str, str] | None = None  # (system, job id) to wake when complete


class StagingArea:
    def __init__(self) -> None:
        self.objects: dict[str, StagedObject] = {}

    def used(self) -> int:
        return sum(len(o.data or b"") + sum(map(len, o.parts.values())) for o in self.objects.values())

    def new(self, size: int) -> StagedObject:
        if size > MAX_OBJECT:
            raise ValueError(f"file too large for the staging area ({size} > {MAX_OBJECT} bytes)")
        while len(self.objects) >= MAX_OBJECTS:  # the oldest URLs expire first, as presigned ones do
            del self.objects[next(iter(self.objects))]
        obj = StagedObject(secrets.token_urlsafe(24), size)
        self.objects[obj.token] = obj
        return obj

    def parts_needed(self, obj: StagedObject) -> int:
        return max(1, -(-obj.size // MAX_PART_SIZE))

    def put(self, obj: StagedObject, data: bytes) -> None:
        for token in list(self.objects):  # make room: the oldest objects go first
            if self.used() + len(data) <= MAX_STAGED or len(data) > MAX_OBJECT:
                break
            if token != obj.token:
                del self.objects[token]
        if len(data) > MAX_OBJECT or self.used() + len(data) > MAX_STAGED:
            raise ValueError(f"file too large for the staging area ({len(data)} bytes)")
        obj.data = data
        obj.size = len(data)


def etag(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


def urls(base: str, obj: StagedObject, staging: StagingArea) -> dict[str, object]:
    root = f"{base.rstrip('/')}/_sim/s3/{obj.token}"
    n = staging.parts_needed(obj)
    return {
        "partsUploadUrls": [f"{root}?partNumber={k}&uploadId={obj.token}" for k in range(1, n + 1)],
        "completeUploadUrl": f"{root}?uploadId={obj.token}",
        "maxPartSize": MAX_PART_SIZE,
    }


def _s3_error(status: int, code: str, message: str) -> Response[bytes]:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(body.encode(), status_code=status, media_type="application/xml")


def _object(request: Request[Any, Any, Any], token: str) -> StagedObject | None:
    staging: StagingArea = facility_of(request).staging  # type: ignore[attr-defined]
    return staging.objects.get(token)


@put("/_sim/s3/{token:str}", status_code=200)
async def put_part(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
    obj = _object(request, token)
    if obj is None or obj.data is not None:  # unknown, or already complete
        return _s3_error(404, "NoSuchUpload", "The specified upload does not exist.")
    try:
        number = int(request.query_params.get("partNumber", ""))
    except ValueError:
        return _s3_error(400, "InvalidArgument", "Part number must be an integer between 1 and 10000.")
    staging: StagingArea = facility_of(request).staging  # type: ignore[attr-defined]
    if not 1 <= number <= staging.parts_needed(obj):
        return _s3_error(400, "InvalidArgument", "Part number must be an integer between 1 and 10000.")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > MAX_PART_SIZE:
            return _s3_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    data = bytes(buf)
    if staging.used() + len(data) > MAX_STAGED:
        return _s3_error(503, "SlowDown", "Please reduce your request rate.")
    obj.parts[number] = data
    return Response(b"", status_code=200, headers={"ETag": etag(data)})


@post("/_sim/s3/{token:str}", status_code=200)
async def complete(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
    obj = _object(request, token)
    if obj is None or obj.data is not None:
        return _s3_error(404, "NoSuchUpload", "The specified upload does not exist.")
    body = (await request.body())[:MAX_COMPLETE_BODY].decode("utf-8", "replace")
    listed = []
    for part in _PART.findall(body):  # S3's CompleteMultipartUpload; the order of fields varies
        number, given = _NUMBER.search(part), _ETAG.search(part)
        if number is None or given is None:
            return _s3_error(400, "MalformedXML", "The XML you provided was not well-formed.")
        listed.append((int(number.group(1)), given.group(1)))
    if not listed or [n for n, _ in listed] != sorted({n for n, _ in listed}):
        return _s3_error(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
    for n, tag in listed:
        part = obj.parts.get(n)
        if part is None or etag(part).strip('"') != tag.replace("&quot;", '"').strip('"'):
            return _s3_error(400, "InvalidPart", "One or more of the specified parts could not be found.")
    data = b"".join(obj.parts[n] for n, _ in listed)
    if len(data) != obj.size:
        return _s3_error(400, "IncompleteBody", f"Expected {obj.size} bytes, got {len(data)}.")
    obj.data, obj.parts = data, {}
    fac = facility_of(request)
    if obj.job is not None:
        system, job_id = obj.job
        fac.systems[system].wake(job_id)  # the transfer job was waiting for this object
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult>'
        f"<Key>{token}</Key><ETag>{etag(data)}</ETag></CompleteMultipartUploadResult>"
    )
    return Response(xml.encode(), status_code=200, media_type="application/xml")


@get("/_sim/s3/{token:str}", sync_to_thread=False)
def get_object(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
    obj = _object(request, token)
    if obj is None or obj.data is None:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    return Response(obj.data, status_code=200, media_type="application/octet-stream", headers={"ETag": etag(obj.data)})


def stage_command(staging: StagingArea) -> Any:
    """``f7t-stage in|out TOKEN PATH``: the transfer job's side of the staging area (what
    the real jobs do with curl against S3)."""

    def handler(sh: Shell, args: list[str], io: IO) -> int:
        if len(args) != 3 or args[0] not in ("in", "out"):
            io.err.write("f7t-stage: usage: f7t-stage in|out TOKEN PATH\n")
            return 2
        direction, token, path = args
        obj = staging.objects.get(token)
        if obj is None:
            io.err.write(f"{_now()} Transfer object not found in the staging area\n")
            return 1
        if direction == "in":
            if obj.data is None:
                sh.sleep(float("inf"))  # still waiting when the walltime ends
                io.err.write(f"{_now()} File to transfer never arrived\n")
                return 1
            try:
                sh.fs.write(sh.abs(path), obj.data)
            except OSError as exc:
                io.err.write(f"{_now()} Unable to write {path}: {why(exc)}\n")
                return 1
            del staging.objects[token]
            io.out.write(f"{_now()} File was successfully downloaded (size: {len(obj.data) / 1048576:.3f}MB)\n")
            return 0
        try:
            staging.put(obj, sh.fs.read(sh.abs(path)))
        except OSError as exc:
            io.err.write(f"{_now()} Unable to read {path}: {why(exc)}\n")
            return 1
        except ValueError as exc:
            io.err.write(f"{_now()} {exc}\n")
            return 1
        io.out.write(f"{_now()} Multipart file upload successfully completed\n")
        return 0

    return handler


def _now() -> str:
    import time

    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime())


ROUTES = [put_part, complete, get_object]
