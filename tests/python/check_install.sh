#!/usr/bin/env bash
# The Python package installs both ways a user would: `pip install .` into a
# fresh venv (offline: --no-build-isolation, reusing BUILD's configured tree so
# only the module is compiled) and `cmake --install`. Each copy is imported
# from outside the source tree and checked.
#   tests/python/check_install.sh BUILD_DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$1" && pwd)
WORK=$(mktemp -d /tmp/ember-py-install.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

check='
import os, sys, slingshot_microservice as sm, slingshot_microservice.typing as t
from slingshot_microservice import Microservice
here = os.path.dirname(sm.__file__)
assert here.startswith(sys.argv[1]), (here, sys.argv[1])
assert os.path.exists(os.path.join(here, "py.typed")) and os.path.exists(os.path.join(here, "_native.pyi"))
assert t.CaseVariable == (bool | int | str) or set(t.CaseVariable.__args__) == {bool, int, str}
svc = Microservice("x", "http://127.0.0.1:9", lambda request, r, w, c: [])
assert svc.stats()["received"] == 0
print("ok", here)
'

echo "pip install . (venv, --no-build-isolation)"
/usr/bin/python3 -m venv --system-site-packages "$WORK/venv"
# A copy of the sources, as a user's checkout would be: pip may write build/ and *.egg-info there.
git -C "$ROOT" ls-files -z | (cd "$ROOT" && xargs -0 tar cf -) | (mkdir "$WORK/src" && tar xf - -C "$WORK/src")
# The package's files come from this tree, not from the last commit.
cp -r "$ROOT/bindings" "$ROOT/setup.py" "$ROOT/pyproject.toml" "$WORK/src/"
(cd "$WORK/src" && EMBER_BUILD_DIR="$BUILD" "$WORK/venv/bin/pip" install -q --no-build-isolation --no-deps .)
(cd "$WORK" && "$WORK/venv/bin/python" -c "$check" "$WORK/venv/")
"$WORK/venv/bin/pip" show -q slingshot-microservice >/dev/null

echo "cmake --install"
cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
dir=$(grep '^EMBER_PYTHON_INSTALL_DIR:' "$BUILD/CMakeCache.txt" | cut -d= -f2)
(cd "$WORK" && PYTHONPATH="$WORK/prefix/$dir" /usr/bin/python3 -c "$check" "$WORK/prefix/")
