#!/usr/bin/python3
"""Many idle WebSocket connections, for wstap's memory benchmark
(Python `websockets` 10.x).

    many_conns.py server --host H --port P [--ready FILE]
        Echo server (permessage-deflate accepted when offered). Runs until
        killed. Writes FILE once listening.

    many_conns.py client --host H --port P --count N --log FILE
                         [--idle-marker FILE] [--go FILE] [--sent-marker FILE]
                         [--idle S] [--hold S] [--parallel K]
        Opens N connections, K at a time; odd-numbered ones offer
        permessage-deflate (websockets' default: context takeover, 12 window
        bits), even-numbered ones do not (--deflate all|none: every one or
        none). Once all are open it writes
        --idle-marker and stays idle: until --go exists when given (at most
        120 s), else for --idle seconds. Then every connection sends one text
        message and awaits its echo; it writes --sent-marker, holds --hold
        seconds, closes all and writes the JSON log:

        {"opened": N, "compressed": N, "failed": N, "sent": N, "received": N,
         "sent_bytes": B, "open_seconds": S}
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time

import websockets


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def touch(path):
    if path:
        with open(path, "w") as f:
            f.write("ok\n")


async def echo(ws, path=None):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def server(args):
    kwargs = {"max_size": None, "ping_interval": None, "max_queue": None, "backlog": 4096}
    async with websockets.serve(echo, args.host, args.port, **kwargs):
        touch(args.ready)
        await asyncio.Future()


def message(i):
    # Some repetition, so that deflate has something to do.
    return f"connection {i} says hello; " * 4


async def client(args):
    uri = f"ws://{args.host}:{args.port}/many"
    sem = asyncio.Semaphore(args.parallel)
    conns = [None] * args.count
    failed = 0

    async def open_one(i):
        nonlocal failed
        compression = "deflate" if (args.deflate == "all" or
                                    (args.deflate == "half" and i % 2)) else None
        async with sem:
            for _ in range(3):
                try:
                    conns[i] = await websockets.connect(
                        uri, compression=compression, ping_interval=None, max_queue=None,
                        open_timeout=60, close_timeout=30)
                    return
                except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                    await asyncio.sleep(0.2)
            failed += 1

    t0 = time.monotonic()
    await asyncio.gather(*(open_one(i) for i in range(args.count)))
    open_seconds = time.monotonic() - t0
    live = [(i, c) for i, c in enumerate(conns) if c is not None]
    compressed = sum(1 for _, c in live if c.extensions)
    print(f"many_conns: {len(live)} open ({compressed} compressed), {failed} failed, "
          f"{open_seconds:.1f} s", file=sys.stderr)
    touch(args.idle_marker)
    if args.go:
        t = time.monotonic()
        while not os.path.exists(args.go) and time.monotonic() - t < 120:
            await asyncio.sleep(0.1)
    else:
        await asyncio.sleep(args.idle)

    sent = received = sent_bytes = 0

    async def talk(i, c):
        nonlocal sent, received, sent_bytes
        async with sem:
            m = message(i)
            try:
                await c.send(m)
                sent += 1
                sent_bytes += len(m.encode())
                if await c.recv() == m:
                    received += 1
            except websockets.WebSocketException:
                pass

    await asyncio.gather(*(talk(i, c) for i, c in live))
    print(f"many_conns: {sent} sent, {received} echoed", file=sys.stderr)
    touch(args.sent_marker)
    await asyncio.sleep(args.hold)

    async def close(c):
        async with sem:
            try:
                await c.close()
            except websockets.WebSocketException:
                pass

    await asyncio.gather(*(close(c) for _, c in live))
    with open(args.log, "w") as f:
        json.dump({"opened": len(live), "compressed": compressed, "failed": failed,
                   "sent": sent, "received": received, "sent_bytes": sent_bytes,
                   "open_seconds": round(open_seconds, 2)}, f)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["server", "client"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--ready", help="server: file written once listening")
    p.add_argument("--count", type=int, default=10000, help="client: connections")
    p.add_argument("--deflate", choices=["half", "none", "all"], default="half",
                   help="client: which connections offer permessage-deflate (default: every other)")
    p.add_argument("--parallel", type=int, default=200, help="client: opens at a time")
    p.add_argument("--log", help="client: JSON summary file")
    p.add_argument("--idle-marker", help="client: file written once all are open")
    p.add_argument("--go", help="client: wait for this file before sending")
    p.add_argument("--sent-marker", help="client: file written once all echoes arrived")
    p.add_argument("--idle", type=float, default=5.0, help="client: idle seconds without --go")
    p.add_argument("--hold", type=float, default=3.0, help="client: seconds before closing")
    args = p.parse_args()
    if args.mode == "client" and not args.log:
        p.error("client needs --log FILE")
    raise_nofile()
    try:
        asyncio.run(server(args) if args.mode == "server" else client(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
