"""Faults and bad input against a real server, each with a well-behaved client streaming through it that
must finish with exactly the words the model gives locally: nothing lost, nothing mixed up."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
import weakref

import msgpack
import numpy as np
import psutil
import pytest
import websockets
from serve_fixtures import KEY, pack, sample, start_server, well_behaved, words_of

import lab
import lab.remote
import lab.serve.server
from lab.serve import PATH
from lab.serve.server import Connection

HEADERS = {"kyutai-api-key": KEY}


@pytest.fixture(scope="module")
def model():
    return lab.load()


@pytest.fixture(scope="module")
def expected(model):
    return words_of(model.transcribe((sample("lights"), 24_000)))


@pytest.fixture(scope="module")
def server(model):
    # small limits, so that the tests reach them in seconds
    srv = start_server(model, slots=4, outbox_messages=16, max_buffer_s=2.0, write_limit=4096)
    yield srv
    srv.stop()


def free_slots_soon(server, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while server.engine.used_slots and time.time() < deadline:
        time.sleep(0.02)
    return server.engine.used_slots == 0


def with_good_client(server, expected, fault):
    """Run `fault()` while a well-behaved client streams; returns what the fault returned."""
    async def both():
        good = asyncio.create_task(well_behaved(server.url, expected))
        await asyncio.sleep(0.2)  # the good client is connected and streaming
        result = await fault()
        await good
        return result
    result = asyncio.run(asyncio.wait_for(both(), 180))
    assert free_slots_soon(server)
    return result


def test_a_client_that_disconnects_mid_word(server, expected):
    async def fault():
        ws = await websockets.connect(server.url + PATH, additional_headers=HEADERS)
        audio = sample("turn")
        for i in range(0, 24_000, 1920):  # one second: inside "time"
            await ws.send(pack({"type": "Audio", "pcm": audio[i:i + 1920].tolist()}))
        await asyncio.sleep(0.3)
        ws.transport.abort()  # no close frame: the network went away
    with_good_client(server, expected, fault)


def bad_then_good(server, expected, bad: list[bytes]) -> list[str]:
    """A stream that gets bad messages halfway through keeps its state: its words are still exact."""
    async def run():
        async with lab.remote.AsyncRemoteStream(server.url, api_key=KEY) as s:
            audio = sample("lights")
            await s.feed(audio[:30_000], 24_000)
            for frame in bad:
                await s.ws.send(frame)
            await s.feed(audio[30_000:], 24_000)
            await s.flush()
            assert words_of(s.transcript()) == expected
            return s.errors

    async def fault():
        return await run()
    return with_good_client(server, expected, fault)


def test_malformed_msgpack_gets_an_error_and_the_stream_goes_on(server, expected):
    errors = bad_then_good(server, expected, [b"\xc1\xff\x00", b"\x93\x01"])
    assert len(errors) == 2 and all("malformed msgpack" in e for e in errors)


def test_an_unknown_message_type_is_named(server, expected):
    errors = bad_then_good(server, expected, [pack({"type": "Flush"}), pack({"no": "type"}), pack([1, 2])])
    assert "unknown message type 'Flush'" in errors[0] and "expected one of Audio" in errors[0]
    assert "without a 'type'" in errors[1] and "expected a msgpack map" in errors[2]


def test_pcm_of_the_wrong_type_is_refused_with_the_reason(server, expected):
    bad = [pack({"type": "Audio", "pcm": np.zeros(1920, np.int16).tobytes()}),
           pack({"type": "Audio", "pcm": ["0.1"] * 10}),
           pack({"type": "Audio", "pcm": [1200, -3000, 32000]}),
           pack({"type": "Audio", "pcm": [0.0, float("nan")]}),
           pack({"type": "Audio", "pcm": 0.5}),
           pack({"type": "Marker", "id": "one"}),
           pack({"type": "OggOpus", "data": b"OggS"})]
    errors = bad_then_good(server, expected, bad)
    assert len(errors) == len(bad)
    assert "raw bytes" in errors[0] and "numbers only, found a str" in errors[1]
    assert "integer PCM" in errors[2] and "NaN" in errors[3] and "got float" in errors[4]
    assert "Marker.id must be an integer" in errors[5] and "OggOpus is not supported" in errors[6]


def test_an_oversized_message_closes_that_connection_only(server, expected):
    async def fault():
        ws = await websockets.connect(server.url + PATH, additional_headers=HEADERS, max_size=None)
        await ws.recv()  # Ready
        await ws.send(pack({"type": "Audio", "pcm": [0.0] * 300_000}))  # 1.5 MB > the 1 MiB limit
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            while True:
                await ws.recv()
        return closed.value.rcvd.code
    assert with_good_client(server, expected, fault) == 1009  # "message too big"


def test_more_clients_than_slots_are_refused_clearly(server, expected):
    async def fault():
        # Newcomers until one is refused: the good client holds a slot while it streams, and may be done
        # before they all arrive, so the refusal comes at the fourth or the fifth.
        idle, refused = [], None
        for _ in range(5):
            try:
                idle.append(await lab.remote.AsyncRemoteStream(server.url, api_key=KEY).connect())
            except lab.remote.RemoteError as e:
                refused = e
                break
        assert refused is not None and len(idle) >= 3, "a fifth client got a slot of four"
        assert "no free channels: all 4 slots are taken" in str(refused)
        await idle[0].close()  # a slot frees: the next newcomer gets in
        for _ in range(100):
            if server.engine.used_slots < 4:
                break
            await asyncio.sleep(0.02)
        late = await lab.remote.AsyncRemoteStream(server.url, api_key=KEY).connect()
        for s in [*idle[1:], late]:
            await s.close()
    with_good_client(server, expected, fault)
    assert server.refused["full"] >= 1


def test_a_client_that_never_reads_is_cut_off_with_bounded_memory(server, expected):
    """It sends audio as fast as it can and reads nothing: the server buffers at most max_buffer_s of its
    audio (then stops reading it), queues at most outbox_messages for it, then drops it."""
    peak = {"buffered": 0, "outbox": 0}

    async def fault():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect(("127.0.0.1", server.port))
        ws = await websockets.connect(server.url + PATH, additional_headers=HEADERS, sock=sock, max_queue=1)
        frame = pack({"type": "Audio", "pcm": [0.01] * 1920})
        mine = []
        while not mine:  # the server registers the connection a moment after the handshake
            mine = [c for c in list(server.connections) if c.ws.remote_address[1] == sock.getsockname()[1]]
            await asyncio.sleep(0.01)
        # the kernel's buffers small on the server's side too, so that the test takes seconds, not minutes
        mine[0].ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        deadline = time.time() + 90
        try:
            while time.time() < deadline:  # audio as fast as it goes, until the server cuts it off
                await ws.send(frame)
                for conn in list(server.connections):
                    if conn.channel is not None and conn.ws.remote_address[1] == sock.getsockname()[1]:
                        peak["buffered"] = max(peak["buffered"], conn.channel.buffered)
                        peak["outbox"] = max(peak["outbox"], conn.outbox.qsize())
        except websockets.exceptions.ConnectionClosed:
            return True
        return False
    assert with_good_client(server, expected, fault), "the silent client was never cut off"
    assert server.refused["slow"] >= 1
    assert peak["buffered"] <= server.max_buffer + 1920 and peak["outbox"] <= 16


@pytest.mark.slow
def test_a_thousand_connect_disconnect_cycles_leak_no_slot_and_no_memory(server, expected, monkeypatch):
    process = psutil.Process()
    made = weakref.WeakSet()

    class Counted(Connection):  # every connection the server makes, without keeping any alive
        def __init__(self, *args):
            super().__init__(*args)
            made.add(self)
    monkeypatch.setattr(lab.serve.server, "Connection", Counted)

    async def cycles(n):
        for _ in range(n):
            async with websockets.connect(server.url + PATH, additional_headers=HEADERS) as ws:
                assert msgpack.unpackb(await ws.recv())["type"] == "Ready"

    asyncio.run(cycles(50))  # warm up allocators and caches
    gc.collect()
    before = process.memory_info().rss
    asyncio.run(cycles(1000))
    assert free_slots_soon(server) and not server.connections
    deadline = time.time() + 5  # the last handler may still be finishing
    while gc.collect() is not None and len(made) and time.time() < deadline:
        time.sleep(0.05)
    assert len(made) == 0, f"{len(made)} of 1050 connections still alive"
    grown_mb = (process.memory_info().rss - before) / 2**20
    assert grown_mb < 20, f"resident memory grew {grown_mb:.1f} MB over 1000 cycles"
    asyncio.run(well_behaved(server.url, expected))  # and the server still serves exactly
    deadline = time.time() + 5
    while server.engine.pool.busy_slots and time.time() < deadline:
        time.sleep(0.05)
    assert server.engine.pool.busy_slots == []
