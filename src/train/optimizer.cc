#include "train/optimizer.h"

#include <cmath>

#include "kernels/fixed_sums.h"
#include "util/error.h"

namespace rat {

double lr_at(const OptimConfig& c, int64_t s, int64_t total) {
  if (c.scheduler == "constant") return c.lr;
  if (c.scheduler == "step") {
    // StepLR's chained form: the group's lr times gamma at each multiple of step_size.
    double lr = c.lr;
    for (int64_t k = c.step_size; k <= s; k += c.step_size) lr *= c.gamma;
    return lr;
  }
  const int64_t W = int64_t(c.warmup_iter * double(total));
  if (s < W) return c.lr * double(s + 1) / double(W);
  const double span = double(std::max<int64_t>(1, total - W));
  return c.eta_min + (c.lr - c.eta_min) * (1.0 + std::cos(M_PI * double(s - W) / span)) / 2.0;
}

double sum_squares(const float* g, int64_t n) {
  // Fixed blocks: the same norm, hence the same clipping, on any thread count.
  return sum_fixed(n, [g](int64_t i) { return double(g[i]) * double(g[i]); });
}

double global_norm(const float* g, int64_t n) { return std::sqrt(sum_squares(g, n)); }

double clip_by_norm(float* g, int64_t n, double norm, double clip) {
  const double f = std::min(1.0, clip / (norm + 1e-6));
  if (f < 1.0) {
    const float ff = float(f);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) g[i] *= ff;
  }
  return f;
}

Optimizer::Optimizer(const OptimConfig& c, int64_t n) : c_(c), n_(n) {
  auto add = [&](const char* name) {
    state_.push_back({name, std::vector<float>(size_t(n), 0.f)});
  };
  if (c.name == "adamw" || c.name == "adam") {
    add("exp_avg");
    add("exp_avg_sq");
  } else if (c.name == "rmsprop") {
    add("square_avg");
    if (c.momentum > 0) add("momentum_buffer");
    if (c.centered) add("grad_avg");
  } else if (c.name == "sgd") {
    if (c.momentum > 0) add("momentum_buffer");
  } else {
    throw Error("optim.optimizer._name_: unknown optimizer '" + c.name +
                "', expected one of adamw, adam, sgd, rmsprop");
  }
}

std::vector<float>& Optimizer::buffer(const std::string& name) {
  for (OptimState& s : state_)
    if (s.name == name) return s.data;
  throw Error("optimizer " + c_.name + " keeps no '" + name + "' state");
}

void Optimizer::step(float* p, const float* g, double lr) {
  ++t_;
  if (c_.name == "sgd") {
    // torch.optim.SGD without dampening or nesterov: buf = momentum*buf + g
    // (the first step's buf is g itself, which 0*momentum + g equals).
    const float flr = float(lr), wd = float(c_.weight_decay), mom = float(c_.momentum);
    float* buf = c_.momentum > 0 ? buffer("momentum_buffer").data() : nullptr;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n_; ++i) {
      const float gi = g[i] + wd * p[i];
      if (buf) {
        buf[i] = buf[i] * mom + gi;
        p[i] -= flr * buf[i];
      } else {
        p[i] -= flr * gi;
      }
    }
  } else if (c_.name == "rmsprop") {
    rmsprop_step(p, g, lr);
  } else {
    adam_step(p, g, lr);
  }
}

// Mirrors torch.optim.AdamW / Adam (single-tensor path) in fp32 arithmetic.
void Optimizer::adam_step(float* p, const float* g, double lr) {
  float* m = state_[0].data.data();
  float* v = state_[1].data.data();
  const float flr = float(lr), wd = float(c_.weight_decay);
  const bool decoupled = c_.name == "adamw";
  const float b1 = float(c_.beta1), b2 = float(c_.beta2), eps = float(c_.eps);
  const double bc1 = 1.0 - std::pow(c_.beta1, double(t_));
  const double bc2 = 1.0 - std::pow(c_.beta2, double(t_));
  const float step_size = float(lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n_; ++i) {
    float gi = g[i];
    if (decoupled)
      p[i] *= 1.0f - flr * wd;
    else
      gi += wd * p[i];
    m[i] += (gi - m[i]) * (1.0f - b1);  // lerp, as torch does
    v[i] = v[i] * b2 + (1.0f - b2) * gi * gi;
    const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
    p[i] -= step_size * m[i] / denom;
  }
}

// Mirrors torch.optim.RMSprop (single-tensor path): L2 decay added to the
// gradient, square_avg = alpha*square_avg + (1-alpha)*g^2, the centred
// variant subtracting grad_avg^2, eps added after the square root, and the
// optional momentum buffer of g / avg.
void Optimizer::rmsprop_step(float* p, const float* g, double lr) {
  float* sq = buffer("square_avg").data();
  float* buf = c_.momentum > 0 ? buffer("momentum_buffer").data() : nullptr;
  float* ga = c_.centered ? buffer("grad_avg").data() : nullptr;
  const float flr = float(lr), wd = float(c_.weight_decay), a = float(c_.alpha),
              eps = float(c_.eps), mom = float(c_.momentum);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n_; ++i) {
    const float gi = wd != 0.f ? g[i] + wd * p[i] : g[i];
    sq[i] = sq[i] * a + (1.0f - a) * gi * gi;
    float avg;
    if (ga) {
      ga[i] = ga[i] * a + (1.0f - a) * gi;
      avg = std::sqrt(sq[i] - ga[i] * ga[i]);
    } else {
      avg = std::sqrt(sq[i]);
    }
    avg += eps;
    if (buf) {
      buf[i] = buf[i] * mom + gi / avg;
      p[i] -= flr * buf[i];
    } else {
      p[i] -= flr * (gi / avg);
    }
  }
}

}  // namespace rat
