// Optimisers over the flat parameter buffer (SPEC.md "Training recipe"):
// PyTorch's AdamW (decoupled decay), Adam (L2 added to the gradient) and plain
// SGD; the authors' cosine schedule with linear warm-up; clipping by global norm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rat {

struct OptimConfig {
  std::string name = "adamw";
  double lr = 8e-4, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  std::string scheduler = "cosine";
  double warmup_iter = 0.05, eta_min = 1e-6;
};

// lr of optimiser step s (from 0) of `total`: base*(s+1)/W during the W =
// int(warmup_iter*total) warm-up steps, then cosine down to eta_min.
double lr_at(const OptimConfig& c, int64_t s, int64_t total);

// sqrt(sum g^2) over n floats, accumulated in double.
double global_norm(const float* g, int64_t n);
// Multiplies g by min(1, clip / (norm + 1e-6)); returns the factor.
double clip_by_norm(float* g, int64_t n, double norm, double clip);

class Optimizer {
 public:
  Optimizer(const OptimConfig& c, int64_t n);
  // One update of p with gradient g at learning rate lr; increments step().
  void step(float* p, const float* g, double lr);
  int64_t steps() const { return t_; }
  // State for checkpoints: first and second moments and the step count.
  std::vector<float>& exp_avg() { return m_; }
  std::vector<float>& exp_avg_sq() { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  OptimConfig c_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

}  // namespace rat
