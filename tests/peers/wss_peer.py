"""wss:// peers for the TLS-hook tests (Python `websockets`, asyncio: memory
BIOs at both ends).

server CERT KEY HOST PORT DEFLATE(0|1) READY_FILE
    echoes every message until killed.
client HOST PORT CONNS LOG_FILE
    opens CONNS connections at once on one event loop; on connection i sends
    text messages and binary ones up to 4 MiB (sizes differ per connection,
    so a message on a wrong connection shows), reads each echo, and logs
    one JSON line per message: local port, direction, length, text.
"""
import asyncio
import json
import ssl
import sys

import websockets


async def serve(cert, key, host, port, deflate, ready):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    async def echo(ws, path=None):
        async for m in ws:
            await ws.send(m)

    async with websockets.serve(
        echo, host, int(port), ssl=ctx, max_size=None,
        compression="deflate" if deflate == "1" else None,
    ):
        open(ready, "w").write("ready")
        await asyncio.Future()


def messages(i):
    yield f"hello from connection {i}"
    yield "x" * (100 + i)
    yield bytes([i]) * (65536 + i)
    yield f"after 64k on {i}"
    yield bytes(range(256)) * ((4 << 20) // 256 - i)


async def one(host, port, i, log):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    async with websockets.connect(f"wss://{host}:{port}/tls{i}", ssl=ctx, max_size=None) as ws:
        lport = ws.transport.get_extra_info("sockname")[1]
        for m in messages(i):
            await ws.send(m)
            back = await ws.recv()
            assert back == m
            for d in ("client_to_server", "server_to_client"):
                log.append({"port": lport, "dir": d, "len": len(m),
                            "text": m if isinstance(m, str) else None})


async def clients(host, port, n, path):
    log = []
    await asyncio.gather(*(one(host, port, i, log) for i in range(int(n))))
    with open(path, "w") as f:
        for e in log:
            f.write(json.dumps(e) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(serve(*sys.argv[2:8]))
    else:
        asyncio.run(clients(*sys.argv[2:6]))
