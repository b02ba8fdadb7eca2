#!/usr/bin/env bash
# Bundles the header-only Debian packages moequant builds against (nlohmann-json, CLI11) into
# .deps/ (git-ignored), for a machine that has the compilers, LibTorch and MPI but cannot install
# packages (the lent GPU machines). Pass it with -DCMAKE_PREFIX_PATH="<torch>;$PWD/.deps".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dst="$root/.deps"
rm -rf "$dst"
mkdir -p "$dst/include" "$dst/share/cmake"
cp -r /usr/include/nlohmann /usr/include/CLI "$dst/include/"
cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$dst/share/cmake/"
echo "bundled into $dst: $(du -sh "$dst" | cut -f1)"
