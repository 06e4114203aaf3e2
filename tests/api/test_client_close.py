"""`ControllerClient.close()` returns even when a heartbeat's reply lands in the same event-loop
turn as the close: on Python 3.11 that hung `session run` for good after its script ended."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sessionconsole.api.client import ControllerClient
from tests.support import wait_for


async def test_close_ends_the_heartbeats_when_a_reply_lands_in_the_same_turn(
    tmp_path: Path,
) -> None:
    """Python 3.11's `asyncio.wait_for` swallows a cancel that arrives after the awaited reply
    did (fixed in 3.12). The heartbeat loop then went on for as long as the controller kept
    answering, and close(), which waits for that loop, never returned."""
    path = str(tmp_path / "api.sock")
    answer_from = 3  # the test answers heartbeat 2 itself; the server answers the rest

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            request = json.loads(line)
            if request["command"]["type"] == "hello" or request["id"] >= answer_from:
                reply = {"kind": "reply", "id": request["id"], "ok": True}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()

    server = await asyncio.start_unix_server(serve, path)
    client = ControllerClient(path, operator="t", client_name="t", heartbeat_interval_s=0.05)
    await client.connect()
    closing: asyncio.Task[None] | None = None
    try:
        pending = await wait_for(lambda: dict(client._pending), 2)  # heartbeat 2 awaits its reply
        [reply] = pending.values()
        reply.set_result(None)  # its reply arrives ...
        closing = asyncio.create_task(client.close())  # ... and close() cancels in that turn
        done, _ = await asyncio.wait({closing}, timeout=1.0)
        assert closing in done, "close() did not return: the heartbeat loop went on"
    finally:
        if closing is not None and not closing.done():
            closing.cancel()  # close() then goes on past the loop and closes the connection
            await asyncio.wait({closing}, timeout=1.0)
        server.close()
