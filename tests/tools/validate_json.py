#!/usr/bin/python3
"""validate_json.py SCHEMA FILE [POINTER]: validates the JSON document FILE (or, with POINTER
"items", each element of its array; with a key name, each element of that key's array) against
the JSON Schema SCHEMA with Debian's python3-jsonschema (draft 2020-12). Prints each violation
with its path and exits 1 when there is any."""
import json
import sys

from jsonschema import Draft202012Validator


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    with open(sys.argv[2]) as f:
        doc = json.load(f)
    if len(sys.argv) == 4:
        docs = doc if sys.argv[3] == "items" else doc[sys.argv[3]]
    else:
        docs = [doc]
    validator = Draft202012Validator(schema)
    bad = 0
    for i, d in enumerate(docs):
        for err in validator.iter_errors(d):
            print("document %d: %s: %s" % (i, "/".join(str(p) for p in err.absolute_path),
                                           err.message))
            bad += 1
    print("%d document(s), %d violation(s)" % (len(docs), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
