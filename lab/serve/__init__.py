"""Serving a model to the clients people already use: Kyutai's streaming speech-to-text protocol over
websockets (`dsm-lab serve`), one batched model step per frame for every connected client.

Needs the [serve] extra (websockets, msgpack); `import lab` does not import this package.
"""

from __future__ import annotations

import logging

from .protocol import PATH, ProtocolError

__all__ = ["PATH", "ProtocolError", "Server", "run_cli"]


def __getattr__(name):
    if name == "Server":  # websockets only when a server is wanted: lab.remote needs the protocol alone
        from .server import Server
        return Server
    raise AttributeError(name)


def run_cli(args) -> int:
    """`dsm-lab serve`: load the model, serve until interrupted."""
    import asyncio
    import ipaddress

    import torch

    import lab

    from .server import DEFAULT_KEY, Server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log = logging.getLogger("dsm-lab serve")
    if args.threads:
        torch.set_num_threads(args.threads)
    keys = args.api_key or [DEFAULT_KEY]
    if not args.api_key:
        log.warning("no --api-key given: accepting %r, the key Kyutai's example clients send", DEFAULT_KEY)
        try:
            if not ipaddress.ip_address(args.host).is_loopback:
                log.warning("listening on %s with the default key: anyone who can reach it can use it", args.host)
        except ValueError:
            pass
    model = lab.load(args.model, dtype=getattr(args, "dtype", "float32"))
    server = Server(model, host=args.host, port=args.port, slots=args.slots, api_keys=keys)
    log.info("model %s (%s), %d slots, listening on %s%s", model.cfg.name, server.dtype, args.slots, server.url, PATH)
    try:
        asyncio.run(server.run())
    except KeyboardInterrupt:
        pass
    return 0
