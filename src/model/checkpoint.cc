// Model directory I/O: config.yaml + model.safetensors with SPEC.md's names.
#include <filesystem>
#include <set>

#include "model/model.h"
#include "model/safetensors.h"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

std::unique_ptr<Model> load_model_dir(const std::string& dir) {
  if (!fs::is_directory(dir))
    throw Error(dir +
                ": not a model directory (expected config.yaml and model.safetensors inside)");
  ModelConfig cfg = load_model_config((fs::path(dir) / "config.yaml").string());
  auto model = std::make_unique<Model>(cfg);
  SafetensorsReader st((fs::path(dir) / "model.safetensors").string());
  std::set<std::string> expected;
  for (const ParamSpec& s : model->layout().specs()) {
    expected.insert(s.name);
    if (!st.has(s.name)) throw Error(st.path() + ": missing tensor '" + s.name + "'");
    st.read_f32(s.name, s.shape, model->params() + s.offset);
  }
  // A tied model may carry the head anyway (PyTorch's state_dict keeps both);
  // it must then equal the embedding.
  const std::string head = "head.lm_head.weight";
  for (const std::string& name : st.names()) {
    if (expected.count(name)) continue;
    if (name == head && cfg.tie_embedding) {
      const ParamSpec* wte = model->layout().find("embedding.wte.weight");
      std::vector<float> tmp(size_t(wte->numel));
      st.read_f32(name, wte->shape, tmp.data());
      for (int64_t i = 0; i < wte->numel; ++i)
        if (tmp[size_t(i)] != model->params()[wte->offset + i])
          throw Error(st.path() + ": tensor '" + head +
                      "' differs from 'embedding.wte.weight' but task.tie_embedding is true");
      continue;
    }
    throw Error(st.path() + ": unexpected tensor '" + name + "' (not part of the model that " +
                (fs::path(dir) / "config.yaml").string() + " describes)");
  }
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
