#!/usr/bin/env bash
# Bundles the header-only Debian packages moequant builds against (nlohmann-json, CLI11) and the
# static PCRE2 and utf8proc libraries (libpcre2-dev, libutf8proc-dev) into .deps/ (git-ignored),
# for a machine that has the compilers, LibTorch and MPI but cannot install packages (the lent GPU
# machines). Pass it with -DCMAKE_PREFIX_PATH="<torch>;$PWD/.deps".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dst="$root/.deps"
rm -rf "$dst"
mkdir -p "$dst/include" "$dst/share/cmake"
cp -r /usr/include/nlohmann /usr/include/CLI "$dst/include/"
cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$dst/share/cmake/"
# PCRE2 and utf8proc (the tokenizer layer): headers and static libraries, which CMake finds under
# CMAKE_PREFIX_PATH before the system's; their pkg-config files with the prefix made relative.
multiarch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
libdir="/usr/lib/$multiarch"
mkdir -p "$dst/lib/pkgconfig"
cp /usr/include/pcre2.h /usr/include/utf8proc.h "$dst/include/"
cp "$libdir/libpcre2-8.a" "$libdir/libutf8proc.a" "$dst/lib/"
for pc in libpcre2-8.pc libutf8proc.pc; do
  # shellcheck disable=SC2016  # ${pcfiledir} and ${prefix} are pkg-config's, not the shell's
  sed -e 's|^prefix=.*|prefix=${pcfiledir}/../..|' -e 's|^libdir=.*|libdir=${prefix}/lib|' \
      -e 's|^includedir=.*|includedir=${prefix}/include|' \
      "$libdir/pkgconfig/$pc" >"$dst/lib/pkgconfig/$pc"
done
echo "bundled into $dst: $(du -sh "$dst" | cut -f1)"
