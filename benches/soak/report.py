#!/usr/bin/env python3
"""Summarises a benches/soak.sh run: reads the wrk counts (wrk-<name>.txt, from count.lua) and the phase
windows of WORKDIR, prints a table, writes a JSON summary, exits 1 when a check fails.

    report.py WORKDIR SUMMARY.json key=value...   (the process and reload figures measured by soak.sh)
"""
import json
import pathlib
import sys

# 503 is allowed only on the userinfo route, for tokens not in the cache, while the userinfo IdP is slow,
# down or answering 500 (docs/connectors/oidc-userinfo.md: IdP failure -> 503). SLACK seconds after a
# phase ends cover requests that were already waiting on the IdP when it recovered.
ALLOWED = {"ui-uncached": ({503}, ("ui_slow", "ui_down", "ui_500"))}
SLACK = 2
ROUTES = ["public", "jwt-k1", "jwt-k2", "ui-cached", "ui-uncached"]


def main():
    work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    extra = {k: int(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    phases = {}
    for line in (work / "phases").read_text().split("\n"):
        if line.strip():
            name, start, end = line.split()
            phases[name] = (int(start), int(end))

    routes, failures = {}, []
    for name in ROUTES:
        f = work / f"wrk-{name}.txt"
        if not f.exists():
            failures.append(f"{name}: no wrk result")
            continue
        statuses, unexpected, requests, errors = {}, {}, 0, {}
        allowed_status, allowed_phases = ALLOWED.get(name, (set(), ()))
        for line in f.read_text().split("\n"):
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "requests":
                requests = int(parts[1])
            elif parts[0] == "errors":
                errors = {k: int(v) for k, v in (p.split("=") for p in parts[1:])}
            else:
                sec, status, count = map(int, parts)
                statuses[status] = statuses.get(status, 0) + count
                if 200 <= status < 300:
                    continue
                ok = status in allowed_status and any(
                    phases[p][0] <= sec <= phases[p][1] + SLACK for p in allowed_phases if p in phases)
                if not ok:
                    unexpected[status] = unexpected.get(status, 0) + count
        non2xx = {s: c for s, c in statuses.items() if not 200 <= s < 300}
        routes[name] = {"requests": requests, "status": statuses, "non_2xx": non2xx,
                        "unexpected_non_2xx": unexpected, "socket_errors": errors}
        if unexpected:
            failures.append(f"{name}: unexpected non-2xx {unexpected}")
        if any(errors.values()):
            failures.append(f"{name}: wrk socket errors {errors}")

    if extra.get("panics", 0):
        failures.append(f"{extra['panics']} panic(s) in the Gatehouse log")
    if (extra.get("reloads_ok"), extra.get("reloads_failed")) != (
            extra.get("reloads_expected_ok"), extra.get("reloads_expected_failed")):
        failures.append("reload counters differ from the reloads sent")

    summary = {"routes": routes, "phases": {k: {"start": s, "end": e} for k, (s, e) in phases.items()},
               **extra, "failures": failures, "ok": not failures}
    out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")

    print(f"\nSoak: {extra.get('seconds', 0)} s of load; phases: "
          + ", ".join(f"{k} {e - s} s" for k, (s, e) in phases.items()))
    print(f"{'route':<12} {'requests':>9} {'2xx':>9}  non-2xx by status (unexpected)")
    for name in ROUTES:
        r = routes.get(name)
        if r is None:
            continue
        two = sum(c for s, c in r["status"].items() if 200 <= s < 300)
        bad = ", ".join(f"{s}: {c} ({r['unexpected_non_2xx'].get(s, 0)})" for s, c in sorted(r["non_2xx"].items()))
        print(f"{name:<12} {r['requests']:>9} {two:>9}  {bad or '-'}")
    print(f"reloads ok/failed: {extra.get('reloads_ok')}/{extra.get('reloads_failed')} "
          f"(expected {extra.get('reloads_expected_ok')}/{extra.get('reloads_expected_failed')}); "
          f"SIGHUPs logged {extra.get('reloads_logged_sighup')}, "
          f"file-watcher reload lines {extra.get('reloads_logged_file_change')}; "
          f"JWKS refreshes failed while down: {extra.get('jwks_failed_refreshes')}; panics: {extra.get('panics')}")
    print(f"Gatehouse RSS {extra.get('rss_kb_start')} kB -> {extra.get('rss_kb_end')} kB; "
          f"open fds {extra.get('fds_start')} -> {extra.get('fds_end')}")
    print(f"summary: {out}")
    for f in failures:
        print(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
