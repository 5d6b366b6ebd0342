#!/usr/bin/env python3
"""Seeds for fuzz_dump in the layouts h5py writes with libver="latest" (fixtures/fuzz/fuzz_dump/).

Dense storage: attributes past an object's compact limit (8) and the links of a new-style group
past its compact limit live in a fractal heap indexed by version-2 B-trees; with track_order=True
also by creation order. The seeds are copies of seed-encoder-f32.h5 (make_seeds.cpp) laid out
that way, and three of them with one size lied about inside that storage, checksums recomputed
(the reader must refuse them, not allocate what they claim):

    h5py-dense-links.h5            /taps (18 links) and the root's attributes dense, creation order
                                   tracked (B-tree types 5, 6, 8, 9)
    h5py-dense-indirect.h5         200 root attributes: a heap with an indirect root block and a
                                   B-tree with internal nodes
    oom-fractal-heap-direct-block.h5  the heap header's largest direct block is 2^40 bytes
    oom-btree2-node-size.h5        the link-name B-tree's nodes are 2^31 bytes
    oom-dense-attribute-size.h5    `threads`, in the heap, has elements of 2^30 bytes

Usage: make_h5py_seeds.py [CORPUS_DIR]   (default: fixtures/fuzz/fuzz_dump of this repository)
"""
import os
import struct
import sys

import h5py
import numpy as np


def copy_dense(src_path, dst_path, extra_attrs):
    with h5py.File(src_path, "r") as src, \
            h5py.File(dst_path, "w", libver="latest", track_order=True) as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for i in range(extra_attrs):
            dst.attrs[f"foreign_note_{i}"] = f"note {i}"
        for g in src:
            dst.create_group(g, track_order=True)
            for k in src[g]:
                src.copy(src[g][k], dst[g], name=k)


def at(raw, sig, kind=None):
    """Offset of the first block with this signature (and B-tree type byte)."""
    for k in range(len(raw) - 6):
        if raw[k:k + 4] == sig and (kind is None or raw[k + 5] == kind):
            return k
    raise SystemExit(f"make_h5py_seeds: no {sig} block of type {kind}")


def lookup3(data):
    """HDF5's metadata checksum (Bob Jenkins' lookup3 hashlittle, initial value 0)."""
    m = 0xffffffff
    rot = lambda x, k: ((x << k) | (x >> (32 - k))) & m
    n = len(data)
    a = b = c = (0xdeadbeef + n) & m
    k = 0
    while n - k > 12:
        a = (a + int.from_bytes(data[k:k + 4], "little")) & m
        b = (b + int.from_bytes(data[k + 4:k + 8], "little")) & m
        c = (c + int.from_bytes(data[k + 8:k + 12], "little")) & m
        a = (a - c) & m; a ^= rot(c, 4); c = (c + b) & m
        b = (b - a) & m; b ^= rot(a, 6); a = (a + c) & m
        c = (c - b) & m; c ^= rot(b, 8); b = (b + a) & m
        a = (a - c) & m; a ^= rot(c, 16); c = (c + b) & m
        b = (b - a) & m; b ^= rot(a, 19); a = (a + c) & m
        c = (c - b) & m; c ^= rot(b, 4); b = (b + a) & m
        k += 12
    rest = bytes(data[k:]) + bytes(12)
    if n - k == 0:
        return c
    a = (a + int.from_bytes(rest[0:4], "little")) & m
    b = (b + int.from_bytes(rest[4:8], "little")) & m
    c = (c + int.from_bytes(rest[8:12], "little")) & m
    c ^= b; c = (c - rot(b, 14)) & m
    a ^= c; a = (a - rot(c, 11)) & m
    b ^= a; b = (b - rot(a, 25)) & m
    c ^= b; c = (c - rot(b, 16)) & m
    a ^= c; a = (a - rot(c, 4)) & m
    b ^= a; b = (b - rot(a, 14)) & m
    c ^= b; c = (c - rot(b, 24)) & m
    return c


def reseal(nb, offset):
    """Recomputes the checksum of the fractal heap or v2 B-tree block holding `offset`, as a
    writer that lies on purpose would (FRHP header, BTHD header, or a checksummed FHDB block of
    the root-direct-block heap whose header precedes it)."""
    for sig, size in ((b"FRHP", 142), (b"BTHD", 34)):
        start = bytes(nb).rfind(sig, 0, offset + 1)
        if start >= 0 and offset < start + size:
            struct.pack_into("<I", nb, start + size, lookup3(nb[start:start + size]))
            return
    start = bytes(nb).rfind(b"FHDB", 0, offset + 1)
    heaps = [h for h in range(len(nb) - 146) if nb[h:h + 4] == b"FRHP" and
             struct.unpack_from("<QH", nb, h + 132) == (start, 0)]  # its heap: a root direct block
    assert start >= 0 and len(heaps) == 1 and nb[heaps[0] + 9] & 2, "no checksummed root block"
    heap = heaps[0]
    size = struct.unpack_from("<Q", nb, heap + 112)[0]  # a root direct block: the starting size
    at = start + 4 + 1 + 8 + (struct.unpack_from("<H", nb, heap + 128)[0] + 7) // 8
    struct.pack_into("<I", nb, at, 0)
    struct.pack_into("<I", nb, at, lookup3(nb[start:start + size]))


def lie(src_path, dst_path, offset, fmt, value):
    """Writes src with one field changed and its block's checksum recomputed: the lie reaches the
    size checks rather than stopping at a checksum."""
    raw = bytearray(open(src_path, "rb").read())
    at = offset(raw)
    struct.pack_into(fmt, raw, at, value)
    reseal(raw, at)
    with open(dst_path, "wb") as f:
        f.write(raw)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    out = argv[0] if argv else os.path.join(here, "..", "..", "fixtures", "fuzz", "fuzz_dump")
    base = os.path.join(out, "seed-encoder-f32.h5")
    links = os.path.join(out, "h5py-dense-links.h5")
    copy_dense(base, links, 0)
    copy_dense(base, os.path.join(out, "h5py-dense-indirect.h5"), 200)
    lie(links, os.path.join(out, "oom-fractal-heap-direct-block.h5"),
        lambda raw: at(raw, b"FRHP") + 120, "<Q", 1 << 40)
    lie(links, os.path.join(out, "oom-btree2-node-size.h5"),
        lambda raw: at(raw, b"BTHD", 5) + 6, "<I", 1 << 31)

    def threads_size(raw):  # version-3 attribute message: 9-byte prefix, name, datatype {.., u32 size}
        name = bytes(raw).index(b"threads\x00")
        assert raw[name - 9] == 3
        return name + 8 + 4
    lie(links, os.path.join(out, "oom-dense-attribute-size.h5"), threads_size, "<I", 1 << 30)


if __name__ == "__main__":
    main(sys.argv[1:])
