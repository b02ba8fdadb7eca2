// bench_tokenizer: encode throughput of moequant::tokenizer::Tokenizer on a generated multilingual
// corpus (English, German, Russian, Chinese, Japanese, Arabic, Hindi, numbers, code, emoji), words
// drawn with a Zipf-like law as in real text, so the word cache sees realistic reuse.
//
//   bench_tokenizer TOKENIZER_JSON [--mb N] [--threads T]
//
// The tokenizer.json files of the tests are fetched into the build tree by `ctest -R tokenizer`
// (build/tests/unit/tokenizer/tokenizer_files/{qwen3,llama2}/tokenizer.json).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "moequant/tokenizer/tokenizer.h"

namespace {

using moequant::tokenizer::Tokenizer;

const std::vector<std::string> kWords = {"the",
                                         "of",
                                         "and",
                                         "to",
                                         "in",
                                         "is",
                                         "that",
                                         "for",
                                         "it",
                                         "with",
                                         "as",
                                         "was",
                                         "on",
                                         "expert",
                                         "experts",
                                         "routing",
                                         "quantization",
                                         "calibration",
                                         "tensor",
                                         "parallel",
                                         "Mixture",
                                         "model",
                                         "models",
                                         "token",
                                         "tokens",
                                         "weights",
                                         "scale",
                                         "don't",
                                         "it's",
                                         "we'll",
                                         "THE",
                                         "Hello",
                                         "world",
                                         "information",
                                         "international",
                                         "GPU",
                                         "GPUs",
                                         "Größe",
                                         "über",
                                         "Straße",
                                         "Fußgängerübergang",
                                         "Ça",
                                         "très",
                                         "naïveté",
                                         "año",
                                         "Привет",
                                         "мир",
                                         "модель",
                                         "эксперты",
                                         "распределены",
                                         "Ελληνικά",
                                         "κόσμε",
                                         "你好",
                                         "世界",
                                         "模型",
                                         "专家",
                                         "量化",
                                         "我们",
                                         "今天",
                                         "天气",
                                         "很好",
                                         "中华人民共和国",
                                         "日本語",
                                         "東京",
                                         "カタカナ",
                                         "ひらがな",
                                         "です",
                                         "한국어",
                                         "안녕하세요",
                                         "서울",
                                         "مرحبا",
                                         "العالم",
                                         "اللغة",
                                         "العربية",
                                         "नमस्ते",
                                         "दुनिया",
                                         "भारत",
                                         "विशेषज्ञ",
                                         "สวัสดี",
                                         "Tiếng",
                                         "Việt",
                                         "😀",
                                         "🚀",
                                         "👨‍👩‍👧‍👦",
                                         "🇯🇵",
                                         "1234",
                                         "3.14159",
                                         "2024-01-31",
                                         "x",
                                         "=",
                                         "+",
                                         "(",
                                         ")",
                                         "{",
                                         "}",
                                         "std::vector<int>",
                                         "return",
                                         "def",
                                         "self",
                                         "\n",
                                         "\n\n",
                                         "    ",
                                         "\t",
                                         "<|im_start|>",
                                         "<|im_end|>",
                                         "Pneumonoultramicroscopic"};

std::string make_corpus(size_t bytes) {
  std::mt19937_64 rng(20240131);
  std::vector<double> weights(kWords.size());
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = 1.0 / std::pow(i + 1.0, 0.8);
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  std::uniform_int_distribution<int> number(0, 999999);
  std::string text;
  text.reserve(bytes + 64);
  while (text.size() < bytes) {
    const size_t w = pick(rng);
    if (w % 17 == 3) {
      text += std::to_string(number(rng));  // many distinct numbers
    } else {
      text += kWords[w];
    }
    text += (rng() % 11 == 0) ? ", " : (rng() % 23 == 0 ? ".\n" : " ");
  }
  return text;
}

// Samples of about 2 KiB, as calibration text comes in, cut at spaces (never inside a character).
std::vector<std::string> split_samples(const std::string& text) {
  std::vector<std::string> samples;
  for (size_t at = 0; at < text.size();) {
    const size_t end = std::min(text.size(), text.find(' ', at + 2048));
    samples.push_back(text.substr(at, end - at));
    at = end;
  }
  return samples;
}

double encode_all(const Tokenizer& tok, const std::vector<std::string>& samples, int threads,
                  size_t* tokens) {
  std::vector<size_t> counts(threads, 0);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (size_t i = t; i < samples.size(); i += threads)
        counts[t] += tok.encode(samples[i]).size();
    });
  }
  for (auto& th : pool) th.join();
  *tokens = 0;
  for (size_t c : counts) *tokens += c;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TOKENIZER_JSON [--mb N] [--threads T]\n", argv[0]);
    return 2;
  }
  size_t mb = 32;
  int threads = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--mb") mb = std::strtoul(argv[i + 1], nullptr, 10);
    if (flag == "--threads") threads = std::atoi(argv[i + 1]);
  }
  const auto load_start = std::chrono::steady_clock::now();
  const Tokenizer tok = Tokenizer::from_file(argv[1]);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const std::string text = make_corpus(mb << 20);
  const std::vector<std::string> samples = split_samples(text);
  const double megabytes = static_cast<double>(text.size()) / (1 << 20);
  std::printf("tokenizer %s: loaded in %.2f s\n", argv[1], load_s);
  std::printf("corpus: %.1f MiB in %zu samples of 2 KiB, %d thread(s)\n", megabytes, samples.size(),
              threads);
  for (const char* pass : {"first pass (cold word cache)", "second pass (warm word cache)"}) {
    size_t tokens = 0;
    const double s = encode_all(tok, samples, threads, &tokens);
    std::printf("%-32s %8.2f MiB/s  %6.2f MiB/s per thread  %5.2f M tokens/s  (%.2f bytes/token)\n",
                pass, megabytes / s, megabytes / s / threads, tokens / s / 1e6,
                static_cast<double>(text.size()) / tokens);
  }
  return 0;
}
