// Training checkpoints and resume (README "Training"). A checkpoint is
// run/checkpoints/step-NNNNNNNN (N: optimiser steps done), holding
//   config.yaml, model.safetensors  a model directory (model/checkpoint.cc), so
//                                   `rat eval` and `rat generate` take it as is;
//   optimizer.safetensors           STATE.NAME per parameter NAME and state tensor of the
//                                   optimiser (f32, torch's state names): exp_avg, exp_avg_sq
//                                   (adam, adamw); square_avg [momentum_buffer] [grad_avg]
//                                   (rmsprop);
//   trainer_state.json              {"step", "optimizer_steps", "world"};
//   tokenizer.model                 copied from the training data's folder, if there.
// run/latest is a relative symlink to the newest; the two newest are kept.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "model/model.h"
#include "train/optimizer.h"

namespace rat {

// What a checkpoint restores besides the weights and the optimiser moments.
struct TrainState {
  int64_t step = 0;  // optimiser steps completed
  int world = 1;     // ranks that wrote it
  // The rank count whose sample order the run follows (train/sampler.h: each
  // rank reads its own range): the first run's, kept when a resume runs on
  // another rank count and shares the same micro-batches out anew (0: world).
  int data_world = 0;
  int sample_world() const { return data_world > 0 ? data_world : world; }
};

// Writes the checkpoint of st.step under a temporary name, renames it into
// place, then repoints run/latest the same way, and removes all but the two
// newest. A failure at any point throws rat::Error naming the checkpoint and
// leaves the previous checkpoint and `latest` as they were. Returns run/latest.
std::string save_checkpoint(const std::filesystem::path& run, Model& model, Optimizer& opt,
                            const TrainState& st, const std::string& tokenizer);

// Reads checkpoint `dir` into model, opt and st. The model must have the
// checkpoint's tensors (the experiment's config, not the checkpoint's, shapes
// the run), and st.sample_world() must equal the checkpoint's (a run on another
// rank count first takes it from checkpoint_sample_world).
void load_checkpoint(const std::filesystem::path& dir, Model& model, Optimizer& opt,
                     TrainState& st);

// The sample order (TrainState::sample_world) of checkpoint `dir`.
int checkpoint_sample_world(const std::filesystem::path& dir);

// The checkpoint directory run/latest points at, resolved; empty if none.
std::string latest_checkpoint(const std::filesystem::path& run);

}  // namespace rat
