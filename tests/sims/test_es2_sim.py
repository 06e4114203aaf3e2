"""ES-2 simulator conformance, from the ICD's tables: pure model (injected time) and the process.

Process tests talk to a real simulator over both of its transports (the pty and the
`socket://` URL, through the parametrized `client` fixture) with the blocking client in
`es2_client`; time limits leave room for a loaded 2-core CI machine.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from device_sims.es2.channel import ChannelState, Config
from device_sims.es2.commands import respond
from device_sims.es2.frames import FrameReader, crc_text, encode, format_number
from device_sims.es2.model import ES2Model
from sessionconsole.testing import SimProcess
from tests.sims.es2_client import ES2Client, frame, parse

SYM_RAMP0 = "CFG,{ch},SYM,100,200,0,0,0"
STAT = re.compile(r"STAT,[12],(IDLE|RAMP|ON|OFFPHASE|FAULT),\d+(\.\d)?,\d+(\.\d)?,\d+,[0-9A-F]{2}")


# ---- pure model, injected time ----------------------------------------------------------
def drive(model: ES2Model, t0: float, seconds: float, hb: bool = True) -> float:
    """Advance 50 Hz from t0 for `seconds`, with a heartbeat every 100 ms."""
    t = t0
    for i in range(round(seconds * 50)):
        t = t0 + (i + 1) * 0.02
        if hb and i % 5 == 0:
            model.heartbeat(t)
        model.advance(t)
    return t


def started(ma: float, ramp_s: float, on_s: float = 0, off_s: float = 0) -> ES2Model:
    """A model at t=0 with channel 1 configured, target `ma`, and RUN."""
    model = ES2Model(now=0.0)
    assert model.take_outbox() == [["EVT", "BOOT"]]
    assert model.configure(1, Config("SYM", 100, 200, on_s, off_s, ramp_s)) is None
    model.amplitude(1, ma)
    assert model.run(1, 0.0) is None
    return model


def test_model_run_ramps_from_zero_over_ramp_s() -> None:
    model = started(20.0, ramp_s=2.0)
    assert model.state_of(1) == ChannelState.RAMP
    t = drive(model, 0.0, 1.0)
    assert model.channels[1].output_ma == pytest.approx(10.0, abs=0.15)
    drive(model, t, 1.02)
    assert (model.state_of(1), model.channels[1].output_ma) == (ChannelState.ON, 20.0)


def test_model_amp_while_running_slews_at_5_ma_per_s_never_jumps() -> None:
    model = started(10.0, ramp_s=0.0)
    assert (model.state_of(1), model.channels[1].output_ma) == (ChannelState.ON, 10.0)
    model.amplitude(1, 30.0)
    t, previous = 0.0, 10.0
    for _ in range(200):  # 4 s
        t = drive(model, t, 0.02)
        output = model.channels[1].output_ma
        assert output - previous <= 5.0 * 0.02 + 1e-9
        previous = output
        if t == pytest.approx(1.0):
            assert output == pytest.approx(15.0, abs=0.01)
    assert model.channels[1].output_ma == pytest.approx(30.0)
    model.amplitude(1, 0.0)
    drive(model, t, 1.0)
    assert model.channels[1].output_ma == pytest.approx(25.0, abs=0.01)


def test_model_amp_follows_ramp_s_rate_when_slower_than_5_ma_per_s() -> None:
    model = started(10.0, ramp_s=10.0)
    t = drive(model, 0.0, 10.02)
    assert model.state_of(1) == ChannelState.ON
    model.amplitude(1, 20.0)  # change 10 mA over ramp_s 10 s = 1 mA/s < 5 mA/s
    drive(model, t, 5.0)
    assert model.channels[1].output_ma == pytest.approx(15.0, abs=0.05)


def test_model_on_off_cycle_has_offphase_and_restarts_ramp() -> None:
    model = started(10.0, ramp_s=1.0, on_s=2.0, off_s=1.0)
    t = drive(model, 0.0, 0.5)
    assert model.state_of(1) == ChannelState.RAMP
    t = drive(model, t, 1.0)
    assert model.state_of(1) == ChannelState.ON
    t = drive(model, t, 1.0)
    assert (model.state_of(1), model.channels[1].output_ma, model.measured[1]) == (
        ChannelState.OFFPHASE,
        0.0,
        0.0,
    )
    drive(model, t, 0.6)
    assert model.state_of(1) == ChannelState.RAMP
    assert 0.0 < model.channels[1].output_ma < 2.0


def test_model_watchdog_fires_at_timeout_only_while_running() -> None:
    idle = ES2Model(now=0.0)
    idle.take_outbox()
    drive(idle, 0.0, 5.0, hb=False)
    assert idle.take_outbox() == []
    model = started(10.0, ramp_s=0.0)
    model.set_watchdog(300)
    model.advance(0.29)
    assert model.running and model.take_outbox() == []
    model.advance(0.30)
    assert model.take_outbox() == [["EVT", "WATCHDOG"]]
    assert [model.channel_fields(ch)[5] for ch in (1, 2)] == ["01", "01"]
    assert model.state_of(1) == ChannelState.FAULT


def test_model_watchdog_counts_offphase_as_running() -> None:
    model = started(10.0, ramp_s=0.0, on_s=0.2, off_s=5.0)
    model.advance(0.3)
    assert model.state_of(1) == ChannelState.OFFPHASE and model.take_outbox() == []
    model.advance(0.5)
    assert model.take_outbox() == [["EVT", "WATCHDOG"]]
    assert model.state_of(1) == ChannelState.FAULT


def test_model_heartbeat_feeds_watchdog() -> None:
    model = started(10.0, ramp_s=0.0)
    drive(model, 0.0, 3.0)
    assert model.running and model.take_outbox() == []


def test_model_stop_keeps_config_and_target_next_run_from_zero() -> None:
    model = started(20.0, ramp_s=2.0)
    t = drive(model, 0.0, 3.0)
    model.stop([1])
    assert (model.state_of(1), model.channels[1].output_ma) == (ChannelState.IDLE, 0.0)
    assert model.channel_fields(1)[2] == "20"
    assert model.run(1, t) is None
    drive(model, t, 0.2)
    assert model.channels[1].output_ma == pytest.approx(2.0, abs=0.15)


def test_frames_crc_number_format_and_reader() -> None:
    assert crc_text(b"123456789") == "29B1"
    assert encode(3, ["ACK"]) == b"$3,ACK*00E1\r\n"
    assert [format_number(x) for x in (12.5, 12.0, 0.0, -0.0, 0.04, 99.96)] == [
        "12.5",
        "12",
        "0",
        "0",
        "0",
        "100",
    ]
    reader = FrameReader()
    good = frame(1, "HB")
    assert reader.feed(b"noise" + good[:5] + good) == ([b"1,HB"], 1)  # cut frame dropped
    exact = frame(2, "X" * 118)
    assert len(exact) == 128 and reader.feed(exact)[0] == [b"2," + b"X" * 118]
    assert reader.feed(frame(3, "X" * 119)) == ([], 1)
    assert reader.feed(good.lower()) == ([], 1)  # lower-case CRC is not the CRC


def test_respond_repeat_memory_and_stop_always_executed() -> None:
    model = ES2Model(now=0.0)
    assert respond(model, b"5,CFG,1,SYM,100,200,0,0,0", 0.0) == (5, ["ACK"])
    assert respond(model, b"6,RUN,1", 0.0) == (6, ["ACK"])
    assert respond(model, b"6,RUN,1", 0.01) == (6, ["ACK"])  # from memory
    assert respond(model, b"7,RUN,1", 0.02) == (7, ["NAK", "STATE"])  # executed: running
    assert (model.executed, model.repeats) == (3, 1)
    assert respond(model, b"8,STOP,1", 0.03) == (8, ["ACK"])
    assert respond(model, b"8,STOP,1", 0.04) == (8, ["ACK"])
    assert (model.executed, model.repeats) == (5, 1)
    assert respond(model, b"0,ID?", 0.05) == (0, ["NAK", "SYNTAX"])
    assert respond(model, b"65536,ID?", 0.05) == (0, ["NAK", "SYNTAX"])
    assert respond(model, b"9,ID\xff", 0.05) == (9, ["NAK", "SYNTAX"])
    assert respond(model, b"10,ID?,", 0.05) == (10, ["NAK", "SYNTAX"])
    assert model.syntax == 4


# ---- the simulator process --------------------------------------------------------------
@pytest.fixture(params=["serial_pty", "serial_url"])
def client(es2_sim: SimProcess, request: pytest.FixtureRequest) -> Iterator[ES2Client]:
    """A client on the simulator's pty or on its TCP socket: every process test runs on both."""
    c = ES2Client(es2_sim.endpoints[request.param])
    try:
        yield c
    finally:
        c.close()


def run_channel(client: ES2Client, ch: int = 1, ma: str = "10", cfg: str = SYM_RAMP0) -> None:
    """Configure, set the amplitude and RUN a channel."""
    assert client.request(cfg.format(ch=ch)) == ["ACK"]
    assert client.request(f"AMP,{ch},{ma}") == ["ACK"]
    assert client.request(f"RUN,{ch}") == ["ACK"]


def stat(client: ES2Client, ch: int) -> list[str]:
    """STAT? fields after the verb: ch, state, target, meas, impedance, faults."""
    fields = client.request(f"STAT?,{ch}")
    assert STAT.fullmatch(",".join(fields)), fields
    return fields[1:]


def state(sim: SimProcess) -> dict[str, object]:
    """The test port's state reply."""
    reply = sim.request({"op": "state"})
    assert reply["ok"] is True
    return reply


def test_ready_line_and_boot_state(es2_sim: SimProcess, client: ES2Client) -> None:
    assert es2_sim.ready["model"] == "ES-2"
    assert es2_sim.ready["units"][0]["endpoints"] == es2_sim.endpoints
    assert os.path.exists(es2_sim.endpoints["serial_pty"])
    assert es2_sim.endpoints["serial_url"].startswith("socket://127.0.0.1:")
    ident = client.request("ID?")
    assert ident[:2] == ["ID", "ES-2"] and ident[4] == "2" and len(ident) == 5
    for ch in (1, 2):
        assert stat(client, ch)[1:3] == ["IDLE", "0"]
        assert stat(client, ch)[5] == "00"
        assert client.request(f"RUN,{ch}") == ["NAK", "NOCFG"]
    s = state(es2_sim)
    assert (s["stream_hz"], s["watchdog"]) == (
        0,
        {
            "timeout_ms": 500,
            "armed": False,
            "since_feed_ms": None,
            "last_feed_t_ms": None,
            "trip_t_ms": None,
        },
    )
    assert client.request("ERR?") == ["ERR", "0", "0"]


def test_cfg_ranges_modes_and_syntax(client: ES2Client) -> None:
    for mode in ("SYM", "ASYM", "RUSS", "IFC", "HVPC"):
        assert client.request(f"CFG,1,{mode},1,5,0,0,0") == ["ACK"]
        assert client.request(f"CFG,2,{mode},250,400,60,60,10") == ["ACK"]
    for bad in ("3,SYM,100,200,0,0,0", "0,SYM,100,200,0,0,0", "1,sym,100,200,0,0,0",
                "1,SYM,0,200,0,0,0", "1,SYM,251,200,0,0,0", "1,SYM,100,4,0,0,0",
                "1,SYM,100,401,0,0,0", "1,SYM,100,200,61,0,0", "1,SYM,100,200,0,-1,0",
                "1,SYM,100,200,0,0,11"):  # fmt: skip
        assert client.request(f"CFG,{bad}") == ["NAK", "RANGE"], bad
    for bad in ("1,SYM,100,200,0,0", "1,SYM,100,200,0,0,0,0", "1,SYM,1e2,200,0,0,0",
                "1,SYM,100,200,0,0,", "x,SYM,100,200,0,0,0", "1,SYM,+5,200,0,0,0"):  # fmt: skip
        assert client.request(f"CFG,{bad}") == ["NAK", "SYNTAX"], bad


def test_amp_multiples_of_half_ma_within_0_to_100(client: ES2Client) -> None:
    for good in ("0", "0.5", "12.5", "100", "100.0"):
        assert client.request(f"AMP,2,{good}") == ["ACK"], good
    for bad in ("100.5", "12.3", "-0.5", "0.25"):
        assert client.request(f"AMP,1,{bad}") == ["NAK", "RANGE"], bad
    assert client.request("AMP,3,10") == ["NAK", "RANGE"]
    assert client.request("AMP,1,ten") == ["NAK", "SYNTAX"]
    assert client.request("AMP,1") == ["NAK", "SYNTAX"]
    assert stat(client, 2)[2] == "100"


def test_run_stop_rst_hb_wdg_stream_err_and_unknown(client: ES2Client) -> None:
    assert client.request("RUN,3") == ["NAK", "RANGE"]
    run_channel(client, ch=2, ma="12.5")
    assert client.request("RUN,2") == ["NAK", "STATE"]  # a new request while running
    assert client.request("CFG,2,SYM,100,200,0,0,0") == ["NAK", "STATE"]
    assert client.request("RST,2") == ["NAK", "STATE"]
    assert client.request("HB") == ["ACK"]
    assert client.request("HB,1") == ["NAK", "SYNTAX"]
    assert stat(client, 2)[1:3] == ["ON", "12.5"]
    assert client.request("STOP,2") == ["ACK"]
    assert stat(client, 2)[1:4] == ["IDLE", "12.5", "0"]  # target kept, output off
    for ch in ("0", "1", "2"):
        assert client.request(f"STOP,{ch}") == ["ACK"]  # in every state
    assert client.request("RST,2") == ["ACK"]
    assert client.request("RST,0") == ["NAK", "RANGE"]
    for ms, reply in (("99", "NAK"), ("100", "ACK"), ("2000", "ACK"), ("2001", "NAK")):
        assert client.request(f"WDG,{ms}")[0] == reply, ms
    for hz, reply in (("0", "ACK"), ("1", "ACK"), ("50", "ACK"), ("51", "NAK"), ("-1", "NAK")):
        assert client.request(f"STREAM,{hz}")[0] == reply, hz
    assert client.request("STREAM,0") == ["ACK"]
    assert client.request("STAT?,0") == ["NAK", "RANGE"]
    assert client.request("FROB") == ["NAK", "UNKNOWN"]
    assert client.request("id?") == ["NAK", "UNKNOWN"]
    assert client.request("ERR?") == ["ERR", "0", "1"]


def test_stop_with_bad_channel_still_stops_everything(client: ES2Client) -> None:
    run_channel(client, ch=1)
    assert client.request("STOP,7") == ["NAK", "RANGE"]
    assert stat(client, 1)[1] == "IDLE"


def test_repeats_answered_from_memory_stop_always_executed(
    es2_sim: SimProcess, client: ES2Client
) -> None:
    run_channel(client, ch=1)
    assert client.request("HB", seq=40) == ["ACK"]
    assert client.request("RUN,1", seq=41) == ["NAK", "STATE"]
    assert client.request("RUN,1", seq=41) == ["NAK", "STATE"]
    assert client.request("STOP,1", seq=42) == ["ACK"]
    assert client.request("RUN,1", seq=43) == ["ACK"]
    assert client.request("RUN,1", seq=43) == ["ACK"]  # not executed: it would be NAK,STATE
    assert client.request("RUN,2", seq=43) == ["NAK", "NOCFG"]  # same seq, new body: executed
    counters = state(es2_sim)["counters"]
    assert isinstance(counters, dict)
    executed, repeats = counters["executed"], counters["repeats"]
    assert client.request("STOP,0", seq=44) == ["ACK"]
    assert client.request("STOP,0", seq=44) == ["ACK"]
    counters = state(es2_sim)["counters"]
    assert isinstance(counters, dict)
    assert (counters["executed"], counters["repeats"]) == (executed + 2, repeats)


def test_syntax_bad_seq_and_garbage_resync(client: ES2Client) -> None:
    client.write(b"\x00\xffgarbage*,,\r\n" + frame(7, "ID?"))
    assert parse(client.read_reply() or b"")[0] == 7
    client.write(frame(8, "ID?")[:6] + frame(9, "HB"))  # a `$` restarts framing
    assert parse(client.read_reply() or b"") == (9, ["ACK"])
    client.write(frame("x1", "ID?") + frame(70000, "ID?"))
    for _ in range(2):
        line = client.read_line(1.0)
        assert line is not None and parse(line) == (0, ["NAK", "SYNTAX"])
    client.write(frame(10, "HB").replace(b"HB", b"HB,"))  # CRC now wrong: dropped
    assert client.read_reply(0.2) is None
    assert client.request("ERR?") == ["ERR", "2", "2"]


def test_frame_of_128_bytes_accepted_129_dropped(client: ES2Client) -> None:
    exact = frame(12, "X" * 117)
    assert len(exact) == 128
    client.write(exact)
    assert parse(client.read_reply() or b"") == (12, ["NAK", "UNKNOWN"])
    long = frame(13, "X" * 118)
    assert len(long) == 129
    client.write(long)
    assert client.read_reply(0.2) is None
    no_cr = frame(14, "HB")[:-2] + b"\n"
    client.write(no_cr)
    assert client.read_reply(0.2) is None
    assert client.request("ERR?") == ["ERR", "2", "0"]


WATCHDOG_SLACK_MS = 250  # ICD (issue 3): never before the timeout, always within + 250 ms
FLOAT_MS = 1e-3  # two float clock readings in ms: representation, not behaviour


def assert_device_interval(sim: SimProcess, timeout_ms: int, armed_ms: float) -> None:
    """The device's own times: the HB fed it after RUN armed it, and trip - feed in bounds."""
    watchdog = state(sim)["watchdog"]
    assert isinstance(watchdog, dict)
    fed, tripped = watchdog["last_feed_t_ms"], watchdog["trip_t_ms"]
    assert fed > armed_ms, (fed, armed_ms)  # the HB fed it (not just RUN's arming)
    interval = tripped - fed
    assert timeout_ms - FLOAT_MS <= interval <= timeout_ms + WATCHDOG_SLACK_MS, interval


@pytest.mark.parametrize("timeout_ms", [100, 300, 2000])  # ICD: WDG 100-2000 ms
def test_watchdog_fires_between_timeout_and_timeout_plus_250_ms(
    es2_sim: SimProcess, client: ES2Client, timeout_ms: int
) -> None:
    assert client.request(f"WDG,{timeout_ms}") == ["ACK"]
    assert client.request("CFG,2,SYM,100,200,0,0,0") == ["ACK"]
    run_channel(client, ch=1)
    armed = state(es2_sim)["watchdog"]
    assert isinstance(armed, dict) and armed["trip_t_ms"] is None
    t_send = time.monotonic()
    client.write(frame(900, "HB"))
    assert parse(client.read_reply() or b"") == (900, ["ACK"])
    assert not [f for _, f in client.unsolicited if f[:2] == ["EVT", "WATCHDOG"]]
    t_event = client.wait_event("EVT", "WATCHDOG", timeout=timeout_ms / 1000 + 1.5)
    # Seen by the client: within timeout + 250 ms of the last HB leaving it.
    assert t_event - t_send <= (timeout_ms + WATCHDOG_SLACK_MS) / 1000, t_event - t_send
    # The device's own clock: never before the timeout after the HB it took.
    assert_device_interval(es2_sim, timeout_ms, armed["last_feed_t_ms"])
    assert [stat(client, ch)[1::4] for ch in (1, 2)] == [["FAULT", "01"], ["FAULT", "01"]]
    assert client.request("RUN,1") == ["NAK", "FAULT"]
    assert client.request("RST,1") == ["ACK"]
    assert stat(client, 1)[1::4] == ["IDLE", "00"]


def test_heartbeat_every_100_ms_keeps_running(client: ES2Client) -> None:
    assert client.request("WDG,300") == ["ACK"]
    run_channel(client, ch=1)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        assert client.request("HB") == ["ACK"]
        time.sleep(0.1)
    assert stat(client, 1)[1::4] == ["ON", "00"]
    assert not [f for _, f in client.unsolicited if f[0] == "EVT"]


def test_stream_rate_and_tel_format(client: ES2Client) -> None:
    assert client.request("STREAM,20") == ["ACK"]
    client.unsolicited.clear()
    t0 = time.monotonic()
    while (line := client.read_line(0.1)) is not None or time.monotonic() - t0 < 1.0:
        if line is not None:
            client.unsolicited.append((time.monotonic(), parse(line)[1]))
        if time.monotonic() - t0 >= 1.0:
            break
    assert client.request("STREAM,0") == ["ACK"]
    tel = [f for _, f in client.unsolicited if f[0] == "TEL"]
    for fields in tel:
        assert re.fullmatch(r"TEL,[12],IDLE,0,\d+,00", ",".join(fields)), fields
    per_channel = [sum(1 for f in tel if f[1] == ch) for ch in "12"]
    assert all(15 <= n <= 23 for n in per_channel), per_channel
    client.unsolicited.clear()
    assert client.read_reply(0.3) is None and client.unsolicited == []


def test_patient_stop_stops_both_and_latches_02(es2_sim: SimProcess, client: ES2Client) -> None:
    run_channel(client, ch=1)
    run_channel(client, ch=2)
    assert es2_sim.request({"op": "inject", "fault": "patient_stop"}) == {"ok": True}
    client.wait_event("EVT", "PSTOP")
    for ch in (1, 2):
        assert stat(client, ch)[1:3] + stat(client, ch)[5:] == ["FAULT", "10", "02"]
        assert client.request(f"RUN,{ch}") == ["NAK", "FAULT"]
    time.sleep(0.3)  # the hand switch is momentary
    assert client.request("RST,1") == ["ACK"]
    assert client.request("RST,2") == ["ACK"]
    assert client.request("RUN,1") == ["ACK"]


def test_electrode_off_latches_04_until_cleared_and_reset(
    es2_sim: SimProcess, client: ES2Client
) -> None:
    run_channel(client, ch=2)
    assert es2_sim.request({"op": "inject", "fault": "electrode_off", "ch": 2}) == {"ok": True}
    client.wait_event("EVT", "ELECTRODE", "2")
    fields = stat(client, 2)
    assert (fields[1], fields[3], fields[5]) == ("FAULT", "0", "04") and int(fields[4]) > 10_000
    assert stat(client, 1)[5] == "00"
    assert client.request("RST,2") == ["NAK", "STATE"]
    assert es2_sim.request({"op": "clear"}) == {"ok": True}
    assert client.request("RST,2") == ["ACK"]
    assert stat(client, 2)[1::4] == ["IDLE", "00"]


def test_overcurrent_stops_channel_with_08(es2_sim: SimProcess, client: ES2Client) -> None:
    run_channel(client, ch=1, ma="20")
    assert es2_sim.request({"op": "inject", "fault": "overcurrent", "ch": 1}) == {"ok": True}
    client.wait_event("EVT", "OVERCURRENT", "1")
    assert stat(client, 1)[1::4] == ["FAULT", "08"]
    assert client.request("RST,1") == ["ACK"]


def test_measured_current_within_5_percent_and_impedance_in_range(client: ES2Client) -> None:
    run_channel(client, ch=1, ma="20")
    for _ in range(8):
        time.sleep(0.05)
        assert client.request("HB") == ["ACK"]
        fields = stat(client, 1)
        assert 19.0 <= float(fields[3]) <= 21.0 and 500 <= int(fields[4]) <= 2000


def test_on_off_cycle_reports_offphase(client: ES2Client) -> None:
    run_channel(client, ch=1, cfg="CFG,{ch},SYM,100,200,1,1,0")
    seen: list[tuple[str, str]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.4:
        assert client.request("HB") == ["ACK"]
        fields = stat(client, 1)
        seen.append((fields[1], fields[3]))
        time.sleep(0.1)
    states = [s for s, _ in seen]
    first_off = states.index("OFFPHASE")
    assert set(states[:first_off]) == {"ON"} and "ON" in states[first_off:]
    assert all(meas == "0" for s, meas in seen if s == "OFFPHASE")


def test_reboot_sends_boot_and_forgets_everything(es2_sim: SimProcess, client: ES2Client) -> None:
    assert client.request("WDG,1000") == ["ACK"]
    assert client.request("STREAM,5") == ["ACK"]
    run_channel(client, ch=1)
    assert client.request("RUN,1", seq=77) == ["NAK", "STATE"]
    assert es2_sim.request({"op": "reboot"}) == {"ok": True, "boot_counter": 2}
    client.wait_event("EVT", "BOOT")
    assert stat(client, 1)[1:4] == ["IDLE", "0", "0"]
    assert client.request("RUN,1") == ["NAK", "NOCFG"]
    s = state(es2_sim)
    assert (s["stream_hz"], s["watchdog"]["timeout_ms"]) == (0, 500)  # type: ignore[index]
    assert client.request("ERR?") == ["ERR", "0", "0"]
    assert client.request("RUN,1", seq=77) == ["NAK", "NOCFG"]  # memory cleared: executed


def test_link_drop_is_silence_and_ok_restores(es2_sim: SimProcess, client: ES2Client) -> None:
    assert es2_sim.request({"op": "link", "mode": "drop"}) == {"ok": True}
    client.write(frame(50, "CFG,1,SYM,100,200,0,0,0"))
    assert client.read_line(0.3) is None
    assert es2_sim.request({"op": "link", "mode": "ok"}) == {"ok": True}
    assert client.request("RUN,1") == ["NAK", "NOCFG"]  # the dropped CFG never arrived


def test_link_delay_and_corrupt(es2_sim: SimProcess, client: ES2Client) -> None:
    assert es2_sim.request({"op": "link", "mode": "delay", "ms": 150})["ok"]
    t0 = time.monotonic()
    assert client.request("HB") == ["ACK"]
    assert time.monotonic() - t0 >= 0.15
    assert es2_sim.request({"op": "link", "mode": "corrupt", "rate": 1.0})["ok"]
    client.write(frame(60, "HB"))
    line = client.read_line(1.0)
    assert line is not None
    with pytest.raises(AssertionError, match="bad CRC"):
        parse(line)
    assert es2_sim.request({"op": "clear"})["ok"]
    assert client.request("HB") == ["ACK"]


def test_pty_survives_client_close_and_tcp_newest_client_wins(es2_sim: SimProcess) -> None:
    for _ in range(2):
        c = ES2Client(es2_sim.endpoints["serial_pty"])
        assert c.request("HB") == ["ACK"]
        c.close()
    first = ES2Client(es2_sim.endpoints["serial_url"])
    second = ES2Client(es2_sim.endpoints["serial_url"])
    try:
        assert second.request("ID?")[1] == "ES-2"
        with pytest.raises((serial.SerialException, OSError)):  # the device closed it
            first.write(frame(70, "HB"))
            first.read_line(0.5)
        assert second.request("HB") == ["ACK"]
    finally:
        first.close()
        second.close()


def test_test_port_errors_and_state_schema(es2_sim: SimProcess) -> None:
    for request, text in (
        ({"op": "teleport"}, "unknown op"),
        ({"op": "inject", "fault": "overtemp"}, "unknown fault"),
        ({"op": "inject", "fault": "electrode_off"}, "'ch'"),
        ({"op": "set", "impedance_ohm": "low", "ch": 1}, "impedance_ohm"),
        ({"op": "set", "coupling_pct": 20}, "impedance_ohm"),
        ({"op": "link", "mode": "sideways"}, "unknown link mode"),
        ({"op": "state", "unit": 1}, "unknown unit"),
    ):
        reply = es2_sim.request(request)
        assert reply["ok"] is False and text in reply["error"], (request, reply)
    assert es2_sim.request({"op": "set", "impedance_ohm": 1500, "ch": 2}) == {"ok": True}
    s = state(es2_sim)
    keys = {"channels", "watchdog", "stream_hz", "counters", "last_request", "link", "injected"}
    assert keys <= s.keys()
    channels = s["channels"]
    assert isinstance(channels, list) and [c["ch"] for c in channels] == [1, 2]
    assert channels[1]["impedance_ohm"] == 1500.0 and channels[1]["faults_hex"] == "00"
    assert es2_sim.request({"op": "set", "impedance_ohm": None, "ch": 2}) == {"ok": True}


def test_fault_schedule_and_sigterm(tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text('[[at]]\nt_s = 0.1\nrequest = {op = "inject", fault = "patient_stop"}\n')
    sim = SimProcess("es2", ["--tcp", "127.0.0.1:0", "--faults", str(faults)]).start()
    try:
        assert "serial_pty" not in sim.endpoints
        deadline = time.monotonic() + 2.0
        while sim.request({"op": "state"})["channels"][0]["faults"] != 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert sim.proc is not None
        t0 = time.monotonic()
        sim.proc.send_signal(signal.SIGTERM)
        assert sim.proc.wait(timeout=1.0) == 0
        assert time.monotonic() - t0 < 1.0
    finally:
        sim.stop()


def test_ignore_stop_keeps_output_visible_in_telemetry(
    es2_sim: SimProcess, client: ES2Client
) -> None:
    run_channel(client, ch=1, ma="20")
    assert es2_sim.request({"op": "inject", "fault": "ignore_stop"}) == {"ok": True}
    assert client.request("STOP,1") == ["ACK"]
    time.sleep(0.1)
    fields = stat(client, 1)
    assert fields[1] == "IDLE" and float(fields[3]) > 15.0  # a stuck relay: current still flows
    assert es2_sim.request({"op": "clear"}) == {"ok": True}
    time.sleep(0.1)
    assert stat(client, 1)[3] == "0"


def test_count_runs_independent_units() -> None:
    with SimProcess("es2", ["--tcp", "127.0.0.1:0", "--count", "2"]) as sim:
        units = sim.ready["units"]
        assert len(units) == 2 and units[0]["endpoints"] != units[1]["endpoints"]
        clients = [ES2Client(u["endpoints"]["serial_url"]) for u in units]
        try:
            serials = {c.request("ID?")[2] for c in clients}
            assert len(serials) == 2
            assert clients[1].request("WDG,1000") == ["ACK"]
            assert sim.request({"op": "state", "unit": 1})["watchdog"]["timeout_ms"] == 1000
            assert sim.request({"op": "state", "unit": 0})["watchdog"]["timeout_ms"] == 500
        finally:
            for c in clients:
                c.close()


# ---- ICD rows added after the audit: watchdog feeding, ramps, telemetry content -----------
def test_only_hb_feeds_the_watchdog(es2_sim: SimProcess, client: ES2Client) -> None:
    # ICD: `HB` is "the only frame that feeds the watchdog"; EVT,WATCHDOG once the timeout
    # passes without one while a channel runs.
    assert client.request("WDG,300") == ["ACK"]
    run_channel(client, ch=1)
    armed = state(es2_sim)["watchdog"]
    assert isinstance(armed, dict)
    t_send = time.monotonic()
    client.write(frame(901, "HB"))
    assert parse(client.read_reply() or b"") == (901, ["ACK"])
    t_ack = time.monotonic()
    client.unsolicited.clear()
    other = ("STAT?,1", "ID?", "ERR?", "STAT?,2")
    index = 0
    while not any(f[:2] == ["EVT", "WATCHDOG"] for _, f in client.unsolicited):
        assert time.monotonic() - t_ack < 1.5, "no EVT,WATCHDOG although only non-HB frames"
        assert client.request(other[index % len(other)])[0] in ("STAT", "ID", "ERR")
        index += 1
        time.sleep(0.02)
    t_event = next(t for t, f in client.unsolicited if f[:2] == ["EVT", "WATCHDOG"])
    assert index >= 5  # several non-HB frames went in inside the window
    assert t_event - t_send >= 0.300, "watchdog fired before its timeout"
    assert t_event - t_send <= 0.300 + 0.250, t_event - t_send
    assert_device_interval(es2_sim, 300, armed["last_feed_t_ms"])
    assert stat(client, 1)[1::4] == ["FAULT", "01"]


def sample_meas(client: ES2Client, ch: int, seconds: float) -> list[tuple[float, float, str, str]]:
    """STAT? every ~50 ms for `seconds` (with HB): (sent, received, state, meas) per sample."""
    samples = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        assert client.request("HB") == ["ACK"]
        sent = time.monotonic()
        fields = stat(client, ch)
        samples.append((sent, time.monotonic(), fields[1], fields[3]))
        time.sleep(0.05)
    return samples


def test_run_ramps_from_zero_to_target_over_ramp_s(client: ES2Client) -> None:
    # ICD: RUN — "amplitude rises from 0 to the target over ramp_s"; state RAMP, then ON.
    assert client.request("CFG,1,SYM,100,200,0,0,2") == ["ACK"]
    assert client.request("AMP,1,20") == ["ACK"]
    t_sent = time.monotonic()
    assert client.request("RUN,1") == ["ACK"]
    t_ack = time.monotonic()
    samples = sample_meas(client, 1, 2.8)
    for sent, received, state_, meas in samples:
        value = float(meas)
        upper = 20.0 * min(1.0, (received - t_sent) / 2.0) * 1.05 + 0.5
        lower = 20.0 * min(1.0, (sent - t_ack - 0.3) / 2.0) * 0.95 - 1.0
        assert lower <= value <= upper, (sent - t_ack, value)
        if received - t_sent < 1.8:
            assert state_ == "RAMP", (received - t_sent, state_)
    assert samples[0][3] != "20"  # never a jump to the target
    assert samples[-1][2] == "ON" and 19.0 <= float(samples[-1][3]) <= 21.0


def test_amp_while_running_moves_at_most_5_ma_per_s(client: ES2Client) -> None:
    # ICD: AMP while running — the output moves at the slower of 5 mA/s and ramp_s's rate
    # (ramp_s 0 here, so 5 mA/s), never in one jump.
    run_channel(client, ch=1, ma="10")
    time.sleep(0.1)
    assert 9.5 <= float(stat(client, 1)[3]) <= 10.5
    t_sent = time.monotonic()
    assert client.request("AMP,1,20") == ["ACK"]
    t_ack = time.monotonic()
    assert stat(client, 1)[2] == "20"  # the target is the new value at once
    samples = sample_meas(client, 1, 2.6)
    for sent, received, state_, meas in samples:
        value = float(meas)
        upper = min(20.0, 10.0 + 5.0 * (received - t_sent)) * 1.05 + 0.5
        lower = min(20.0, 10.0 + 5.0 * (sent - t_ack - 0.3)) * 0.95 - 1.0
        assert lower <= value <= upper, (sent - t_ack, value)
        assert state_ in ("RAMP", "ON")
    assert float(samples[0][3]) < 12.0  # no jump
    assert 19.0 <= float(samples[-1][3]) <= 21.0


def test_tel_while_running_reports_ramp_or_on_and_current(client: ES2Client) -> None:
    # ICD: TEL,<ch>,<state>,<meas_ma>,<impedance_ohm>,<faults> at the STREAM rate, per channel.
    assert client.request("CFG,1,SYM,100,200,0,0,1") == ["ACK"]
    assert client.request("AMP,1,20") == ["ACK"]
    assert client.request("STREAM,10") == ["ACK"]
    assert client.request("RUN,1") == ["ACK"]
    client.unsolicited.clear()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.8:
        assert client.request("HB") == ["ACK"]
        time.sleep(0.1)
    assert client.request("STREAM,0") == ["ACK"]
    tel = [f for _, f in client.unsolicited if f[0] == "TEL"]
    ch1 = [f for f in tel if f[1] == "1"]
    ch2 = [f for f in tel if f[1] == "2"]
    assert len(ch1) >= 10 and len(ch2) >= 10, (len(ch1), len(ch2))
    for fields in ch1:
        assert fields[2] in ("RAMP", "ON") and fields[5] == "00", fields
        assert 500 <= int(fields[4]) <= 2000, fields
        assert 0.0 <= float(fields[3]) <= 21.0, fields
    assert all(f[2:4] == ["IDLE", "0"] and f[5] == "00" for f in ch2)
    states = [f[2] for f in ch1]
    assert "RAMP" in states and states[-1] == "ON"
    assert "RAMP" not in states[states.index("ON") :]  # constant target: RAMP, then ON
    assert all(float(f[3]) > 0 for f in ch1[1:])
    assert all(19.0 <= float(f[3]) <= 21.0 for f in ch1 if f[2] == "ON")


# ---- link modes and unsolicited frames (SIMULATORS.md) -------------------------------------
def collect(client: ES2Client, seconds: float) -> list[tuple[float, list[str]]]:
    """Every frame arriving within `seconds`, with its arrival time (all must parse)."""
    got: list[tuple[float, list[str]]] = []
    deadline = time.monotonic() + seconds
    while (line := client.read_line(max(0.0, deadline - time.monotonic()))) is not None:
        got.append((time.monotonic(), parse(line)[1]))
    return got


def test_link_delay_delays_tel_frames(es2_sim: SimProcess, client: ES2Client) -> None:
    # SIMULATORS.md: `delay` delays "every reply and telemetry frame". A pinned impedance shows
    # in TEL (ICD: TEL,<ch>,<state>,<meas_ma>,<impedance_ohm>,<faults>): with the link delayed,
    # no TEL may show a new value sooner than the delay after it was set, and the frames made
    # just before still arrive after it (delayed, not silenced).
    delay_ms = 400
    assert es2_sim.request({"op": "set", "impedance_ohm": 1234, "ch": 1}) == {"ok": True}
    assert client.request("STREAM,20") == ["ACK"]
    assert any(f[:2] == ["TEL", "1"] and f[4] == "1234" for _, f in collect(client, 0.3))
    assert es2_sim.request({"op": "link", "mode": "delay", "ms": delay_ms}) == {"ok": True}
    collect(client, 0.3)  # frames made in these 0.3 s are still on their way at t_set
    t_set = time.monotonic()
    assert es2_sim.request({"op": "set", "impedance_ohm": 1777, "ch": 1}) == {"ok": True}
    frames = collect(client, delay_ms / 1000 + 0.6)
    tel_1 = [(t, f[4]) for t, f in frames if f[:2] == ["TEL", "1"]]
    first_new = next(t for t, ohm in tel_1 if ohm == "1777")
    assert first_new - t_set >= delay_ms / 1000, first_new - t_set
    old_after_set = [t for t, ohm in tel_1 if ohm == "1234" and t > t_set]
    assert len(old_after_set) >= 3, tel_1  # made before t_set, delivered after it
    assert es2_sim.request({"op": "clear"}) == {"ok": True}
    assert client.request("STREAM,0") == ["ACK"]


def test_link_drop_silences_tel_and_evt_and_ok_resumes(
    es2_sim: SimProcess, client: ES2Client
) -> None:
    # SIMULATORS.md: `drop`: "both directions fall silent (cable pulled)"; `ok` restores.
    # Frames the device made meanwhile are lost, not queued: the patient-stop EVT never comes,
    # while the TEL after `ok` shows the fault it latched (ICD: EVT,PSTOP, fault 02).
    assert client.request("STREAM,20") == ["ACK"]
    assert len([f for _, f in collect(client, 0.3) if f[0] == "TEL"]) >= 4
    assert es2_sim.request({"op": "link", "mode": "drop"}) == {"ok": True}
    t_drop = time.monotonic()
    assert es2_sim.request({"op": "inject", "fault": "patient_stop"}) == {"ok": True}
    during = collect(client, 0.8)
    assert [f for t, f in during if t > t_drop + 0.2] == []  # 20 Hz x 2 channels went missing
    assert not any(f[:2] == ["EVT", "PSTOP"] for _, f in during)
    assert es2_sim.request({"op": "link", "mode": "ok"}) == {"ok": True}
    after = collect(client, 0.5)
    tel = [f for _, f in after if f[0] == "TEL"]
    assert len(tel) >= 4, after
    assert {f[5] for f in tel} == {"02"}  # the latched patient stop, on both channels
    assert not any(f[:2] == ["EVT", "PSTOP"] for _, f in after)  # lost, not queued
    assert client.request("STREAM,0") == ["ACK"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_with_a_tcp_client_connected_exits_0_without_a_traceback(
    tmp_path: Path, signum: int
) -> None:
    # SIMULATORS.md: SIGTERM or SIGINT ends a simulator with exit code 0. A connected TCP
    # client's handler used to die with a CancelledError traceback on stderr at shutdown.
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        sim = SimProcess("es2", ["--tcp", "127.0.0.1:0"], stderr=err).start()
        try:
            host, port = str(sim.endpoints["serial_url"]).removeprefix("socket://").split(":")
            with socket.create_connection((host, int(port)), timeout=2.0) as client:
                client.sendall(frame(1, "ID?"))
                assert client.recv(128).startswith(b"$1,ID,ES-2,")
                assert sim.proc is not None
                sim.proc.send_signal(signum)
                assert sim.proc.wait(timeout=5.0) == 0
        finally:
            sim.stop()
    text = log.read_text()
    assert "Traceback" not in text and "CancelledError" not in text, text
