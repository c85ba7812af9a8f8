#!/usr/bin/env python3
"""Checks a nightly report directory (abacus report): report.json's summary has its fields and
each experiment's results validate against the results schema (python3-jsonschema); report.csv
parses as RFC 4180 with the header's column count on every row and exactly one row per
experiment x metric x variant of report.json, whose n, mean and decision it repeats.

Usage: check_report.py REPORT_DIR results.schema.json
Prints "ok: E experiments, R csv rows" and exits 0, or prints what is wrong and exits 1.
"""
import csv
import json
import sys

import jsonschema


def main():
    directory, schema_path = sys.argv[1], sys.argv[2]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    with open(f"{directory}/report.json", encoding="utf-8") as f:
        report = json.load(f)
    validator = jsonschema.Draft202012Validator(schema) if hasattr(
        jsonschema, "Draft202012Validator") else jsonschema.Draft7Validator(schema)
    errors = []
    for key in ("date", "as_of", "summary", "experiments"):
        if key not in report:
            errors.append(f"report.json: no {key}")
    summary = report.get("summary", {})
    for key in ("text", "experiments", "decisions", "guardrail_regressions", "data_quality"):
        if key not in summary:
            errors.append(f"summary: no {key}")
    expected = {}
    for exp in report.get("experiments", []):
        for err in validator.iter_errors(exp["results"]):
            errors.append(f"{exp['key']}: {'/'.join(map(str, err.path))}: {err.message}")
        for m in exp["results"]["metrics"]:
            decisions = {c["variant"]: c["decision"] for c in m["comparisons"]}
            for v in m["variants"]:
                row_key = (exp["key"], m["metric"], v["variant"])
                if row_key in expected:
                    errors.append(f"duplicate metric x variant {row_key}")
                expected[row_key] = (v["n"], v["mean"], decisions.get(v["variant"], ""))
    with open(f"{directory}/report.csv", encoding="utf-8", newline="") as f:
        raw = f.read()
    if raw and not raw.endswith("\r\n"):
        errors.append("report.csv: lines must end in CRLF")
    rows = list(csv.reader(raw.splitlines(keepends=True), strict=True))
    header, body = rows[0], rows[1:]
    seen = set()
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            errors.append(f"report.csv line {i}: {len(row)} fields, header has {len(header)}")
            continue
        r = dict(zip(header, row))
        key = (r["experiment"], r["metric"], r["variant"])
        if key not in expected:
            errors.append(f"report.csv line {i}: {key} is not in report.json")
            continue
        if key in seen:
            errors.append(f"report.csv line {i}: {key} twice")
        seen.add(key)
        n, mean, decision = expected[key]
        if int(r["n"]) != n or r["decision"] != decision:
            errors.append(f"report.csv line {i}: n/decision differ from report.json")
        if (mean is None) != (r["mean"] == "") or (mean is not None and float(r["mean"]) != mean):
            errors.append(f"report.csv line {i}: mean {r['mean']} != {mean}")
    for key in expected.keys() - seen:
        errors.append(f"report.csv: no row for {key}")
    if errors:
        print("\n".join(errors))
        return 1
    print(f"ok: {len(report['experiments'])} experiments, {len(body)} csv rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
