#!/usr/bin/env bash
# ruff and mypy over the project, as CI runs them (scripts/test.sh calls this first):
#
#   bash scripts/lint.sh
#
# The rules live in pyproject.toml ([tool.ruff], [tool.mypy]); the tools come
# from the venv that scripts/setup.sh makes (the `test` extra installs them).
# Prints every finding, then one line per tool with its count. Exit 0 when
# both are clean, 1 when either found something (or failed to run), 3 when a
# tool is missing from the venv.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
VENV="$REPO/.venv"

for tool in ruff mypy; do
    if [[ ! -x "$VENV/bin/$tool" ]]; then
        echo "lint: $tool is missing from $VENV (hint: bash scripts/setup.sh installs it)" >&2
        exit 3
    fi
done

# ruff: one line per finding (path:line:col: CODE message), then a summary we do not need.
ruff_out="$("$VENV/bin/ruff" check --output-format concise --no-fix netlab tests bench scripts 2>&1)"
ruff_rc=$?
ruff_n=$(grep -cE '^[^ ]+:[0-9]+:[0-9]+: ' <<<"$ruff_out")
((ruff_rc == 0)) || grep -vE '^(Found [0-9]+ errors?\.|\[\*\] .*fixable.*)$' <<<"$ruff_out"

# mypy: the files and per-module strictness come from [tool.mypy] in pyproject.toml.
mypy_out="$("$VENV/bin/mypy" 2>&1)"
mypy_rc=$?
mypy_n=$(grep -c ': error: ' <<<"$mypy_out")
((mypy_rc == 0)) || grep -v '^Found [0-9]* errors\? in' <<<"$mypy_out"

verdict() {  # verdict RC COUNT NOUN: "passed" or FAILED with the count (or the exit code)
    if (($1 == 0)); then
        echo "passed (0 $3)"
    elif (($2 > 0)); then
        echo "FAILED ($2 $3)"
    else
        echo "FAILED (exit $1, see above)"
    fi
}
echo "lint: ruff $(verdict "$ruff_rc" "$ruff_n" "finding(s)")"
echo "lint: mypy $(verdict "$mypy_rc" "$mypy_n" "error(s)")"
((ruff_rc == 0 && mypy_rc == 0)) || exit 1
