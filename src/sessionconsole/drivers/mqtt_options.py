"""Socket options for every MQTT client the console opens.

paho-mqtt leaves Nagle's algorithm on. A command and its reply are small writes that then
wait for the peer's delayed ACK: about 40 ms per hop on Linux, 88 ms for a QoS 1 command and
its reply through mosquitto (bench/driver_roundtrip.py). TCP_NODELAY takes that to under a
millisecond. The broker needs the same (`set_tcp_nodelay true`).
"""

from __future__ import annotations

import socket

NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
