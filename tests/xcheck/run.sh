#!/bin/sh
# run.sh VENV TEST.py: runs one cross-check test with the environment's Python, or reports it
# skipped (exit 77, ctest's SKIP_RETURN_CODE) when the environment does not exist.
venv=$1 test=$2
if [ ! -x "$venv/bin/python" ]; then
  echo "SKIPPED: no Python environment at $venv; 'bash scripts/xcheck_env.sh BUILD_DIR' makes it (needs PyPI)"
  exit 77
fi
exec "$venv/bin/python" -B "$test" -v
