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
                                                      {"swiglu", Activation::kSwiglu}});
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

const char* activation_name(Activation a) { return activation_names().name(a); }
const char* pe_name(PosEnc p) { return pos_enc_names().name(p); }

}  // namespace rat
