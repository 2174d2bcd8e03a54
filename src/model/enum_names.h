// The spellings of rat's option enums, each table in one place. Every
// boundary that reads one (config.yaml, experiment configs, command-line
// flags) parses through these, so "bf16" means the same everywhere and every
// rejection lists the same choices. Mixer kinds are not here: their names
// belong to the mixer registry.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/gemm.h"  // Precision
#include "model/config.h"  // Activation, PosEnc
#include "util/error.h"

namespace rat {

// Names of one enum. The first name of a value is its canonical spelling
// (what rat writes); later ones are accepted aliases.
template <class E>
class EnumNames {
 public:
  struct Entry {
    const char* name;
    E value;
  };
  EnumNames(const char* what, std::initializer_list<Entry> entries)
      : what_(what), entries_(entries) {}

  std::optional<E> parse(std::string_view s) const {
    for (const Entry& e : entries_)
      if (s == e.name) return e.value;
    return std::nullopt;
  }
  const char* name(E v) const {
    for (const Entry& e : entries_)
      if (e.value == v) return e.name;
    return "?";
  }
  // "one of a, b, c" for messages.
  std::string choices() const {
    std::string s = "one of ";
    for (size_t i = 0; i < entries_.size(); ++i)
      s += (i ? ", " : "") + std::string(entries_[i].name);
    return s;
  }
  // What the enum is, for "unknown <what> 'x'".
  const char* what() const { return what_; }

 private:
  const char* what_;
  std::vector<Entry> entries_;
};

// Matmul / cache precision: f32 | bf16, with the trainer's float32 | bfloat16
// (the authors' trainer.dtype) as aliases.
const EnumNames<Precision>& precision_names();
// FFN activations (SPEC.md "FFN"; the authors' nn/activation.py): gelu |
// fastgelu | relu | swiglu | tanh | silu | sigmoid | exp | relusquared |
// softmax | identity.
const EnumNames<Activation>& activation_names();
// Positional encodings (SPEC.md "Positional encodings"): rope | interrope |
// rope_interrope | empty.
const EnumNames<PosEnc>& pos_enc_names();
// The authors' `ln`: rmsnorm | layernorm | identity.
const EnumNames<NormKind>& norm_names();
// The authors' `init._name_`: fixed | xavier | uniform | torch_uniform | torch.
const EnumNames<InitScheme>& init_names();

// A command-line flag's value: throws rat::Error
// "<flag>: unknown <what> '<value>', expected one of ...".
template <class E>
E parse_flag(const EnumNames<E>& names, const std::string& flag, const std::string& value) {
  if (auto v = names.parse(value)) return *v;
  throw Error(flag + ": unknown " + names.what() + " '" + value + "', expected " + names.choices());
}

// The value's canonical spelling (its first name in `names`), so that reports
// print one spelling whichever alias was given.
template <class E>
const char* canonical_name(const EnumNames<E>& names, const std::string& flag,
                           const std::string& value) {
  return names.name(parse_flag(names, flag, value));
}

}  // namespace rat
