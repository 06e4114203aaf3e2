"""ES-2 frame codec against the ICD's tables and test vectors, and against arbitrary bytes."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionconsole.protocols.es2 import (
    MAX_FRAME_BYTES,
    Ack,
    ChannelStatus,
    Es2FrameError,
    Es2ReplyError,
    Event,
    Frame,
    FrameDecoder,
    Identity,
    Nak,
    SeqCounter,
    crc16,
    decode_faults,
    encode,
    format_number,
    parse_frame,
    parse_reply,
)
from tests.support import icd_file

VECTORS = json.loads(icd_file("ES-2-vectors.json").read_text())


def test_crc_check_value_from_the_icd() -> None:
    assert crc16(b"123456789") == 0x29B1
    assert VECTORS["crc_check"] == {"input": "123456789", "crc": "29B1"}


@pytest.mark.parametrize("exchange", VECTORS["exchanges"], ids=lambda e: e["request"][:16])
def test_every_vector_request_encodes_byte_for_byte(exchange: dict[str, str]) -> None:
    raw = exchange["request"].encode()
    frame = parse_frame(raw)
    assert frame is not None
    assert encode(frame.seq, frame.verb, *frame.args) == raw


@pytest.mark.parametrize(
    "exchange", [e for e in VECTORS["exchanges"] if "reply" in e], ids=lambda e: e["reply"][:16]
)
def test_every_exact_vector_reply_decodes(exchange: dict[str, str]) -> None:
    decoder = FrameDecoder()
    [frame] = decoder.feed(exchange["reply"].encode())
    message = parse_reply(frame)
    body = exchange["reply"].split(",", 1)[1].split("*")[0]
    if body == "ACK":
        assert message == Ack()
    else:
        assert message == Nak(body.split(",")[1])


def test_pattern_replies_decode_to_typed_messages() -> None:
    ident = parse_reply(Frame(1, "ID", ("ES-2", "ES2-0001", "2.1.0", "2")))
    assert ident == Identity("ES-2", "ES2-0001", "2.1.0", 2)
    stat = parse_reply(Frame(15, "STAT", ("1", "ON", "12.5", "12.4", "1250", "00")))
    assert stat == ChannelStatus(1, "ON", 12.5, 12.4, 1250.0, ())
    assert isinstance(stat, ChannelStatus) and stat.running


def test_unsolicited_examples_decode() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed("".join(VECTORS["unsolicited_examples"]).encode())
    messages = [parse_reply(f) for f in frames]
    assert decoder.dropped == 0 and all(f.seq == 0 for f in frames)
    assert messages == [
        ChannelStatus(1, "ON", None, 12.4, 1250.0, ()),
        Event("PSTOP", None),
        Event("ELECTRODE", 2),
        Event("WATCHDOG", None),
        Event("BOOT", None),
    ]


def test_frames_the_icd_drops_silently_are_dropped_and_counted() -> None:
    decoder = FrameDecoder()
    for case in VECTORS["dropped_silently"]:
        assert decoder.feed(case["frame"].encode()) == [], case["why"]
    # Bad CRC, over 128 bytes and missing CR are counted; bytes with no `$` start no frame.
    assert decoder.dropped == 3
    [frame] = decoder.feed(encode(21, "ID?"))
    assert frame == Frame(21, "ID?", ())


def test_resynchronises_on_dollar_after_garbage_and_a_broken_frame() -> None:
    decoder = FrameDecoder()
    good = encode(5, "HB")
    frames = decoder.feed(b"\x00\xffnoise$12,HALF" + good + b"junk" + good)
    assert frames == [Frame(5, "HB", ()), Frame(5, "HB", ())]
    assert decoder.dropped == 1


def test_frame_of_exactly_128_bytes_is_accepted_and_129_dropped() -> None:
    def frame_of(length: int) -> bytes:
        return encode(1, "X", "A" * (length - len(b"$1,X,*0000\r\n")))

    decoder = FrameDecoder()
    assert len(frame_of(128)) == 128 and len(decoder.feed(frame_of(128))) == 1
    with pytest.raises(Es2FrameError, match="exceeds 128"):
        frame_of(129)
    raw = b"$1,X," + b"A" * 117 + b"*"
    raw += f"{crc16(raw[1:-1]):04X}".encode() + b"\r\n"
    assert len(raw) == 129 and decoder.feed(raw) == [] and decoder.dropped == 1


def test_lower_case_crc_and_two_stars_are_dropped() -> None:
    good = encode(3, "AMP", 1, 12.5)  # CRC 315D: has a letter
    assert good.endswith(b"*315D\r\n") and parse_frame(good) is not None
    assert parse_frame(good.replace(b"315D", b"315d")) is None
    assert parse_frame(b"$3,A*B*0000\r\n") is None


def test_encode_refuses_what_the_icd_forbids() -> None:
    with pytest.raises(Es2FrameError, match=r"seq 70000"):
        encode(70000, "HB")
    for bad in ("a,b", "a*b", "$", ""):
        with pytest.raises(Es2FrameError, match=r"is empty or contains one of"):
            encode(1, "AMP", bad)


def test_numbers_are_written_plainly() -> None:
    assert [format_number(v) for v in (12.5, 100, 100.0, 0.5, 2.25)] == [
        "12.5",
        "100",
        "100",
        "0.5",
        "2.25",
    ]
    assert encode(3, "AMP", 1, 12.5) == b"$3,AMP,1,12.5*315D\r\n"


def test_fault_mask() -> None:
    assert decode_faults("00") == ()
    assert decode_faults("06") == ("PATIENT_STOP", "ELECTRODE")
    assert decode_faults("A1") == ("WATCHDOG", "UNKNOWN_0xA0")
    for bad in ("0", "0g", "ab"):
        with pytest.raises(Es2ReplyError):
            decode_faults(bad)


def test_sequence_numbers_wrap_to_one_and_start_randomly() -> None:
    seq = SeqCounter(65534)
    assert [seq.next() for _ in range(3)] == [65534, 65535, 1]
    starts = {SeqCounter().next() for _ in range(20)}
    assert len(starts) > 1 and all(1 <= s <= 65535 for s in starts)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_arbitrary_bytes_never_raise_and_the_buffer_stays_bounded(chunks: list[bytes]) -> None:
    decoder = FrameDecoder()
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            assert isinstance(frame, Frame)
            with contextlib.suppress(Es2ReplyError):
                parse_reply(frame)
        assert len(decoder._buffer) <= MAX_FRAME_BYTES


field_st = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="$*,"),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 65535), field_st, st.lists(field_st, max_size=5)), max_size=8
    ),
    st.data(),
)
def test_encoded_frames_survive_any_split_and_noise_between(
    frames: list[tuple[int, str, list[str]]], data: st.DataObject
) -> None:
    wire = b""
    for seq, verb, args in frames:
        wire += data.draw(st.binary(max_size=5).map(lambda b: b.replace(b"$", b"")))
        wire += encode(seq, verb, *args)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    decoder = FrameDecoder()
    out: list[Frame] = []
    for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        out += decoder.feed(wire[a:b])
    assert out == [Frame(s, v, tuple(a)) for s, v, a in frames]


@given(
    st.builds(
        Frame,
        st.integers(0, 65535),
        st.text(max_size=6),
        st.lists(st.text(max_size=6), max_size=7).map(tuple),
    )
)
def test_parse_reply_raises_only_its_own_error(frame: Frame) -> None:
    with contextlib.suppress(Es2ReplyError):
        parse_reply(frame)


def test_reply_pattern_vectors_are_matched_by_our_encoder() -> None:
    ident = encode(1, "ID", "ES-2", "ES2-0001", "2.1.0", 2).decode()
    pattern = VECTORS["exchanges"][0]["reply_pattern"]
    assert re.fullmatch(pattern, ident)
