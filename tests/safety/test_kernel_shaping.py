"""Console ramp shaping tick by tick (issue #5): increases never faster than the limit (0.5
W/cm²/s for ultrasound, the profile's mA/s for stimulation), decreases and stops at once."""

from __future__ import annotations

import itertools
from dataclasses import replace

from sessionconsole.model.stimulation import ChannelSetup, StimulationSettings
from sessionconsole.model.telemetry import UltrasoundReading
from sessionconsole.safety import rules
from sessionconsole.safety.types import (
    Configure,
    Refused,
    SendAmplitude,
    SendIntensity,
    SendStart,
    SendStop,
    Start,
    Stop,
    StopAll,
)
from tests.safety.helpers import (
    LIMITS,
    SETTINGS,
    SETUP,
    STIM_LIMITS,
    Harness,
    reading,
    running,
    stim_reading,
)

US = replace(LIMITS, max_ramp_per_s=0.5)
STIM = replace(STIM_LIMITS, max_ramp_per_s=5.0, level_step=0.5)
CH = "es2.ch1"


def levels(h: Harness, seconds: float, readings: dict[str, object]) -> list[tuple[float, float]]:
    """(time, level) of every level write over `seconds` of ticks."""
    sent = []
    for _ in range(round(seconds / 0.01)):
        now = {d: replace(r, received_mono_s=h.now + 0.01) for d, r in readings.items()}  # type: ignore[type-var]
        for a in h.tick(now):  # type: ignore[arg-type]
            if isinstance(a, (SendIntensity, SendAmplitude)):
                sent.append(
                    (h.now, a.intensity_w_cm2 if isinstance(a, SendIntensity) else a.amplitude_ma)
                )
    return sent


def assert_steps(points: list[tuple[float, float]], step: float, rate: float) -> None:
    """Each write rises at most one step, and only once the step before it had time to take
    effect at `rate`: never faster than the rate over any step, never a jump."""
    for (t0, a), (t1, b) in itertools.pairwise(points):
        assert b - a <= step + 1e-6, (t0, a, t1, b)
        assert t1 - t0 >= step / rate - 1e-6, (t0, a, t1, b)


def test_an_intensity_increase_goes_out_in_steps_of_at_most_half_a_watt_per_second() -> None:
    h = Harness(("us1",), {"us1": US})
    h.tick({"us1": reading(h.now)}, Configure(h.next_id(), "us1", SETTINGS))
    h.tick({"us1": reading(h.now)}, Start(h.next_id(), "us1"))
    on = running(h.now, intensity_setpoint_w_cm2=1.0)
    h.tick({"us1": on})
    t0 = h.now
    actions = h.tick(
        {"us1": on},
        Configure(h.next_id(), "us1", SETTINGS.model_copy(update={"intensity_w_cm2": 2.0})),
    )
    first = [a for a in actions if isinstance(a, SendIntensity)]
    assert first == [SendIntensity("us1", 1.05)]  # not 2.0 at once
    points = [(t0, 1.0), (h.now, 1.05), *levels(h, 2.5, {"us1": on})]
    assert_steps(points[1:], 0.05, 0.5)
    assert points[-1][1] == 2.0
    assert 1.9 <= points[-1][0] - t0 <= 2.1  # 1 W/cm² at 0.5 W/cm²/s
    assert levels(h, 0.5, {"us1": on}) == []  # arrived: nothing more


def rising_to_2(h: Harness) -> UltrasoundReading:
    """us1 started at 1.0 W/cm² and asked for 2.0 (a rise in progress); its running reading."""
    h.tick({"us1": reading(h.now)}, Configure(h.next_id(), "us1", SETTINGS))
    h.tick({"us1": reading(h.now)}, Start(h.next_id(), "us1"))
    on = running(h.now)
    h.tick(
        {"us1": on},
        Configure(h.next_id(), "us1", SETTINGS.model_copy(update={"intensity_w_cm2": 2.0})),
    )
    return on


def test_a_decrease_goes_out_at_once_and_ends_a_rise_in_progress() -> None:
    h = Harness(("us1",), {"us1": US})
    on = rising_to_2(h)
    levels(h, 0.5, {"us1": on})
    actions = h.tick(
        {"us1": on},
        Configure(h.next_id(), "us1", SETTINGS.model_copy(update={"intensity_w_cm2": 0.5})),
    )
    assert [a for a in actions if isinstance(a, SendIntensity)] == [SendIntensity("us1", 0.5)]
    assert levels(h, 1.0, {"us1": on}) == []


def test_a_stop_ends_the_rise() -> None:
    h = Harness(("us1",), {"us1": US})
    on = rising_to_2(h)
    actions = h.tick({"us1": on}, Stop(h.next_id(), "us1"))
    assert SendStop("us1", "operator stop") in actions
    assert levels(h, 1.0, {"us1": reading(h.now)}) == []


def test_a_stimulation_start_steeper_than_the_profile_starts_lower_and_steps_up() -> None:
    # 20 mA over ramp_s 1 s would rise 20 mA/s; the profile allows 5 mA/s.
    h = Harness((CH,), {CH: STIM})
    h.tick({CH: stim_reading(h.now)}, Configure(h.next_id(), CH, SETUP))
    actions = h.tick({CH: stim_reading(h.now)}, Start(h.next_id(), CH))
    t0 = h.now
    writes = [a for a in actions if isinstance(a, (SendAmplitude, SendStart))]
    assert writes == [SendAmplitude(CH, 5.0), SendStart(CH)]  # lower setpoint first, then start
    on = stim_reading(h.now, state="RAMP", running=True, output_active=True)
    points = levels(h, 4.5, {CH: on})
    # The unit's own ramp reaches 5 mA at t0 + 1 s; the first step follows a step later.
    assert points[0] == (round(t0 + 1.1, 6), 5.5)
    assert_steps([(t0 + 1.0, 5.0), *points], 0.5, 5.0)
    assert points[-1][1] == 20.0
    assert 3.9 <= points[-1][0] - t0 <= 4.1  # 5 mA in 1 s, then 15 mA at 5 mA/s


def test_a_stimulation_start_within_the_profile_rate_is_left_to_the_unit() -> None:
    h = Harness((CH,), {CH: STIM})
    slow = SETUP.model_copy(update={"waveform": SETUP.waveform.model_copy(update={"ramp_s": 4})})
    h.tick({CH: stim_reading(h.now)}, Configure(h.next_id(), CH, slow))
    actions = h.tick({CH: stim_reading(h.now)}, Start(h.next_id(), CH))
    assert SendStart(CH) in actions and not any(isinstance(a, SendAmplitude) for a in actions)


def test_on_off_cycles_with_a_ramp_steeper_than_the_profile_are_refused() -> None:
    h = Harness((CH,), {CH: STIM})
    cycled = ChannelSetup(
        waveform=StimulationSettings(
            mode="SYM", freq_hz=50, pw_us=250, on_s=10, off_s=20, ramp_s=2
        ),
        amplitude_ma=20.0,
    )
    actions = h.tick({CH: stim_reading(h.now)}, Configure(h.next_id(), CH, cycled))
    r = next(a for a in actions if isinstance(a, Refused))
    assert r.rule_id == rules.SETPOINT_LIMIT.id
    assert "rises 10.0 mA/s, above the profile's 5 mA/s; make ramp_s at least 4 s" in r.reason
    gentle = cycled.model_copy(
        update={"waveform": cycled.waveform.model_copy(update={"ramp_s": 4})}
    )
    actions = h.tick({CH: stim_reading(h.now)}, Configure(h.next_id(), CH, gentle))
    assert not any(isinstance(a, Refused) for a in actions)


def test_asking_again_and_again_does_not_rise_faster() -> None:
    """Review finding: each configure sent a step at once, so a held '+' key (or five
    configures in one tick) rose at 5 W/cm²/s. Steps now wait for their time whatever asks."""
    h = Harness(("us1",), {"us1": US})
    h.tick({"us1": reading(h.now)}, Configure(h.next_id(), "us1", SETTINGS))
    h.tick({"us1": reading(h.now)}, Start(h.next_id(), "us1"))
    on = running(h.now)
    h.tick({"us1": on})
    high = SETTINGS.model_copy(update={"intensity_w_cm2": 2.0})
    points: list[tuple[float, float]] = []
    for _ in range(250):
        asks = [Configure(h.next_id(), "us1", high) for _ in range(3)]
        for a in h.tick({"us1": replace(on, received_mono_s=h.now + 0.01)}, *asks):
            if isinstance(a, SendIntensity):
                points.append((h.now, a.intensity_w_cm2))
    assert_steps(points, 0.05, 0.5)
    assert points[-1][1] == 2.0


def test_a_stop_leaves_the_level_the_rise_reached_and_no_rise_while_stopped_or_held() -> None:
    """Review finding: after a stop (telemetry still showing the output on) a configure of
    the old goal was written at once, a jump; and level writes went out under a trip."""
    h = Harness(("us1",), {"us1": US})
    on = rising_to_2(h)  # 1.05 written
    assert SendStop("us1", "operator stop") in h.tick({"us1": on}, Stop(h.next_id(), "us1"))
    assert h.state.devices["us1"].settings.intensity_w_cm2 == 1.05  # type: ignore[union-attr]
    high = SETTINGS.model_copy(update={"intensity_w_cm2": 2.0})
    actions = h.tick({"us1": on}, Configure(h.next_id(), "us1", high))  # still shows RUNNING
    assert not any(isinstance(a, SendIntensity) for a in actions)
    assert next(a for a in actions if isinstance(a, Refused)).rule_id == "STATE"
    lower = SETTINGS.model_copy(update={"intensity_w_cm2": 0.5})
    actions = h.tick({"us1": on}, Configure(h.next_id(), "us1", lower))
    assert SendIntensity("us1", 0.5) in actions  # lowering is always sent
    h2 = Harness(("us1",), {"us1": US})
    on = rising_to_2(h2)
    actions = h2.tick({"us1": on}, StopAll(h2.next_id()), Configure(h2.next_id(), "us1", high))
    assert not any(isinstance(a, SendIntensity) for a in actions)
    assert next(a for a in actions if isinstance(a, Refused)).rule_id == "OPERATOR_STOP"


def test_the_cycle_ramp_advice_rounds_up_and_names_the_amplitude_when_no_ramp_suffices() -> None:
    h = Harness((CH,), {CH: STIM})
    wave = StimulationSettings(mode="SYM", freq_hz=50, pw_us=250, on_s=10, off_s=20, ramp_s=1)
    actions = h.tick(
        {CH: stim_reading(h.now)},
        Configure(h.next_id(), CH, ChannelSetup(waveform=wave, amplitude_ma=12.0)),
    )
    assert "make ramp_s at least 3 s" in next(a for a in actions if isinstance(a, Refused)).reason
    actions = h.tick(
        {CH: stim_reading(h.now)},
        Configure(h.next_id(), CH, ChannelSetup(waveform=wave, amplitude_ma=60.0)),
    )
    assert (
        "lower the amplitude to 50 mA or less"
        in next(a for a in actions if isinstance(a, Refused)).reason
    )
