// The sampling flags `rat generate` and `rat chat` share, declared once so
// their names, defaults and help stay the same (llama.cpp's spellings).
#pragma once

#include <cstdint>

#include "CLI/CLI.hpp"
#include "generate/sampling.h"

namespace rat::cli {

// --greedy, --temp, --top-k, --top-p, --min-p, --repeat-penalty and -s/--seed.
// penalised: what the repetition penalty looks at ("sequence", "conversation").
void add_sampling_flags(CLI::App* c, SamplingOptions& s, bool& greedy, int64_t& seed,
                        const char* penalised);
// The values' checks (after parsing): the seed, and the sampling options unless greedy.
void check_sampling_flags(const SamplingOptions& s, bool greedy, int64_t seed);

}  // namespace rat::cli
