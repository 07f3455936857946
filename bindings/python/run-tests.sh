#!/usr/bin/env bash
# The Python binding's tests: a venv at target/py-venv (made once), the
# pinned test requirements and this package (editable), the cargo targets
# the tests use (libotlpx_ffi and the otlpx-bench sink, debug), then pytest.
# Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/py-venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements-test.txt" -e "$here"

if [ -n "${OTLPX_LIBRARY:-}" ] && [ -n "${OTLPX_BENCH:-}" ]; then
    # Given by the caller: `cargo test` (benches/tests/python_bindings.rs),
    # which already built both and holds cargo's lock meanwhile.
    :
else
    (cd "$root" && cargo build --quiet -p otlpx-ffi -p otlpx-bench)
    # The build just made, whatever target/release holds.
    export OTLPX_LIBRARY="$root/target/debug/libotlpx_ffi.so"
    export OTLPX_BENCH="$root/target/debug/otlpx-bench"
fi
cd "$here"
exec "$venv/bin/python" -m pytest -q "$@"
