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

# HDF5's metadata checksum and the re-sealing of a lied-about block: written once, in the
# bad-input generator (fixtures/bad/make_bad.py), shared with these seeds.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures",
                                "bad"))
from make_bad import lookup3, reseal  # noqa: E402,F401


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
