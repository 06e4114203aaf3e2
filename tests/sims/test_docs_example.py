"""Example tests against the simulators: a US-1 fault over Modbus TCP, a CX-3 reply over MQTT."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
from pymodbus.client import AsyncModbusTcpClient

from sessionconsole.testing import SimProcess
from sessionconsole.testing.mqtt import Mosquitto


async def test_us1_overtemp_latches_a_fault(us1_sim: SimProcess) -> None:
    host, port = us1_sim.modbus_tcp
    client = AsyncModbusTcpClient(host, port=port)
    await client.connect()
    # Registers 0-4 in one all-or-nothing write (1 MHz, 1.0 W/cm², 100 %, 100 Hz, 60 s),
    # then START in a write of its own.
    await client.write_registers(0, [1000, 100, 100, 100, 60], device_id=1)
    await client.write_register(7, 1, device_id=1)
    assert us1_sim.request({"op": "inject", "fault": "overtemp"})["ok"]
    for _ in range(60):  # the head passes 41 °C within 2 s
        await client.write_register(6, 1, device_id=1)  # heartbeat
        state = (await client.read_input_registers(0, count=16, device_id=1)).registers
        if state[0] == 4:  # FAULT
            break
        await asyncio.sleep(0.05)
    assert state[0] == 4 and state[6] == 1  # FAULT, OVERTEMP
    client.close()


async def test_cx3_answers_a_bad_command_with_syntax(
    cx3_sim: SimProcess, mosquitto_broker: Mosquitto
) -> None:
    root = cx3_sim.endpoints["mqtt"]["root"]
    async with aiomqtt.Client("127.0.0.1", port=mosquitto_broker.port) as mqtt:
        await mqtt.subscribe(f"{root}/reply", qos=1)
        await mqtt.publish(f"{root}/cmd", b"{not json", qos=1)
        async for message in mqtt.messages:
            reply = json.loads(bytes(message.payload))  # type: ignore[arg-type]
            assert reply["ok"] is False and reply["error"] == "SYNTAX" and reply["id"] is None
            break
