// Thread and batch invariance of decoding (docs/reliability.md "Thread and
// batch invariance"), on a hybrid of RAT, attention and FFN layers in f32 and
// bf16: slot 0 decoded on 1 thread against 2 and 3 threads (alone, and among 63
// others) must give the same logits bit for bit; decoded alone (Decoder::step
// with n = 1) against among 63 others (n = 64), the prefill must be bit for bit
// and the steps are measured: how many logits differ and by how much (bounded
// by rounding: a state bug would be O(1e-2) or more). The oracle for each is
// the same decoder under the other thread count or batch; with
// Decoder::set_batch_invariant, alone and among 63 must be bit for bit. The
// row-invariance of the GEMM itself (row 0 of M = 1 against M = 64) is measured the same way
// against the double-precision gemm_naive.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "generate/decoder.h"
#include "kernels/gemm.h"
#include "model/model.h"
#include "test_util.h"

namespace rat {
namespace {

constexpr int64_t kBatch = 64, kPrompt = 12, kSteps = 6;

ModelConfig hybrid_config() {
  ModelConfig c;
  c.seq_len = 64;
  c.vocab_size = 97;
  c.num_layers = 4;
  c.d_model = 128;
  c.seq_cell.kind = MixerKind::kAttention;
  c.seq_cell.d_head = 32;
  c.backbone = "sequence_interleave";
  c.interleave_step = 2;
  c.seq_cell1.kind = MixerKind::kRat;
  c.seq_cell1.d_head = 32;
  c.seq_cell1.ngroups = 2;
  c.seq_cell1.chunk_size = 8;
  c.ffn.d_ffn = 256;
  c.ffn.act = Activation::kGelu;
  c.pe = PosEnc::kRopeInterRope;
  c.resolve("test");
  return c;
}

// Slot 0's logits over kSteps steps after a prompt: alone (others = 0) or
// stepped together with `others` more slots, on `threads` threads.
std::vector<float> decode_slot0(Model& m, int64_t others, int threads,
                                bool batch_invariant = false) {
  const int64_t V = m.config().vocab_size, n = 1 + others;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  Decoder dec(m, kBatch, kPrompt + kSteps + 1);
  dec.set_batch_invariant(batch_invariant);
  std::vector<float> logits(size_t(kBatch * V)), out;
  std::vector<int64_t> slots(static_cast<size_t>(n));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t s = 0; s < n; ++s) {
    const auto p = rat::testing::random_ids(kPrompt, V, uint32_t(40 + s));
    dec.prefill(s, p.data(), kPrompt, logits.data());
    if (s == 0) out.insert(out.end(), logits.begin(), logits.begin() + V);
    slots[size_t(s)] = s;
  }
  for (int64_t t = 0; t < kSteps; ++t) {
    for (int64_t s = 0; s < n; ++s) ids[size_t(s)] = int32_t((7 * t + 3 * s + 1) % V);
    dec.step(slots.data(), ids.data(), n, logits.data());
    out.insert(out.end(), logits.begin(), logits.begin() + V);
  }
  omp_set_num_threads(saved);
  return out;
}

int64_t differing(const std::vector<float>& a, const std::vector<float>& b, size_t from = 0) {
  int64_t n = 0;
  for (size_t i = from; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

// Max |a - b| over max |a|.
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e = std::max(e, std::fabs(double(a[i]) - double(b[i])));
    m = std::max(m, std::fabs(double(a[i])));
  }
  return e / m;
}

// Thread counts: bit for bit, alone and among 63 others. Batch composition: the
// prefill (one slot at a time) bit for bit; the steps only within rounding
// (`batch_tol`), because the decode GEMMs' row results depend on the number of rows
// (oneDNN picks its kernel and blocking by M) -- measured and reported here.
void check(Precision p, const char* name, double batch_tol) {
  Model m(hybrid_config());
  m.init(5);
  m.set_precision(p);
  const std::vector<float> alone = decode_slot0(m, 0, 1);
  const std::vector<float> among = decode_slot0(m, kBatch - 1, 1);
  const size_t V = size_t(m.config().vocab_size);
  EXPECT_EQ(differing(alone, decode_slot0(m, 0, 2)), 0) << name << ": alone, 2 threads";
  EXPECT_EQ(differing(alone, decode_slot0(m, 0, 3)), 0) << name << ": alone, 3 threads";
  EXPECT_EQ(differing(among, decode_slot0(m, kBatch - 1, 3)), 0)
      << name << ": among 63 others, 3 threads";
  EXPECT_EQ(differing(std::vector<float>(alone.begin(), alone.begin() + V),
                      std::vector<float>(among.begin(), among.begin() + V)),
            0)
      << name << ": prefill";
  const int64_t batch = differing(alone, among, V);
  const double rel = rel_diff(alone, among);
  std::printf(
      "%s: decoded alone vs among 63 others: %lld of %zu step logits differ, max "
      "relative difference %.3g\n",
      name, (long long)batch, alone.size() - V, rel);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld of %zu, rel %.3g", (long long)batch, alone.size() - V, rel);
  ::testing::Test::RecordProperty(std::string(name) + "_batch_differing", buf);
  EXPECT_LE(rel, batch_tol) << name << ": decoded among 63 others";
}

// Decoder::set_batch_invariant: slot 0 among 63 others is bit for bit slot 0
// alone, on 1 and 3 threads, and alone it is the default decoder's slot 0 (one
// row takes the same kernel either way). The oracle is the decoder alone.
void check_invariant(Precision p, const char* name) {
  Model m(hybrid_config());
  m.init(5);
  m.set_precision(p);
  const std::vector<float> alone = decode_slot0(m, 0, 1);
  EXPECT_EQ(differing(alone, decode_slot0(m, 0, 1, true)), 0) << name << ": alone, invariant";
  EXPECT_EQ(differing(alone, decode_slot0(m, kBatch - 1, 1, true)), 0)
      << name << ": among 63 others, 1 thread";
  EXPECT_EQ(differing(alone, decode_slot0(m, kBatch - 1, 3, true)), 0)
      << name << ": among 63 others, 3 threads";
  EXPECT_EQ(differing(alone, decode_slot0(m, 4, 2, true)), 0) << name << ": among 4 others";
}

TEST(BatchInvariance, BatchInvariantDecoderF32SameBitsAmong63) {
  check_invariant(Precision::kF32, "f32");
}

TEST(BatchInvariance, BatchInvariantDecoderBf16SameBitsAmong63) {
  check_invariant(Precision::kBF16, "bf16");
}

// RowInvariantProducts: every row of a product of M rows equals that row's
// one-row product bit for bit: x W^T shapes gemv takes (K % 32 == 0), shapes
// it does not (K 40) and transposed A (one row at a time), f32 and bf16
// weights, M across the 16/8/4/2/1 chunks and N with a tail of the 16-row
// groups. The oracle is the one-row gemm outside the guard; each must also be
// within float rounding of gemm_naive.
TEST(BatchInvariance, RowInvariantProductsEveryRowAsIfAlone) {
  for (int64_t K : {int64_t(64), int64_t(40)})
    for (bool ta : {false, true})
      for (Precision p : {Precision::kF32, Precision::kBF16})
        for (int64_t M : {int64_t(3), int64_t(37)}) {
          const int64_t N = 53;
          std::vector<float> x(size_t(M * K)), w(size_t(N * K)), c(size_t(M * N)),
              one(static_cast<size_t>(N)), ref(static_cast<size_t>(N));
          for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 37) % 101) / 101.f - 0.5f;
          for (size_t i = 0; i < w.size(); ++i) w[i] = float((i * 53) % 97) / 97.f - 0.5f;
          // A stored [K, M] when transposed: column m is row m of op(A).
          std::vector<float> xt(x.size());
          for (int64_t m = 0; m < M; ++m)
            for (int64_t k = 0; k < K; ++k) xt[size_t(k * M + m)] = x[size_t(m * K + k)];
          const float* A = ta ? xt.data() : x.data();
          {
            const RowInvariantProducts rows;
            gemm({M, N, K, ta, true}, A, w.data(), c.data(), 0.f, p);
          }
          EXPECT_FALSE(row_invariant_products());
          for (int64_t m = 0; m < M; ++m) {
            gemm({1, N, K, ta, true, ta ? M : K}, ta ? A + m : A + m * K, w.data(), one.data(), 0.f,
                 p);
            const std::vector<float> row(c.begin() + m * N, c.begin() + (m + 1) * N);
            ASSERT_EQ(differing(one, row), 0) << precision_name(p) << " K " << K << " M " << M
                                              << " row " << m << (ta ? " A transposed" : "");
            if (p == Precision::kF32) {
              gemm_naive({1, N, K, false, true}, x.data() + m * K, w.data(), ref.data(), 0.f);
              EXPECT_LE(rel_diff(ref, row), 1e-5);
            }
          }
        }
}

TEST(BatchInvariance, HybridF32SameLogitsOnAnyThreadCountCloseAmong63) {
  check(Precision::kF32, "f32", 2e-5);
}

TEST(BatchInvariance, HybridBf16SameLogitsOnAnyThreadCountCloseAmong63) {
  check(Precision::kBF16, "bf16", 2e-2);
}

// Row 0 of a decode-sized GEMM (x [M, K] times W^T, W [N, K]) computed with M = 1 and
// with M = 64: are the bits the same? Both must be within float rounding of gemm_naive.
TEST(BatchInvariance, GemmRowZeroAloneOrAmong63) {
  const int64_t K = 512, N = 1536;
  for (Precision p : {Precision::kF32, Precision::kBF16}) {
    std::vector<float> x(size_t(kBatch * K)), w(size_t(N * K));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 37) % 101) / 101.f - 0.5f;
    for (size_t i = 0; i < w.size(); ++i) w[i] = float((i * 53) % 97) / 97.f - 0.5f;
    if (p == Precision::kBF16) round_bf16(x.data(), int64_t(x.size())), round_bf16(w.data(), N * K);
    std::vector<float> one(static_cast<size_t>(N)), many(static_cast<size_t>(kBatch * N)),
        ref(static_cast<size_t>(N));
    gemm({1, N, K, false, true}, x.data(), w.data(), one.data(), 0.f, p);
    gemm({kBatch, N, K, false, true}, x.data(), w.data(), many.data(), 0.f, p);
    gemm_naive({1, N, K, false, true}, x.data(), w.data(), ref.data(), 0.f);
    many.resize(size_t(N));
    const char* name = p == Precision::kF32 ? "f32" : "bf16";
    std::printf(
        "%s GEMM [1 or 64 x %lld] x [%lld x %lld]: row 0 differs in %lld of %lld "
        "entries (max relative difference %.3g)\n",
        name, (long long)K, (long long)K, (long long)N, (long long)differing(one, many),
        (long long)N, rel_diff(one, many));
    EXPECT_LE(rel_diff(ref, one), 1e-5) << name << " M = 1";
    EXPECT_LE(rel_diff(ref, many), 1e-5) << name << " M = 64";
  }
}

}  // namespace
}  // namespace rat
