#!/usr/bin/env bash
# find_package(moequant) from outside the tree: installs the build into a temporary prefix,
# configures and builds tests/embedding/outside_project against it, and runs the result.
#   install_test.sh CMAKE BUILD_DIR OUTSIDE_PROJECT_DIR GENERATOR
set -euo pipefail
cmake_bin=$1 build_dir=$2 project_dir=$3 generator=$4

work=$(mktemp -d "${TMPDIR:-/tmp}/moequant-install-XXXXXX")
trap 'rm -rf "$work"' EXIT

"$cmake_bin" --install "$build_dir" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/cmake/moequant/moequantConfig.cmake" ||
  test -f "$work/prefix/lib64/cmake/moequant/moequantConfig.cmake" ||
  { echo "no moequantConfig.cmake installed"; cat "$work/install.log"; exit 1; }
test -f "$work/prefix/include/moequant/moequant.h" || { echo "headers not installed"; exit 1; }

# Only the prefix is given: the package config must find its own dependencies (LibTorch included).
"$cmake_bin" -S "$project_dir" -B "$work/build" -G "$generator" \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release > "$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; exit 1; }
"$cmake_bin" --build "$work/build" -j 2 > "$work/build.log" 2>&1 ||
  { cat "$work/build.log"; exit 1; }
if grep -q "warning:" "$work/build.log"; then
  cat "$work/build.log"
  echo "the outside project built with warnings"
  exit 1
fi
"$work/build/outside_main"
