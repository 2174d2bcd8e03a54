// Needle-in-a-haystack cases, RULER style (Hsieh et al. 2024; NVIDIA/RULER
// scripts/data/synthetic/niah.py and constants.py), plus the classic passkey
// prompt (Mohtashami & Jaggi 2023, landmark-attention run_test.py).
//
// Needles are RULER's "One of the special magic numbers for {key} is: {value}."
// with keys adjective-noun words and values 7-digit numbers; the prompt is
// RULER's niah template followed by its answer prefix (a base model continues
// it), in the singular when one value is asked for:
//   single      1 key, 1 value, asked for it
//   multikey    4 keys of 1 value each, asked for one (3 distractors)
//   multivalue  1 key with 4 values, asked for all 4
//   multiquery  4 keys of 1 value each, asked for all 4
//   passkey     "The pass key is N. Remember it. N is the pass key." (N of 5
//               digits) in the noise, asked "What is the pass key? The pass key is"
// The haystack is "noise" (RULER's and the passkey's repeated sentence "The
// grass is green. ...", one per line) or the sentences of a text file (RULER's
// essay haystack), repeated as needed.
//
// Depth: the needle of the first answer sits after round(depth * n) of the n
// haystack units (sentences); the other needles of a case sit at random unit
// boundaries. n is the largest count for which the prompt's tokens plus
// max_new_tokens fit in the case's length, so lengths are in tokens of the
// given tokenizer (no bos counted).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace rat {

class Tokenizer;

enum class NiahKind { kSingle, kMultiKey, kMultiValue, kMultiQuery, kPasskey };

// "single" | "multikey" | "multivalue" | "multiquery" | "passkey"; throws
// rat::Error naming --kind and the accepted names otherwise.
NiahKind parse_niah_kind(const std::string& name);
const char* niah_kind_name(NiahKind k);

struct NiahOptions {
  std::vector<int64_t> lengths;  // target lengths in tokens
  std::vector<double> depths;    // in [0, 1]
  NiahKind kind = NiahKind::kSingle;
  std::string haystack = "noise";  // "noise" or a UTF-8 text file
  int64_t samples = 1;             // cases per (length, depth)
  int64_t max_new_tokens = 32;     // room left in the length for the answer
  uint64_t seed = 0;
};

struct NiahCase {
  std::string prompt;
  std::vector<std::string> answers;
  int64_t length = 0;  // the target
  double depth = 0;
  NiahKind kind = NiahKind::kSingle;
  int64_t tokens = 0;        // tokens of the prompt
  int64_t needle_token = 0;  // tokens of the prompt before the first answer's needle
  int64_t haystack_begin = 0, haystack_end = 0;  // token span of the context
  int64_t max_new_tokens = 0;
  int64_t units = 0;  // haystack sentences used
  nlohmann::json to_json() const;
};

// Throws rat::Error naming the flag for an empty or out-of-range list, an
// unreadable or empty haystack file, and a length too short for the prompt
// without any haystack.
std::vector<NiahCase> make_niah(const NiahOptions& opt, const Tokenizer& tok);

// make_niah, then one JSON object per case to `out`, written atomically.
std::vector<NiahCase> write_niah(const NiahOptions& opt, const Tokenizer& tok,
                                 const std::string& out);

}  // namespace rat
