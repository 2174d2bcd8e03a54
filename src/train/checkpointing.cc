#include "train/checkpointing.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "model/safetensors.h"
#include "nlohmann/json.hpp"
#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

namespace {

std::string checkpoint_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", (long long)step);
  return name;
}

// Everything of the checkpoint into `dir` (a fresh temporary directory).
void write_checkpoint_files(const fs::path& dir, Model& model, Optimizer& opt, const TrainState& st,
                            const std::string& tokenizer) {
  save_model_dir(model, dir.string());
  std::vector<TensorToWrite> ts;
  for (const ParamSpec& s : model.layout().specs())
    for (OptimState& b : opt.state())
      ts.push_back({b.name + "." + s.name, s.shape, b.data.data() + s.offset});
  write_safetensors((dir / "optimizer.safetensors").string(), ts, DType::kF32);
  const nlohmann::json j = {{"step", st.step},
                            {"optimizer_steps", opt.steps()},
                            {"world", st.world},
                            {"data_world", st.sample_world()}};
  write_file_atomic((dir / "trainer_state.json").string(), j.dump(2) + "\n");
  if (!tokenizer.empty() && fs::exists(tokenizer)) {
    std::ifstream in(tokenizer, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (!in)
      throw Error(tokenizer + ": cannot be read, expected the tokenizer to copy into " +
                  dir.string());
    write_file_atomic((dir / "tokenizer.model").string(), bytes.str());
  }
}

// run/latest -> checkpoints/NAME, by renaming a new link over the old one
// (rename is atomic; there is never a moment without `latest`).
void point_latest_at(const fs::path& run, const std::string& name) {
  const fs::path link_tmp = run / "latest.tmp";
  std::error_code ec;
  fs::remove(link_tmp, ec);
  fs::create_directory_symlink(fs::path("checkpoints") / name, link_tmp);
  fs::rename(link_tmp, run / "latest");
  sync_directory(run.string());
}

// Removes all but the two newest checkpoints (names sort by step).
void prune_checkpoints(const fs::path& ckdir) {
  std::vector<fs::path> old;
  for (const auto& d : fs::directory_iterator(ckdir))
    if (d.is_directory() && d.path().extension() != ".tmp") old.push_back(d.path());
  std::sort(old.begin(), old.end());
  std::error_code ec;
  for (size_t i = 0; i + 2 < old.size(); ++i) fs::remove_all(old[i], ec);
}

}  // namespace

std::string save_checkpoint(const fs::path& run, Model& model, Optimizer& opt, const TrainState& st,
                            const std::string& tokenizer) {
  const std::string name = checkpoint_name(st.step);
  const fs::path ckdir = run / "checkpoints";
  const fs::path final_dir = ckdir / name;
  fs::path tmp = final_dir;
  tmp += ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    fs::create_directories(tmp);
    write_checkpoint_files(tmp, model, opt, st, tokenizer);
    fs::remove_all(final_dir, ec);
    fs::rename(tmp, final_dir);
    sync_directory(ckdir.string());
    point_latest_at(run, name);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw Error(run.string() + ": saving checkpoint failed (" + e.code().message() +
                "); the previous checkpoint is unchanged");
  } catch (const Error& e) {
    fs::remove_all(tmp, ec);
    throw Error(run.string() + ": saving checkpoint " + name + " failed: " + e.what() +
                "; the previous checkpoint is unchanged");
  }
  prune_checkpoints(ckdir);
  return (run / "latest").string();
}

void load_checkpoint(const fs::path& dir, Model& model, Optimizer& opt, TrainState& st) {
  // The weights are read into the run's own model rather than through
  // load_model_dir, which would build a second Model (weights and gradients,
  // twice the weights' memory) from the checkpoint's config.yaml.
  SafetensorsReader w((dir / "model.safetensors").string());
  for (const ParamSpec& s : model.layout().specs())
    w.read_f32(s.name, s.shape, model.params() + s.offset);
  SafetensorsReader o((dir / "optimizer.safetensors").string());
  for (const ParamSpec& s : model.layout().specs())
    for (OptimState& b : opt.state())
      o.read_f32(b.name + "." + s.name, s.shape, b.data.data() + s.offset);
  const fs::path state = dir / "trainer_state.json";
  int64_t step = 0, optimizer_steps = 0;
  int world = 1, data_world = 1;
  try {
    std::ifstream f(state);
    const nlohmann::json j = nlohmann::json::parse(f);
    step = j.at("step").get<int64_t>();
    optimizer_steps = j.at("optimizer_steps").get<int64_t>();
    world = j.value("world", 1);  // one rank when absent
    data_world = j.value("data_world", world);
  } catch (const std::exception&) {
    throw Error(state.string() +
                ": unreadable trainer state, expected a JSON object with integer step, "
                "optimizer_steps and world");
  }
  if (data_world != st.sample_world())
    throw Error(state.string() + ": checkpoint was written by " + std::to_string(world) +
                " ranks but this run has " + std::to_string(st.world) +
                "; resume with the same number of ranks");
  st.step = step;
  opt.set_steps(optimizer_steps);
}

int checkpoint_sample_world(const fs::path& dir) {
  const fs::path state = dir / "trainer_state.json";
  try {
    std::ifstream f(state);
    const nlohmann::json j = nlohmann::json::parse(f);
    return j.value("data_world", j.value("world", 1));
  } catch (const std::exception&) {
    throw Error(state.string() + ": unreadable trainer state, expected a JSON object with world");
  }
}

std::string latest_checkpoint(const fs::path& run) {
  const fs::path latest = run / "latest";
  return fs::exists(latest) ? fs::canonical(latest).string() : std::string();
}

}  // namespace rat
