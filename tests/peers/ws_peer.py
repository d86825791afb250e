#!/usr/bin/python3
"""Real WebSocket peers for wstap's end-to-end tests (Python `websockets` 10.x).

    ws_peer.py server --host H --port P [--no-compression] [--ready FILE]
        Echo server: every message comes back as it was received (same type,
        same payload). Runs until killed. Writes FILE once listening.

    ws_peer.py client --host H --port P --log FILE [--conversation NAME ...]
                      [--no-log-payload] [--count N] [--size BYTES]
                      [--wait-for FILE] [--exit-code N]
        Runs the named scripted conversations (default: all of `DEFAULT`),
        each on its own connection, and writes a JSON log of every message it
        sent and received, per connection, in order, and who it ran as; then
        exits with N (default 0). With --wait-for, connects only once FILE
        exists (a test can start wstap with the client's pid in between).

        {"conversations": [{"name": ..., "local_port": ..., "compression": ...,
           "sent": [MSG...], "received": [MSG...], "pings": [b64...],
           "close": {"code": 1000, "reason": "bye"}}],
         "pid": PID, "uid": UID, "gid": GID}
        MSG = {"type": "text"|"binary", "len": N, "fragments": K,
               "text": STR | "b64": STR}   (payload left out with --no-log-payload)

TLS (wss://): the server with --tls-cert CERT --tls-key KEY; the client with
--tls (no certificate check) and --keylog FILE (SSLContext.keylog_filename:
the session secrets, NSS key log format), --tls-max 1.2|1.3 (highest version
offered) and --ciphers LIST (the TLS 1.2 suites offered, OpenSSL names). The
TLS 1.3 suites are chosen through OPENSSL_CONF (the stdlib has no
set_ciphersuites).

Conversations (see CONVERSATIONS): plain, deflate (context takeover),
deflate-nct (no context takeover both ways), deflate-bits (reduced window
bits), large (several MiB), bulk (binary messages totalling --size bytes,
for benchmarks), bulk64k (random 64 KiB binary messages totalling --size),
large-text (texts of 64 KiB to 16 MiB with multibyte characters and
characters JSON escapes), small (--count short text messages, for
benchmarks). Any of the benchmark ones with "-deflate" appended
(bulk-deflate, small-deflate, ...) negotiates permessage-deflate with context
takeover (needs a server without --no-compression).
"""

import argparse
import asyncio
import base64
import json
import os
import random
import ssl
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

MAX = None  # no message size limit on either side


def pattern(n, seed=0):
    """Deterministic, not very compressible bytes."""
    out = bytearray(n)
    x = (seed * 2654435761 + 12345) & 0xFFFFFFFF
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out[i] = (x >> 16) & 0xFF
    return bytes(out)


def msg_entry(payload, fragments, log_payload):
    if isinstance(payload, str):
        e = {"type": "text", "len": len(payload.encode()), "fragments": fragments}
        if log_payload:
            e["text"] = payload
    else:
        e = {"type": "binary", "len": len(payload), "fragments": fragments}
        if log_payload:
            e["b64"] = base64.b64encode(payload).decode()
    return e


def standard_script():
    """The message mix every protocol variant runs: sizes around the 7/16/64
    bit length boundaries, empty, unicode, fragmented, pings."""
    return [
        ("send", "hello"),
        ("send", ""),
        ("send", b""),
        ("send", "ünïcødé ✓ 🚀"),
        ("send", "x" * 125),
        ("send", "y" * 126),
        ("send", pattern(65535, 1)),
        ("send", pattern(65536, 2)),
        ("send", pattern(200_000, 3)),
        ("ping", b"are you there"),
        ("fragments", ["frag-one ", "frag-two ", "frag-three"]),
        ("fragments", [pattern(10, 4), pattern(70_000, 5), pattern(3, 6)]),
        ("send", "compressible " * 1000),
        ("ping", b""),
        ("send", "last"),
    ]


CONVERSATIONS = {
    "plain": {"compression": None, "script": standard_script},
    "deflate": {"compression": "deflate", "script": standard_script},
    "deflate-nct": {
        "compression": "deflate-nct",
        "extensions": lambda: [
            ClientPerMessageDeflateFactory(
                client_no_context_takeover=True, server_no_context_takeover=True
            )
        ],
        "script": standard_script,
    },
    "deflate-bits": {
        "compression": "deflate-bits",
        "extensions": lambda: [
            ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=9)
        ],
        "script": standard_script,
    },
    "large": {
        "compression": None,
        "script": lambda: [
            ("send", pattern(3 * 1024 * 1024 + 7, 7)),
            ("send", pattern(4 * 1024 * 1024, 11)),
            ("send", "after large"),
        ],
    },
}
DEFAULT = ["plain", "deflate", "deflate-nct", "deflate-bits", "large"]


# Words of the large texts: multibyte characters, and characters JSON must
# escape (quotes, backslashes, tabs, newlines, a control character).
TEXT_WORDS = ["hello", "wörld", "价格", "naïve", "\"quoted\"", "back\\slash",
              "tab\there", "line\n", "ctl\x01", "emoji\U0001F600", "plain", "text"]


def large_text(n, seed):
    """Valid UTF-8 text of at most n bytes (within a word of it),
    deterministic."""
    rng = random.Random(seed)
    parts, size = [], 0
    while True:
        w = rng.choice(TEXT_WORDS)
        if size + len(w.encode()) + 1 > n:
            return " ".join(parts)
        parts.append(w)
        size += len(w.encode()) + 1


def bench_script(name, args):
    if name.endswith("-deflate"):
        return bench_script(name[: -len("-deflate")], args)
    if name == "bulk":
        chunk = 1 << 20
        data = pattern(chunk, 9)
        n = max(1, args.size // chunk)
        return [("send", data)] * n
    if name == "bulk64k":
        # Random binary, a different message each time (randbytes is fast
        # and deterministic per seed).
        rng = random.Random(args.port)
        n = max(1, args.size // 65536)
        return [("send", rng.randbytes(65536)) for _ in range(n)]
    if name == "large-text":
        return [("send", large_text(n, i)) for i, n in enumerate(
            [64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20])]
    if name == "small":
        return [("send", f"message number {i} with a little text")for i in range(args.count)]
    raise SystemExit(f"unknown conversation {name!r}")


async def run_conversation(name, args):
    conf = CONVERSATIONS.get(name)
    if conf is None:
        conf = {"compression": None, "script": lambda: bench_script(name, args)}
        if name.endswith("-deflate"):
            conf["compression"] = "deflate"
    kwargs = {"max_size": MAX, "ping_interval": None, "max_queue": None}
    if "extensions" in conf:
        kwargs["extensions"] = conf["extensions"]()
        kwargs["compression"] = None
    else:
        kwargs["compression"] = conf["compression"]
    scheme = "ws"
    if args.tls:
        scheme = "wss"
        kwargs["ssl"] = client_tls(args)
    uri = f"{scheme}://{args.host}:{args.port}/{name}"
    if ":" in args.host:
        uri = f"{scheme}://[{args.host}]:{args.port}/{name}"
    log = {"name": name, "compression": conf["compression"], "sent": [], "received": [],
           "pings": []}
    lp = not args.no_log_payload
    async with websockets.connect(uri, **kwargs) as ws:
        log["local_port"] = ws.local_address[1]
        log["extensions"] = [e.name for e in ws.extensions]
        for step, value in conf["script"]():
            if step == "send":
                await ws.send(value)
                log["sent"].append(msg_entry(value, 1, lp))
                echo = await ws.recv()
                log["received"].append(msg_entry(echo, None, lp))
            elif step == "fragments":
                await ws.send(value)
                whole = ("" if isinstance(value[0], str) else b"").join(value)
                # websockets 10 ends a fragmented message with an extra empty
                # FIN continuation frame, so the wire carries one more frame.
                log["sent"].append(msg_entry(whole, len(value) + 1, lp))
                echo = await ws.recv()
                log["received"].append(msg_entry(echo, None, lp))
            elif step == "ping":
                waiter = await ws.ping(value)
                await waiter
                log["pings"].append(base64.b64encode(value).decode())
        await ws.close(1000, "bye")
        log["close"] = {"code": 1000, "reason": "bye"}
    return log


def client_tls(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if args.keylog:
        ctx.keylog_filename = args.keylog
    if args.tls_max:
        ctx.maximum_version = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[args.tls_max]
    if args.ciphers:
        ctx.set_ciphers(args.ciphers)
    return ctx


async def client(args):
    if args.wait_for:
        while not os.path.exists(args.wait_for):
            await asyncio.sleep(0.02)
    names = args.conversation or DEFAULT
    logs = []
    for name in names:
        logs.append(await run_conversation(name, args))
    with open(args.log, "w") as f:
        json.dump({"conversations": logs, "pid": os.getpid(), "uid": os.getuid(),
                   "gid": os.getgid()}, f)


async def echo(ws, path=None):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def server(args):
    kwargs = {"max_size": MAX, "ping_interval": None, "max_queue": None}
    if args.no_compression:
        kwargs["compression"] = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        kwargs["ssl"] = ctx
    async with websockets.serve(echo, args.host, args.port, **kwargs):
        if args.ready:
            with open(args.ready, "w") as f:
                f.write("ready\n")
        await asyncio.Future()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["server", "client"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--log", help="client: JSON log file")
    p.add_argument("--ready", help="server: file written once listening")
    p.add_argument("--conversation", action="append",
                   help="client: conversation name; repeat for more (default: " + ", ".join(DEFAULT) + ")")
    p.add_argument("--no-compression", action="store_true", help="server: decline permessage-deflate")
    p.add_argument("--no-log-payload", action="store_true", help="client: log lengths only")
    p.add_argument("--count", type=int, default=10000, help="client, small: number of messages")
    p.add_argument("--size", type=int, default=100 << 20, help="client, bulk: total bytes")
    p.add_argument("--wait-for", help="client: wait until this file exists before connecting")
    p.add_argument("--tls", action="store_true", help="client: wss://")
    p.add_argument("--tls-cert", help="server: certificate (PEM); serve wss://")
    p.add_argument("--tls-key", help="server: private key (PEM)")
    p.add_argument("--keylog", help="client: write the TLS secrets here")
    p.add_argument("--tls-max", choices=["1.2", "1.3"], help="client: highest TLS version")
    p.add_argument("--ciphers", help="client: TLS 1.2 cipher suites (OpenSSL names)")
    p.add_argument("--exit-code", type=int, default=0, help="client: exit with this code when done")
    args = p.parse_args()
    if args.mode == "client" and not args.log:
        p.error("client needs --log FILE")
    try:
        asyncio.run(server(args) if args.mode == "server" else client(args))
    except KeyboardInterrupt:
        pass
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
