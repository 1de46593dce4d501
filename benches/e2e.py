#!/usr/bin/env python3
"""End-to-end benchmark: trailhound against DuckDB and the parse-only floor.

    python benches/e2e.py --trailhound BIN --parse-floor BIN --input FILE.jsonl \
        --rules rules/pack --work DIR [--runs N] [--json OUT]

Run by `scripts/bench` (which builds the binaries and writes the input);
BENCHMARKS.md explains the figures. Every run is a child process pinned to
its cores with sched_setaffinity; wall time is measured around the process
and peak memory is the child's maximum resident set (wait4). With --runs N
each configuration runs N times and the fastest run counts.

Configurations, all on the same file:
- trailhound `detect` with the built-in pack and baselines, lake off and
  lake on (Parquet written to DIR/lake), on 1 core and on 2;
- the parse-only floor: every line into an untyped tree with sonic-rs,
  single-threaded;
- DuckDB reading the file with read_json and running the same rules as SQL
  (benches/duckdb/rules.py), 1 thread on 1 core and 2 threads on 2.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time


def run(argv, cores, stdout=subprocess.DEVNULL):
    """Runs argv pinned to `cores`; returns (seconds, peak RSS bytes, stdout text)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
    )
    out = b""
    if stdout is None:
        out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.stderr.write(err.decode(errors="replace"))
        raise SystemExit(f"{argv[0]} exited with {code}")
    return seconds, usage.ru_maxrss * 1024, out.decode(errors="replace")


def best(n, argv, cores, before=None, stdout=subprocess.DEVNULL):
    results = []
    for _ in range(n):
        if before:
            before()
        results.append(run(argv, cores, stdout))
    return min(results, key=lambda r: r[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trailhound", required=True)
    ap.add_argument("--parse-floor", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--input", required=True)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", help="write the figures here as JSON")
    args = ap.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    with open(args.input, "rb") as f:
        records = sum(1 for line in f if line.strip())
    size = os.path.getsize(args.input)
    available = sorted(os.sched_getaffinity(0))
    one, two = {available[0]}, set(available[:2])
    lake = os.path.join(args.work, "lake")

    def clear_lake():
        shutil.rmtree(lake, ignore_errors=True)

    rows = []

    def record(name, cores, seconds, peak):
        rows.append({
            "run": name,
            "cores": cores,
            "seconds": round(seconds, 3),
            "events_per_second": round(records / seconds),
            "peak_mib": round(peak / 2**20, 1),
        })
        print(f"  {name:<34} {cores} core(s) {seconds:8.2f} s {records / seconds:12,.0f} events/s"
              f" {peak / 2**20:9.1f} MiB peak", flush=True)

    print(f"input: {records:,} records, {size / 1e9:.2f} GB ({size / records:,.0f} bytes/record)")
    for cores_set in (one, two):
        n = len(cores_set)
        base = [args.trailhound, "detect", args.input, "--format", "json", "-q",
                "--readers", str(n)]
        s, p, _ = best(args.runs, base, cores_set)
        record("trailhound detect, lake off", n, s, p)
        s, p, _ = best(args.runs, base + ["--lake", lake], cores_set, before=clear_lake)
        record("trailhound detect, lake on", n, s, p)

    s, p, out = best(args.runs, [args.parse_floor, args.input, "--json"], one, stdout=None)
    floor = json.loads(out.strip().splitlines()[-1])
    floor_seconds = floor["sonic_seconds"]
    record("parse-only floor (sonic-rs)", 1, floor_seconds, p)
    record("parse-only (serde_json::Value)", 1, floor["serde_json_seconds"], p)

    duck = os.path.join(here, "duckdb", "rules.py")
    for cores_set in (one, two):
        n = len(cores_set)
        s, p, _ = best(args.runs, [args.python, duck, "--input", args.input, "--rules",
                                   args.rules, "--threads", str(n), "--json"], cores_set)
        record("DuckDB read_json + rules as SQL", n, s, p)

    def find(name, cores):
        return next(r for r in rows if r["run"] == name and r["cores"] == cores)

    print("ratios (throughput):")
    ratios = {}
    for n in (1, 2):
        duck_eps = find("DuckDB read_json + rules as SQL", n)["events_per_second"]
        floor_eps = find("parse-only floor (sonic-rs)", 1)["events_per_second"]
        for lake_state in ("off", "on"):
            th = find(f"trailhound detect, lake {lake_state}", n)["events_per_second"]
            over_duck = th / duck_eps
            per_core_floor = th / n / floor_eps
            ratios[f"{n}core_lake_{lake_state}"] = {
                "over_duckdb": round(over_duck, 2),
                "per_core_over_parse_floor": round(per_core_floor, 3),
            }
            print(f"  {n} core(s), lake {lake_state}: trailhound / DuckDB = {over_duck:.2f}x;"
                  f" trailhound per core / parse-only floor = {per_core_floor:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"records": records, "bytes": size, "runs": rows, "ratios": ratios}, f,
                      indent=2)


if __name__ == "__main__":
    main()
