"""ES-2-vectors.json byte for byte against a freshly booted simulator, over the pty and TCP."""

from __future__ import annotations

import binascii
import json
import re
from typing import Any

import pytest

from sessionconsole.testing import SimProcess
from tests.sims.es2_client import ES2Client, parse
from tests.support import icd_file

VECTORS_PATH = icd_file("ES-2-vectors.json")
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())


def test_crc_check_value() -> None:
    check = VECTORS["crc_check"]
    assert f"{binascii.crc_hqx(check['input'].encode(), 0xFFFF):04X}" == check["crc"] == "29B1"


def test_unsolicited_examples_carry_good_crcs() -> None:
    for line in VECTORS["unsolicited_examples"]:
        assert parse(line.encode("ascii"))[0] == 0


@pytest.mark.parametrize("transport", ["serial_pty", "serial_url"])
def test_vectors_byte_for_byte(es2_sim: SimProcess, transport: str) -> None:
    client = ES2Client(es2_sim.endpoints[transport])
    try:
        for exchange in VECTORS["exchanges"]:
            client.write(exchange["request"].encode("ascii"))
            reply = client.read_reply(timeout=1.0)
            assert reply is not None, exchange
            if "reply" in exchange:
                assert reply == exchange["reply"].encode("ascii"), exchange
            else:
                assert re.fullmatch(exchange["reply_pattern"], reply.decode("ascii")), (
                    exchange,
                    reply,
                )
        before = client.request("ERR?")
        for dropped in VECTORS["dropped_silently"]:
            client.write(dropped["frame"].encode("ascii"))
            assert client.read_reply(timeout=0.2) is None, dropped
        after = client.request("ERR?")
    finally:
        client.close()
    frames = [d for d in VECTORS["dropped_silently"] if d["frame"].startswith("$")]
    assert int(after[1]) - int(before[1]) == len(frames) == 3  # bytes with no `$` are no frame
    assert after[2] == before[2]
