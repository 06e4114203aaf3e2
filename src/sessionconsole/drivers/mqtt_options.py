"""Every MQTT client the console opens: one factory, with the socket options it needs.

paho-mqtt leaves Nagle's algorithm on. A command and its reply are small writes that then
wait for the peer's delayed ACK: about 40 ms per hop on Linux, 88 ms for a QoS 1 command and
its reply through mosquitto (bench/driver_roundtrip.py). TCP_NODELAY takes that to under a
millisecond. The broker needs the same (`set_tcp_nodelay true`).
"""

from __future__ import annotations

import itertools
import os
import socket

import aiomqtt

from sessionconsole.model.combination import MqttLink

NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
CONNECT_TIMEOUT_S = 2.0
_numbers = itertools.count(1)


def client_for(link: MqttLink, role: str, device_id: str) -> aiomqtt.Client:
    """A clean-session client for the link; the identifier is unique per process and call.

    `role` says what it is for ("console" for a driver's session, "probe" for a read-only
    look), so the broker's log tells a console from a probe.
    """
    return aiomqtt.Client(
        link.host,
        link.port,
        username=link.username,
        password=link.password,
        identifier=f"{role}-{device_id}-{os.getpid()}-{next(_numbers)}",
        clean_session=True,
        keepalive=link.keepalive_s,
        timeout=CONNECT_TIMEOUT_S,
        socket_options=NO_DELAY,
    )
