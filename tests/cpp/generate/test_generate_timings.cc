// GenerateResult::t (src/generate/generate.h), what `rat generate --timings`
// prints: its phases nest as the loop runs them (a phase counted twice, or
// the first step left out of the steps, breaks an inequality here), and one
// prefill time per prompt.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "generate/generate.h"
#include "model/model.h"

namespace rat {
namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.seq_len = 64;
  c.vocab_size = 61;
  c.num_layers = 2;
  c.d_model = 32;
  c.seq_cell.kind = MixerKind::kRat;
  c.seq_cell.d_head = 8;
  c.seq_cell.chunk_size = 4;
  c.seq_cell.ngroups = 1;
  c.ffn.d_ffn = 64;
  c.ffn.act = Activation::kGelu;
  c.pe = PosEnc::kRopeInterRope;
  c.resolve("test");
  return c;
}

TEST(GenerateTimings, PhasesNestAndCoverEveryPrompt) {
  Model model(tiny_config());
  model.init(3);
  model.set_frozen_weight_cache(true);
  warm_up_gemm();
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 2, 3, 4, 5}, {7, 8, 9}, {4, 4, 4, 4, 4, 4, 4, 4, 4}};
  GenerateOptions g;
  g.max_new_tokens = 6;
  g.sampling.greedy = true;
  const int64_t f0 = minor_faults();
  const GenerateResult r = generate(model, prompts, g);
  EXPECT_GE(minor_faults(), f0);
  const GenerateTimings& t = r.t;
  ASSERT_EQ(t.prefill_each_s.size(), prompts.size());
  const double each = std::accumulate(t.prefill_each_s.begin(), t.prefill_each_s.end(), 0.0);
  for (double s : t.prefill_each_s) EXPECT_GT(s, 0.0);
  EXPECT_LE(each, r.prefill_s + 1e-9);
  // Every sequence runs to the length: 5 steps of the 3 rows.
  EXPECT_EQ(r.decode_steps, 5);
  EXPECT_EQ(r.decode_tokens, 15);
  EXPECT_GT(t.first_step_s, 0.0);
  EXPECT_LE(t.first_step_s, t.steps_s);
  EXPECT_GT(t.step_median_s, 0.0);
  EXPECT_LE(t.step_median_s, t.steps_s);
  EXPECT_GE(t.choose_s, 0.0);
  EXPECT_LE(t.steps_s + t.choose_s, r.decode_s + 1e-9);
  EXPECT_GE(t.setup_s, 0.0);
  EXPECT_GE(t.first_token_s, 0.0);
}

}  // namespace
}  // namespace rat
