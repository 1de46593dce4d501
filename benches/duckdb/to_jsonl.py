#!/usr/bin/env python3
"""Flatten a folder of CloudTrail files into one JSON-lines file.

    python to_jsonl.py --from DIR --out FILE.jsonl [--min-records N]

DIR is what `trailhound generate --no-sessions` writes (or any CloudTrail
bucket copy): files `*.json.gz` or `*.json` holding `{"Records": [...]}`.
Every record becomes one line of FILE.jsonl, compact JSON. Files are taken
in the time order their names carry (the CloudTrail object timestamp
`..._20261103T1015Z_...`, else a `YYYY/MM/DD` date in the path, else the
path), the order `trailhound detect` reads a folder in. One file is held in
memory at a time. Files that are not CloudTrail record lists (`labels.json`,
session logs) are skipped and counted.

Prints the record count and the average bytes per record (of the JSON
lines, newline included). With --min-records N it exits with status 1 when
fewer than N records were written.
"""

import argparse
import gzip
import json
import os
import re
import sys

STAMP = re.compile(r"_(\d{8}T\d{4,6}Z)_")
PATH_DATE = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)")


def order_key(path):
    """Sort key: (timestamp text, path); files with no time in the name last."""
    name = os.path.basename(path)
    m = STAMP.search(name)
    if m:
        stamp = m.group(1)
        return (0, stamp[:8] + stamp[9:-1].ljust(6, "0"), path)
    m = PATH_DATE.search(path.replace(os.sep, "/"))
    if m:
        return (0, "".join(m.groups()) + "000000", path)
    return (1, "", path)


def candidates(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in filenames:
            if f.endswith(".json.gz") or f.endswith(".json"):
                yield os.path.join(dirpath, f)


def records_of(path):
    """The Records list of a CloudTrail file, or None when it is not one."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            doc = json.load(fh)
    except (OSError, ValueError, EOFError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        return doc["Records"]
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", required=True, help="folder of CloudTrail files")
    ap.add_argument("--out", required=True, help="JSON-lines file to write")
    ap.add_argument("--min-records", type=int, default=0,
                    help="fail (exit 1) when fewer records than this were written")
    args = ap.parse_args(argv)

    files = sorted(candidates(args.src), key=order_key)
    records = 0
    written = 0
    used = 0
    skipped = 0
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    with open(args.out, "w", encoding="utf-8", buffering=1 << 20) as out:
        for path in files:
            recs = records_of(path)
            if recs is None:
                skipped += 1
                continue
            used += 1
            for r in recs:
                if not isinstance(r, dict):
                    continue
                line = dumps(r) + "\n"
                out.write(line)
                written += len(line.encode("utf-8")) if not line.isascii() else len(line)
                records += 1
    avg = written / records if records else 0.0
    print(f"records={records} files={used} skipped_files={skipped} "
          f"bytes={written} avg_bytes_per_record={avg:.1f} out={args.out}")
    if records < args.min_records:
        print(f"error: only {records} records, fewer than --min-records {args.min_records}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
