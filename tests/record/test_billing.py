"""Billing rules as pure functions: worked examples, the 7/8/22/23-minute edges, overlaps."""

from __future__ import annotations

import tomllib

import pytest

from sessionconsole.model.paths import config_dir
from sessionconsole.record.billing import (
    MANUAL_THERAPY,
    MASSAGE,
    NS_PER_MINUTE,
    STIM_ATTENDED,
    STIM_UNATTENDED,
    TECHNIQUE_CODES,
    ULTRASOUND,
    BillingError,
    BillLine,
    Service,
    allocate_units,
    bill,
    units_for_minutes,
)

MIN = NS_PER_MINUTE
SEC = 1_000_000_000


@pytest.mark.parametrize(
    ("minutes", "units"),
    [(0, 0), (7, 0), (8, 1), (22, 1), (23, 2), (37, 2), (38, 3), (52, 3), (53, 4), (67, 4)],
)
def test_total_minutes_to_units_follows_the_cms_table(minutes: int, units: int) -> None:
    assert units_for_minutes(minutes) == units


@pytest.mark.parametrize(
    ("duration_ns", "minutes", "units"),
    [
        (7 * MIN + 59 * SEC, 7, 0),  # 7 min 59 s rounds down to 7: no unit
        (8 * MIN, 8, 1),
        (22 * MIN + 59 * SEC, 22, 1),
        (23 * MIN, 23, 2),
    ],
)
def test_one_code_at_the_edges_rounds_down_then_applies_the_rule(
    duration_ns: int, minutes: int, units: int
) -> None:
    result = bill([Service(MASSAGE, 0, duration_ns)])
    assert result.lines == (BillLine(MASSAGE, minutes, units, True),)
    assert (result.timed_minutes, result.timed_units) == (minutes, units)


def test_minutes_are_summed_per_code_before_rounding() -> None:
    # two 4.5-minute runs of 97140 are 9 minutes, so one unit (not 4 + 4 = 8 by luck)
    runs = [
        Service(MANUAL_THERAPY, 0, 270 * SEC),
        Service(MANUAL_THERAPY, 10 * MIN, 10 * MIN + 270 * SEC),
    ]
    assert bill(runs).lines == (BillLine(MANUAL_THERAPY, 9, 1, True),)


def test_worked_examples_of_allocation() -> None:
    # 24 + 23 = 47 min → 3 units: one whole unit each, the third to the larger leftover (9 > 8)
    assert allocate_units({MASSAGE: 24, MANUAL_THERAPY: 23}) == {MASSAGE: 2, MANUAL_THERAPY: 1}
    # 33 + 7 = 40 min → 3 units: two whole to 97124, the third to 97140's 7 leftover minutes
    assert allocate_units({MASSAGE: 33, MANUAL_THERAPY: 7}) == {MASSAGE: 2, MANUAL_THERAPY: 1}
    # 7 + 6 = 13 min → 1 unit, to the longer
    assert allocate_units({ULTRASOUND: 6, MASSAGE: 7}) == {ULTRASOUND: 0, MASSAGE: 1}
    # 5 + 2 = 7 min → nothing
    assert allocate_units({ULTRASOUND: 5, MASSAGE: 2}) == {ULTRASOUND: 0, MASSAGE: 0}


def test_ties_go_to_more_minutes_in_all_then_to_the_lower_code() -> None:
    # 7 + 7 = 14 → 1 unit; equal leftovers and totals → the lower code number
    assert allocate_units({MASSAGE: 7, MANUAL_THERAPY: 7}) == {MASSAGE: 1, MANUAL_THERAPY: 0}
    # 22 + 7 = 29 → 2 units; leftovers 7 and 7 tie → 97140 has more minutes in all
    assert allocate_units({MASSAGE: 7, MANUAL_THERAPY: 22}) == {MASSAGE: 0, MANUAL_THERAPY: 2}


def test_three_way_splits() -> None:
    # 7 + 7 + 7 = 21 → 1 unit: all tie → the lowest code (97035)
    three = {ULTRASOUND: 7, MASSAGE: 7, MANUAL_THERAPY: 7}
    assert allocate_units(three) == {ULTRASOUND: 1, MASSAGE: 0, MANUAL_THERAPY: 0}
    # 9 + 8 + 6 = 23 → 2 units, to the two largest leftovers
    three = {ULTRASOUND: 6, MASSAGE: 9, MANUAL_THERAPY: 8}
    assert allocate_units(three) == {ULTRASOUND: 0, MASSAGE: 1, MANUAL_THERAPY: 1}
    # 14 + 14 + 14 = 42 → 3 units, one each
    three = {ULTRASOUND: 14, MASSAGE: 14, MANUAL_THERAPY: 14}
    assert allocate_units(three) == {ULTRASOUND: 1, MASSAGE: 1, MANUAL_THERAPY: 1}


def test_an_overlapped_minute_goes_to_the_hands_on_technique_and_is_noted() -> None:
    massage = Service(MASSAGE, 0, 20 * MIN, "deep tissue")
    ultrasound = Service(ULTRASOUND, 10 * MIN, 25 * MIN, "us1 output")
    result = bill([ultrasound, massage])
    # 20 + 5 = 25 min → 2 units; leftovers 5 and 5 tie → 97124 has more minutes in all
    assert result.lines == (
        BillLine(ULTRASOUND, 5, 0, True),
        BillLine(MASSAGE, 20, 2, True),
    )
    assert result.notes == (
        "10 min 0 s of 97035 overlapped 97124 and counts as 97124 only "
        "(the hands-on technique takes the minute)",
    )


def test_two_devices_overlapping_the_one_begun_first_keeps_the_minute() -> None:
    us = Service(ULTRASOUND, 0, 10 * MIN)
    stim = Service(STIM_ATTENDED, 5 * MIN, 15 * MIN)
    result = bill([stim, us])
    assert [(line.code, line.minutes) for line in result.lines] == [
        (STIM_ATTENDED, 5),
        (ULTRASOUND, 10),
    ]
    assert "begun first keeps the minute" in result.notes[0]


def test_unattended_stimulation_is_one_untimed_unit() -> None:
    result = bill([Service(STIM_UNATTENDED, 0, 30 * MIN), Service(MASSAGE, 0, 8 * MIN)])
    assert result.lines == (
        BillLine(MASSAGE, 8, 1, True),
        BillLine(STIM_UNATTENDED, 30, 1, False),
    )
    assert (result.timed_minutes, result.timed_units) == (8, 1)
    assert any("G0283" in note and "untimed" in note for note in result.notes)


def test_bad_services_are_refused() -> None:
    with pytest.raises(BillingError, match=r"ends .* before it starts"):
        Service(MASSAGE, 10, 5, "deep tissue")
    with pytest.raises(BillingError, match="code '97110' is not one of"):
        Service("97110", 0, 5)
    with pytest.raises(BillingError, match="must be >= 0"):
        units_for_minutes(-1)


def test_every_technique_in_the_vocabulary_has_a_code() -> None:
    vocabulary = tomllib.loads((config_dir() / "vocabulary.toml").read_text())
    ids = {technique["id"] for technique in vocabulary["techniques"]}
    assert ids <= set(TECHNIQUE_CODES), ids - set(TECHNIQUE_CODES)
    assert TECHNIQUE_CODES["deep_tissue"] == TECHNIQUE_CODES["sports_massage"] == MASSAGE
    assert TECHNIQUE_CODES["lymphatic_drainage"] == MANUAL_THERAPY


def test_no_timed_unit_under_8_minutes_in_all_is_noted() -> None:
    result = bill([Service(MASSAGE, 0, 4 * MIN), Service(MANUAL_THERAPY, 4 * MIN, 7 * MIN)])
    assert result.timed_units == 0
    assert "7 timed minutes in all: under 8, so no timed unit" in result.notes
