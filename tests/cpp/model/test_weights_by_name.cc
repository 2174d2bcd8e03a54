// Weights into a built model by name (model/checkpoint.h): torch.compile's
// `_orig_mod.` prefix is stripped as the authors' loader does; a name stored
// twice is an error; a tied model accepts a stored head equal to the embedding.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "test_util.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::TempDir;

constexpr const char* kConfig =
    "data: {vocab_size: 32, seq_len: 8}\n"
    "model:\n"
    "  backbone: {num_layers: 1, d_model: 16, seq_cell: {_name_: rat, d_head: 8, chunk_size: 4},\n"
    "             hidden_cell: {d_ffn: 32}}\n"
    "  embedding: {pe: {_name_: interrope}}\n";

// The tensors of `m`, each named `prefix + name`.
std::vector<TensorToWrite> tensors(Model& m, const std::string& prefix) {
  std::vector<TensorToWrite> out;
  for (const ParamSpec& s : m.layout().specs())
    out.push_back({prefix + s.name, s.shape, m.params() + s.offset});
  return out;
}

TEST(WeightsByName, CompiledPrefixIsStrippedAndTiedHeadAccepted) {
  TempDir dir;
  const ModelConfig cfg = load_model_config(dir.write("config.yaml", kConfig));
  Model a(cfg), b(cfg);
  a.init(1);
  b.init(2);
  auto t = tensors(a, "_orig_mod.");
  const ParamSpec* wte = a.layout().find("embedding.wte.weight");
  t.push_back({"_orig_mod.head.lm_head.weight", wte->shape, a.params() + wte->offset});
  const std::string file = dir.file("w.safetensors");
  write_safetensors(file, t);
  load_weights_by_name(b, file, "the test model");
  for (int64_t i = 0; i < a.layout().total(); ++i) ASSERT_EQ(a.params()[i], b.params()[i]) << i;
}

TEST(WeightsByName, NameStoredTwiceIsAnError) {
  TempDir dir;
  const ModelConfig cfg = load_model_config(dir.write("config.yaml", kConfig));
  Model a(cfg);
  a.init(1);
  auto t = tensors(a, "");
  t.push_back({"_orig_mod.embedding.wte.weight", t[0].shape, t[0].data});
  const std::string file = dir.file("w.safetensors");
  write_safetensors(file, t);
  EXPECT_EQ(error_of([&] { load_weights_by_name(a, file, "the test model"); }),
            file +
                ": tensor 'embedding.wte.weight' is stored twice (with and without "
                "'_orig_mod.')");
}

}  // namespace
}  // namespace rat
