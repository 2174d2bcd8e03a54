// The enums kernels take as arguments. They live here, not in model/config.h
// where the config parser names them, so that kernels/ includes nothing above
// itself (README "Layout").
#pragma once

namespace rat {

// Products of the GEMM wrapper: fp32, or bf16 operands with fp32 accumulation.
enum class Precision { kF32, kBF16 };

// FFN activations (SPEC.md "FFN"; the authors' nn/activation.py registry);
// config.yaml names them via activation_name.
enum class Activation {
  kGelu,
  kFastGelu,
  kRelu,
  kSwiglu,
  kTanh,
  kSilu,
  kSigmoid,
  kExp,
  kReluSquared,
  kSoftmax,  // over the F features of a row
  kIdentity
};

}  // namespace rat
