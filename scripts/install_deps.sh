#!/usr/bin/env bash
# Installs pipeprune's build and test dependencies from Debian 12's archive, skipping the
# download when every package is already present. Run as root (or with sudo available).
# --with-browser (scripts/test.sh) adds Chromium for the report page's browser test
# (tests/report/); the demo does not need it.
set -euo pipefail
with_browser=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) with_browser=1 ;;
    *) echo "install_deps.sh: unknown option $arg (known: --with-browser)" >&2; exit 2 ;;
  esac
done

packages=(
  cmake g++ make pkg-config ccache
  libtorch-dev libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  libhdf5-dev libcli11-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  libpcre2-dev libsentencepiece-dev libutf8proc-dev libfmt-dev libbenchmark-dev
  python3 python3-venv
)
if [ "$with_browser" -eq 1 ]; then packages+=(chromium); fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "pipeprune: all dependencies are installed"
  exit 0
fi

echo "pipeprune: installing ${missing[*]}"
run_as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "pipeprune: run as root (or install sudo) to install: ${missing[*]}" >&2; exit 1; }
  run_as_root=(sudo)
fi
"${run_as_root[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${run_as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
