// The one helper header of the C++ tests: scratch directories and error messages (boundary
// tests), seeded random fills, thread sweeps, tolerance checks and float64 references (kernel
// tests). Everything lives in rat::testing; a test file says `using namespace rat::testing;`.
//
// Finite differences (fd_grad): the references run in double, so eps = 1e-6 leaves a
// truncation error O(eps^2 |f'''|) ~ 1e-12 and a cancellation error ~ 1e-16 |loss| / eps
// <= 1e-7 for |loss| <= 1e3. Both are far below what the fp32 kernels are allowed
// (|err| <= kGradAtol + kGradRtol |g|): fp32 rounding over the at most ~100-term sums of the
// kernel tests gives ~1e-5 relative at worst, while a formula error (a lost term, a wrong
// sign, a write instead of an accumulate) is O(1).
#pragma once

#include <gtest/gtest.h>
#include <omp.h>
#include <stdlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../reference/compare.h"
#include "kernels/gemm.h"
#include "util/error.h"

namespace rat::testing {

// ---------------------------------------------------------------------------
// Files and errors.

// A scratch directory, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "rat_io_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::string p = file(name);
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The message of the rat::Error that f throws; a test failure if none, if another exception
// is thrown, or if the message is not one line (errors name the thing on one line).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const rat::Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-rat::Error: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no rat::Error was thrown";
  return "";
}

// ---------------------------------------------------------------------------
// Seeded random fills.

using Vec = std::vector<float>;
using DVec = std::vector<double>;

inline Vec randn(int64_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  Vec v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

inline Vec uniform(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Vec v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

// n token ids uniform in [0, V).
inline std::vector<int32_t> random_ids(int64_t n, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> u(0, int32_t(V - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& i : ids) i = u(rng);
  return ids;
}

inline DVec to_d(const Vec& v) { return DVec(v.begin(), v.end()); }

// Runs `body` once per thread count (1 and 3), so row and column splits leave remainders.
template <class F>
void for_threads(F body) {
  const int saved = omp_get_max_threads();
  for (int nt : {1, 3}) {
    SCOPED_TRACE("threads " + std::to_string(nt));
    omp_set_num_threads(nt);
    body();
  }
  omp_set_num_threads(saved);
}

// ---------------------------------------------------------------------------
// Tolerances.

constexpr double kFdEps = 1e-6;     // see the header comment
constexpr double kGradAtol = 1e-5;  // fp32 kernel vs double finite differences
constexpr double kGradRtol = 1e-4;
constexpr double kU32 = 1.0 / (1 << 24);  // unit roundoff of fp32
constexpr float kGarbage = 12345.f;       // prefill of outputs that must be WRITTEN

// Elementwise |got - want| <= atol + rtol |want| (NaN fails); names the worst entry.
inline ::testing::AssertionResult close(const float* got, const double* want, size_t n, double atol,
                                        double rtol) {
  size_t bad = 0, worst = 0;
  double worst_ratio = -1;
  for (size_t i = 0; i < n; ++i) {
    double err = std::fabs(double(got[i]) - want[i]);
    double tol = atol + rtol * std::fabs(want[i]);
    if (!(err <= tol)) {
      ++bad;
      double ratio = std::isnan(err) ? std::numeric_limits<double>::infinity() : err / tol;
      if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << n << " entries off; worst [" << worst << "]: got " << got[worst]
         << ", want " << want[worst] << ", tol " << atol + rtol * std::fabs(want[worst]);
}
inline ::testing::AssertionResult close(const Vec& got, const DVec& want, double atol,
                                        double rtol) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size mismatch";
  return close(got.data(), want.data(), got.size(), atol, rtol);
}

// Copies packed [rows, cols] into a strided buffer (pad columns = `pad`) and back.
inline Vec to_strided(const Vec& packed, int64_t rows, int64_t cols, int64_t ld, float pad) {
  Vec s(size_t(rows * ld), pad);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) s[size_t(r * ld + c)] = packed[size_t(r * cols + c)];
  return s;
}
inline Vec from_strided(const Vec& s, int64_t rows, int64_t cols, int64_t ld) {
  Vec p(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) p[size_t(r * cols + c)] = s[size_t(r * ld + c)];
  return p;
}
// The pad columns of a strided buffer must still hold `pad` exactly.
inline ::testing::AssertionResult pad_untouched(const Vec& s, int64_t rows, int64_t cols,
                                                int64_t ld, float pad) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = cols; c < ld; ++c)
      if (s[size_t(r * ld + c)] != pad)
        return ::testing::AssertionFailure() << "pad column [" << r << ", " << c << "] overwritten";
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------
// float64 references.

// Central difference of `loss` in every coordinate of x (x is restored).
template <class F>
DVec fd_grad(DVec& x, F loss, double eps = kFdEps) {
  DVec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + eps;
    const double lp = loss();
    x[i] = x0 - eps;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * eps);
  }
  return g;
}

inline double dot(const DVec& a, const DVec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// prefill + g: what an ACCUMULATED gradient must hold.
inline DVec plus(const Vec& prefill, const DVec& g) {
  DVec r(g.size());
  for (size_t i = 0; i < g.size(); ++i) r[i] = double(prefill[i]) + g[i];
  return r;
}

// bf16 rounding reference: nearest of the two neighbouring bf16 values, ties to the even one,
// computed on values (not by the bias-add trick). fp32 subnormals are flushed to signed zero,
// as the AVX512-BF16 conversion does.
inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline double bf16_value(uint16_t h) {
  if ((h & 0x7fff) == 0x7f80) return (h & 0x8000) ? -std::ldexp(1.0, 128) : std::ldexp(1.0, 128);
  return double(float_of(uint32_t(h) << 16));  // finite: the double is exact
}
inline bool is_subnormal(float f) { return f != 0.f && std::fpclassify(f) == FP_SUBNORMAL; }

inline uint16_t ref_bf16_bits(float f) {
  const uint32_t u = bits_of(f);
  if (std::isnan(f)) return uint16_t((u >> 16) | 0x40);  // only NaN-ness is checked
  if (is_subnormal(f)) return uint16_t((u >> 16) & 0x8000);
  const uint16_t lo = uint16_t(u >> 16);  // truncation toward zero
  if ((u & 0xffff) == 0) return lo;       // exactly representable (incl. inf, zero)
  const uint16_t hi = uint16_t(lo + 1);   // next value away from zero (may be inf)
  const double dl = std::fabs(double(f) - bf16_value(lo));
  const double dh = std::fabs(bf16_value(hi) - double(f));
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) ? hi : lo;
}
inline float ref_round_bf16(float f) { return float_of(uint32_t(ref_bf16_bits(f)) << 16); }
inline Vec ref_round_bf16(const Vec& v) {
  Vec r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = ref_round_bf16(v[i]);
  return r;
}

struct RefGemm {
  DVec c, bound;  // bound: sum_k |a b| + |beta c0|, the scale of the rounding error
};

// C = beta C0 + op(A) op(B) in double, using the GemmShape conventions of gemm.h.
inline RefGemm ref_gemm(const GemmShape& s, const Vec& A, const Vec& B, const Vec& C0, float beta) {
  const int64_t lda = s.lda ? s.lda : (s.trans_a ? s.M : s.K);
  const int64_t ldb = s.ldb ? s.ldb : (s.trans_b ? s.K : s.N);
  const int64_t ldc = s.ldc ? s.ldc : s.N;
  RefGemm r;
  r.c.assign(C0.size(), 0);
  r.bound.assign(C0.size(), 0);
  for (size_t i = 0; i < C0.size(); ++i) r.c[i] = C0[i];
  for (int64_t i = 0; i < s.M; ++i)
    for (int64_t j = 0; j < s.N; ++j) {
      double acc = 0, mag = 0;
      for (int64_t k = 0; k < s.K; ++k) {
        double a = s.trans_a ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)];
        double b = s.trans_b ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)];
        acc += a * b;
        mag += std::fabs(a * b);
      }
      const size_t ci = size_t(i * ldc + j);
      const double c0 = beta == 0.f ? 0.0 : double(beta) * double(C0[ci]);
      r.c[ci] = acc + c0;
      r.bound[ci] = mag + std::fabs(c0);
    }
  return r;
}

// Any fp32 summation order of K products (exact or rounded) plus the beta term stays within
// gamma_{K+2} * bound, gamma_n = n u / (1 - n u); we allow 2x.
inline ::testing::AssertionResult gemm_close(const Vec& got, const RefGemm& ref,
                                             const GemmShape& s) {
  DVec tol(ref.c.size());
  for (size_t i = 0; i < tol.size(); ++i) tol[i] = 2.0 * double(s.K + 2) * kU32 * ref.bound[i];
  for (size_t i = 0; i < got.size(); ++i) {
    double err = std::fabs(double(got[i]) - ref.c[i]);
    if (!(err <= tol[i] + 1e-30))
      return ::testing::AssertionFailure()
             << "C[" << i << "]: got " << got[i] << ", want " << ref.c[i] << ", tol " << tol[i];
  }
  return ::testing::AssertionSuccess();
}

}  // namespace rat::testing

// Asserts that `msg` contains `part`, printing the whole message otherwise.
#define EXPECT_HAS(msg, part) \
  EXPECT_NE(std::string(msg).find(part), std::string::npos) << "message: " << (msg)
