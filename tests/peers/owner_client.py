"""Clients for the process-attribution tests (tests/tests/live_process.rs).

early: connects, writes its local port to READY, waits until the file GO
       exists (wstap starts in between), then sends one message and reads
       the echo: a connection opened before wstap started.
quick: connects, sends one message and exits at once, without waiting for
       the echo or closing politely: a process that lives a few milliseconds.
"""
import asyncio
import os
import sys

import websockets


async def main():
    mode, uri = sys.argv[1], sys.argv[2]
    async with websockets.connect(uri, compression=None) as ws:
        if mode == "early":
            ready, go = sys.argv[3], sys.argv[4]
            with open(ready + ".tmp", "w") as f:
                f.write(str(ws.local_address[1]))
            os.rename(ready + ".tmp", ready)
            while not os.path.exists(go):
                await asyncio.sleep(0.02)
            await ws.send("sent by a connection older than wstap")
            await ws.recv()
        else:
            await ws.send("sent by a process that exits at once")
            # Let the frame leave before the process dies.
            await asyncio.sleep(0.005)
            os._exit(0)


asyncio.run(main())
