#!/usr/bin/env bash
# `buf breaking` (FILE rules, buf.yaml) of the working tree's protos against a base commit's:
# where this branch left main (merge-base with main, or origin/main in a clone without a local
# main); on main itself, the previous commit, so CI on a fresh clone of main checks the last
# change. The base's protos are taken with `git archive` rather than buf's `.git#...` input:
# that works in a worktree too, and the base gets the same google/api deps as the working tree
# (.stack/proto-deps, copied by `make lint`, not in git).
# Usage: BUF="npx --yes @bufbuild/buf@<v>" bash scripts/buf_breaking.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-npx --yes @bufbuild/buf@1.75.0}

head=$(git rev-parse HEAD)
base=""
for main in main origin/main; do
  if git rev-parse -q --verify "$main^{commit}" >/dev/null; then
    base=$(git merge-base HEAD "$main" || true)
    break
  fi
done
if [ -z "$base" ] || [ "$base" = "$head" ]; then
  base=$(git rev-parse -q --verify "HEAD~1^{commit}" || true)
fi
if [ -z "$base" ]; then
  # A single-commit (depth 1) clone has nothing to compare against; deepen it to check.
  echo "buf breaking: no base commit in this clone (shallow?); skipped"
  exit 0
fi
if ! git cat-file -e "$base:proto" 2>/dev/null; then
  echo "buf breaking: ${base:0:12} has no proto/; nothing to compare"
  exit 0
fi

against=.stack/buf-against
rm -rf "$against"
mkdir -p "$against/.stack"
git archive "$base" buf.yaml proto | tar -x -C "$against"
cp -r .stack/proto-deps "$against/.stack/"
echo "buf breaking against ${base:0:12}"
$BUF breaking --against "$against"
