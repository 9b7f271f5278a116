"""OSCQuery's LISTEN extension: value changes streamed as binary OSC packets over a websocket.

A client opens a websocket on the OSCQuery port (any path) and sends text frames
`{"COMMAND": "LISTEN", "DATA": "/param/speed"}` or `{"COMMAND": "IGNORE", "DATA": ...}`, as the
OSCQuery proposal's LISTEN extension says. For each address it listens to it gets the current
value at once, then every change, each as one binary frame holding one OSC message typed as the
node's TYPE. Addresses without a value, unknown ones and malformed commands are ignored.
Commands still go to the OSC control port (binary frames from a client are not taken here).

Changes are found by looking at every listened address `listen_hz` times a second while a client
listens (`values` reads frozen snapshots, so a look is cheap and takes no lock the show holds).
A value that changes and changes back between two looks is not sent; a fader at any rate arrives
coalesced to the newest value, and the /out streams (a new state every `listen.hop_s`) lose none.

Bounds: the HTTP server's ConnectionGate admits the connection (allowlist, caps per server and
per host, counted until the websocket closes); at most `max_clients` websockets listen at once
(more are closed with 1013 "try again later"); a client holds at most one waiting packet per
address, a newer value replacing an older one (a slow reader gets the latest, never a growing
queue); a send that waits `send_timeout_s` on a client that stopped reading ends that client.

Thread: the HTTP server's event loop only.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, Callable, Iterable

from pythonosc.osc_message_builder import OscMessageBuilder

log = logging.getLogger(__name__)

MAX_COMMAND_CHARS = 4096
"""A LISTEN/IGNORE command is a few dozen characters; longer text frames are dropped unread."""

READ = 1
TYPES_REFRESH_S = 1.0
"""An unknown address rereads the tree at most this often (a client naming addresses at random
must not make the event loop rebuild it for every frame)."""


def osc_packet(address: str, types: str, value: Any) -> bytes:
    """One OSC message for `address` holding `value` (a list) typed by `types` where it says."""
    message = OscMessageBuilder(address=address)
    values = value if isinstance(value, (list, tuple)) else [value]
    for index, item in enumerate(values):
        kind = types[index] if index < len(types) else ""
        if kind == "f":
            message.add_arg(float(item), OscMessageBuilder.ARG_TYPE_FLOAT)
        elif kind == "i":
            message.add_arg(int(item), OscMessageBuilder.ARG_TYPE_INT)
        elif kind == "s":
            message.add_arg(str(item), OscMessageBuilder.ARG_TYPE_STRING)
        else:
            message.add_arg(item)
    return message.build().dgram


class ListenClient:
    """One websocket: what it listens to, and at most one waiting packet per address."""

    def __init__(self) -> None:
        self.paths: set[str] = set()
        self.pending: dict[str, bytes] = {}
        self.wake = asyncio.Event()
        self.replaced = 0

    def offer(self, address: str, packet: bytes) -> None:
        if address in self.pending:
            self.replaced += 1  # the older value was never sent: this client reads slower than values change
        self.pending[address] = packet
        self.wake.set()


class ListenHub:
    """The LISTEN websockets of one OSCQuery server. `nodes()` gives OscNode-like objects
    (address, types, access), `values(address)` the current value or None."""

    def __init__(self, nodes: Callable[[], Iterable[Any]], values: Callable[[str], Any] | None,
                 listen_hz: float = 60.0, max_clients: int = 16, send_timeout_s: float = 10.0) -> None:
        self._nodes = nodes
        self._values = values
        self.period_s = 1.0 / listen_hz
        self.max_clients = max_clients
        self.send_timeout_s = send_timeout_s
        self._clients: set[ListenClient] = set()
        self._last: dict[str, Any] = {}
        self._types: dict[str, tuple[str, int]] = {}
        self._types_read_s = -TYPES_REFRESH_S
        self._poller: asyncio.Task | None = None
        self.stats = {"accepted": 0, "refused": 0, "sent": 0, "replaced": 0}

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def serve(self, websocket) -> None:
        """The websocket endpoint (a Starlette WebSocket)."""
        if len(self._clients) >= self.max_clients:
            self.stats["refused"] += 1
            await websocket.close(code=1013)
            return
        await websocket.accept()
        self.stats["accepted"] += 1
        client = ListenClient()
        self._clients.add(client)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        tasks = [asyncio.ensure_future(self._receive(websocket, client)),
                 asyncio.ensure_future(self._send(websocket, client))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            self._clients.discard(client)
            self.stats["replaced"] += client.replaced

    async def _receive(self, websocket, client: ListenClient) -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                self.command(client, text)

    async def _send(self, websocket, client: ListenClient) -> None:
        while True:
            await client.wake.wait()
            client.wake.clear()
            while client.pending:
                address = next(iter(client.pending))
                packet = client.pending.pop(address)
                try:
                    await asyncio.wait_for(websocket.send_bytes(packet), self.send_timeout_s)
                except asyncio.TimeoutError:
                    log.warning("OSCQuery LISTEN: a client read nothing for %.0f s; closing it", self.send_timeout_s)
                    return
                self.stats["sent"] += 1

    def command(self, client: ListenClient, text: str) -> None:
        """A LISTEN or IGNORE text frame from `client`; anything else is ignored."""
        if len(text) > MAX_COMMAND_CHARS:
            return
        try:
            body = json.loads(text)
        except ValueError:
            return
        if not isinstance(body, dict) or not isinstance(body.get("DATA"), str):
            return
        verb, address = str(body.get("COMMAND", "")).upper(), body["DATA"]
        if verb == "IGNORE":
            client.paths.discard(address)
            client.pending.pop(address, None)
        elif verb == "LISTEN" and self._listenable(address):
            client.paths.add(address)
            value = self._read(address)
            if value is not None:
                self._last.setdefault(address, value)
                client.offer(address, osc_packet(address, self._types[address][0], value))

    def _listenable(self, address: str) -> bool:
        now_s = time.monotonic()
        if address not in self._types and now_s - self._types_read_s >= TYPES_REFRESH_S:
            self._types_read_s = now_s
            self._types = {node.address: (node.types, node.access) for node in self._nodes()
                           if node.types and node.access & READ}
        return address in self._types

    def _read(self, address: str) -> Any:
        if self._values is None:
            return None
        try:
            value = self._values(address)
        except Exception:  # a value that cannot be read now is not a change
            log.debug("OSCQuery LISTEN: reading %s failed", address, exc_info=True)
            return None
        types, access = self._types.get(address, ("", 0))
        if value is None and access == READ:
            value = [0.0] * len(types)  # a stream before its first frame reads as 0, as in the tree
        return list(value) if isinstance(value, (list, tuple)) else ([value] if value is not None else None)

    def look(self) -> None:
        """Offer every listened address whose value changed since the last look."""
        listened: set[str] = set().union(*(c.paths for c in self._clients)) if self._clients else set()
        for address in list(self._last):
            if address not in listened:
                del self._last[address]
        for address in listened:
            value = self._read(address)
            if value is None or value == self._last.get(address):
                continue
            self._last[address] = value
            packet = osc_packet(address, self._types.get(address, ("", 0))[0], value)
            for client in self._clients:
                if address in client.paths:
                    client.offer(address, packet)

    async def _poll(self) -> None:
        while self._clients:
            await asyncio.sleep(self.period_s)
            try:
                self.look()
            except Exception:  # a bug here must not end the server's loop
                log.exception("OSCQuery LISTEN: looking for changes failed")
