#!/usr/bin/env python3
"""A bounded TCP connection flood against a relay's TLS-over-TCP port, for
tests: `tcp_flood.py HOST PORT SECONDS N_ADDRS PER_ADDR`.

From N_ADDRS loopback source addresses (127.0.0.2 ...), PER_ADDR connections
each, in three kinds taken in turn: idle (connect, send nothing), slow loris
(a TLS ClientHello's first bytes, then one byte a second) and full TLS
handshakes that then sit idle (each costs the relay a signature). Everything
is closed after SECONDS. Prints one line: counts of what was attempted,
connected, and refused or closed by the relay."""
import asyncio
import ssl
import sys

HELLO_START = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])


async def one(host, port, src, kind, until, tally):
    loop = asyncio.get_running_loop()
    tally["attempted"] += 1
    ctx = None
    if kind == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(src, 0), ssl=ctx,
                                    server_hostname=None if ctx is None else "relay"),
            timeout=max(0.1, until - loop.time()))
    except Exception:
        tally["refused"] += 1
        return
    tally["connected"] += 1
    closed = False
    try:
        i = 0
        while loop.time() < until:
            if kind == "loris":
                writer.write(HELLO_START[i % len(HELLO_START):i % len(HELLO_START) + 1])
                await writer.drain()
                i += 1
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=1.0)
                if not data:
                    closed = True
                    break
            except asyncio.TimeoutError:
                pass
    except Exception:
        closed = True
    if closed:
        tally["closed_by_relay"] += 1
    writer.close()


async def main():
    host, port, secs, n_addrs, per = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5])
    until = asyncio.get_running_loop().time() + secs
    tally = dict(attempted=0, connected=0, refused=0, closed_by_relay=0)
    kinds = ["idle", "loris", "tls"]
    tasks = []
    for a in range(n_addrs):
        src = "127.0.0.%d" % (2 + a)
        for c in range(per):
            tasks.append(one(host, port, src, kinds[(a + c) % 3], until, tally))
    await asyncio.gather(*tasks)
    print(" ".join("%s=%d" % kv for kv in tally.items()))


asyncio.run(main())
