"""Reference-unit simulators (ES-2, US-1, CX-3) speaking the ICDs over real transports.

Written from the ICDs and SIMULATORS.md alone; never imports `sessionconsole`, so the
console's conformance tests against these simulators mean something.
"""
