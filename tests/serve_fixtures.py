"""What the server tests share: a real server on a free localhost port, a plain
protocol client written from the message list (no lab code), and a well-behaved client that checks its
words against model.transcribe()."""

from __future__ import annotations

import asyncio
import time

import msgpack
import numpy as np
import websockets

import lab
import lab.remote
from lab.serve import PATH, Server

KEY = "test-key"
FRAME = 1920


def start_server(model, **kwargs) -> Server:
    """A real server on a free localhost port, in a thread of its own."""
    return Server(model, port=0, **{"slots": 4, "api_keys": [KEY, "second-key"], **kwargs}).start()


def sample(name: str = "lights") -> np.ndarray:
    audio, rate = lab.audio.load_audio(lab.resources.samples_root() / f"{name}.wav")
    assert rate == 24_000
    return audio.astype(np.float32)


def words_of(transcript) -> list[tuple[str, float, float]]:
    return [(w.text, w.start_s, w.end_s) for w in transcript.words]


def pack(message: dict) -> bytes:
    return msgpack.packb(message, use_bin_type=True, use_single_float=True)


async def protocol_client(url: str, audio: np.ndarray, key: str = KEY, lead_s: float = 1.0, realtime: bool = False):
    """The flow of Kyutai's file client, written from the protocol: lead silence in one message, the audio
    in 1920-sample messages, a few seconds of silence, a Marker, silence until the Marker comes back.
    Returns every message received, in order."""
    received = []
    async with websockets.connect(url + PATH, additional_headers={"kyutai-api-key": key}) as ws:
        async def send():
            await ws.send(pack({"type": "Audio", "pcm": [0.0] * int(lead_s * 24_000)}))
            t0 = time.perf_counter()
            for i in range(0, len(audio), FRAME):
                await ws.send(pack({"type": "Audio", "pcm": [float(x) for x in audio[i:i + FRAME]]}))
                if realtime:
                    await asyncio.sleep(max(0.0, t0 + (i + FRAME) / 24_000 - time.perf_counter()))
            await ws.send(pack({"type": "Audio", "pcm": [0.0] * 24_000}))
            await ws.send(pack({"type": "Marker", "id": 7}))
            for _ in range(10):
                await ws.send(pack({"type": "Audio", "pcm": [0.0] * 24_000}))

        async def receive():
            async for frame in ws:
                received.append(msgpack.unpackb(frame, raw=False))
                if received[-1]["type"] == "Marker":
                    return

        sender = asyncio.create_task(send())
        await asyncio.wait_for(receive(), 120)
        sender.cancel()
    return received


async def well_behaved(url: str, expected: list, name: str = "lights", **kwargs):
    """A client that streams a clip through whatever else is going on and must get exactly the words the
    model gives locally."""
    got = await lab.remote.transcribe_async(url, sample(name), 24_000, api_key=KEY, **kwargs)
    assert words_of(got) == expected
    return got
