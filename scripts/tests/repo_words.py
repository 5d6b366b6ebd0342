#!/usr/bin/env python3
"""CTest wb_repo_words: the repository speaks of the project alone.

Greps the tracked text files (`git ls-files`; outside a git checkout, a walk of the tree that
skips build folders and dot folders) for three kinds of text:

  path     an absolute path outside the standard system folders (/usr, /etc, /tmp, /dev, ...):
           a home or work folder of one machine means nothing elsewhere; write a relative path
           or a placeholder (`<whisper.cpp>`);
  tracker  a tracker number: "issue" followed by a number (any case), "PR 12", and "#12" in
           comments and Markdown; say what the thing is, not which ticket asked for it;
  words    words about how the project was made rather than what it is (the list WORDS
           below).

Binary files (a NUL byte in the first 8 KiB, or not UTF-8) are skipped. Exceptions, reviewed one
by one, live in the allow-list file (default scripts/tests/repo_words_allow.txt): each entry is
`PATH: EXACT TEXT`, preceded by a `#` comment giving the reason; a hit is allowed when its line in
PATH holds EXACT TEXT and the hit lies inside it. An entry that allows nothing is reported too
(stale: the text changed or went away). This script and the allow-list are not scanned (they
name what they look for).

Prints each hit as `file:line: kind: text` and exits 1 on a hit or a stale entry, 0 otherwise.

  repo_words.py [--root DIR] [--allow FILE] [--walk]
  repo_words.py --self-test [--root DIR]   copies the tracked text files (and the allow-list) to
                                            a temporary folder; the copy must pass; then plants a
                                            path, two tracker numbers, a word and a stale allow-list
                                            entry, and the scan of the copy must exit 1 reporting
                                            exactly those five; exits 0 when all holds
"""
import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

SELF = "scripts/tests/repo_words.py"
ALLOW_DEFAULT = "scripts/tests/repo_words_allow.txt"

# Absolute paths: a "/" that starts a path (line start, after blank, quote, bracket, "=", ":",
# ",", ";", "|", "<", ">", "@") followed by a name and another "/". A quote before the "/" that
# closes a quoted string ("$dest"/root/...) makes the path relative, not absolute.
PATH_RE = re.compile(r"""(?:^|(?<=[\s"'`(\[{=:,;|<>@]))/([A-Za-z0-9_.+-]+)/[A-Za-z0-9_.+~$<{-]""")
# Not folders of a machine: the HDF5 groups of a dump (/taps/<name>, /decode/tokens, /timing/...).
HDF5_GROUPS = {"taps", "decode", "timing"}
SYSTEM_DIRS = {"usr", "etc", "proc", "dev", "tmp", "bin", "sbin", "lib", "lib32", "lib64", "opt",
               "var", "sys", "run", "srv", "boot"}

TRACKER_RE = re.compile(r"\bissues?\s*(?:#\s*)?\d+|\bPR\s*#?\d+\b|\bpull request\s*#?\d+",
                        re.IGNORECASE)
HASH_NUM_RE = re.compile(r"(?<![\w&#/])#\d+\b")

# Words about how the project was made. Each is a regular expression, matched case-insensitively.
WORDS = [
    r"\bdevelopment machine\b", r"\bdev machine\b", r"\bdevelopment box\b",
    r"\bthis round\b", r"\bearlier round\b", r"\bprevious round\b", r"\bearlier stop\b",
    r"\bsessions?\b", r"\bdevice (?:run )?tool\b", r"\bthis workplace\b", r"\bworkplace\b",
    r"\bthe GPU machine\b", r"\bhelper'?s worktree\b", r"\bin `carry`", r"\bcarry \[",
    r"\bthe issue(?:'s)?\b", r"\bthis issue\b", r"\bthe brief\b", r"\bthe ticket\b",
    r"\bassistant\b", r"\bLLM\b", r"\bClaude\b", r"\bbudget_left\b", r"\bdevice time\b",
    r"\bthis (?:commit|patch|PR)\b", r"\bhelper (?:session|agent)s?\b",
]
WORDS_RE = re.compile("|".join(f"(?:{w})" for w in WORDS), re.IGNORECASE)

HASH_COMMENT_EXT = {".sh", ".py", ".txt", ".cmake", ".yml", ".yaml", ".tsv", ".sbatch", ".in",
                    ".toml", ".cfg"}
SLASH_COMMENT_EXT = {".cpp", ".h", ".hpp", ".cc", ".c", ".cu", ".cuh"}


def comment_spans(path, line):
    """Spans of `line` that are comments (for the "#12" rule), by the file's kind."""
    ext = os.path.splitext(path)[1]
    base = os.path.basename(path)
    if ext == ".md":
        return [(0, len(line))]
    if ext in SLASH_COMMENT_EXT:
        m = re.search(r"(?<!:)//", line)
        if m:
            return [(m.start(), len(line))]
        s = line.lstrip()
        if s.startswith("/*") or s.startswith("*"):
            return [(0, len(line))]
        return []
    if ext in HASH_COMMENT_EXT or base in ("run", "CMakeLists.txt", ".gitignore") or ext == "":
        m = re.search(r"(?:^|(?<=\s))#", line)
        return [(m.start(), len(line))] if m else []
    return []


def closing_quote_before(line, pos):
    """True when the character before pos is a quote that closes a quoted string ("$dest"/x)."""
    q = line[pos - 1]
    if q not in "\"'":
        return False
    return line.count(q, 0, pos) % 2 == 0 or (pos >= 2 and (line[pos - 2].isalnum() or line[pos - 2] in "_})"))


def scan_line(path, line, top=()):
    """Yields (kind, start, end, text) for each hit on one line, none inside another of its kind."""
    hits = list(_scan_line(path, line, top))
    for h in hits:
        if not any(o is not h and o[0] == h[0] and o[1] <= h[1] and h[2] <= o[2]
                   and (o[1], o[2]) != (h[1], h[2]) for o in hits):
            yield h


def _scan_line(path, line, top=()):
    """Yields (kind, start, end, text) for each hit on one line. `top`: the names at the root of
    the repository ("/fixtures/..." is then a suffix joined to a root folder, as in
    WB_SOURCE_DIR "/fixtures/trained")."""
    for m in PATH_RE.finditer(line):
        if m.group(1) in SYSTEM_DIRS or m.group(1) in HDF5_GROUPS or m.group(1) in top:
            continue
        if m.start() > 0 and closing_quote_before(line, m.start()):
            continue
        end = m.start()
        while end < len(line) and not line[end].isspace() and line[end] not in "`'\")],;|":
            end += 1
        yield "path", m.start(), end, line[m.start():end]
    for m in TRACKER_RE.finditer(line):
        yield "tracker", m.start(), m.end(), m.group(0)
    for a, b in comment_spans(path, line):
        for m in HASH_NUM_RE.finditer(line, a, b):
            yield "tracker", m.start(), m.end(), m.group(0)
    for m in WORDS_RE.finditer(line):
        yield "words", m.start(), m.end(), m.group(0)


def list_files(root, walk):
    if not walk:
        try:
            out = subprocess.run(["git", "-C", root, "ls-files", "-z"], check=True,
                                 capture_output=True).stdout
            top = subprocess.run(["git", "-C", root, "rev-parse", "--show-toplevel"], check=True,
                                 capture_output=True, text=True).stdout.strip()
            if os.path.realpath(top) == os.path.realpath(root):
                return sorted(p for p in out.decode().split("\0") if p)
        except (OSError, subprocess.CalledProcessError):
            pass
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = [x for x in dirs
                   if not (x.startswith(".") and x != ".ci") and not x.startswith("build")
                   and x not in ("__pycache__", "demo-out")]
        for n in names:
            files.append(os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/"))
    return sorted(files)


def read_text(full):
    try:
        with open(full, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def load_allow(path):
    """[(file, exact text, reason, line number)]; raises ValueError on a malformed file."""
    entries, reason = [], []
    if not os.path.exists(path):
        return entries
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip():
                reason = []
                continue
            if line.startswith("#"):
                reason.append(line[1:].strip())
                continue
            file, sep, text = line.partition(": ")
            if not sep or not text:
                raise ValueError(f"{path}:{n}: expected 'PATH: EXACT TEXT', got {line!r}")
            if not reason:
                raise ValueError(f"{path}:{n}: entry without a reason (a '#' comment above it)")
            entries.append((file, text, " ".join(reason), n))
    return entries


def scan(root, allow_file, walk=False, out=sys.stdout):
    """Prints the hits; returns the number of hits plus stale allow-list entries."""
    allow_rel = os.path.relpath(os.path.abspath(allow_file), os.path.abspath(root)).replace(os.sep, "/")
    try:
        allow = load_allow(allow_file)
    except ValueError as e:
        print(e, file=out)
        return 1
    used = [False] * len(allow)
    hits = 0
    files = list_files(root, walk)
    top = {f.split("/", 1)[0] for f in files if "/" in f}
    for rel in files:
        if rel in (SELF, allow_rel):
            continue
        text = read_text(os.path.join(root, rel))
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for kind, a, b, what in scan_line(rel, line, top):
                ok = False
                for i, (file, exact, _, _) in enumerate(allow):
                    if file != rel:
                        continue
                    at = line.find(exact)
                    while at >= 0:
                        if at <= a and b <= at + len(exact):
                            ok = used[i] = True
                            break
                        at = line.find(exact, at + 1)
                    if ok:
                        break
                if not ok:
                    print(f"{rel}:{n}: {kind}: {what}", file=out)
                    hits += 1
    for i, (file, exact, _, n) in enumerate(allow):
        if not used[i]:
            print(f"{allow_rel}:{n}: stale allow-list entry (allows nothing): {file}: {exact}", file=out)
            hits += 1
    return hits


# One planted line per kind, the file it goes into, and the hit expected.
PLANTS = [
    ("README.md", "Built in /home/alice/wb-checkout as usual.", "path: /home/alice/wb-checkout"),
    ("scripts/setup.sh", "# see issue 31 for the reason", "tracker: issue 31"),
    ("workbench/core/src/util.cpp", "// fixed in #123", "tracker: #123"),
    ("docs/architecture.md", "Measured on the development machine.", "words: development machine"),
]


def self_test(root):
    """Clean copy passes; the same copy with PLANTS added fails with exactly those hits."""
    tmp = tempfile.mkdtemp(prefix="wb-repo-words-")
    try:
        copy = os.path.join(tmp, "copy")
        for rel in sorted(set(list_files(root, False)) | {ALLOW_DEFAULT}):
            src = os.path.join(root, rel)
            if read_text(src) is None:
                continue
            dst = os.path.join(copy, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)
        allow = os.path.join(copy, ALLOW_DEFAULT)
        buf = io.StringIO()
        n = scan(copy, allow, walk=True, out=buf)
        print(f"self-test: clean copy ({copy}, walked): {n} hit(s)")
        sys.stdout.write(buf.getvalue())
        if n:
            print("self-test FAIL: the clean copy has hits")
            return 1
        for rel, line, _ in PLANTS:
            path = os.path.join(copy, rel)
            if not os.path.exists(path):
                open(path, "w").close()
            with open(path, "a", encoding="utf-8") as f:
                f.write("\n" + line + "\n")
        with open(allow, "a", encoding="utf-8") as f:  # an entry that allows nothing: stale
            f.write("\n# planted: a reviewed text that is gone\nREADME.md: no such text\n")
        # The command itself, as CTest runs it: its output and its exit status.
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--root", copy, "--walk"],
                           capture_output=True, text=True)
        got = r.stdout.splitlines()
        print(f"self-test: planted copy: repo_words.py --root COPY --walk exits {r.returncode}:")
        for g in got:
            print("  " + g)
        want = sorted([f"{rel}: {hit}" for rel, _, hit in PLANTS]
                      + ["scripts/tests/repo_words_allow.txt: stale allow-list entry (allows nothing): "
                         "README.md: no such text"])
        have = sorted(re.sub(r":\d+: ", ": ", g, count=1) for g in got if not g.startswith("repo_words:"))
        if r.returncode != 1 or have != want:
            print("self-test FAIL: expected exit 1 and exactly:\n  " + "\n  ".join(want))
            return 1
        print("self-test PASS: the clean copy passes; the planted copy exits 1 with each planted hit")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(here)))
    ap.add_argument("--allow", help=f"allow-list file (default ROOT/{ALLOW_DEFAULT})")
    ap.add_argument("--walk", action="store_true", help="walk the tree even in a git checkout")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test(a.root)
    n = scan(a.root, a.allow or os.path.join(a.root, ALLOW_DEFAULT), a.walk)
    if n:
        print(f"repo_words: {n} hit(s); fix the text, or add a reviewed exception with its reason "
              f"to {ALLOW_DEFAULT}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
