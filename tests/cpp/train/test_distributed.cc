// The backward hook that the overlapped all-reduce relies on, and the
// one-process behaviour of src/train/distributed.h (the multi-rank behaviour is
// tested end to end under mpirun by tests/mpi/mpi_tests.py).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "model/model.h"
#include "train/distributed.h"

using namespace rat;

namespace {

ModelConfig hybrid(bool tied, MixerKind second, bool bias) {
  ModelConfig c;
  c.seq_len = 20;
  c.vocab_size = 50;
  c.ignore_input_index = 2;
  c.backbone = "sequence_interleave";
  c.num_layers = 4;
  c.d_model = 16;
  c.interleave_step = 2;
  c.seq_cell = {MixerKind::kRat, 4, 2, 5, 0};
  c.seq_cell1 = {second, 4, 1, 16, 6};
  c.ffn = {32, Activation::kGelu, bias};
  c.pe = PosEnc::kRopeInterRope;
  c.tie_embedding = tied;
  c.resolve("test_distributed");
  return c;
}

struct Stretch {
  int64_t begin, end;
  std::vector<float> grads_then;  // the gradients when announced
};

}  // namespace

// Every stretch announced during backward must already hold its final
// gradient (an all-reduce started there reads it at once and nothing may
// write it later), and the stretches must adjoin, run top-down and cover the
// whole buffer, ending at the embedding (begin == 0). Accumulating a second
// micro-batch on top of the first must keep this true.
TEST(BackwardHook, StretchesAreFinalAdjoinAndCoverTheBuffer) {
  for (bool tied : {true, false}) {
    for (MixerKind k : {MixerKind::kLocalAttention, MixerKind::kRnn, MixerKind::kAttention}) {
      ModelConfig cfg = hybrid(tied, k, !tied);
      Model m(cfg);
      m.init(3);
      const int64_t B = 2, T = cfg.seq_len, n = m.layout().total();
      std::mt19937 rng(5);
      std::vector<int32_t> ids(size_t(B * T)), labels(size_t(B * T));
      for (auto& x : ids) x = int32_t(rng() % 50);
      for (size_t i = 0; i < labels.size(); ++i)
        labels[i] = i % 7 == 3 ? -100 : ids[(i + 1) % ids.size()];
      m.zero_grads();
      m.forward_backward(ids.data(), labels.data(), B, T, true);  // an earlier micro-batch
      std::vector<Stretch> seen;
      m.forward_backward(ids.data(), labels.data(), B, T, true, 0.f, [&](int64_t b, int64_t e) {
        seen.push_back({b, e, std::vector<float>(m.grads() + b, m.grads() + e)});
      });
      SCOPED_TRACE(std::string(tied ? "tied " : "untied ") + mixer_name(k));
      ASSERT_EQ(seen.size(), size_t(cfg.num_layers + 2));  // head, each block, embedding
      EXPECT_EQ(seen.front().end, n);
      EXPECT_EQ(seen.back().begin, 0);
      for (size_t i = 0; i < seen.size(); ++i) {
        EXPECT_LE(seen[i].begin, seen[i].end);
        if (i > 0) {
          EXPECT_EQ(seen[i].end, seen[i - 1].begin) << "stretch " << i;
        }
        for (int64_t j = seen[i].begin; j < seen[i].end; ++j)
          ASSERT_EQ(seen[i].grads_then[size_t(j - seen[i].begin)], m.grads()[j])
              << "gradient " << j << " changed after stretch " << i << " was announced";
      }
      // Every parameter tensor lies inside one stretch and got a gradient.
      for (const ParamSpec& s : m.layout().specs()) {
        bool inside = false;
        for (const Stretch& st : seen)
          inside |= s.offset >= st.begin && s.offset + s.numel <= st.end;
        EXPECT_TRUE(inside) << s.name;
      }
    }
  }
}

// Without an MPI launcher the data-parallel layer is inert: one rank, and
// every collective leaves its data unchanged.
TEST(Distributed, OneProcessIsRankZeroOfOneAndCollectivesAreNoOps) {
  ASSERT_FALSE(mpi_active());
  World w = world();
  EXPECT_EQ(w.rank, 0);
  EXPECT_EQ(w.size, 1);
  double d[2] = {1.5, -2.0};
  allreduce_sum(d, 2);
  EXPECT_EQ(d[0], 1.5);
  EXPECT_EQ(d[1], -2.0);
  std::vector<float> g = {1.f, 2.f, 3.f};
  GradReducer r(g.data(), 3, 1);
  r.ready(1, 3);
  r.ready(0, 1);
  r.wait();
  r.reduce_all();
  EXPECT_EQ(r.buckets_started(), 0);
  EXPECT_EQ(g, (std::vector<float>{1.f, 2.f, 3.f}));
  EXPECT_GE(default_threads_per_rank(), 1);
}
