#!/usr/bin/env python3
"""Sends exactly N GET requests over one keep-alive connection and checks every answer's status.

    keepalive_client.py HOST:PORT PATH N [EXPECTED_STATUS] [HEADER: VALUE]...

An exact request count (wrk runs for a duration and abandons what is in flight when it stops) is what
a per-request division needs: benches/allocations.sh divides allocator counters by it.
"""
import http.client
import sys


def main():
    hostport, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    expected = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    headers = dict(h.split(": ", 1) for h in sys.argv[5:])
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    for i in range(n):
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != expected:
            sys.exit(f"request {i + 1} of {n}: status {resp.status}, expected {expected}")
    conn.close()


if __name__ == "__main__":
    main()
