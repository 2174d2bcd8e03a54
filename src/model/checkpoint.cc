// Model directory I/O: config.yaml + model.safetensors with SPEC.md's names.
#include "model/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "model/model.h"
#include "model/safetensors.h"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

namespace {

const char* const kHead = "head.lm_head.weight";
const char* const kEmbedding = "embedding.wte.weight";

}  // namespace

void load_weights_by_name(Model& model, const std::string& file, const std::string& model_words) {
  SafetensorsReader st(file);
  // The stored name of each model name: torch.compile's state_dict prefixes
  // every key with `_orig_mod.`, which the authors' loader strips.
  const std::string compiled = "_orig_mod.";
  std::map<std::string, std::string> stored;
  for (const std::string& name : st.names()) {
    const bool prefixed = name.rfind(compiled, 0) == 0;
    const std::string bare = prefixed ? name.substr(compiled.size()) : name;
    if (!stored.emplace(bare, name).second)
      throw Error(file + ": tensor '" + bare + "' is stored twice (with and without '" + compiled +
                  "')");
  }
  // Every name and shape first, so a mismatch is reported before any read.
  for (const ParamSpec& s : model.layout().specs()) {
    auto it = stored.find(s.name);
    if (it == stored.end())
      throw Error(file + ": tensor '" + s.name + "' is missing, " + model_words +
                  " needs it (shape " + shape_str(s.shape) + ")");
    const TensorInfo& t = st.info(it->second);
    if (t.shape != s.shape)
      throw Error(file + ": tensor '" + s.name + "' has shape " + shape_str(t.shape) + ", " +
                  model_words + " needs " + shape_str(s.shape));
  }
  const ParamSpec* wte = model.layout().find(kEmbedding);
  const bool tied = model.config().tie_embedding;
  for (const auto& [bare, name] : stored) {
    if (model.layout().find(bare)) continue;
    if (bare == kHead && tied && wte && st.info(name).shape == wte->shape) continue;
    throw Error(file + ": tensor '" + name + "' (shape " + shape_str(st.info(name).shape) +
                ") is not part of " + model_words);
  }
  for (const ParamSpec& s : model.layout().specs())
    st.read_f32(stored.at(s.name), s.shape, model.params() + s.offset);
  // A tied model may carry the head anyway (PyTorch's state_dict keeps both);
  // it must then equal the embedding.
  // Compared a block at a time: a whole-table buffer would add V * D floats
  // to the load's peak (1 GiB at V 128k, D 2048).
  if (auto head = stored.find(kHead); tied && wte && head != stored.end()) {
    constexpr int64_t kBlock = int64_t(1) << 20;
    std::vector<float> tmp(size_t(std::min(kBlock, wte->numel)));
    for (int64_t i0 = 0; i0 < wte->numel; i0 += kBlock) {
      const int64_t m = std::min(kBlock, wte->numel - i0);
      st.read_f32_part(head->second, wte->shape, i0, m, tmp.data());
      for (int64_t i = 0; i < m; ++i)
        if (tmp[size_t(i)] != model.params()[wte->offset + i0 + i])
          throw Error(file + ": tensor '" + kHead + "' differs from '" + kEmbedding +
                      "' but task.tie_embedding is true");
    }
  }
}

std::string weights_file_of(const std::string& path) {
  if (fs::is_directory(path)) return (fs::path(path) / "model.safetensors").string();
  return path;
}

std::unique_ptr<Model> load_model_dir(const std::string& dir) {
  if (!fs::is_directory(dir))
    throw Error(dir +
                ": not a model directory (expected config.yaml and model.safetensors inside)");
  const std::string config = (fs::path(dir) / "config.yaml").string();
  auto model = std::make_unique<Model>(load_model_config(config));
  load_weights_by_name(*model, (fs::path(dir) / "model.safetensors").string(),
                       "the model that " + config + " describes");
  return model;
}

void save_model_dir(Model& model, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create directory: " + ec.message());
  std::vector<TensorToWrite> tensors;
  for (const ParamSpec& s : model.layout().specs())
    tensors.push_back({s.name, s.shape, model.params() + s.offset});
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, DType::kF32);
  save_model_config(model.config(), (fs::path(dir) / "config.yaml").string());
}

}  // namespace rat
