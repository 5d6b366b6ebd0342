#!/usr/bin/env bash
# Validates the CI examples of docs/ci.md (.ci/examples/*.yml):
#   1. both parse as YAML (python3-yaml) and call scripts/ci-fidelity.sh, publish junit.xml, keep
#      the report folder as an artifact and post comment.md (CTest wb_ci_examples runs this part);
#   2. with --schema (needs the npm registry): the GitHub workflow against the workflow schema
#      (@action-validator/cli) and the GitLab job against GitLab's CI schema (gitlab-ci-local, which
#      validates the expanded file with GitLab's JSON schema before listing the jobs).
# Usage: validate-ci-examples.sh [--schema] [SOURCE_DIR]
set -euo pipefail
schema=0
[ "${1:-}" = --schema ] && { schema=1; shift; }
src=$(realpath "${1:-$(dirname "$0")/..}")
gh=$src/.ci/examples/github-fidelity.yml gl=$src/.ci/examples/gitlab-fidelity.yml
python3 - "$gh" "$gl" <<'PY'
import sys, yaml
gh, gl = (yaml.safe_load(open(p)) for p in sys.argv[1:3])
steps = gh["jobs"]["fidelity"]["steps"]
runs = " ".join(s.get("run", "") for s in steps)
uses = [s.get("uses", "") for s in steps]
assert "scripts/ci-fidelity.sh" in runs, "github: no step calls scripts/ci-fidelity.sh"
assert any(u.startswith("actions/upload-artifact") for u in uses), "github: no artifact"
assert any(u.startswith("actions/cache") for u in uses), "github: no cached reference"
assert any("junit.xml" in str(s.get("with", {})) for s in steps), "github: junit.xml not published"
assert any("comment.md" in str(s.get("with", {})) for s in steps), "github: comment.md not posted"
assert "pull_request" in gh[True] if True in gh else "pull_request" in gh["on"], "github: not on pull_request"
job = gl["fidelity"]
script = " ".join(job["script"])
assert "scripts/ci-fidelity.sh" in script and "comment.md" in script, "gitlab: script"
assert job["artifacts"]["reports"]["junit"] == "fidelity-out/report/junit.xml", "gitlab: junit"
assert "fidelity-out/report/" in job["artifacts"]["paths"] and job["artifacts"]["when"] == "always"
assert ".wb-ref-cache/" in job["cache"]["paths"], "gitlab: no cached reference"
print("validate-ci-examples: YAML parses; both files call scripts/ci-fidelity.sh and publish JUnit, the report and the comment")
PY
[ $schema = 1 ] || exit 0
tools=${WB_NPM_TOOLS:-${TMPDIR:-/tmp}/wb-npm-tools}
mkdir -p "$tools"
npm install --prefix "$tools" --no-audit --no-fund --silent @action-validator/cli@0.6.0 gitlab-ci-local@4.60.1
"$tools/node_modules/.bin/action-validator" "$gh"
echo "validate-ci-examples: $gh: valid GitHub Actions workflow (action-validator 0.6.0)"
repo=$(mktemp -d)
trap 'rm -rf "$repo"' EXIT
cp "$gl" "$repo/.gitlab-ci.yml"
git -C "$repo" init -q
(cd "$repo" && "$tools/node_modules/.bin/gitlab-ci-local" --list --variable CI_PIPELINE_SOURCE=merge_request_event)
echo "validate-ci-examples: $gl: valid GitLab CI (gitlab-ci-local 4.60.1 schema validation), job listed"
