#!/usr/bin/env python3
"""Is a `wb compare --report DIR` directory whole? (kill_test.sh)

Each report file present must be whole: reports carry a time stamp, so wholeness is checked by
form (JSON and XML parse, HTML and Markdown end as their renderers end them). When
DIR/manifest.json exists, every file it lists must have the size and sha256 it records: the set is
complete. Prints "complete set" or "no manifest (does not look complete)", or what is wrong (exit 1).
Usage: check_report_dir.py DIR
"""
import hashlib
import json
import os
import sys
import xml.etree.ElementTree as ET


def whole(name, b):
    if name == "report.json":
        return json.loads(b).get("schema") == "whisper-fidelity-report/1"
    if name == "junit.xml":
        return ET.fromstring(b).tag == "testsuites"
    if name == "report.html":
        return b.rstrip().endswith(b"</html>")
    return b.startswith(b"#") and b.endswith(b"\n")


def main(d):
    bad = []
    for name in ("report.md", "report.json", "report.html", "junit.xml"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            try:
                ok = whole(name, open(p, "rb").read())
            except Exception:  # a parse error is the finding
                ok = False
            if not ok:
                bad.append(f"{name} is half-written")
    state = "no manifest (does not look complete)"
    mp = os.path.join(d, "manifest.json")
    if os.path.exists(mp):
        state = "complete set"
        try:
            m = json.load(open(mp))
        except ValueError:
            m = {}
            bad.append("manifest.json is half-written")
        if m and m.get("complete") is not True:
            bad.append("manifest.json without complete")
        for name, e in m.get("files", {}).items():
            p = os.path.join(d, name)
            b = open(p, "rb").read() if os.path.exists(p) else b""
            if len(b) != e["bytes"] or hashlib.sha256(b).hexdigest() != e["sha256"]:
                bad.append(f"{name} does not match manifest.json")
    print("; ".join(bad) if bad else state)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
