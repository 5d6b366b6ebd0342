#!/usr/bin/env bash
# Makes a throwaway git repository holding the numpy port (scripts/ports/numpy_port.py) with a
# small history: harmless commits, one commit whose dump command fails (a skip for wb bisect) and
# is fixed by the next, and ONE planted bug (the layer-norm epsilon 1e-5 -> 1e-3, subject
# "layer norm: epsilon as in the C++ port"). Used by CTest wb_bisect_toy and docs/bisect.md.
#
#   make_toy_history.sh DIR      # DIR must not exist; prints "<hash> <subject>" per commit
set -euo pipefail
dir=${1:?usage: make_toy_history.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
[ -e "$dir" ] && { echo "make_toy_history.sh: $dir exists" >&2; exit 2; }
mkdir -p "$dir"
cd "$dir"
git init -q -b main .
git config user.name "Toy Porter"
git config user.email "toy@example.invalid"
n=0
commit() {  # commit MESSAGE; dates fixed so the hashes repeat from run to run
  n=$((n + 1))
  export GIT_AUTHOR_DATE="2026-01-01T00:0$n:00Z" GIT_COMMITTER_DATE="2026-01-01T00:0$n:00Z"
  git add -A
  git commit -q -m "$1"
}
edit() {  # edit FILE PYTHON-EXPRESSION-ON-s: rewrite a file, failing if nothing changed
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import sys
path, expr = sys.argv[1], sys.argv[2]
s = open(path).read()
t = eval(expr, {"s": s})
if t == s:
    sys.exit(f"edit {path}: no change")
open(path, "w").write(t)
EOF
}

cp "$here/../ports/numpy_port.py" .  # it imports the wbdump package: run it with a python that has it
printf '# toy port\n\nA numpy Whisper encoder.\n' > README.md
commit "toy port: numpy Whisper encoder writing wbdump dumps"

printf '\nRun: python3 numpy_port.py --model M --mel-from REF.h5 --out OUT.h5\n' >> README.md
commit "docs: how to run the port"

edit numpy_port.py 's.replace("def softmax(x):\n", "def softmax(x):\n    # max subtracted first: exp never overflows\n")'
commit "softmax: say why the max is subtracted"

edit numpy_port.py 's.replace("    args = ap.parse_args(argv)\n", "    args = ap.parse_args(argv)\n    W = load_lazy(args.model)\n")'
commit "wip: load the weights lazily"

edit numpy_port.py 's.replace("    W = load_lazy(args.model)\n", "")'
commit "revert the lazy loading (it broke the port)"

edit numpy_port.py 's.replace("LN_EPS = 1e-5  #", "LN_EPS = 1e-3  #")'
commit "layer norm: epsilon as in the C++ port"

edit numpy_port.py 's.replace("def attention(q, k, v, n_head, scale_pow=0.25):\n", "def attention(q, k, v, n_head: int, scale_pow=0.25):\n")'
commit "attention: type hint"

printf '\nChangelog: epsilon, type hints.\n' >> README.md
commit "docs: changelog"

git log --reverse --format='%H %s'
