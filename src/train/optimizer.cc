#include "train/optimizer.h"

#include <cmath>

namespace rat {

double lr_at(const OptimConfig& c, int64_t s, int64_t total) {
  if (c.scheduler == "constant") return c.lr;
  const int64_t W = int64_t(c.warmup_iter * double(total));
  if (s < W) return c.lr * double(s + 1) / double(W);
  const double span = double(std::max<int64_t>(1, total - W));
  return c.eta_min + (c.lr - c.eta_min) * (1.0 + std::cos(M_PI * double(s - W) / span)) / 2.0;
}

double global_norm(const float* g, int64_t n) {
  double ss = 0;
#pragma omp parallel for reduction(+ : ss) schedule(static)
  for (int64_t i = 0; i < n; ++i) ss += double(g[i]) * double(g[i]);
  return std::sqrt(ss);
}

double clip_by_norm(float* g, int64_t n, double norm, double clip) {
  const double f = std::min(1.0, clip / (norm + 1e-6));
  if (f < 1.0) {
    const float ff = float(f);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) g[i] *= ff;
  }
  return f;
}

Optimizer::Optimizer(const OptimConfig& c, int64_t n)
    : c_(c), m_(size_t(n), 0.f), v_(size_t(n), 0.f) {}

// Mirrors torch.optim.AdamW / Adam (single-tensor path) in fp32 arithmetic.
void Optimizer::step(float* p, const float* g, double lr) {
  ++t_;
  const int64_t n = int64_t(m_.size());
  const float flr = float(lr), wd = float(c_.weight_decay);
  if (c_.name == "sgd") {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] -= flr * (g[i] + wd * p[i]);
    return;
  }
  const bool decoupled = c_.name == "adamw";
  const float b1 = float(c_.beta1), b2 = float(c_.beta2), eps = float(c_.eps);
  const double bc1 = 1.0 - std::pow(c_.beta1, double(t_));
  const double bc2 = 1.0 - std::pow(c_.beta2, double(t_));
  const float step_size = float(lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float gi = g[i];
    if (decoupled)
      p[i] *= 1.0f - flr * wd;
    else
      gi += wd * p[i];
    m_[size_t(i)] += (gi - m_[size_t(i)]) * (1.0f - b1);  // lerp, as torch does
    v_[size_t(i)] = v_[size_t(i)] * b2 + (1.0f - b2) * gi * gi;
    const float denom = std::sqrt(v_[size_t(i)]) / bc2_sqrt + eps;
    p[i] -= step_size * m_[size_t(i)] / denom;
  }
}

}  // namespace rat
