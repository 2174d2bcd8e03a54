// Optimisers over the flat parameter buffer (SPEC.md "Training recipe"):
// PyTorch's AdamW (decoupled decay), Adam (L2 added to the gradient), plain
// SGD and RMSprop; the authors' schedules (cosine with linear warm-up,
// constant, and torch's StepLR as their "step"); clipping by global norm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rat {

struct OptimConfig {
  std::string name = "adamw";  // adamw | adam | sgd | rmsprop
  double lr = 8e-4, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double alpha = 0.99;               // rmsprop (torch.optim.RMSprop's default)
  double momentum = 0;               // rmsprop, sgd
  bool centered = false;             // rmsprop
  std::string scheduler = "cosine";  // cosine | constant | step
  double warmup_iter = 0.05, eta_min = 1e-6;
  int64_t step_size = 1;  // step: lr *= gamma every step_size optimiser steps
  double gamma = 0.1;
};

// lr of optimiser step s (from 0) of `total`. cosine: base*(s+1)/W during the
// W = int(warmup_iter*total) warm-up steps, then cosine down to eta_min.
// step: torch's StepLR after s scheduler.step() calls, multiplied in the same
// order (base * gamma * gamma ..., once per step_size steps), so the doubles
// equal PyTorch's.
double lr_at(const OptimConfig& c, int64_t s, int64_t total);

// sqrt(sum g^2) over n floats, accumulated in double.
double global_norm(const float* g, int64_t n);
// sum g^2 over n floats in double, in fixed blocks (the same on any thread
// count): a shard's part of the squared norm (SHARD_GRAD_OP).
double sum_squares(const float* g, int64_t n);
// Multiplies g by min(1, clip / (norm + 1e-6)); returns the factor.
double clip_by_norm(float* g, int64_t n, double norm, double clip);

// One per-parameter state tensor of the optimiser over the flat buffer, named
// as in torch's optimizer state (exp_avg, exp_avg_sq, square_avg,
// momentum_buffer, grad_avg), which is how checkpoints store it.
struct OptimState {
  std::string name;
  std::vector<float> data;
};

class Optimizer {
 public:
  Optimizer(const OptimConfig& c, int64_t n);
  // One update of p with gradient g at learning rate lr; increments step().
  void step(float* p, const float* g, double lr);
  int64_t steps() const { return t_; }
  void set_steps(int64_t t) { t_ = t; }
  // The state tensors this optimiser keeps (adam/adamw: exp_avg, exp_avg_sq;
  // rmsprop: square_avg, then momentum_buffer if momentum > 0 and grad_avg if
  // centered; sgd: momentum_buffer if momentum > 0), for checkpoints and broadcasts.
  std::vector<OptimState>& state() { return state_; }
  // The state tensor `name`; throws rat::Error if this optimiser keeps none.
  std::vector<float>& buffer(const std::string& name);
  std::vector<float>& exp_avg() { return buffer("exp_avg"); }
  std::vector<float>& exp_avg_sq() { return buffer("exp_avg_sq"); }

 private:
  void adam_step(float* p, const float* g, double lr);
  void rmsprop_step(float* p, const float* g, double lr);

  OptimConfig c_;
  int64_t n_;
  std::vector<OptimState> state_;
  int64_t t_ = 0;
};

}  // namespace rat
