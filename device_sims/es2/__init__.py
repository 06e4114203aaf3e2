"""ES-2 two-channel stimulator simulator (serial frames over a pty and TCP), from the ICD alone.

Modules: `frames` (codec, CRC, resynchronising reader), `channel` and `model` (pure unit with
injected time), `physics` (impedance, noise, hand switch), `commands` (shapes, ranges, repeat
memory), `serial_io` (pty and TCP byte streams), `unit` (one served unit and its ticker),
`testport`, `app` and `cli`. Readings of points the ICD leaves open are in each module's
docstring where the rule lives (frames: drop rules; commands: check order; channel: ramps and
on/off cycles; serial_io: pty and TCP clients; testport: the state schema).
"""
