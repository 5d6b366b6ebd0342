#!/usr/bin/env python3
"""Packs the files of SRC into STEM-0.tar, STEM-1.tar, ... in OUT, each under 15 MiB (greedy, in
name order): the device machine sends back files of at most 16 MiB each (docs/gpu.md).

Usage: scripts/tar_parts.py SRC OUT STEM
"""
import os
import sys
import tarfile


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: tar_parts.py SRC OUT STEM")
    src, out, stem = sys.argv[1:4]
    parts, cur, size = [], [], 0
    for f in sorted(os.listdir(src)):
        s = os.path.getsize(os.path.join(src, f)) + 1024
        if cur and size + s > 15 * 2**20:
            parts.append(cur)
            cur, size = [], 0
        cur.append(f)
        size += s
    parts.append(cur)
    for i, p in enumerate(parts):
        with tarfile.open(os.path.join(out, f"{stem}-{i}.tar"), "w") as t:
            for f in p:
                t.add(os.path.join(src, f), arcname=f)
    print(f"{stem}: {sum(map(len, parts))} files in {len(parts)} tar file(s) under {out}")


if __name__ == "__main__":
    main()
