#!/usr/bin/env python3
"""The three admin routes of bench/nginx.conf, answered after a delay.

bench/lean.sh uses it for the "stub that answers after 40 ms" case (nginx-light cannot
delay a response). HTTP/1.1 keep-alive, one asyncio loop; it runs as its own process, so
its CPU is not counted against acaload. GET /__bench_status returns the request count
(as nginx's stub_status does, on line 3, column 3) so lean.sh can referee acaload's count.

    slow_stub.py PORT DELAY_MS
"""

import asyncio
import re
import sys

WALLET = b'{"wallet_id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","token":"eyJhbGciOiJIUzI1NiJ9.eyJ3YWxsZXRfaWQiOiIzZmEifQ.sig"}'
CONNECTIONS = b'{"results":[{"connection_id":"c9z8","state":"active","alias":"peer"},{"connection_id":"c1d2","state":"active","alias":"mediator"}]}'
PING = b'{"thread_id":"t-1"}'
PING_PATH = re.compile(rb"^/connections/([^/]+)/send-ping$")
BEARER = b"bearer eyjhbgcioijiuzi1nij9."

count = 0


def route(method, path, headers):
    auth = headers.get(b"authorization", b"").lower().startswith(BEARER)
    path = path.split(b"?", 1)[0]
    if path == b"/multitenancy/wallet":
        return (200, WALLET) if method == b"POST" else (405, b"{}")
    if path == b"/connections":
        return (200, CONNECTIONS) if auth else (401, b'{"error":"unauthorized"}')
    m = PING_PATH.match(path)
    if m:
        if method != b"POST":
            return 405, b"{}"
        if not auth:
            return 401, b'{"error":"unauthorized"}'
        return (200, PING) if m.group(1) == b"c1d2" else (404, b'{"error":"connection not found"}')
    return 404, b'{"error":"not found"}'


async def serve(reader, writer, delay):
    global count
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            method, path, _ = line.split(b" ", 2)
            headers = {}
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.partition(b":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get(b"content-length", b"0"))
            if n:
                await reader.readexactly(n)
            count += 1
            if path == b"/__bench_status":
                status, body = 200, b"Active connections: 0\nserver accepts handled requests\n 0 0 %d\n" % count
            else:
                await asyncio.sleep(delay)
                status, body = route(method, path, headers)
                if status >= 300:
                    sys.stderr.write(f"{status} {method.decode()} {path.decode()}\n")
            writer.write(
                b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (status, len(body), body)
            )
            await writer.drain()
    except (ConnectionError, ValueError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    port, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, delay), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
