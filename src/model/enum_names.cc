#include "model/enum_names.h"

namespace rat {

const EnumNames<Precision>& precision_names() {
  static const EnumNames<Precision> n("precision", {{"f32", Precision::kF32},
                                                    {"bf16", Precision::kBF16},
                                                    {"float32", Precision::kF32},
                                                    {"bfloat16", Precision::kBF16}});
  return n;
}

const EnumNames<Activation>& activation_names() {
  static const EnumNames<Activation> n("activation", {{"gelu", Activation::kGelu},
                                                      {"fastgelu", Activation::kFastGelu},
                                                      {"relu", Activation::kRelu},
                                                      {"swiglu", Activation::kSwiglu},
                                                      {"tanh", Activation::kTanh},
                                                      {"silu", Activation::kSilu},
                                                      {"sigmoid", Activation::kSigmoid},
                                                      {"exp", Activation::kExp},
                                                      {"relusquared", Activation::kReluSquared},
                                                      {"softmax", Activation::kSoftmax},
                                                      {"identity", Activation::kIdentity}});
  return n;
}

const EnumNames<PosEnc>& pos_enc_names() {
  static const EnumNames<PosEnc> n("positional encoding",
                                   {{"rope", PosEnc::kRope},
                                    {"interrope", PosEnc::kInterRope},
                                    {"rope_interrope", PosEnc::kRopeInterRope},
                                    {"empty", PosEnc::kEmpty}});
  return n;
}

const EnumNames<NormKind>& norm_names() {
  static const EnumNames<NormKind> n("norm", {{"rmsnorm", NormKind::kRmsNorm},
                                              {"layernorm", NormKind::kLayerNorm},
                                              {"identity", NormKind::kIdentity}});
  return n;
}

const EnumNames<InitScheme>& init_names() {
  static const EnumNames<InitScheme> n("init scheme", {{"fixed", InitScheme::kFixed},
                                                       {"xavier", InitScheme::kXavier},
                                                       {"uniform", InitScheme::kUniform},
                                                       {"torch_uniform", InitScheme::kTorchUniform},
                                                       {"torch", InitScheme::kTorch}});
  return n;
}

const char* norm_name(NormKind n) { return norm_names().name(n); }
const char* init_name(InitScheme i) { return init_names().name(i); }
const char* activation_name(Activation a) { return activation_names().name(a); }
const char* pe_name(PosEnc p) { return pos_enc_names().name(p); }

}  // namespace rat
