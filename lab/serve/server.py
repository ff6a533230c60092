"""`dsm-lab serve`: a websocket server speaking Kyutai's speech-to-text protocol (lab/serve/protocol.py), so
that the clients written for moshi-server (Kyutai's scripts, Unmute) work against a model of this lab.

    server = Server(lab.load(), slots=8, api_keys=["secret"])
    server.start()               # in a thread of its own; or `await server.run()` inside an event loop
    ...                          # clients connect to server.url + "/api/asr-streaming"
    server.stop()

Limits, each one there so that one client cannot hurt the others:
- authentication before the websocket upgrade: `kyutai-api-key` header or `?auth_id=`; anything else is
  answered 401 and never reaches the model. Keys are compared in constant time.
- `max_message_bytes` (1 MiB, ~200 000 samples): a larger frame closes that connection (code 1009).
- `max_buffer_s` (60 s): audio received and not yet stepped. Past it the server stops reading that socket
  until the model catches up: the client's own sends block (TCP backpressure), memory does not grow.
- `outbox_messages` (512, ~40 s of Steps): messages waiting for a client that does not read. Past it that
  client is disconnected (code 1008) and its slot freed.
- every slot taken: the newcomer gets an Error "no free channels" and the connection closes (code 1013,
  try again later), as moshi-server does; Unmute reads it as "at capacity". There is no queue.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
from http import HTTPStatus
from urllib.parse import parse_qs

import numpy as np

from ..extras import require
from . import protocol
from .engine import Channel, Engine

DEFAULT_KEY = "public_token"  # what moshi-server's example configs accept and Kyutai's scripts send


class Connection:
    """The server's side of one client: its channel and the queue of frames to send it."""

    def __init__(self, ws, outbox_messages: int):
        self.ws = ws
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=outbox_messages)
        self.channel: Channel | None = None
        self.dropped = False

    def send(self, message: dict) -> bool:
        """Queue a message without waiting; False if the client is too far behind (then it is dropped)."""
        if self.dropped:
            return False
        try:
            self.outbox.put_nowait(protocol.pack(message))
            return True
        except asyncio.QueueFull:
            self.dropped = True
            return False


class Server:
    def __init__(self, model, host: str = "127.0.0.1", port: int = 8080, slots: int = 8,
                 api_keys=(DEFAULT_KEY,), max_message_bytes: int = 2**20, max_buffer_s: float = 60.0,
                 outbox_messages: int = 512, write_limit: int = 32 * 1024):
        if not api_keys:
            raise ValueError("at least one API key is needed (clients send it as kyutai-api-key or ?auth_id=)")
        self.host, self.port = host, port
        self.api_keys = [k.encode() for k in api_keys]
        self.max_message_bytes = max_message_bytes
        self.max_buffer = int(max_buffer_s * protocol.SAMPLE_RATE)
        self.outbox_messages = outbox_messages
        self.write_limit = write_limit  # bytes the socket may hold unsent before a send waits
        self.engine = Engine(model, slots, self._from_model_thread)
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self.connections: set[Connection] = set()
        self.refused = {"auth": 0, "full": 0, "slow": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # --------------------------------------------------------------------------- HTTP, before upgrade
    def _authorized(self, key: str | None) -> bool:
        if not key:
            return False
        given = key.encode()
        # every key compared, each in constant time: the answer's timing says nothing about the keys
        return any([hmac.compare_digest(given, k) for k in self.api_keys])

    def _process_request(self, connection, request):
        path, _, query = request.path.partition("?")
        if path == "/api/modules_info":  # moshi-server's status page: slots in use, no key needed
            last = (parse_qs(query).get("last") or ["1000"])[0]
            response = connection.respond(HTTPStatus.OK, json.dumps([self.stats(int(last) if last.isdigit() else 1000)])
                                          + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if path != protocol.PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, f"no such endpoint; speech-to-text is {protocol.PATH}\n")
        key = request.headers.get(protocol.API_KEY_HEADER)
        if key is None:
            key = (parse_qs(query).get("auth_id") or [None])[0]
        if not self._authorized(key):
            self.refused["auth"] += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong API key (kyutai-api-key header "
                                                                "or ?auth_id=)\n")
        return None

    # ----------------------------------------------------------------------------------- websocket
    async def _handle(self, ws):
        if self.engine.error is not None:  # the model thread died: say so rather than leave clients waiting
            await ws.send(protocol.pack(protocol.error(f"the model loop stopped: {self.engine.error!r}")))
            await ws.close(1011, "model loop stopped")
            return
        conn = Connection(ws, self.outbox_messages)
        conn.channel = self.engine.open(conn)
        if conn.channel is None:
            self.refused["full"] += 1
            await ws.send(protocol.pack(protocol.error(f"no free channels: all {self.engine.slots} slots are taken")))
            await ws.close(1013, "no free channels")
            return
        self.connections.add(conn)
        conn.send(protocol.ready())
        sender = asyncio.create_task(self._send_loop(conn))
        closed = require("websockets", "lab.serve").exceptions.ConnectionClosed
        try:
            async for frame in ws:
                if conn.dropped:
                    break
                await self._on_message(conn, frame)
        except closed:
            pass
        finally:
            self.engine.close(conn.channel)
            self.connections.discard(conn)
            sender.cancel()

    async def _on_message(self, conn: Connection, frame):
        ch = conn.channel
        try:
            message = protocol.unpack(frame)
            kind = protocol.client_type(message)
            if kind == "Audio":
                buffered = self.engine.push(ch, protocol.audio_samples(message))
                while buffered > self.max_buffer and not ch.closed:  # backpressure: stop reading this socket
                    await asyncio.sleep(0.02)
                    buffered = ch.buffered
            elif kind == "Marker":
                self.engine.add_marker(ch, protocol.marker_id(message))
            elif kind == "Init":
                self.engine.restart(ch)
                conn.send(protocol.ready())
            else:  # OggOpus: moshi-server decodes it with libopus; no library kept here decodes Ogg pages live
                raise protocol.ProtocolError("OggOpus is not supported by this server: send Audio messages "
                                             "(float PCM, 24 kHz mono)")
        except protocol.ProtocolError as e:
            conn.send(protocol.error(str(e)))

    async def _send_loop(self, conn: Connection):
        closed = require("websockets", "lab.serve").exceptions.ConnectionClosed
        try:
            while True:
                await conn.ws.send(await conn.outbox.get())
        except closed:
            pass

    def _from_model_thread(self, batch):
        self._loop.call_soon_threadsafe(self._dispatch, batch)

    def _dispatch(self, batch):
        for ch, generation, messages in batch:
            conn = ch.sink
            if ch.closed or ch.generation != generation or conn.dropped:
                continue
            for m in messages:
                if not conn.send(m):
                    self._drop_slow(conn)
                    break

    def _drop_slow(self, conn: Connection):
        """A client that does not read: free its slot now, close its socket without waiting for it."""
        self.refused["slow"] += 1
        self.engine.close(conn.channel)
        if conn.ws.transport is not None:
            conn.ws.transport.abort()

    # ------------------------------------------------------------------------------------ running
    async def run(self):
        """Serve until stop(); the model thread starts and stops with it."""
        ws_server = require("websockets.asyncio.server", "lab.serve")
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        self.engine.start()
        try:
            async with ws_server.serve(self._handle, self.host, self.port, process_request=self._process_request,
                                       max_size=self.max_message_bytes, max_queue=4, write_limit=self.write_limit,
                                       compression=None) as srv:
                if self.port == 0:
                    self.port = srv.sockets[0].getsockname()[1]
                self._ready.set()
                await self._closing.wait()
        finally:
            self.engine.stop()
            self._ready.set()

    def start(self, timeout: float = 30.0) -> Server:
        """Serve from a thread of its own (notebooks, tests); returns once the port is open."""
        failed: list[BaseException] = []

        def serve():
            try:
                asyncio.run(self.run())
            except BaseException as e:  # e.g. the port is taken: raised again below, in the caller's thread
                failed.append(e)
                self._ready.set()

        self._thread = threading.Thread(target=serve, name="dsm-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the server did not start within {timeout:g} s")
        if failed:
            raise failed[0]
        return self

    def stop(self):
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        if self._thread is not None:
            self._thread.join(timeout=15)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stats(self, last: int = 1000) -> dict:
        """What /api/modules_info answers: moshi-server's fields (as strings, as it sends them) and ours, over
        the last `last` steps: model step time and streams per step."""
        log = list(self.engine.step_log)[-last:]
        ms, streams = np.array([r[2] for r in log]), np.array([r[1] for r in log])
        return {"type": "batched_asr", "path": protocol.PATH, "used_slots": str(self.engine.used_slots),
                "total_slots": str(self.engine.slots), "steps": self.engine.step_idx, "dtype": self.dtype,
                "step_ms_p50": round(float(np.median(ms)), 2) if len(log) else None,
                "step_ms_p99": round(float(np.percentile(ms, 99)), 2) if len(log) else None,
                "streams_per_step_mean": round(float(streams.mean()), 2) if len(log) else None,
                "refused": dict(self.refused)}
