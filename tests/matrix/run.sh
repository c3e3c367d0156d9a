#!/usr/bin/env bash
# `make test-matrix`: the suite without the browser tests on the oldest and the
# newest supported Python, each in its own venv (.venv-py3.10, .venv-py3.13).
#
# A Python is looked for as `pythonX.Y` on PATH, then in pyenv's versions; one
# line names those not found. Every found Python runs the whole selection (no
# -x, so all failures show); the script fails if any run fails, including
# pytest's exit code 5 (nothing collected), or if no Python was found at all.
#
#   MATRIX_PYTHONS="3.10 3.13"   the versions to try (default)
#   extra arguments go to pytest: tests/matrix/run.sh tests/notebook -k nbval
set -uo pipefail
cd "$(dirname "$0")/../.."

versions=${MATRIX_PYTHONS:-"3.10 3.13"}
pyenv_root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
mkdir -p test-artifacts

# Print the interpreter of version $1 (e.g. 3.10): the first candidate that runs and is that version.
find_python() {
    local version=$1 candidate
    local check="import sys; assert '%d.%d' % sys.version_info[:2] == '$version'; print(sys.executable)"
    for candidate in "python$version" "$pyenv_root"/versions/"$version".*/bin/"python$version"; do
        "$candidate" -c "$check" 2>/dev/null && return 0
    done
    return 1
}

# Create or refresh .venv-pyX.Y when pyproject.toml is newer than its install stamp.
ensure_venv() {
    local python=$1 venv=$2
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv" || return 1
        echo '*' >"$venv/.gitignore"  # keeps git, ruff and editors out of it
    fi
    if [ ! "$venv/.installed" -nt pyproject.toml ]; then
        echo "== $venv: installing -e '.[test,widgets]'"
        "$venv/bin/python" -m pip install -q --upgrade pip &&
            "$venv/bin/python" -m pip install -q -e '.[test,widgets]' &&
            touch "$venv/.installed" || return 1
    fi
}

missing=() summary=() status=0
for version in $versions; do
    if ! python=$(find_python "$version"); then
        missing+=("python$version")
        continue
    fi
    venv=.venv-py$version
    log=test-artifacts/matrix-py$version.log
    if ! ensure_venv "$python" "$venv"; then
        summary+=("py$version: FAILED to set up $venv")
        status=1
        continue
    fi
    echo "== py$version ($("$venv/bin/python" -V 2>&1)): pytest -m 'not browser', log in $log"
    start=$SECONDS
    "$venv/bin/python" -m pytest -m "not browser" -p no:cacheprovider -q "$@" 2>&1 | tee "$log"
    code=${PIPESTATUS[0]}
    result=$(grep -E ' in [0-9.]+s' "$log" | tail -n 1 | tr -d '=' | xargs)  # pytest's last line
    summary+=("py$version: exit $code, ${result:-no summary line}, $((SECONDS - start)) s")
    if [ "$code" -ne 0 ]; then  # 5 (nothing collected) fails too
        status=1
    fi
done

echo "== test-matrix"
for line in "${summary[@]}"; do echo "   $line"; done
if [ ${#missing[@]} -gt 0 ]; then
    echo "   not found (not tested): ${missing[*]}"
fi
if [ ${#summary[@]} -eq 0 ]; then
    echo "   no Python of '$versions' found: nothing was tested"
    status=1
fi
exit $status
