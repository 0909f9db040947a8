"""Reading a whole etcd prefix a page at a time, and saying why etcd did not answer.

One Range response holding a prefix must fit gRPC's 4 MB message limit: a namespace grown past it
(old runs' keys, a large global view) made every reader fail with RESOURCE_EXHAUSTED, reported as
"etcd did not answer". python-etcd3 0.12 accepts a `limit` and drops it, so the request is built here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import etcd3
import grpc
from etcd3 import etcdrpc, utils

__all__ = ["etcd_error", "iter_prefix", "json_object"]

PAGE = 64  # keys a request; halved while a page is still too large for one message


def iter_prefix(client: etcd3.Etcd3Client, prefix: str, page: int = PAGE) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of every key under `prefix`, in key order, read at one revision."""
    start = prefix.encode()
    end = utils.increment_last_byte(start)
    revision = 0  # the first page's: later pages read the same snapshot
    while True:
        request = etcdrpc.RangeRequest(key=start, range_end=end, limit=page, revision=revision,
                                       sort_order=etcdrpc.RangeRequest.ASCEND,
                                       sort_target=etcdrpc.RangeRequest.KEY)  # fmt: skip
        try:
            response = client.kvstub.Range(request, client.timeout, credentials=client.call_credentials,
                                           metadata=client.metadata)  # fmt: skip
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and page > 1:
                page //= 2
                continue
            raise
        revision = revision or response.header.revision
        for kv in response.kvs:
            yield kv.key, kv.value
        if not response.more or not response.kvs:
            return
        start = response.kvs[-1].key + b"\0"


def etcd_error(exc: BaseException) -> str:
    """What went wrong, in etcd's or gRPC's own words (not just the exception's class)."""
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code") and hasattr(exc, "details"):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def json_object(raw: Any) -> dict[str, Any]:
    """A key's JSON object (a registration, a snapshot); anything else, which anyone able to write
    to etcd could leave there, reads as empty."""
    try:
        value = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
