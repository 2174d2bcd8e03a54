#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/activations.h"
#include "kernels/linear.h"
#include "kernels/vec_math.h"
#include "model/layers.h"
#include "model/mixer_kinds.h"

namespace rat {

const RopeTable& BlockEnv::rope_table(int64_t P, int64_t max_pos) {
  RopeTable& t = rope[P];
  t.ensure(P, max_pos, cfg->rope_base);
  return t;
}

void sigmoid_inplace(float* x, int64_t ld, const float* bias, int64_t N, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) vec_sigmoid(x + n * ld, bias, x + n * ld, D);
}

std::unique_ptr<Block> make_mixer(BlockEnv* env, const MixerConfig& m) {
  return mixer_kind_info(m.kind).make(env, m);
}

}  // namespace rat
