#!/usr/bin/env python3
"""Driver of benches/flood.sh (issue 27, "bounded under hostile load"): floods a running Gatehouse
with seven hostile client patterns, one after the other, while a probe measures a normal client's
latency and a sampler reads the process's RSS and descriptor count. Python 3 standard library only
(asyncio, raw sockets, hand-encoded HTTP/1.1 and HTTP/2 frames).

    flood.py run --pid PID --port PORT --token JWT --out DIR [options]   the whole benchmark
    flood.py probe --port PORT --token JWT --out FILE                     (started by run)
    flood.py sample --pid PID --out FILE                                  (started by run)

Attacks (each FLOOD_SECONDS; a connection the server closes is replaced, so the pressure lasts):
  1 idle       2 000 TCP connections that send nothing
  2 keepalive  2 000 HTTP/1.1 connections idle after one `GET /public/small`
  3 h2-noread  20 h2c connections x 100 streams `GET /public/big`, SETTINGS_INITIAL_WINDOW_SIZE = 0,
               never a WINDOW_UPDATE (a stream the server ends or resets is replaced)
  4 h1-noread  200 HTTP/1.1 clients `GET /public/big` that never read (SO_RCVBUF 4 KiB)
  5 big-head   200 connections sending an unfinished request head of HEAD_BYTES (header lines, no
               final empty line) as fast as the server takes it
  6 userinfo   random opaque bearer tokens on the oidc_userinfo route, 50 keep-alive connections,
               each sending its next request once the previous one is answered
  7 h2-ping    4 h2c connections each sending 100 000 PING frames (a new connection once done)

Per attack: RSS and descriptors before, peak during (every 200 ms), then after the attacker's sockets
are closed RSS every second until it is within 20 % of the pre-flood value (at most RECOVERY
seconds); probe latency p50/p99/max in the QUIET seconds before the attack and during it; how the
attacker's connections ended. Writes summary.json and summary.md to --out, prints the Markdown
tables, exits 1 when Gatehouse died, logged a panic, or a probe request failed.
"""
import argparse
import asyncio
import collections
import json
import math
import os
import resource
import secrets
import signal
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TCP_STATES = {1: "ESTABLISHED", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE",
              8: "CLOSE_WAIT", 9: "LAST_ACK", 11: "CLOSING"}
now = time.monotonic  # CLOCK_MONOTONIC: one clock for the driver, the probe and the sampler


# --- /proc ----------------------------------------------------------------------------------------
def proc_figures(pid):
    """(VmRSS kB, open descriptors) of PID, or None once it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        rss = None
        for line in status.split("\n"):
            if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                return None
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        if rss is None:
            return None
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def tcp_mem_kb():
    """Kernel memory of every TCP socket on the machine (/proc/net/sockstat "TCP ... mem", pages):
    socket buffers are not in RSS, and past net.ipv4.tcp_mem's pressure threshold the kernel slows
    every TCP connection, the probes' too."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    p = line.split()
                    return int(p[p.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tcp_table():
    """(local port, remote port, state, inode) of every IPv4 TCP socket (/proc/net/tcp)."""
    out = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            out.append((int(p[1][-4:], 16), int(p[2][-4:], 16), int(p[3], 16), int(p[9])))
    return out


def gatehouse_conns(port, upstream_port):
    """Connections Gatehouse holds open (a socket with an inode; an orphan it closed has none):
    {client remote port: inode} on its listener PORT, and the number to UPSTREAM_PORT."""
    clients, upstream = {}, 0
    for lport, rport, state, inode in tcp_table():
        if inode == 0 or state == 0x0A:  # closed by the process (orphan, TIME_WAIT) or LISTEN
            continue
        if lport == port:
            clients[rport] = inode
        elif rport == upstream_port and upstream_port:
            upstream += 1
    return clients, upstream


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- HTTP/1.1 ---------------------------------------------------------------------------------------
def request(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: flood\r\n{extra}\r\n".encode()


def parse_response(buf, eof=False):
    """(status, bytes used, connection close) once BUF holds a whole response, else None."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None
    lines = buf[:i].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdr = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdr[k.strip().lower()] = v.strip()
    pos, close = i + 4, hdr.get("connection", "").lower() == "close"
    if status < 200 or status in (204, 304):
        return status, pos, close
    if "chunked" in hdr.get("transfer-encoding", "").lower():
        while True:
            j = buf.find(b"\r\n", pos)
            if j < 0:
                return None
            size = int(buf[pos:j].split(b";")[0], 16)
            if size == 0:
                k = buf.find(b"\r\n\r\n", j)
                return None if k < 0 else (status, k + 4, close)
            if len(buf) < j + 2 + size + 2:
                return None
            pos = j + 2 + size + 2
    if "content-length" in hdr:
        end = pos + int(hdr["content-length"])
        return (status, end, close) if len(buf) >= end else None
    return (status, len(buf), True) if eof else None


def status_of(data):
    """The status of an HTTP/1 response starting DATA, or None."""
    if data.startswith(b"HTTP/1.") and len(data) >= 12:
        try:
            return int(data[9:12])
        except ValueError:
            return None
    return None


# --- HTTP/2 frames ------------------------------------------------------------------------------------
def frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def h2_settings(**kv):
    ids = {"header_table_size": 1, "enable_push": 2, "initial_window_size": 4}
    return frame(4, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in kv.items()))


def h2_get(sid, path, authority):
    """HEADERS, END_STREAM|END_HEADERS: :method GET, :scheme http (static indices), :path and
    :authority as literals without indexing (name from the static table)."""
    p, a = path.encode(), authority.encode()
    block = b"\x82\x86" + b"\x04" + bytes([len(p)]) + p + b"\x01" + bytes([len(a)]) + a
    return frame(1, 0x5, sid, block)


def h2_frames(buf):
    """Complete frames at the start of BUF as (type, flags, stream, payload); the rest is left."""
    out, i = [], 0
    while len(buf) - i >= 9:
        n = int.from_bytes(buf[i:i + 3], "big")
        if len(buf) - i < 9 + n:
            break
        out.append((buf[i + 3], buf[i + 4], int.from_bytes(buf[i + 5:i + 9], "big") & 0x7FFFFFFF,
                    bytes(buf[i + 9:i + 9 + n])))
        i += 9 + n
    del buf[:i]
    return out


HPACK_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
HUFF_DIGITS = {"00000": "0", "00001": "1", "00010": "2", "011001": "3", "011010": "4",
               "011011": "5", "011100": "6", "011101": "7", "011110": "8", "011111": "9"}


def hpack_int(b, i, bits):
    mask = (1 << bits) - 1
    v, i = b[i] & mask, i + 1
    if v < mask:
        return v, i
    m = 0
    while True:
        c, i = b[i], i + 1
        v += (c & 0x7F) << m
        m += 7
        if not c & 0x80:
            return v, i


def huffman_digits(data):
    bits, out, cur = "".join(f"{c:08b}" for c in data), "", ""
    for bit in bits:
        cur += bit
        if cur in HUFF_DIGITS:
            out, cur = out + HUFF_DIGITS[cur], ""
        elif len(cur) > 6:
            break
    return out if cur.strip("1") == "" else None


def hpack_status(block):
    """:status of a response header block (the client advertised HEADER_TABLE_SIZE 0, so no dynamic
    table entry can be referenced); None when it cannot be read."""
    try:
        i = 0
        while i < len(block):
            c = block[i]
            if c & 0x80:
                idx, i = hpack_int(block, i, 7)
                return HPACK_STATUS.get(idx)
            if c & 0xE0 == 0x20:  # dynamic table size update
                _, i = hpack_int(block, i, 5)
                continue
            idx, i = hpack_int(block, i, 6 if c & 0xC0 == 0x40 else 4)
            if idx != 8:
                return None
            huff = block[i] & 0x80
            n, i = hpack_int(block, i, 7)
            raw = block[i:i + n]
            text = huffman_digits(raw) if huff else raw.decode()
            return int(text) if text else None
    except (IndexError, ValueError):
        return None
    return None


def headers_block(flags, payload):
    i, end = 0, len(payload)
    if flags & 0x8:  # PADDED
        end -= payload[0]
        i = 1
    if flags & 0x20:  # PRIORITY
        i += 5
    return payload[i:end]


# --- statistics ---------------------------------------------------------------------------------------
def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def lat_stats(values):
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50": pct(ms, 0.5), "p99": pct(ms, 0.99), "max": max(ms) if ms else None}


def spread(values):
    return {"n": len(values), "p50": pct(values, 0.5), "max": max(values) if values else None}


# --- probe process ------------------------------------------------------------------------------------
def probe_main(a):
    """Every 100 ms: `GET /public/small` on a new connection, and `GET /jwt/small` with a valid JWT on
    one keep-alive connection; one JSON line per request."""
    sys.setswitchinterval(0.0005)
    out, lock, stop = open(a.out, "a", buffering=1), threading.Lock(), threading.Event()
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def emit(rec):
        with lock:
            out.write(json.dumps(rec) + "\n")

    def exchange(sock, req, buf):
        sock.sendall(req)
        while True:
            r = parse_response(bytes(buf))
            if r:
                del buf[:r[1]]
                return r[0], r[2]
            d = sock.recv(65536)
            if not d:
                raise EOFError("connection closed by server")
            buf += d

    def new_conn():
        s = socket.create_connection((HOST, a.port), timeout=a.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def probe_new():
        s = new_conn()
        try:
            status, _ = exchange(s, request("/public/small"), bytearray())
            return status, 0
        finally:
            s.close()

    ka = {"sock": None, "buf": bytearray()}
    ka_req = request("/jwt/small", f"Authorization: Bearer {a.token}\r\n")

    def probe_ka():
        reconnects = 0
        for attempt in (0, 1):
            fresh = ka["sock"] is None
            if fresh:
                ka["sock"], ka["buf"] = new_conn(), bytearray()
            try:
                status, close = exchange(ka["sock"], ka_req, ka["buf"])
                if close:
                    ka["sock"].close()
                    ka["sock"] = None
                return status, reconnects
            except (EOFError, ConnectionResetError, BrokenPipeError):
                # A reused connection closed by the server before the answer: retry once on a new
                # one (as HTTP clients do for idempotent requests); counted, and a failure if the
                # new connection fails too.
                ka["sock"].close()
                ka["sock"] = None
                if fresh or attempt == 1:
                    raise
                reconnects += 1
        raise AssertionError("unreachable")

    def ticker(kind, fn):
        nxt = now()
        while not stop.is_set() and os.getppid() == parent:
            t0 = now()
            rec = {"k": "probe", "p": kind, "t": t0}
            try:
                status, reconnects = fn()
                rec.update(lat=now() - t0, status=status, ok=status == 200)
                if reconnects:
                    rec["reconnects"] = reconnects
            except Exception as e:  # noqa: BLE001 — every failure is a failed probe
                rec.update(lat=now() - t0, ok=False, err=f"{type(e).__name__}: {e}")
                if kind == "ka" and ka["sock"] is not None:
                    ka["sock"].close()
                    ka["sock"] = None
            emit(rec)
            nxt += 0.1
            wait = nxt - now()
            if wait > 0:
                stop.wait(wait)
            else:
                nxt = now()

    threads = [threading.Thread(target=ticker, args=(k, f), daemon=True)
               for k, f in (("new", probe_new), ("ka", probe_ka))]
    for t in threads:
        t.start()
    while not stop.is_set() and os.getppid() == parent:
        stop.wait(0.2)
    stop.set()
    for t in threads:
        t.join(a.timeout + 1)


def sample_main(a):
    """Every 200 ms: VmRSS and descriptor count of --pid, one JSON line each; `gone` once it died."""
    out, parent, stop = open(a.out, "a", buffering=1), os.getppid(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    nxt = now()
    while not stop.is_set() and os.getppid() == parent:
        t, fig = now(), proc_figures(a.pid)
        out.write(json.dumps({"k": "rss", "t": t, "rss": fig[0], "fds": fig[1], "cpu": cpu_ticks(a.pid),
                              "tcpmem": tcp_mem_kb()}
                             if fig else {"k": "gone", "t": t}) + "\n")
        nxt += 0.2
        stop.wait(max(0.0, nxt - now()))


# --- attacks ------------------------------------------------------------------------------------------
class Ctx:
    def __init__(self, a, deadline):
        self.a, self.deadline, self.loop = a, deadline, asyncio.get_running_loop()
        self.records, self.streams, self.counts = [], [], collections.Counter()
        self.latencies, self.connect_sem = [], asyncio.Semaphore(256)

    def left(self):
        return self.deadline - now()

    async def watch_server(self):
        """Every 250 ms: which client ports Gatehouse still holds a connection for (attack 4 tells
        a closed connection from the server side, since its client never reads)."""
        self.held = None
        while True:
            self.held = set(gatehouse_conns(self.a.port, 0)[0])
            await asyncio.sleep(0.25)

    async def connect(self, rec, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        try:
            async with self.connect_sem:
                await self.loop.sock_connect(s, (HOST, self.a.port))
        except BaseException:
            s.close()
            raise
        rec["t_ref"] = rec["t_conn"] = now()
        return s

    async def until_closed(self, s, rec):
        """Reads until the server closes S; records when and any status it sent."""
        while True:
            try:
                d = await self.loop.sock_recv(s, 65536)
            except ConnectionResetError:
                rec.update(end="server_reset", t_end=now())
                return
            if not d:
                rec.update(end="server_closed", t_end=now())
                return
            if "late_status" not in rec and status_of(d) is not None:
                rec["late_status"] = status_of(d)


async def sustained(ctx, n, body, grace=0.0):
    """N workers, each running BODY on one connection after the other until the attack's deadline (a
    connection the server ended is replaced); a connection still open at the deadline is closed by the
    client (end "client")."""
    async def worker():
        while ctx.left() > 0:
            rec, socks = {"t_open": now()}, []
            ctx.records.append(rec)
            try:
                await asyncio.wait_for(body(ctx, rec, socks), max(0.001, ctx.left() + grace))
            except TimeoutError:
                if ctx.left() > 0.05 + grace:
                    rec.setdefault("end", "error:timeout")
                rec.setdefault("end", "client")
            except ConnectionResetError:
                rec.setdefault("end", "server_reset")
            except (BrokenPipeError, EOFError):
                rec.setdefault("end", "server_closed")
            except OSError as e:
                rec.setdefault("end", f"error:{e.strerror or type(e).__name__}")
            finally:
                for s in socks:
                    s.close()
            rec.setdefault("t_end", now())
            rec.setdefault("end", "done")
            if rec["end"].startswith("error") or "t_conn" not in rec:
                await asyncio.sleep(0.1)
    await asyncio.gather(*(worker() for _ in range(n)))


async def a_idle(ctx, rec, socks):
    s = await ctx.connect(rec)
    socks.append(s)
    await ctx.until_closed(s, rec)


async def a_keepalive(ctx, rec, socks):
    s = await ctx.connect(rec)
    socks.append(s)
    await ctx.loop.sock_sendall(s, request("/public/small"))
    buf = bytearray()
    while True:
        r = parse_response(bytes(buf))
        if r:
            break
        d = await ctx.loop.sock_recv(s, 65536)
        if not d:
            raise EOFError
        buf += d
    rec["status"], rec["t_ref"] = r[0], now()  # idle from here
    await ctx.until_closed(s, rec)


async def a_h1_noread(ctx, rec, socks):
    """GET /public/big, then never read: the status line is read through MSG_PEEK (nothing is
    taken from the receive buffer) and the end of the connection is seen from the server side (its
    socket gone from Gatehouse in /proc/net/tcp: the server's FIN waits behind data the client never
    takes, so the client side stays ESTABLISHED) or, for a reset, from TCP_INFO."""
    s = await ctx.connect(rec, rcvbuf=4096)
    socks.append(s)
    eport, seen = s.getsockname()[1], False
    await ctx.loop.sock_sendall(s, request("/public/big"))
    while True:
        await asyncio.sleep(0.25)
        if "status" not in rec:
            try:
                rec["status"] = status_of(s.recv(64, socket.MSG_PEEK))
            except (BlockingIOError, ConnectionResetError):
                pass
        state = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        if state != 1:
            rec.update(end=f"server_closed:{TCP_STATES.get(state, state)}", t_end=now())
            return
        if ctx.held is not None:
            if eport in ctx.held:
                seen = True
            elif seen:
                rec.update(end="server_closed:server_side", t_end=now())
                return


async def a_big_head(ctx, rec, socks):
    s = await ctx.connect(rec)
    socks.append(s)
    await ctx.loop.sock_sendall(s, ctx.head)
    rec["sent_after"] = now() - rec["t_conn"]
    await ctx.until_closed(s, rec)


async def a_userinfo(ctx, rec, socks):
    s = await ctx.connect(rec)
    socks.append(s)
    buf, n = bytearray(), 0
    while True:
        req = request("/ui/small", f"Authorization: Bearer {secrets.token_urlsafe(24)}\r\n")
        t0 = now()
        await ctx.loop.sock_sendall(s, req)
        while True:
            r = parse_response(bytes(buf))
            if r:
                break
            d = await ctx.loop.sock_recv(s, 65536)
            if not d:
                rec.update(end="server_closed", t_end=now(), requests=n)
                return
            buf += d
        del buf[:r[1]]
        n += 1
        ctx.counts[r[0]] += 1
        ctx.latencies.append(now() - t0)
        rec["requests"] = n
        if r[2]:
            rec.update(end="server_closed:connection_close", t_end=now())
            return


async def a_h2_noread(ctx, rec, socks):
    s = await ctx.connect(rec)
    socks.append(s)
    loop, auth = ctx.loop, f"{HOST}:{ctx.a.port}"
    open_streams, nxt = {}, 1

    def open_stream():
        nonlocal nxt
        sid, nxt = nxt, nxt + 2
        srec = {"t_open": now(), "sid": sid}
        ctx.streams.append(srec)
        open_streams[sid] = srec
        return h2_get(sid, "/public/big", auth)

    out = H2_PREFACE + h2_settings(header_table_size=0, enable_push=0, initial_window_size=0)
    out += b"".join(open_stream() for _ in range(ctx.a.h2_streams))
    await loop.sock_sendall(s, out)
    buf, rec["streams"] = bytearray(), 0
    try:
        while True:
            try:
                d = await loop.sock_recv(s, 65536)
            except ConnectionResetError:
                rec.update(end="server_reset", t_end=now())
                return
            if not d:
                rec.update(end="server_closed", t_end=now())
                return
            buf += d
            out = b""
            for ftype, flags, sid, payload in h2_frames(buf):
                srec = open_streams.get(sid)
                if ftype == 4 and not flags & 1:
                    out += frame(4, 1, 0)  # SETTINGS ACK
                elif ftype == 6 and not flags & 1:
                    out += frame(6, 1, 0, payload)  # PING ACK
                elif ftype == 7:
                    rec["goaway"] = int.from_bytes(payload[4:8], "big")
                elif srec is None:
                    continue
                elif ftype == 1:
                    srec["status"] = hpack_status(headers_block(flags, payload))
                    if flags & 1:
                        srec["end"] = "end_stream"
                elif ftype == 0:
                    srec["data"] = srec.get("data", 0) + len(payload)
                    if flags & 1:
                        srec["end"] = "end_stream"
                elif ftype == 3:
                    srec["end"] = f"rst:{int.from_bytes(payload[:4], 'big')}"
                if srec is not None and "end" in srec:
                    srec["t_end"] = now()
                    del open_streams[sid]
                    if ctx.left() > 0 and "goaway" not in rec:
                        out += open_stream()
            if out:
                await loop.sock_sendall(s, out)
    finally:
        for srec in open_streams.values():
            srec.update(end="client" if "end" not in rec else "connection_ended", t_end=now())
        rec["streams"] = nxt // 2


async def a_h2_ping(ctx, rec, socks):
    s = await ctx.connect(rec)
    socks.append(s)
    loop, total, batch = ctx.loop, ctx.a.pings, 1000
    state = {"acks": 0, "eof": False}
    await loop.sock_sendall(s, H2_PREFACE + h2_settings(header_table_size=0, enable_push=0))

    async def reader():
        buf = bytearray()
        while True:
            try:
                d = await loop.sock_recv(s, 1 << 18)
            except ConnectionResetError:
                d = b""
            if not d:
                state["eof"] = True
                return
            buf += d
            for ftype, flags, _, payload in h2_frames(buf):
                if ftype == 6 and flags & 1:
                    state["acks"] += 1
                elif ftype == 4 and not flags & 1:
                    await loop.sock_sendall(s, frame(4, 1, 0))
                elif ftype == 7:
                    rec["goaway"] = int.from_bytes(payload[4:8], "big")
            if state["acks"] >= total:
                return

    r = asyncio.ensure_future(reader())
    chunk = frame(6, 0, 0, b"floodpng") * batch
    sent = 0
    try:
        while sent < total and not state["eof"]:
            await loop.sock_sendall(s, chunk)
            sent += batch
            rec["pings"] = sent
        await asyncio.wait_for(asyncio.shield(r), 5.0)
    except TimeoutError:
        pass
    finally:
        rec["acks"] = state["acks"]
        r.cancel()
    if state["eof"]:
        rec.update(end="server_closed", t_end=now())


ATTACKS = [
    # id, name, description, workers, body, extra grace (s)
    (1, "idle", "2 000 idle TCP connections", "idle_conns", a_idle, 0),
    (2, "keepalive", "2 000 HTTP/1.1 keep-alive, idle after one request", "keepalive_conns", a_keepalive, 0),
    (3, "h2-noread", "h2c 20 conns x 100 streams /public/big, window 0", "h2_conns", a_h2_noread, 0),
    (4, "h1-noread", "200 HTTP/1.1 /public/big, never read", "noread_conns", a_h1_noread, 0),
    (5, "big-head", "200 unfinished request heads (~1 MiB)", "head_conns", a_big_head, 0),
    (6, "userinfo", "random bearer tokens, 50 conns, IdP 1 s", "userinfo_conns", a_userinfo, 0),
    (7, "h2-ping", "4 h2c conns x 100 000 PING", "ping_conns", a_h2_ping, 0),
]


def big_head(size):
    """A request head of exactly SIZE bytes without its final empty line: 8 KiB header lines (so
    fewer than Pingora's 256 header lines)."""
    head = bytearray(f"GET /public/small HTTP/1.1\r\nHost: {HOST}\r\n".encode())
    i = 0
    while len(head) < size:
        name = f"X-Fill-{i:04d}: ".encode()
        room = size - len(head) - len(name) - 2
        if room < 1:
            head += b"X" * (size - len(head))  # an unfinished line
            break
        head += name + b"a" * min(8192, room) + b"\r\n"
        i += 1
    return bytes(head[:size])


def outcome(aid, ctx):
    """How the attacker's connections (and, for attack 3, streams) ended."""
    recs = ctx.records
    conns = [r for r in recs if "t_conn" in r]
    ends = collections.Counter(r.get("end", "?").split(":")[0] if r.get("end", "").startswith("server")
                               else r.get("end", "?") for r in recs)
    by_server = [r for r in conns if r.get("end", "").startswith("server")]
    statuses = collections.Counter(str(r.get("status", r.get("late_status"))) for r in conns
                                   if r.get("status", r.get("late_status")) is not None)
    o = {"connections": len(conns),
         "connect_failures": sum(1 for r in recs if "t_conn" not in r and r.get("end") != "client"),
         "ends": dict(ends), "closed_by_server": len(by_server),
         "closed_after_s": spread([round(r["t_end"] - r["t_ref"], 3) for r in by_server]),
         "open_at_end": sum(1 for r in conns if r.get("end") == "client"),
         "statuses": dict(statuses)}
    if aid == 3:
        st = ctx.streams
        ended = [x for x in st if x.get("end", "client") not in ("client", "connection_ended")]
        o["streams"] = {"opened": len(st), "ended_by_server": len(ended),
                        "ends": dict(collections.Counter(x.get("end", "?") for x in st)),
                        "ended_after_s": spread([round(x["t_end"] - x["t_open"], 2) for x in ended]),
                        "statuses": dict(collections.Counter(str(x.get("status")) for x in st)),
                        "data_bytes": sum(x.get("data", 0) for x in st)}
    if aid == 5:
        o["head_sent_after_s"] = spread([round(r["sent_after"], 3) for r in conns if "sent_after" in r])
    if aid == 6:
        o["requests"] = sum(ctx.counts.values())
        o["answers"] = {str(k): v for k, v in sorted(ctx.counts.items())}
        o["request_latency_ms"] = lat_stats(ctx.latencies)
    if aid == 7:
        o["pings_written_to_socket"] = sum(r.get("pings", 0) for r in conns)
        o["ping_acks"] = sum(r.get("acks", 0) for r in conns)
        o["goaways"] = sum(1 for r in conns if "goaway" in r)
        o["acks_per_conn"] = spread([r.get("acks", 0) for r in conns])
    return o


def outcome_text(aid, o):
    """One line for the table."""
    def after(sp):
        return f"{sp['p50']:.1f}/{sp['max']:.1f} s" if sp["n"] else "-"
    st = ",".join(f"{k}×{v}" for k, v in sorted(o["statuses"].items())) or "none"
    fail = f", {o['connect_failures']} connects failed" if o["connect_failures"] else ""
    if aid == 3:
        x = o["streams"]
        return (f"{o['connections']} conns, {x['opened']} streams; {x['ended_by_server']} ended by server "
                f"after p50/max {after(x['ended_after_s'])} ({', '.join(f'{k}×{v}' for k, v in x['ends'].items())}); "
                f"status {','.join(f'{k}×{v}' for k, v in x['statuses'].items())}; "
                f"{o['closed_by_server']} conns closed by server{fail}")
    if aid == 6:
        return (f"{o['requests']} requests ({', '.join(f'{k}×{v}' for k, v in o['answers'].items())}), "
                f"p50 {o['request_latency_ms']['p50'] or 0:.0f} ms; {o['closed_by_server']} conns closed by server{fail}")
    if aid == 7:
        ms = o["closed_after_s"]
        return (f"{o['connections']} conns; {o['closed_by_server']} closed by server "
                f"({', '.join(f'{k}×{v}' for k, v in o['ends'].items())}) after p50/max "
                f"{(ms['p50'] or 0) * 1000:.0f}/{(ms['max'] or 0) * 1000:.0f} ms; PING ACKs per conn p50/max "
                f"{o['acks_per_conn']['p50']}/{o['acks_per_conn']['max']} ({o['ping_acks']} in all); "
                f"{o['goaways']} GOAWAY{fail}")
    text = (f"{o['connections']} conns; {o['closed_by_server']} closed by server after p50/max "
            f"{after(o['closed_after_s'])}; status {st}; {o['open_at_end']} open at end{fail}")
    return text


# --- the run ------------------------------------------------------------------------------------------
def read_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    except FileNotFoundError:
        pass
    return out


def log(msg):
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


async def run(a):
    raise_nofile()
    os.makedirs(a.out, exist_ok=True)
    t_run = now()
    deadline = t_run + (a.deadline_epoch - time.time()) - 15 if a.deadline_epoch else t_run + 1e9
    probe_file, sample_file = os.path.join(a.work, "probe.jsonl"), os.path.join(a.work, "sample.jsonl")
    me = [sys.executable, os.path.abspath(__file__)]
    helpers = [
        await asyncio.create_subprocess_exec(*me, "probe", "--port", str(a.port), "--token", a.token,
                                             "--out", probe_file),
        await asyncio.create_subprocess_exec(*me, "sample", "--pid", str(a.pid), "--out", sample_file),
    ]
    results, crashed, skipped = [], False, []
    try:
        # Wait for the state "both probes answered 200 once", not for a fixed time.
        t0 = now()
        while not {"new", "ka"} <= {r["p"] for r in read_jsonl(probe_file) if r.get("k") == "probe" and r["ok"]}:
            if now() - t0 > 15:
                raise SystemExit("the probes never got a 200 from Gatehouse")
            await asyncio.sleep(0.1)
        await asyncio.sleep(a.quiet)  # warm-up: the first quiet window does not start with the probes
        wanted = {int(x) for x in a.attacks.split(",")}
        todo = [x for x in ATTACKS if x[0] in wanted]
        for k, (aid, name, desc, workers_attr, body, grace) in enumerate(todo):
            remaining = len(todo) - k - 1
            if now() + a.quiet + a.flood_seconds + grace + 8 > deadline:
                skipped.append(name)
                log(f"attack {aid} {name}: skipped, the time budget is spent")
                continue
            await asyncio.sleep(a.quiet)  # the quiet window the probe figures are compared to
            fig = proc_figures(a.pid)
            if fig is None:
                crashed = True
                break
            ctx = Ctx(a, now() + a.flood_seconds)
            ctx.head = big_head(a.head_bytes)
            clients, upstream = gatehouse_conns(a.port, a.upstream_port)
            res = {"id": aid, "name": name, "attack": desc, "rss_kb_before": fig[0], "fds_before": fig[1],
                   "client_conns_before": len(clients), "upstream_conns_before": upstream,
                   "t_quiet": now() - a.quiet, "t_start": now()}
            log(f"attack {aid} {name}: start (RSS {fig[0]} kB, {fig[1]} fds)")
            cpu0 = os.times()
            watcher = asyncio.ensure_future(ctx.watch_server()) if aid == 4 else None
            await sustained(ctx, getattr(a, workers_attr), body, grace)
            if watcher:
                watcher.cancel()
            res["t_closed"] = now()
            cpu1 = os.times()
            res["attacker_cpu_cores"] = round((cpu1.user + cpu1.system - cpu0.user - cpu0.system)
                                              / (res["t_closed"] - res["t_start"]), 2)
            res["outcome"] = outcome(aid, ctx)
            # Recovery: RSS every second until within 20 % of the pre-flood value and Gatehouse holds
            # no more client connections than before (+2: the probes), at most RECOVERY s (less when
            # the time budget needs it). Pooled upstream connections are reported, not waited for.
            cap = min(a.recovery, deadline - now() - remaining * (a.quiet + a.flood_seconds + 8))
            cap = max(1.0, cap)
            res["recovery_window_s"] = round(cap, 1)
            rss_back = conns_back = None
            res["rss_trace_kb"] = []  # one value a second from the close of the attacker's sockets
            t_rec = now()
            while True:
                fig = proc_figures(a.pid)
                if fig is None:
                    crashed = True
                    break
                el = now() - t_rec
                if rss_back is None and fig[0] <= 1.2 * res["rss_kb_before"]:
                    rss_back = round(el, 1)
                clients, upstream = gatehouse_conns(a.port, a.upstream_port)
                if conns_back is None and len(clients) <= res["client_conns_before"] + 2:
                    conns_back = round(el, 1)
                res["rss_kb_after"], res["fds_after"] = fig
                res["rss_trace_kb"].append(fig[0])
                res["client_conns_after"], res["upstream_conns_after"] = len(clients), upstream
                if (rss_back is not None and conns_back is not None) or el + 1 > cap:
                    break
                await asyncio.sleep(1.0)
            res.update(rss_back_s=rss_back, conns_back_s=conns_back, t_end=now())
            results.append(res)
            log(f"attack {aid} {name}: done; RSS back: {rss_back if rss_back is not None else 'no'} s, "
                f"client connections back: {conns_back if conns_back is not None else 'no'} s")
            if crashed:
                break
    finally:
        for p in helpers:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in helpers:
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                p.kill()
    if proc_figures(a.pid) is None:
        crashed = True
    return report(a, results, crashed, skipped, now() - t_run, probe_file, sample_file)


def fmt_ms(v):
    return "-" if v is None else f"{v:.1f}"


def report(a, results, crashed, skipped, seconds, probe_file, sample_file):
    probes = [r for r in read_jsonl(probe_file) if r.get("k") == "probe"]
    samples = [r for r in read_jsonl(sample_file) if r.get("k") == "rss"]
    failures = [r for r in probes if not r["ok"]]
    panics = 0
    if a.log and os.path.exists(a.log):
        with open(a.log, errors="replace") as f:
            panics = sum(1 for line in f if "panicked" in line)
    bar_ms = 10.0
    for res in results:
        win = [x for x in samples if res["t_start"] <= x["t"] <= res["t_closed"]]
        res["rss_kb_peak"] = max([x["rss"] for x in win] + [res["rss_kb_before"]])
        res["fds_peak"] = max([x["fds"] for x in win] + [res["fds_before"]])
        res["tcp_mem_kb_peak"] = max([x.get("tcpmem") or 0 for x in win] + [0])
        cpu, hz = [x for x in win if x.get("cpu") is not None], os.sysconf("SC_CLK_TCK")
        res["gatehouse_cpu_cores"] = (round((cpu[-1]["cpu"] - cpu[0]["cpu"]) / hz
                                            / (cpu[-1]["t"] - cpu[0]["t"]), 2) if len(cpu) > 1 else None)
        peak = 0.0
        for i, x in enumerate(cpu):  # the busiest second
            y = next((y for y in cpu[i + 1:] if y["t"] >= x["t"] + 1.0), None)
            if y:
                peak = max(peak, (y["cpu"] - x["cpu"]) / hz / (y["t"] - x["t"]))
        res["gatehouse_cpu_cores_peak_1s"] = round(peak, 2)
        one = next((x for x in samples if x["t"] >= res["t_closed"] + 1.0), None)
        res["rss_kb_1s_after"] = one["rss"] if one else res["rss_kb_after"]
        res["probes"] = {}
        for kind in ("new", "ka"):
            quiet = [x for x in probes if x["p"] == kind and res["t_quiet"] <= x["t"] < res["t_start"]]
            during = [x for x in probes if x["p"] == kind and res["t_start"] <= x["t"] <= res["t_closed"]]
            after = [x for x in probes if x["p"] == kind and res["t_closed"] < x["t"] <= res["t_end"]]
            q, d = lat_stats([x["lat"] for x in quiet if x["ok"]]), lat_stats([x["lat"] for x in during if x["ok"]])
            delta = None if q["p99"] is None or d["p99"] is None else d["p99"] - q["p99"]
            res["probes"][kind] = {
                "quiet_ms": q, "during_ms": d, "p99_delta_ms": delta,
                "failures": sum(1 for x in quiet + during + after if not x["ok"]),
                "reconnects": sum(x.get("reconnects", 0) for x in quiet + during + after)}
        for k in ("t_quiet", "t_start", "t_closed", "t_end"):
            res[k] = round(res[k], 3)
    summary = {
        "seconds": round(seconds, 1), "flood_seconds": a.flood_seconds, "quiet_seconds": a.quiet,
        "recovery_seconds": a.recovery, "limits": a.limits, "gatehouse_pid": a.pid,
        "crashed": crashed, "panics": panics, "probe_requests": len(probes),
        "probe_failures": len(failures), "probe_failure_examples": failures[:10],
        "skipped": skipped, "p99_bar_ms": bar_ms, "attacks": results}
    ok = not crashed and not panics and not failures
    summary["ok"] = ok

    def mib(kb):
        return f"{kb / 1024:.1f}"

    lines = [f"Flood, then recover ({len(results)} attacks × {a.flood_seconds} s; Gatehouse limits: {a.limits}; "
             f"RSS back = within +20 % of the pre-flood value, checked every 1 s for up to {a.recovery:g} s; "
             f"client conns back = Gatehouse holds no more client connections than before, +2).", "",
             "| # | attack | RSS MiB before → peak → 1 s after → end | RSS back | fds before → peak → end (upstream conns) | client conns back "
             "| new-conn probe p99 ms quiet → during (Δ) | keep-alive JWT probe p99 ms quiet → during (Δ) | probe failures "
             "| CPU cores during: Gatehouse avg, busiest 1 s / attacker avg | kernel TCP memory peak MiB (all sockets) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        back = f"{r['rss_back_s']:g} s" if r["rss_back_s"] is not None else f"not within {r['recovery_window_s']:g} s"
        fback = f"{r['conns_back_s']:g} s" if r["conns_back_s"] is not None else f"not within {r['recovery_window_s']:g} s"
        cells = []
        for kind in ("new", "ka"):
            p = r["probes"][kind]
            delta = p["p99_delta_ms"]
            flag = "" if delta is None or delta <= bar_ms else " **over 10**"
            cells.append(f"{fmt_ms(p['quiet_ms']['p99'])} → {fmt_ms(p['during_ms']['p99'])} "
                         f"({'-' if delta is None else format(delta, '+.1f')}){flag}")
        fails = sum(r["probes"][k]["failures"] for k in ("new", "ka"))
        lines.append(f"| {r['id']} | {r['name']} | {mib(r['rss_kb_before'])} → {mib(r['rss_kb_peak'])} → "
                     f"{mib(r['rss_kb_1s_after'])} → {mib(r['rss_kb_after'])} | {back} | {r['fds_before']} → {r['fds_peak']} → {r['fds_after']} ({r['upstream_conns_after']}) "
                     f"| {fback} | {cells[0]} | {cells[1]} | {fails} | {r['gatehouse_cpu_cores']}, {r['gatehouse_cpu_cores_peak_1s']} / {r['attacker_cpu_cores']} "
                     f"| {mib(r['tcp_mem_kb_peak'])} |")
    lines += ["", "| # | probe | quiet p50 / p99 / max ms | during p50 / p99 / max ms | Δp99 ms |", "|---|---|---|---|---|"]
    for r in results:
        for kind, label in (("new", "new conn /public/small"), ("ka", "keep-alive /jwt/small")):
            p = r["probes"][kind]
            q, d = p["quiet_ms"], p["during_ms"]
            lines.append(f"| {r['id']} | {label} | {fmt_ms(q['p50'])} / {fmt_ms(q['p99'])} / {fmt_ms(q['max'])} (n={q['n']}) "
                         f"| {fmt_ms(d['p50'])} / {fmt_ms(d['p99'])} / {fmt_ms(d['max'])} (n={d['n']}) "
                         f"| {'-' if p['p99_delta_ms'] is None else format(p['p99_delta_ms'], '+.1f')} |")
    lines += ["", "| # | attack | how the attacker's connections ended |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r['id']} | {r['attack']} | {outcome_text(r['id'], r['outcome'])} |")
    lines += ["", f"Run: {seconds:.0f} s; probe requests {len(probes)}, failed {len(failures)}; "
              f"Gatehouse {'CRASHED' if crashed else 'alive'}, {panics} panics in its log"
              + (f"; skipped (time budget): {', '.join(skipped)}" if skipped else "") + f". Result: {'ok' if ok else 'FAIL'}."]
    md = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(md)
    for x in failures[:10]:
        log(f"probe failure: {x}")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--token", required=True)
    r.add_argument("--upstream-port", type=int, default=0, help="to count Gatehouse's upstream connections")
    r.add_argument("--out", required=True)
    r.add_argument("--work", required=True, help="directory for the probe and sampler files")
    r.add_argument("--log", help="Gatehouse's log, searched for panics")
    r.add_argument("--limits", default="", help="the limits configured, for the report")
    r.add_argument("--flood-seconds", type=float, default=10)
    r.add_argument("--quiet", type=float, default=5)
    r.add_argument("--recovery", type=float, default=60)
    r.add_argument("--deadline-epoch", type=float, help="the whole run's end (unix time)")
    r.add_argument("--attacks", default="1,2,3,4,5,6,7")
    r.add_argument("--idle-conns", type=int, default=2000)
    r.add_argument("--keepalive-conns", type=int, default=2000)
    r.add_argument("--h2-conns", type=int, default=20)
    r.add_argument("--h2-streams", type=int, default=100)
    r.add_argument("--noread-conns", type=int, default=200)
    r.add_argument("--head-conns", type=int, default=200)
    r.add_argument("--head-bytes", type=int, default=1048575)
    r.add_argument("--userinfo-conns", type=int, default=50)
    r.add_argument("--ping-conns", type=int, default=4)
    r.add_argument("--pings", type=int, default=100000)
    p = sub.add_parser("probe")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=5)
    s = sub.add_parser("sample")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "probe":
        probe_main(a)
    elif a.cmd == "sample":
        sample_main(a)
    else:
        sys.exit(asyncio.run(run(a)))


if __name__ == "__main__":
    main()
