#!/usr/bin/env bash
# gpu_bundle.sh: on this Debian machine (no GPU needed), builds pipeprune against a CUDA LibTorch
# of the same torch version as the GPU machine's, and packs it with every Debian library it and
# Open MPI's mpirun load, so that a GPU machine without Debian's packages (no apt, no network)
# runs benchmarks/gpu_check.sh without building anything (issue 16).
#
#   benchmarks/gpu_bundle.sh --python PATH --out FILE.tar.xz [--build-into DIR] [--arch N]
#
#   --python PATH     a Python whose torch is the GPU machine's version (e.g. a venv with the
#                     PyPI torch==2.11.0 wheel, CUDA 13.0, for a machine with torch 2.11.0+cu130):
#                     the binary links libtorch*.so by name and takes them from the GPU machine's
#                     torch at run time, so the two must be the same release
#   --out FILE        the bundle: build/pipeprune and deps/usr/... (the layout `dpkg -x` makes)
#   --build-into DIR  where to configure and build (default build/gpu-bundle-build)
#   --arch N          CUDA architecture (default 90: H100/H200)
#
# On the GPU machine:
#   mkdir -p /tmp/b && tar xJf FILE.tar.xz -C /tmp/b
#   bash benchmarks/gpu_check.sh --build-dir /tmp/b/build --deps /tmp/b/deps --python python3
# gpu_check.sh puts the bundle's libraries, then that Python's torch/lib and nvidia/*/lib, on
# the library path of pipeprune and mpirun only (not of Python), and relocates Open MPI with
# OPAL_PREFIX.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="" out="" build_into="$root/build/gpu-bundle-build" arch=90
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=${2:?--python needs a path}; shift 2 ;;
    --out) out=${2:?--out needs a file name}; shift 2 ;;
    --build-into) build_into=${2:?--build-into needs a folder}; shift 2 ;;
    --arch) arch=${2:?--arch needs a number}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_bundle: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$python" ] && [ -n "$out" ] || { echo "gpu_bundle: --python and --out are required (see --help)" >&2; exit 2; }
command -v dpkg > /dev/null || { echo "gpu_bundle: needs a Debian machine (dpkg) with pipeprune's build packages (scripts/install_deps.sh)" >&2; exit 2; }
for p in openmpi-bin libopenmpi3 openmpi-common libpmix2; do
  dpkg -s "$p" > /dev/null 2>&1 || { echo "gpu_bundle: Debian package $p is not installed (scripts/install_deps.sh installs it)" >&2; exit 2; }
done
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') ||
  { echo "gpu_bundle: $python cannot import torch" >&2; exit 2; }
site=$(dirname "$torch_dir")

# The build: gpu_check.sh's own build step (its flags, its checks), nothing else.
bash "$root/benchmarks/gpu_check.sh" --build-only --build-into "$build_into" --python "$python" --arch "$arch" \
  --out "$build_into.check"

stage=$(mktemp -d "${TMPDIR:-/tmp}/gpu_bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
deps="$stage/deps"
multiarch=usr/lib/x86_64-linux-gnu
mkdir -p "$stage/build" "$deps/$multiarch" "$deps/usr/bin"
cp "$build_into/pipeprune" "$stage/build/pipeprune"
strip --strip-debug "$stage/build/pipeprune"

# Open MPI's runtime as its packages install it (mpirun, the plugins, the help texts), under
# deps/usr; links in /usr/bin (the alternatives) become the files they name.
for p in openmpi-bin libopenmpi3 openmpi-common libpmix2; do
  dpkg -L "$p" | while IFS= read -r f; do
    case "$f" in /usr/share/man/*|/usr/share/doc/*|/usr/share/lintian/*|*/java/*|*mpi_java*) continue ;; esac
    [ -f "$f" ] || continue
    mkdir -p "$deps$(dirname "$f")"
    cp -L "$f" "$deps$f"
  done
done
for tool in mpirun mpiexec; do
  [ -e "$deps/usr/bin/$tool" ] || cp -L "$(command -v "$tool")" "$deps/usr/bin/$tool"
done

# Every shared library those files and pipeprune load, except glibc's own, the C++ runtime (the
# GPU machine's is newer), and what the GPU machine's torch and CUDA provide.
skip_lib() {
  case "$1" in
    "$site"/*|/usr/local/cuda*) return 0 ;;
  esac
  case "$(basename "$1")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libresolv.so*|libutil.so*) return 0 ;;
    libstdc++.so*|libgcc_s.so*) return 0 ;;
    libcuda.so*|libnvidia-*) return 0 ;;
  esac
  return 1
}
: > "$stage/libs"
while IFS= read -r elf; do
  ldd "$elf" 2> /dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' >> "$stage/libs" || true
done < <(find "$stage/build" "$deps" -type f \( -name '*.so*' -o -perm -u+x \) -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print)
missing=$(while IFS= read -r elf; do ldd "$elf" 2> /dev/null | awk '/not found/ { print $1 }'; done < \
  <(find "$stage/build" -type f) | sort -u | tr '\n' ' ')
[ -z "$missing" ] || { echo "gpu_bundle: $build_into/pipeprune cannot load ${missing% } here" >&2; exit 1; }
sort -u "$stage/libs" | while IFS= read -r lib; do
  skip_lib "$lib" && continue
  [ -e "$deps/$multiarch/$(basename "$lib")" ] || cp -L "$lib" "$deps/$multiarch/$(basename "$lib")"
done

{
  echo "pipeprune $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown)$(git -C "$root" diff --quiet 2> /dev/null || echo ' (+ uncommitted changes)')"
  echo "built against torch $("$python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)') for sm_$arch"
  echo "Debian libraries: $(find "$deps/$multiarch" -maxdepth 1 -type f | wc -l), Open MPI $(dpkg-query -W -f '${Version}' libopenmpi3)"
} > "$stage/BUNDLE.txt"
mkdir -p "$(dirname "$out")"
tar -C "$stage" -cJf "$out.partial" BUNDLE.txt build deps
mv "$out.partial" "$out"
echo "gpu_bundle: $out ($(du -h "$out" | cut -f1)); $(sed -n 2,3p "$stage/BUNDLE.txt" | paste -sd ';')"
