"""`dsm-lab serve` against real clients on localhost: the words equal model.transcribe()'s, every message
of Kyutai's protocol has its fields, authentication happens before the upgrade."""

from __future__ import annotations

import asyncio
import hmac
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import websockets
from serve_fixtures import KEY, pack, protocol_client, sample, start_server, words_of

import lab
import lab.remote
from lab.cli import build_parser
from lab.serve import PATH, Server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model():
    return lab.load()


@pytest.fixture(scope="module")
def server(model):
    srv = start_server(model)
    yield srv
    srv.stop()


def test_remote_transcribe_equals_local_transcribe(server, model):
    for name in ("lights", "turn"):
        local = model.transcribe(lab.resources.samples_root() / f"{name}.wav")
        remote = lab.remote.transcribe(server.url, lab.resources.samples_root() / f"{name}.wav", api_key=KEY)
        assert words_of(remote) == words_of(local) and remote.text == local.text != ""
        assert remote.word_arrivals == sorted(remote.word_arrivals) and len(remote.word_arrivals) == len(local.words)
        # the steps frame has the local columns, p_eot from Step.prs, and when each Step came back
        assert list(local.steps.columns) == list(remote.steps.columns[:len(local.steps.columns)])
        assert {"arrival_s", "sent_s", "lag_ms", "step_idx", "buffered_pcm"} <= set(remote.steps.columns)
        n = len(local.steps)
        assert (remote.steps.p_eot_2s[:n].to_numpy() - local.steps.p_eot_2s[:n].to_numpy()).__abs__().max() < 1e-5


def shifted(words, by_s: float) -> list:
    return [(w.text, round(w.start_s - by_s, 4), None if w.end_s is None else round(w.end_s - by_s, 4)) for w in words]


def test_a_clients_leading_silence_is_taken_off_its_times(server, model):
    """A second of silence before the clip (as Kyutai's scripts send): the words of model.transcribe() on that
    same audio, with times counted from the clip's start. (The silence is heard: the words of the clip
    alone may differ, a full stop here or there.)"""
    audio = sample("turn")
    local = model.transcribe((np.concatenate([np.zeros(24_000, np.float32), audio]), 24_000))
    remote = lab.remote.transcribe(server.url, (audio, 24_000), api_key=KEY, lead_silence_s=1.0)
    assert words_of(remote) == shifted(local.words, 1.0) != []


def test_a_client_written_from_the_protocol_gets_every_message_and_field(server, model):
    """Kyutai's file-client flow (1 s of leading silence, 1920-sample messages, marker, silence)."""
    audio = sample("turn")
    messages = asyncio.run(protocol_client(server.url, audio))
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "Ready" and kinds[-1] == "Marker" and messages[-1]["id"] == 7 and "Error" not in kinds
    steps = [m for m in messages if m["type"] == "Step"]
    assert set(steps[0]) == {"type", "step_idx", "prs", "buffered_pcm"} and len(steps[0]["prs"]) == 4
    assert all(0.0 <= p <= 1.0 for s in steps for p in s["prs"])
    assert [s["step_idx"] for s in steps] == sorted(s["step_idx"] for s in steps)
    assert steps[0]["buffered_pcm"] > 0  # the lead second arrived at once: most of it waits
    words = []
    for m in messages:
        if m["type"] == "Word":
            assert set(m) == {"type", "text", "start_time"}
            words.append([m["text"], m["start_time"], None])
        elif m["type"] == "EndWord":
            assert set(m) == {"type", "stop_time"} and words[-1][2] is None
            words[-1][2] = m["stop_time"]
    local = model.transcribe((np.concatenate([np.zeros(24_000, np.float32), audio]), 24_000))  # what it sent
    assert [w[0] for w in words] == [w.text for w in local.words]
    for (_, start, stop), w in zip(words, local.words):  # the same times, to the float
        assert abs(start - w.start_s) < 1e-6 and (stop is None if w.end_s is None else abs(stop - w.end_s) < 1e-6)
    # the marker came back only after every word of the audio before it
    assert kinds.index("Marker") > max(i for i, k in enumerate(kinds) if k == "Word")


def test_init_restarts_the_stream_on_the_same_slot(server, model):
    """Init mid-stream: Ready again, and what follows is transcribed as by a fresh stream, times included."""
    audio = sample("lights")
    expected = words_of(model.transcribe((audio, 24_000)))

    async def run():
        async with websockets.connect(server.url + PATH, additional_headers={"kyutai-api-key": KEY}) as ws:
            assert msgpack.unpackb(await ws.recv())["type"] == "Ready"
            await ws.send(pack({"type": "Audio", "pcm": sample("weather")[:24_000].tolist()}))
            while msgpack.unpackb(await ws.recv())["type"] != "Word":  # the first stream is under way
                pass
            await ws.send(pack({"type": "Init"}))
            while msgpack.unpackb(await ws.recv())["type"] != "Ready":
                pass
            for i in range(0, len(audio), 1920):
                await ws.send(pack({"type": "Audio", "pcm": audio[i:i + 1920].tolist()}))
            await ws.send(pack({"type": "Marker", "id": 1}))
            words = []
            while True:
                await ws.send(pack({"type": "Audio", "pcm": [0.0] * 1920}))
                m = msgpack.unpackb(await ws.recv())
                if m["type"] == "Word":
                    words.append([m["text"], m["start_time"], None])
                elif m["type"] == "EndWord":
                    words[-1][2] = m["stop_time"]
                elif m["type"] == "Marker":
                    return [tuple(w) for w in words]

    assert asyncio.run(asyncio.wait_for(run(), 120)) == expected


def wait_for_free_slots(server, timeout: float = 10.0) -> int:
    """Slots still held: a client's close reaches the server a moment after the client returns."""
    deadline = time.time() + timeout
    while server.engine.used_slots and time.time() < deadline:
        time.sleep(0.02)
    return server.engine.used_slots


def test_missing_or_wrong_key_is_refused_before_the_upgrade(server):
    assert wait_for_free_slots(server) == 0

    async def status(url, headers=None):
        try:
            async with websockets.connect(url, additional_headers=headers or {}):
                return 101
        except websockets.exceptions.InvalidStatus as e:
            return e.response.status_code

    assert asyncio.run(status(server.url + PATH)) == 401
    assert asyncio.run(status(server.url + PATH, {"kyutai-api-key": "wrong"})) == 401
    assert asyncio.run(status(server.url + PATH + "?auth_id=wrong")) == 401
    assert asyncio.run(status(server.url + PATH + "?auth_id=second-key")) == 101
    assert asyncio.run(status(server.url + PATH, {"kyutai-api-key": KEY})) == 101
    assert asyncio.run(status(server.url + "/api/other", {"kyutai-api-key": KEY})) == 404
    assert wait_for_free_slots(server) == 0 and server.refused["auth"] >= 3
    with pytest.raises(lab.remote.RemoteError, match="HTTP 401"):
        lab.remote.transcribe(server.url, sample()[:4000], sample_rate=24_000, api_key="nope")


def test_keys_are_compared_in_constant_time_every_one(server, monkeypatch):
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(b) or real(a, b))
    for key in (KEY, "second-key", "wrong"):
        calls.clear()
        server._authorized(key)
        assert len(calls) == 2  # no early exit on the first match
    assert not server._authorized(None) and not server._authorized("")


def test_binds_this_machine_only_unless_told(model):
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    assert Server(model, slots=1).host == "127.0.0.1"
    with pytest.raises(ValueError, match="API key"):
        Server(model, slots=1, api_keys=[])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dsm_lab_serve_command_serves_a_protocol_client(model):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "serve", "--port", str(port), "--slots", "2",
                             "--api-key", KEY], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        audio = sample("weather")
        messages = asyncio.run(protocol_client(f"ws://127.0.0.1:{port}", audio, lead_s=0.0))
        got = " ".join(m["text"] for m in messages if m["type"] == "Word")
        assert got == model.transcribe((audio, 24_000)).text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_microphone_widget_source_streams_into_the_server(server, model):
    """lab.remote.stream as the sink of a lab.widgets FileMicrophone (48 kHz, 80 ms blocks from its own
    thread, 4x real time): the words are those of a local stream fed the same blocks."""
    from lab.widgets.sources import FileMicrophone

    mic = FileMicrophone(lab.resources.samples_root() / "lights.wav", speed=4.0, tail_s=0.0)
    audio48 = lab.audio.StreamingResampler(24_000, 48_000).push(mic.audio.astype(float))
    mic.audio, mic.sample_rate, mic.block_size = audio48.astype("float32"), 48_000, 3840
    local = model.stream()
    events = [e for i in range(0, len(audio48), 3840) for e in local.feed(audio48[i:i + 3840], 48_000)]
    events += local.flush()
    expected = [(w.text, w.start_s, w.end_s) for w in lab.events.with_word_ends(events)]

    with lab.remote.stream(server.url, api_key=KEY) as s:
        mic.start(s.feed)
        assert mic.done.wait(30) and mic.error is None
        s.flush()
        assert words_of(s.transcript()) == expected != []


def test_the_event_loop_answers_while_the_model_steps(model):
    """Model steps made slow on purpose (1 s each): a newcomer still gets Ready at once, because the
    steps run in the engine's thread, not on the event loop."""
    srv = start_server(model, slots=2)
    feed = srv.engine.pool.feed

    def slow_feed(*args, **kwargs):
        time.sleep(1.0)
        return feed(*args, **kwargs)
    srv.engine.pool.feed = slow_feed

    async def run():
        async with lab.remote.AsyncRemoteStream(srv.url, api_key=KEY) as busy:
            await busy.feed(sample()[:19_200], 24_000)  # ten frames: ten seconds of slow steps
            await asyncio.sleep(0.5)
            t0 = time.perf_counter()
            async with lab.remote.AsyncRemoteStream(srv.url, api_key=KEY):
                return time.perf_counter() - t0, len(busy.steps)

    try:
        waited, stepped = asyncio.run(run())
    finally:
        srv.stop()
    assert stepped < 10 and waited < 0.5, f"Ready took {waited:.2f} s while the model stepped"


def test_without_the_serve_extra_the_command_names_it(monkeypatch, capsys):
    from lab.cli import main

    monkeypatch.setitem(sys.modules, "websockets", None)  # as if not installed
    for name in [m for m in sys.modules if m.startswith("websockets.")]:
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["serve", "--port", "0", "--slots", "1", "--api-key", KEY]) == 2
    assert 'pip install "dsm-lab[serve]"' in capsys.readouterr().err


def test_modules_info_says_how_many_slots_are_in_use(server):
    import json
    import urllib.request

    info = json.loads(urllib.request.urlopen(server.url.replace("ws://", "http://") + "/api/modules_info").read())
    assert info[0]["type"] == "batched_asr" and info[0]["path"] == PATH and info[0]["total_slots"] == "4"
    assert int(info[0]["used_slots"]) <= 4 and info[0]["steps"] >= 0 and info[0]["dtype"] == "float32"


def test_a_bfloat16_server_gives_the_words_of_the_bfloat16_model():
    """`serve --dtype bfloat16`: what a client gets is that model's own transcribe(), batched with others."""
    half = lab.load(dtype="bfloat16")
    assert build_parser().parse_args(["serve", "--dtype", "bfloat16"]).dtype == "bfloat16"
    srv = start_server(half)
    try:
        local = half.transcribe(lab.resources.samples_root() / "lights.wav")
        remote = lab.remote.transcribe(srv.url, lab.resources.samples_root() / "lights.wav", api_key=KEY)
        assert words_of(remote) == words_of(local) and local.text != ""
        assert srv.stats()["dtype"] == "bfloat16"
    finally:
        srv.stop()


def test_a_stream_flushed_without_audio_ends_cleanly(server):
    with lab.remote.stream(server.url, api_key=KEY) as s:
        events = s.flush(realtime=True)  # a Marker, then silence until it comes back: D + 1 steps
        t = s.transcript()
    assert events and all(isinstance(e, lab.Step) for e in events)
    assert t.words == [] and t.errors == [] and len(t.steps) == len(events)
