"""RSS per idle client connection of a running Gatehouse (benches/connection_memory.sh).

usage: connection_memory.py PID PORT ADMIN_PORT N CLOSE_WAIT [TLS_PORT CA_FILE]
Opens N connections of each kind, waits until Gatehouse counts them open (its
gatehouse_connections_open gauge), reads VmRSS, closes them, and reads VmRSS
again after CLOSE_WAIT seconds of one request per second.
"""
import socket
import ssl
import sys
import time
import urllib.request

pid, port, admin, n, close_wait = (int(a) for a in sys.argv[1:6])
tls_port, ca_file = (int(sys.argv[6]), sys.argv[7]) if len(sys.argv) > 7 else (None, None)


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def open_now():
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("gatehouse_connections_open "):
                return int(float(line.split()[1]))
    return -1


def wait_open(want, bound=60):
    end = time.time() + bound
    while time.time() < end:
        if open_now() == want:
            return
        time.sleep(0.05)
    raise SystemExit(f"gatehouse_connections_open never reached {want} (at {open_now()})")


def request():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /public/ HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()


def keepalive():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /public/ HTTP/1.1\r\nHost: b\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got or not got.endswith(b"ok\n"):
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("closed before the answer")
        got += chunk
    return s


def h2c():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    if not s.recv(9):
        raise SystemExit("no SETTINGS from the server")
    return s


def tls():
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", tls_port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="api.example.com")


def plain():
    return socket.create_connection(("127.0.0.1", port), timeout=5)


for _ in range(20):
    request()
time.sleep(0.5)
base = rss_kib()
print(f"  start: {base / 1024:.1f} MB RSS")
rows = []
for name, make in [("HTTP/1.1, sent nothing", plain), ("HTTP/1.1, kept alive after one request", keepalive),
                   ("h2c, after preface and SETTINGS", h2c)] + (
                      [("TLS (HTTP/1.1 by ALPN), idle after the handshake", tls)] if tls_port else []):
    before = rss_kib()
    socks = [make() for _ in range(n)]
    wait_open(n)
    held = rss_kib()
    for s in socks:
        s.close()
    wait_open(0)
    for _ in range(close_wait):
        time.sleep(1)
        request()
    after = rss_kib()
    rows.append((name, (held - before) / n, after))
    print(f"  {name:42s} {(held - before) / n:6.1f} KiB per connection; "
          f"{after / 1024:.1f} MB RSS {close_wait} s after closing ({100 * (after - base) / base:+.0f} % of start)")
