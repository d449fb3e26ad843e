#!/usr/bin/env python3
"""Split a callgrind run's instructions per request by where the code comes from.

    callgrind_buckets.py LOADED.out IDLE.out REQUESTS [--top N] [--grep REGEX]

Reads `callgrind_annotate --inclusive=no` of both files (exclusive cost per source file and function;
with line tables, code inlined from another crate is charged to that crate's file), subtracts the idle
run, divides by REQUESTS and sums by bucket: the crate a source file belongs to (Pingora split by
module), the allocator, libc's memcpy/memset; code inlined from the standard library is charged to the
crate of the function it was inlined into. Used with benches/instructions_h2.sh --out DIR.
"""
import re
import subprocess
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(.*?):(.*?)(?: \[(.*)\])?$")
CRATE_DIR = re.compile(r"/([A-Za-z0-9_]+(?:-[A-Za-z_][A-Za-z0-9_]*)*)-\d+\.\d+\.\d+[^/]*/(.*)$")
STD = ("core", "alloc", "std", "hashbrown")


def annotate(path):
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", path],
                         capture_output=True, text=True, check=True).stdout
    costs = defaultdict(int)
    for line in out.splitlines():
        m = LINE.match(line)
        if m and "PROGRAM TOTALS" not in line:
            costs[(m.group(2), m.group(3), m.group(4) or "")] += int(m.group(1).replace(",", ""))
    return costs


def fn_crate(fn):
    for tok in re.findall(r"(?:^|[<(&\[,] ?|as )([A-Za-z_][A-Za-z0-9_]*)::", fn):
        if tok not in STD and tok not in ("impl", "as", "dyn", "F", "T"):
            return tok
    return None


def pingora_core(rest):
    for prefix, name in (("src/protocols/http/v2/", "pingora-core http/v2 (h2 server/client session)"),
                         ("src/protocols/http/v1/client", "pingora-core http/v1 client (upstream)"),
                         ("src/protocols/http/v1/", "pingora-core http/v1 server + common"),
                         ("src/protocols/http/", "pingora-core http (other)"),
                         ("src/protocols/tls/", "pingora-core tls"),
                         ("src/protocols/l4/", "pingora-core l4 (sockets, stream)"),
                         ("src/connectors/", "pingora-core connectors (upstream connect + pool)"),
                         ("src/apps/", "pingora-core apps (connection loop)")):
        if rest.startswith(prefix):
            return name
    return "pingora-core other"


def bucket(path, fn, obj):
    if "libc.so" in obj or "/libc" in path or path.startswith("./"):
        return "libc memcpy/memmove/memset" if re.search(r"mem(cpy|move|set)", fn) else "libc other"
    if "ld-linux" in obj or "vgpreload" in obj:
        return "loader/valgrind"
    m = CRATE_DIR.search(path)
    if m:
        crate, rest = m.group(1), m.group(2)
        if crate == "libmimalloc-sys" or crate == "mimalloc":
            return "allocator (mimalloc)"
        if crate == "pingora-core":
            return pingora_core(rest)
        if crate == "h2":
            return "h2 crate: hpack" if rest.startswith("src/hpack") else "h2 crate: framing, streams, flow control"
        if crate in ("tokio", "tokio-util"):
            return "tokio"
        if crate in ("rustls", "ring", "aws-lc-rs", "rustls-pki-types", "rustls-webpki"):
            return "TLS (rustls, ring)"
        return crate
    if "/crates/" in path:
        m = re.search(r"/crates/([^/]+)/src/(\w+)", path)
        return f"{m.group(1)}::{m.group(2)}" if m else "gatehouse (other)"
    if path.startswith("/rustc/") or path == "???":
        c = fn_crate(fn)
        if c is None:
            return "std/core (unattributed)"
        c = c.replace("_", "-")
        if c.startswith("pingora-core"):
            return "pingora-core (std inlined)"
        if c == "h2":
            return "h2 crate: framing, streams, flow control"
        if c in ("tokio", "tokio-util"):
            return "tokio"
        if c in ("rustls", "ring", "rustls-pki-types", "rustls-webpki"):
            return "TLS (rustls, ring)"
        if c == "gatehouse":
            return "gatehouse (std inlined)"
        return c
    return "other"


def main():
    args = sys.argv[1:]
    top, grep = 25, None
    if "--top" in args:
        i = args.index("--top"); top = int(args[i + 1]); del args[i:i + 2]
    if "--grep" in args:
        i = args.index("--grep"); grep = re.compile(args[i + 1]); del args[i:i + 2]
    loaded, idle, n = annotate(args[0]), annotate(args[1]), int(args[2])
    per = {k: (loaded.get(k, 0) - idle.get(k, 0)) / n for k in set(loaded) | set(idle)}
    buckets = defaultdict(float)
    for (path, fn, obj), v in per.items():
        buckets[bucket(path, fn, obj)] += v
    total = sum(per.values())
    print(f"{'bucket':<55}{'instr/request':>14}{'share':>8}")
    for b, v in sorted(buckets.items(), key=lambda kv: -kv[1]):
        if abs(v) >= 50:
            print(f"{b:<55}{v:>14,.0f}{v / total:>8.1%}")
    print(f"{'total':<55}{total:>14,.0f}")
    print(f"\ntop {top} file:function (exclusive, per request)")
    rows = sorted(per.items(), key=lambda kv: -kv[1])
    if grep:
        rows = [r for r in rows if grep.search(r[0][0] + ":" + r[0][1])]
    for (path, fn, obj), v in rows[:top]:
        short = re.sub(r".*/(?:registry/src/[^/]+|crates)/", "", path)
        print(f"{v:>9,.0f}  {short}:{fn[:150]}")


if __name__ == "__main__":
    main()
