"""Test port: JSON lines over TCP on 127.0.0.1, one request per line, one reply per line.

Every reply is `{"ok": true, ...}` or `{"ok": false, "error": "..."}`. This module only
frames and validates; the model-specific handler (e.g. `device_sims.us1.testport`) gives the
meaning of each `op` and raises `ControlError` with a specific message to refuse a request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

Request = dict[str, Any]
Reply = dict[str, Any]
Handler = Callable[[Request], Reply]
MAX_LINE_BYTES = 65536

log = logging.getLogger(__name__)


class ControlError(Exception):
    """A refused test-port request; the message is sent back as `error`."""


def dispatch(request: object, handler: Handler) -> Reply:
    """Validate the request envelope, run the handler and wrap its result as a reply."""
    if not isinstance(request, dict):
        return {"ok": False, "error": "request must be a JSON object"}
    op = request.get("op")
    if not isinstance(op, str):
        return {"ok": False, "error": "request needs a string 'op'"}
    try:
        return {"ok": True, **handler(request)}
    except ControlError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a bug must not kill the test port
        log.exception("test port request %r failed", request)
        return {"ok": False, "error": f"internal error: {exc!r}"}


def handle_line(line: bytes, handler: Handler) -> Reply:
    """Parse one JSON line and dispatch it; bad JSON gets a specific error reply."""
    try:
        request = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return {"ok": False, "error": "bad JSON: request is not UTF-8"}
    except json.JSONDecodeError as exc:
        return {"ok": False, "error": f"bad JSON: {exc.msg} at column {exc.colno}"}
    return dispatch(request, handler)


async def _serve_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    """Answer each request line of one client until it disconnects."""
    try:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                line = exc.partial
                if not line.strip():
                    break
            except asyncio.LimitOverrunError:
                reply: Reply = {"ok": False, "error": f"request longer than {MAX_LINE_BYTES}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
                break
            if not line.strip():
                continue
            reply = handle_line(line, handler)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def start_control_server(host: str, port: int, handler: Handler) -> asyncio.Server:
    """Listen for test-port clients on host:port (port 0 = a free port)."""
    return await asyncio.start_server(
        lambda r, w: _serve_client(r, w, handler), host, port, limit=MAX_LINE_BYTES
    )
