"""wss:// peers for the TLS-hook tests (Python `websockets`, asyncio: memory
BIOs at both ends).

server CERT KEY HOST PORT DEFLATE(0|1) READY_FILE
    echoes every message until killed.
client HOST PORT CONNS LOG_FILE
    opens CONNS connections at once on one event loop; on connection i sends
    text messages and binary ones up to 4 MiB (sizes differ per connection,
    so a message on a wrong connection shows), reads each echo, and logs
    one JSON line per message: local port, direction, length, text.
blocking HOST PORT LOG_FILE
    one connection on a plain blocking `ssl` socket (socket BIO: the library
    itself calls the kernel, unlike the asyncio peers) with a WebSocket
    handshake and masked frames made here, a 256 KiB binary message among
    them; logs like `client`. Then a second connection that writes zero
    bytes and half a message, and the process exits in the middle of it.
https CERT KEY HOST PORT READY_FILE
    an HTTP/1.1 server over TLS answering every GET with a fixed body.
bench HOST PORT COUNT SIZE
    one asyncio connection echoing COUNT binary messages of SIZE bytes one
    after another; prints {"seconds": ..., "bytes": ...} (the benchmark's
    wss echo).
"""
import asyncio
import base64
import http.server
import json
import os
import socket
import ssl
import struct
import sys
import time

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


def blocking_messages():
    yield 0x1, "hello from a blocking socket".encode()
    yield 0x2, bytes(range(256)) * 1024
    yield 0x1, "after 256k".encode()


def frame(opcode, payload):
    """One final, masked client frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def exactly(self, n):
        while len(self.buf) < n:
            more = self.sock.recv(262144)
            if not more:
                raise EOFError("connection closed")
            self.buf += more
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self):
        while b"\r\n\r\n" not in self.buf:
            more = self.sock.recv(262144)
            if not more:
                raise EOFError("connection closed")
            self.buf += more
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def message(self):
        b0, b1 = self.exactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self.exactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.exactly(8))
        assert b0 & 0x80 and not b1 & 0x80, "unfragmented, unmasked echo"
        return b0 & 0x0F, self.exactly(n)


def blocking(host, port, path):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((host, int(port)))
    sock = ctx.wrap_socket(raw, server_hostname=host)
    lport = sock.getsockname()[1]
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /blocking HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    reader = Reader(sock)
    assert reader.line().startswith(b"HTTP/1.1 101"), "upgrade refused"
    log = []
    for opcode, payload in blocking_messages():
        sock.sendall(frame(opcode, payload))
        back_op, back = reader.message()
        assert (back_op, back) == (opcode, payload), "echo differs"
        for d in ("client_to_server", "server_to_client"):
            log.append({"port": lport, "dir": d, "len": len(payload),
                        "text": payload.decode() if opcode == 0x1 else None})
    sock.sendall(frame(0x8, struct.pack("!H", 1000)))
    reader.message()
    sock.close()
    with open(path, "w") as f:
        for e in log:
            f.write(json.dumps(e) + "\n")
    # A second connection: upgraded, then a zero-length write, then half of
    # a message, and the process exits in the middle of it.
    raw = socket.create_connection((host, int(port)))
    sock = ctx.wrap_socket(raw, server_hostname=host)
    sock.sendall((f"GET /exits HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    assert Reader(sock).line().startswith(b"HTTP/1.1 101"), "upgrade refused"
    assert sock.write(b"") == 0
    half = frame(0x1, b"never finished " * 100)
    sock.sendall(half[: len(half) // 2])
    os._exit(0)


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b"hello over https\n"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def https(cert, key, host, port, ready):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = http.server.HTTPServer((host, int(port)), Hello)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    open(ready, "w").write("ready")
    server.serve_forever()


async def bench(host, port, count, size):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    m = bytes(range(256)) * (int(size) // 256) + bytes(int(size) % 256)
    async with websockets.connect(f"wss://{host}:{port}/bench", ssl=ctx, max_size=None,
                                  compression=None) as ws:
        t0 = time.monotonic()
        for _ in range(int(count)):
            await ws.send(m)
            assert len(await ws.recv()) == len(m)
        took = time.monotonic() - t0
    print(json.dumps({"seconds": took, "bytes": len(m) * int(count)}))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "server":
        asyncio.run(serve(*sys.argv[2:8]))
    elif mode == "client":
        asyncio.run(clients(*sys.argv[2:6]))
    elif mode == "blocking":
        blocking(*sys.argv[2:5])
    elif mode == "bench":
        asyncio.run(bench(*sys.argv[2:6]))
    elif mode == "https":
        https(*sys.argv[2:7])
    else:
        sys.exit(f"unknown mode {mode}")
