"""An MQTT broker in a child process (amqtt), for the demo on a machine without mosquitto.

`python -m sessionconsole.testing.embedded_broker --port N` serves MQTT 3.1.1 on loopback,
anonymous, with retained messages and last wills (what the CX-3 needs), until SIGTERM.
`EmbeddedBroker` starts and stops that process with the same interface as `Mosquitto`, so
the demo takes whichever is there. mosquitto stays the broker of the tests and of CI: it is
what clinics run; this one only keeps the demo whole where mosquitto is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from sessionconsole.testing.mqtt import Mosquitto

__all__ = ["EmbeddedBroker"]


class EmbeddedBroker(Mosquitto):
    """The amqtt broker in a child process: loopback listener, anonymous, no persistence."""

    def _argv(self) -> list[str]:
        """This module run by the same interpreter, on self.host:self.port."""
        module = "sessionconsole.testing.embedded_broker"
        return [sys.executable, "-m", module, "--host", self.host, "--port", str(self.port)]

    @property
    def name(self) -> str:
        """How errors and logs call this broker."""
        return "embedded MQTT broker (amqtt)"


def broker_config(host: str, port: int) -> dict[str, object]:
    """amqtt's configuration: one TCP listener, anonymous clients, no $SYS topics."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def serve(host: str, port: int) -> None:
    """Run the broker until SIGTERM or SIGINT."""
    from amqtt.broker import Broker  # imported here: only this child process needs amqtt

    broker = Broker(broker_config(host, port))
    await broker.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await broker.shutdown()


def main() -> None:
    """Command line: --host, --port."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
