#!/usr/bin/env python3
"""CTest wbdump_installed: the wbdump imported is the package installed in this interpreter's
environment (the build's venv), not the source folder; its command works both ways.

    test_installed.py --source scripts/wbdump
"""
import argparse
import os
import subprocess
import sys
import sysconfig
import unittest

SOURCE = None


class Installed(unittest.TestCase):
    def test_imported_from_site_packages(self):
        import wbdump
        where = os.path.realpath(os.path.dirname(wbdump.__file__))
        site = os.path.realpath(sysconfig.get_paths()["purelib"])
        self.assertTrue(where.startswith(site + os.sep), f"wbdump from {where}, not {site}")
        self.assertFalse(where.startswith(os.path.realpath(SOURCE) + os.sep),
                         f"wbdump imported from the source folder {where}")
        self.assertNotEqual(sys.prefix, sys.base_prefix, "not running inside a venv")

    def test_public_api(self):
        import wbdump
        for name in ("DumpWriter", "open_dump", "ModelDims", "registry", "TapRecorder", "serve",
                     "port_check", "load_safetensors", "stage_taps", "read_audio"):
            self.assertTrue(hasattr(wbdump, name), name)
        self.assertEqual(wbdump.__version__, wbdump.VERSION)

    def test_console_script_and_module(self):
        exe = os.path.join(os.path.dirname(sys.executable), "wbdump")
        for cmd in ([exe, "taps", "--dims", "nano"], [sys.executable, "-m", "wbdump", "taps",
                                                      "--dims", "nano"]):
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stdout.startswith("mel "), p.stdout[:80])
            self.assertIn("encoder.ln_post", p.stdout)
        p = subprocess.run([exe, "port-check"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2, "port-check without a command: bad usage")
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="the package's source folder (scripts/wbdump)")
    a, rest = ap.parse_known_args()
    SOURCE = a.source
    unittest.main(argv=[sys.argv[0], "-v"] + rest)
