// An independent GPTQ for the tests, from the paper (Frantar et al., 2022, Algorithm 1) rather
// than from moequant's code: plain loops in double over one matrix, no lazy batches, its own
// Cholesky, and the formats' rounding rules written again by brute force (nearest value, ties to
// the even code) against docs/formats.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace moequant {
namespace gptq_reference {

// The nearest fp16 value (ties to even), subnormals included; inf at or above 65520.
inline double fp16_round(double x) {
  const double a = std::fabs(x);
  if (a >= 65520.0) return std::copysign(INFINITY, x);
  int exp = 0;
  std::frexp(a, &exp);                                          // a = m * 2^exp, m in [0.5, 1)
  const double ulp = std::ldexp(1.0, std::max(exp - 11, -24));  // 10 fraction bits, min 2^-24
  return std::copysign(std::nearbyint(a / ulp) * ulp, x);
}

// The e4m3fn value nearest to x >= 0 (ties to the even code), saturating at 448.
inline double e4m3_round(double x) {
  double best = 0, best_err = INFINITY;
  for (int c = 0; c < 127; ++c) {  // 0x7f is NaN
    const int e = (c >> 3) & 15, m = c & 7;
    const double v = e == 0 ? m * std::ldexp(1.0, -9) : (1 + m / 8.0) * std::ldexp(1.0, e - 7);
    const double err = std::fabs(x - v);
    if (err < best_err || (err == best_err && (c & 1) == 0)) best_err = err, best = v;
  }
  return best;
}

// e2m1: the code of y, the magnitude's index of the nearest of {0, .5, 1, 1.5, 2, 3, 4, 6} (ties
// to the even index) with bit 3 set when y < 0.
inline int e2m1_code(double y) {
  static const double kValues[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  int best = 0;
  double best_err = INFINITY;
  for (int i = 0; i < 8; ++i) {
    const double err = std::fabs(std::fabs(y) - kValues[i]);
    if (err < best_err || (err == best_err && i % 2 == 0)) best_err = err, best = i;
  }
  return (y < 0 ? 8 : 0) | best;
}
inline double e2m1_value(int code) {
  static const double kValues[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  return (code & 8) ? -kValues[code & 7] : kValues[code & 7];
}

// a [n, n] (row-major, symmetric) -> its lower Cholesky factor, in place; false if not positive
// definite.
inline bool cholesky_lower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int64_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return false;
    d = std::sqrt(d);
    a[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (int64_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / d;
    }
    for (int64_t i = 0; i < j; ++i) a[i * n + j] = 0;
  }
  return true;
}

// U upper triangular with U^T U = h^-1 (h positive definite): L L^T = h, h^-1 = L^-T L^-1, then
// the Cholesky factor of h^-1, transposed.
inline std::vector<double> upper_factor_of_inverse(std::vector<double> h, int64_t n) {
  if (!cholesky_lower(h, n)) return {};
  std::vector<double> linv(static_cast<size_t>(n * n), 0.0);  // L^-1, lower
  for (int64_t j = 0; j < n; ++j) {
    linv[j * n + j] = 1.0 / h[j * n + j];
    for (int64_t i = j + 1; i < n; ++i) {
      double s = 0;
      for (int64_t k = j; k < i; ++k) s += h[i * n + k] * linv[k * n + j];
      linv[i * n + j] = -s / h[i * n + i];
    }
  }
  std::vector<double> inv(static_cast<size_t>(n * n), 0.0);  // L^-T L^-1
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = std::max(i, j); k < n; ++k) s += linv[k * n + i] * linv[k * n + j];
      inv[i * n + j] = s;
    }
  if (!cholesky_lower(inv, n)) return {};
  std::vector<double> u(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) u[i * n + j] = inv[j * n + i];
  return u;
}

struct Result {
  std::vector<int> codes;  // [R, C], the format's nibbles
  std::vector<double> q;   // [R, C], what they dequantize to
  bool ok = false;         // false when a factorization failed
};

enum class Format { kInt4, kNvfp4 };

// GPTQ of w [R, C] against h [C, C] (row-major). int4: symmetric, groups of 128 along C whose
// scales come from the current weights when the sweep reaches them. nvfp4: weight_scale_2 from
// `amax` (the stored float32), block scales from the weights as given.
inline Result gptq(std::vector<double> w, std::vector<double> h, int64_t rows, int64_t cols,
                   Format format, float amax, double damp) {
  Result r;
  const int64_t n = cols;
  // nvfp4's scales, before anything changes the weights
  const double scale2 =
      amax == 0.0f ? 1.0 : static_cast<double>(amax / (6.0f * 448.0f));  // stored float32
  std::vector<double> divisor;                                           // [R, C/16]
  if (format == Format::kNvfp4) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t b = 0; b < cols / 16; ++b) {
        double m = 0;
        for (int64_t j = 16 * b; j < 16 * b + 16; ++j) m = std::max(m, std::fabs(w[i * n + j]));
        double s = m / (6.0 * scale2);
        if (s == 0) s = 1.0;
        s = std::min(std::max(s, std::ldexp(1.0, -9)), 448.0);
        divisor.push_back(e4m3_round(s) * scale2);
      }
  }
  // dead columns, then damping
  for (int64_t j = 0; j < n; ++j)
    if (h[j * n + j] == 0) {
      h[j * n + j] = 1;
      for (int64_t i = 0; i < rows; ++i) w[i * n + j] = 0;
    }
  double mean = 0;
  for (int64_t j = 0; j < n; ++j) mean += h[j * n + j];
  mean /= static_cast<double>(n);
  for (int64_t j = 0; j < n; ++j) h[j * n + j] += damp * mean;
  const std::vector<double> u = upper_factor_of_inverse(h, n);
  if (u.empty()) return r;

  r.codes.assign(static_cast<size_t>(rows * cols), 0);
  r.q.assign(static_cast<size_t>(rows * cols), 0.0);
  std::vector<double> scale(static_cast<size_t>(rows), 1.0);
  for (int64_t c = 0; c < cols; ++c) {
    if (format == Format::kInt4 && c % 128 == 0) {
      for (int64_t i = 0; i < rows; ++i) {
        double m = 0;
        for (int64_t j = c; j < std::min(c + 128, cols); ++j)
          m = std::max(m, std::fabs(w[i * n + j]));
        scale[i] = m == 0 ? 1.0 : fp16_round(m / 7.0);
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      const double x = w[i * n + c];
      int code;
      double q;
      if (format == Format::kInt4) {
        const double v = std::min(std::max(std::nearbyint(x / scale[i]), -8.0), 7.0);
        code = static_cast<int>(v) + 8;
        q = v * scale[i];
      } else {
        const double d = divisor[i * (cols / 16) + c / 16];
        code = e2m1_code(x / d);
        q = e2m1_value(code) * d;
      }
      r.codes[i * n + c] = code;
      r.q[i * n + c] = q;
      const double err = (x - q) / u[c * n + c];
      for (int64_t j = c + 1; j < cols; ++j) w[i * n + j] -= err * u[c * n + j];
    }
  }
  r.ok = true;
  return r;
}

// tr((w - q) h (w - q)^T): the output error GPTQ minimizes, for inputs whose x^T x is h / 2.
inline double objective(const std::vector<double>& w, const std::vector<double>& q,
                        const std::vector<double>& h, int64_t rows, int64_t cols) {
  double total = 0;
  std::vector<double> d(static_cast<size_t>(cols));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) d[j] = w[i * cols + j] - q[i * cols + j];
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t k = 0; k < cols; ++k) s += h[j * cols + k] * d[k];
      total += d[j] * s;
    }
  }
  return total;
}

}  // namespace gptq_reference
}  // namespace moequant
