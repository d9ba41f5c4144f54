"""Reads a CSV from the job directory and writes a result file (issue 11:
python3 as a dynamically linked program with its standard library)."""
import csv
import json
import sys

with open(sys.argv[1], newline="") as f:
    rows = list(csv.DictReader(f))
total = sum(float(r["amount"]) for r in rows)
by_kind = {}
for r in rows:
    by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
with open(sys.argv[2], "w") as f:
    json.dump({"rows": len(rows), "total": round(total, 2), "kinds": by_kind}, f, sort_keys=True)
print(f"{len(rows)} rows, total {total:.2f}, kinds {sorted(by_kind)}")
