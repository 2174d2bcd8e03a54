#include "kernels/gemm.h"

#include <omp.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "dnnl.hpp"
#include "kernels/bf16_scalar.h"
#include "kernels/gemv.h"
#include "kernels/isa_kernels.h"
#include "util/error.h"

namespace rat {

const char* precision_name(Precision p) { return p == Precision::kBF16 ? "bf16" : "f32"; }

// A count, not a flag, so guards nest; process-wide because the products run
// on whichever thread drives the decoder (serve's scheduler, not main).
static std::atomic<int> g_row_invariant{0};

RowInvariantProducts::RowInvariantProducts(bool on) : on_(on) {
  if (on_) g_row_invariant.fetch_add(1);
}
RowInvariantProducts::~RowInvariantProducts() {
  if (on_) g_row_invariant.fetch_sub(1);
}
bool row_invariant_products() { return g_row_invariant.load(std::memory_order_relaxed) > 0; }

namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

void fill_ld(GemmShape& s) {
  if (s.lda == 0) s.lda = s.trans_a ? s.M : s.K;
  if (s.ldb == 0) s.ldb = s.trans_b ? s.K : s.N;
  if (s.ldc == 0) s.ldc = s.N;
  RAT_ASSERT(s.M >= 0 && s.N >= 0 && s.K >= 0);
  RAT_ASSERT(s.lda >= (s.trans_a ? s.M : s.K) && s.ldb >= (s.trans_b ? s.K : s.N) && s.ldc >= s.N);
}

// Debian's oneDNN (2.6) multiplies bf16 only with its AVX-512 kernels; on a
// CPU without them, or under ONEDNN_MAX_CPU_ISA below them (RAT_ISA=avx2,
// kernels/isa.h), it has no bf16 matmul at all. There the bf16 plans are f32
// plans, and execute_bf16 widens the operands first: bf16 -> f32 is exact and
// so is the product of two bf16 values in f32, so the result is the same
// maths (bf16 inputs, f32 sums), summed in another order.
bool dnnl_has_bf16() {
  static const bool ok = [] {
    using dt = dnnl::memory::data_type;
    try {
      const dnnl::memory::desc a({1, 1}, dt::bf16, dnnl::memory::format_tag::ab);
      const dnnl::memory::desc c({1, 1}, dt::f32, dnnl::memory::format_tag::ab);
      dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, a, c), cpu_engine());
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return ok;
}

// beta is part of the key: the sum post-op bakes it into the primitive, so a
// plan built for beta 1 must not be reused for beta 0.5 at the same shape.
using Key =
    std::tuple<int64_t, int64_t, int64_t, bool, bool, int64_t, int64_t, int64_t, int, bool, float>;

struct Plan {
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c, scratch;
};

// Plans are built once per shape; a training step reuses a few dozen of them.
Plan& plan_for(const GemmShape& s, Precision p, bool accumulate, float beta) {
  static std::map<Key, Plan> cache;
  static std::mutex mu;
  Key key{s.M,
          s.N,
          s.K,
          s.trans_a,
          s.trans_b,
          s.lda,
          s.ldb,
          s.ldc,
          int(p),
          accumulate,
          accumulate ? beta : 0.f};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  using dt = dnnl::memory::data_type;
  dt in_t = p == Precision::kBF16 && dnnl_has_bf16() ? dt::bf16 : dt::f32;
  dnnl::memory::dims a_str =
      s.trans_a ? dnnl::memory::dims{1, s.lda} : dnnl::memory::dims{s.lda, 1};
  dnnl::memory::dims b_str =
      s.trans_b ? dnnl::memory::dims{1, s.ldb} : dnnl::memory::dims{s.ldb, 1};
  Plan plan;
  plan.a = dnnl::memory::desc({s.M, s.K}, in_t, a_str);
  plan.b = dnnl::memory::desc({s.K, s.N}, in_t, b_str);
  plan.c = dnnl::memory::desc({s.M, s.N}, dt::f32, dnnl::memory::dims{s.ldc, 1});
  dnnl::primitive_attr attr;
  // Our scratchpad, not the library's: by default oneDNN shares one among all
  // primitives and ties each primitive to the thread that created it, and
  // gemm_small_bf16 runs cached plans on whichever thread of a parallel
  // region calls it (two threads then corrupted each other's products).
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (accumulate) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  auto d = dnnl::matmul::desc(plan.a, plan.b, plan.c);
  auto pd = dnnl::matmul::primitive_desc(d, attr, cpu_engine());
  plan.prim = dnnl::matmul(pd);
  plan.scratch = pd.scratchpad_desc();
  return cache.emplace(key, std::move(plan)).first->second;
}

}  // namespace

bool gemm_has_native_bf16() { return dnnl_has_bf16(); }

namespace {

// Runs a plan on the calling thread's own scratchpad (grown on demand, kept).
void execute(Plan& plan, dnnl::stream& strm, void* A, void* B, float* C) {
  thread_local std::vector<uint8_t> scratch;
  const size_t need = plan.scratch.get_size();
  if (scratch.size() < need) scratch.resize(need);
  dnnl::memory ma(plan.a, cpu_engine(), A);
  dnnl::memory mb(plan.b, cpu_engine(), B);
  dnnl::memory mc(plan.c, cpu_engine(), C);
  dnnl::memory ms(plan.scratch, cpu_engine(), scratch.data());
  plan.prim.execute(
      strm,
      {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_SCRATCHPAD, ms}});
  strm.wait();
}

// A bf16 product through a bf16 plan, or widened to f32 where oneDNN has none
// (dnnl_has_bf16). s: the plan's shape (A and B stored as its strides say).
void execute_bf16(Plan& plan, dnnl::stream& strm, const GemmShape& s, const uint16_t* A,
                  const uint16_t* B, float* C) {
  if (dnnl_has_bf16())
    return execute(plan, strm, const_cast<uint16_t*>(A), const_cast<uint16_t*>(B), C);
  // Up to the last element of the last stored row: nothing past the operand is read.
  auto widen = [](const uint16_t* x, int64_t rows, int64_t cols, int64_t ld,
                  std::vector<float>& out) {
    const int64_t n = (rows - 1) * ld + cols;
    out.resize(size_t(n));
    from_bf16(x, out.data(), n);
  };
  thread_local std::vector<float> a32, b32;
  widen(A, s.trans_a ? s.K : s.M, s.trans_a ? s.M : s.K, s.lda, a32);
  widen(B, s.trans_b ? s.N : s.K, s.trans_b ? s.K : s.N, s.ldb, b32);
  execute(plan, strm, a32.data(), b32.data(), C);
}

// Copies a stored rows x cols matrix (leading dim ld) into packed bf16.
void pack_bf16(const float* x, int64_t rows, int64_t cols, int64_t ld, std::vector<uint16_t>& out) {
  out.resize(size_t(rows * cols));
  // Rounding runs at memory speed: a decode step's activations (64 x 2048)
  // take ~20 us on one thread, less than a parallel region's barrier costs
  // when the other core is busy. Only training-sized operands are split.
#pragma omp parallel for schedule(static) if (rows * cols >= (int64_t(1) << 20))
  for (int64_t r = 0; r < rows; ++r) to_bf16(x + r * ld, out.data() + r * cols, cols);
}

// Checks the operands and fills s's leading dimensions; true when there is
// nothing to multiply (an empty C, or K = 0: C = beta C, done here).
bool trivial(GemmShape& s, bool have_ab, float* C, float beta) {
  RAT_ASSERT(C != nullptr || s.M == 0 || s.N == 0);
  RAT_ASSERT(have_ab || s.K == 0 || s.M == 0 || s.N == 0);
  fill_ld(s);
  if (s.M == 0 || s.N == 0) return true;
  if (s.K != 0) return false;
  for (int64_t i = 0; i < s.M; ++i)
    for (int64_t j = 0; j < s.N; ++j)
      C[i * s.ldc + j] = beta == 0.f ? 0.f : beta * C[i * s.ldc + j];
  return true;
}

// Row i of op(A) alone: A's row i, or column i when A is stored transposed.
GemmShape one_row(const GemmShape& s) {
  GemmShape r = s;
  r.M = 1;
  return r;
}
int64_t a_row_offset(const GemmShape& s, int64_t i) { return s.trans_a ? i : i * s.lda; }

}  // namespace

void gemm(const GemmShape& shape, const float* A, const float* B, float* C, float beta,
          Precision p) {
  GemmShape s = shape;
  if (trivial(s, A != nullptr && B != nullptr, C, beta)) return;
  if (p == Precision::kF32 && !s.trans_a && s.trans_b && gemv_f32_supported(s.M, s.K))
    return gemv_f32(A, s.lda, s.M, B, s.ldb, s.N, s.K, C, s.ldc, beta);
  if (s.M > 1 && row_invariant_products()) {
    if (p == Precision::kF32 && !s.trans_a && s.trans_b && gemv_f32_any_rows(s.K))
      return gemv_f32(A, s.lda, s.M, B, s.ldb, s.N, s.K, C, s.ldc, beta);
    if (p == Precision::kF32) {
      for (int64_t i = 0; i < s.M; ++i)
        gemm(one_row(s), A + a_row_offset(s, i), B, C + i * s.ldc, beta, p);
      return;
    }
  }
  bool acc = beta != 0.f;
  static dnnl::stream strm(cpu_engine());
  if (p == Precision::kF32) {
    execute(plan_for(s, p, acc, beta), strm, const_cast<float*>(A), const_cast<float*>(B), C);
    return;
  }
  // bf16: pack both operands (keeping their orientation) and multiply.
  thread_local std::vector<uint16_t> b16;
  int64_t b_rows = s.trans_b ? s.N : s.K, b_cols = s.trans_b ? s.K : s.N;
  pack_bf16(B, b_rows, b_cols, s.ldb, b16);
  GemmShape ps = s;
  ps.ldb = b_cols;
  gemm_bf16_weights(ps, A, b16.data(), C, beta);
}

void gemm_bf16_weights(const GemmShape& shape, const float* A, const uint16_t* B16, float* C,
                       float beta) {
  GemmShape s = shape;
  if (trivial(s, A != nullptr && B16 != nullptr, C, beta)) return;
  if (!s.trans_a && s.trans_b && gemv_bf16_supported(s.M, s.K))
    return gemv_bf16(A, s.lda, s.M, B16, s.ldb, s.N, s.K, C, s.ldc, beta);
  if (s.M > 1 && row_invariant_products()) {
    if (!s.trans_a && s.trans_b && gemv_bf16_any_rows(s.K))
      return gemv_bf16(A, s.lda, s.M, B16, s.ldb, s.N, s.K, C, s.ldc, beta);
    for (int64_t i = 0; i < s.M; ++i)
      gemm_bf16_weights(one_row(s), A + a_row_offset(s, i), B16, C + i * s.ldc, beta);
    return;
  }
  const bool acc = beta != 0.f;
  static dnnl::stream strm(cpu_engine());
  thread_local std::vector<uint16_t> a16;
  const int64_t a_rows = s.trans_a ? s.K : s.M, a_cols = s.trans_a ? s.M : s.K;
  pack_bf16(A, a_rows, a_cols, s.lda, a16);
  GemmShape ps = s;
  ps.lda = a_cols;
  execute_bf16(plan_for(ps, Precision::kBF16, acc, beta), strm, ps, a16.data(), B16, C);
}

void gemm_small(const GemmShape& shape, const float* A, const float* B, float* C, float beta) {
  RAT_ASSERT(C != nullptr || shape.M == 0 || shape.N == 0);
  GemmShape s = shape;
  fill_ld(s);
  if (s.M == 0 || s.N == 0) return;
  dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.M, s.N, s.K, 1.0f, A, s.lda, B, s.ldb,
             beta, C, s.ldc);
}

void gemm_small_planned(const GemmShape& shape, const float* A, const float* B, float* C,
                        float beta) {
  RAT_ASSERT(C != nullptr || shape.M == 0 || shape.N == 0);
  GemmShape s = shape;
  fill_ld(s);
  if (s.M == 0 || s.N == 0) return;
  if (s.K == 0) return gemm_small(shape, A, B, C, beta);  // beta * C, as gemm_small does
  thread_local dnnl::stream strm(cpu_engine());
  execute(plan_for(s, Precision::kF32, beta != 0.f, beta), strm, const_cast<float*>(A),
          const_cast<float*>(B), C);
}

void gemm_small_bf16(const GemmShape& shape, const uint16_t* A, const uint16_t* B, float* C,
                     float beta) {
  RAT_ASSERT((A != nullptr && B != nullptr && C != nullptr) || shape.M == 0 || shape.N == 0);
  GemmShape s = shape;
  fill_ld(s);
  if (s.M == 0 || s.N == 0) return;
  bool acc = beta != 0.f;
  thread_local dnnl::stream strm(cpu_engine());
  execute_bf16(plan_for(s, Precision::kBF16, acc, beta), strm, s, A, B, C);
}

void gemm_naive(const GemmShape& shape, const float* A, const float* B, float* C, float beta) {
  GemmShape s = shape;
  fill_ld(s);
  for (int64_t i = 0; i < s.M; ++i)
    for (int64_t j = 0; j < s.N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < s.K; ++k) {
        double a = s.trans_a ? A[k * s.lda + i] : A[i * s.lda + k];
        double b = s.trans_b ? B[j * s.ldb + k] : B[k * s.ldb + j];
        acc += a * b;
      }
      float& c = C[i * s.ldc + j];
      c = float(acc + (beta == 0.f ? 0.0 : double(beta) * c));
    }
}

void to_bf16(const float* x, uint16_t* y, int64_t n) {
  RAT_ASSERT(n >= 0 && (n == 0 || (x != nullptr && y != nullptr)));
  isa_kernels().to_bf16(x, y, n);  // AVX512-BF16 where built for it; the same bits
}

void from_bf16(const uint16_t* x, float* y, int64_t n) {
  RAT_ASSERT(n >= 0 && (n == 0 || (x != nullptr && y != nullptr)));
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = uint32_t(x[i]) << 16;
    std::memcpy(&y[i], &u, 4);
  }
}

void round_bf16(float* x, int64_t n) {
  RAT_ASSERT(n >= 0 && (n == 0 || x != nullptr));
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h = bf16_scalar(x[i]);
    from_bf16(&h, &x[i], 1);
  }
}

}  // namespace rat
