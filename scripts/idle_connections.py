#!/usr/bin/env python3
"""Idle connections on the HTTP server (issue 9, floods); not part of CI.

Starts BIN (a release build) with /ingest on 127.0.0.1:19750 and an HTTP target on a
local receiver (19751), times 50 /ingest requests, opens 1,000 connections that send
nothing, reads the relay's VmRSS, times 50 more requests, then counts how many idle
connections the relay closes (its request-head deadline is 10 s).

    cargo build --release && scripts/idle_connections.py target/release/badger-relay

Needs `ulimit -n` above 1,100 and the two ports free.
"""
import asyncio, hashlib, hmac, json, os, subprocess, sys, tempfile, time

BIN = sys.argv[1]

DIR = tempfile.mkdtemp(prefix="badger-relay-idle-")
CONFIG = os.path.join(DIR, "relay.toml")
with open(CONFIG, "w") as f:
    f.write(f"""[server]
listen = "127.0.0.1:19750"
ingest_secret = "whk_measure_secret_123456"

[outbox]
path = "{DIR}/outbox"

[targets.hook]
type = "http"
url = "http://127.0.0.1:19751/hook"

[[routes]]
name = "all"
targets = ["hook"]
""")
def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) / 1024
async def hook_server():
    async def h(r, w):
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"): n = int(line.split(b":")[1])
                await r.readexactly(n)
                w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"); await w.drain()
        except (Exception, asyncio.CancelledError): pass
    return await asyncio.start_server(h, "127.0.0.1", 19751)
async def ingest(i):
    body = json.dumps({"type":"tweet.detected","tweet_id":str(i),"monitor_id":"m","monitor_name":"M","author_username":"a","tweet_text":"t","tweet_url":"https://x.com/a/status/1","detected_at":"2026-12-02T12:00:00Z"}).encode()
    sig = "sha256=" + hmac.new(b"whk_measure_secret_123456", body, hashlib.sha256).hexdigest()
    r, w = await asyncio.open_connection("127.0.0.1", 19750)
    t = time.perf_counter()
    w.write(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Signature-256: " + sig.encode() + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    await w.drain(); status = (await r.readline()).split()[1]; dt = time.perf_counter() - t
    w.close(); return status, dt
async def main():
    srv = await hook_server()
    p = subprocess.Popen([BIN, "run", "-c", CONFIG], stderr=subprocess.DEVNULL)
    await asyncio.sleep(1.0)
    lat0 = sorted([ (await ingest(i))[1] for i in range(50)])
    base = rss(p.pid)
    conns = []
    for i in range(1000):
        conns.append(await asyncio.open_connection("127.0.0.1", 19750))
    await asyncio.sleep(1.0)
    idle = rss(p.pid)
    lat1 = sorted([ (await ingest(1000+i))[1] for i in range(50)])
    print(f"RSS before {base:.1f} MiB, with 1000 idle connections {idle:.1f} MiB")
    print(f"ingest 202 p50 before {lat0[25]*1e3:.2f} ms, with 1000 idle {lat1[25]*1e3:.2f} ms")
    t = time.time()
    closed = 0
    for r, w in conns:
        try:
            d = await asyncio.wait_for(r.read(1), 20)
            if d == b"": closed += 1
        except Exception: closed += 1
    print(f"closed by the relay: {closed}/1000 within {time.time()-t:.1f} s more")
    p.terminate(); p.wait()
    srv.close()
asyncio.run(main())
