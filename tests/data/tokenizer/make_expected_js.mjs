// Writes expected_<name>.json like make_expected.py, but with the JavaScript port of tokenizers
// in @lenml/tokenizers 3.7.2 (transformers.js-style) instead of Hugging Face `tokenizers`: the
// provisional reference until make_expected.py is run where `tokenizers` is installed.
//
//   bash tests/unit/tokenizer/fetch_tokenizers.sh /tmp/tok --with-js-port
//   node tests/data/tokenizer/make_expected_js.mjs --js-port /tmp/tok/js-port \
//       qwen3=/tmp/tok/qwen3/tokenizer.json llama2=/tmp/tok/llama2/tokenizer.json
//
// Samples of the corpus marked "js_port_differs" are left out: on them the port and tokenizers
// are known to disagree (README.md says where).
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
let jsPort = null;
let corpus = path.join(here, "corpus.jsonl");
let outDir = here;
const tokenizers = [];
for (let i = 0; i < args.length; ++i) {
  if (args[i] === "--js-port") jsPort = args[++i];
  else if (args[i] === "--corpus") corpus = args[++i];
  else if (args[i] === "--out-dir") outDir = args[++i];
  else if (args[i].includes("=")) tokenizers.push(args[i].split(/=(.*)/s).slice(0, 2));
  else throw new Error(`unknown argument ${args[i]}`);
}
if (!jsPort || tokenizers.length === 0) {
  console.error("usage: make_expected_js.mjs --js-port DIR NAME=tokenizer.json... " +
                "[--corpus corpus.jsonl] [--out-dir DIR]");
  process.exit(2);
}

const lib = await import(pathToFileURL(path.join(jsPort, "dist", "main.mjs")).href);
const version = JSON.parse(fs.readFileSync(path.join(jsPort, "package.json"), "utf8")).version;

const lines = fs.readFileSync(corpus, "utf8").split("\n");
const corpusSamples = [];
lines.forEach((line, index) => {
  if (line.trim() === "") return;
  corpusSamples.push({ line: index + 1, ...JSON.parse(line) });
});

for (const [name, file] of tokenizers) {
  const bytes = fs.readFileSync(file);
  // The base class reads tokenizer.json alone, as `tokenizers` does: the Llama subclass would add
  // transformers' "legacy" handling from tokenizer_config.json.
  const tok = new lib.tokenizers.PreTrainedTokenizer(JSON.parse(bytes.toString("utf8")), {});
  const samples = [];
  const skipped = [];
  for (const s of corpusSamples) {
    if (s.js_port_differs) {
      skipped.push(s.line);
      continue;
    }
    samples.push({ line: s.line, text: s.text, ids: tok.encode(s.text) });
  }
  const header = {
    reference: "js-port",
    generator: `@lenml/tokenizers ${version} (JavaScript port of tokenizers; provisional)`,
    tokenizer: name,
    tokenizer_sha256: createHash("sha256").update(bytes).digest("hex"),
    corpus: path.basename(corpus),
    add_special_tokens: true,
    skipped_lines: skipped,
  };
  let out = "{\n";
  for (const [k, v] of Object.entries(header)) out += `  ${JSON.stringify(k)}: ${JSON.stringify(v)},\n`;
  out += '  "samples": [\n' + samples.map((s) => "    " + JSON.stringify(s)).join(",\n") + "\n  ]\n}\n";
  const target = path.join(outDir, `expected_${name}.json`);
  fs.writeFileSync(target, out);
  console.error(`${target}: ${samples.length} samples (${skipped.length} left out)`);
}
