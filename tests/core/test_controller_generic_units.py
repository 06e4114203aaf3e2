"""A new unit needs only a profile: the console drives units described by generic profiles.

The US-1 simulator in its vendor-b register layout (other unit id, addresses, float words low
first, coded enums, all holding registers) is driven through `vendor-b-ultrasound.toml`, and
the CX-3 through `cx3-generic.toml`, by a controller process, with a real mosquitto.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sessionconsole.api.client import ControllerClient
from sessionconsole.api.messages import ConfigureCommand, StartCommand, StopAllCommand
from sessionconsole.model.paths import config_dir
from sessionconsole.testing import SimProcess
from sessionconsole.testing.cx3 import cx3_sim_for
from sessionconsole.testing.mqtt import Mosquitto
from tests.core.test_controller_three_units import SETUP, US
from tests.support import ControllerProcess, connected, entries, running, wait_for


@pytest.fixture
def sims(mosquitto_broker: Mosquitto) -> Iterator[tuple[SimProcess, SimProcess]]:
    vendor_b = SimProcess("us1", ["--layout", "vendor-b"]).start()
    cx3 = cx3_sim_for(mosquitto_broker).start()
    try:
        yield vendor_b, cx3
    finally:
        vendor_b.stop()
        cx3.stop()


@pytest.fixture
def controller(
    tmp_path: Path, mosquitto_broker: Mosquitto, sims: tuple[SimProcess, SimProcess]
) -> Iterator[ControllerProcess]:
    vendor_b, cx3 = sims
    profiles = config_dir() / "profiles"
    serial = str(cx3.endpoints["mqtt"]["root"]).split("/", 1)[1]
    vb = (profiles / "vendor-b-ultrasound.toml").read_text()
    (tmp_path / "vb.toml").write_text(vb.replace("port = 5030", f"port = {vendor_b.modbus_tcp[1]}"))
    gx = (profiles / "cx3-generic.toml").read_text()
    gx = gx.replace("port = 1883", f"port = {mosquitto_broker.port}")
    (tmp_path / "gx.toml").write_text(gx.replace('serial = "CX3-0001"', f'serial = "{serial}"'))
    room = tmp_path / "room.toml"
    room.write_text(
        'name = "Generic units"\n[devices.vb]\nprofile = "vb.toml"\n'
        '[devices.gx]\nprofile = "gx.toml"\n'
    )
    with running(ControllerProcess(room, tmp_path / "s.db", tmp_path / "api.sock")) as ctl:
        yield ctl


@pytest.fixture
async def client(controller: ControllerProcess) -> AsyncIterator[ControllerClient]:
    async with connected(controller.socket_path, client_name="t") as c:
        yield c


async def test_units_described_only_by_profiles_run_and_stop(
    client: ControllerClient, controller: ControllerProcess, sims: tuple[SimProcess, SimProcess]
) -> None:
    vendor_b, cx3 = sims
    for output, settings in (("vb", US), ("gx.us", US), ("gx.stim", SETUP)):
        reply = await client.send(ConfigureCommand(device=output, settings=settings))
        assert reply.ok, (output, reply.error)
    await wait_for(lambda: client.latest and all(d.settings for d in client.latest.devices))
    for output in ("vb", "gx.us", "gx.stim"):
        assert (await client.send(StartCommand(device=output))).ok

    def on() -> tuple[bool, bool, bool]:
        vb_state, gx_state = vendor_b.request({"op": "state"}), cx3.request({"op": "state"})
        return (
            bool(vb_state["physics"]["output_active"]),
            bool(gx_state["us"]["output_active"]),
            bool(gx_state["stim"]["output_active"]),
        )

    await wait_for(lambda: all(on()), 5)
    snap = await wait_for(
        lambda: (
            client.latest and all(d.output_active for d in client.latest.devices) and client.latest
        ),
        5,
    )
    vb = next(d for d in snap.devices if d.device == "vb")
    assert vb.model == vb.name == "Vendor B ultrasound"  # named by its profile
    assert vb.intensity_setpoint_w_cm2 == 1.0  # read back from the f32 register, low word first
    assert (await client.send(StopAllCommand())).ok
    await wait_for(lambda: not any(on()), 3)
    stops = {e.payload["device"] for e in entries(controller.db) if e.kind == "stop_sent"}
    assert stops >= {"vb", "gx.us", "gx.stim"}
