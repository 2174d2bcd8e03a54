#include "cli/sampling_flags.h"

#include <string>

#include "util/error.h"

namespace rat::cli {

void add_sampling_flags(CLI::App* c, SamplingOptions& s, bool& greedy, int64_t& seed,
                        const char* penalised) {
  c->add_flag("--greedy", greedy, "always take the most likely token (ignores the sampling flags)");
  c->add_option("--temp,--temperature", s.temperature, "softmax temperature; <= 0 means greedy")
      ->capture_default_str();
  c->add_option("--top-k", s.top_k, "sample among the k most likely tokens (0: all)")
      ->capture_default_str();
  c->add_option("--top-p", s.top_p, "nucleus: the smallest set with this much probability (1: all)")
      ->capture_default_str();
  c->add_option("--min-p", s.min_p, "drop tokens less likely than min-p x the most likely (0: off)")
      ->capture_default_str();
  c->add_option("--repeat-penalty,--repetition-penalty", s.repetition_penalty,
                std::string("CTRL penalty on ids already in the ") + penalised +
                    ": positive logits / R, negative x R (1: off)")
      ->capture_default_str();
  c->add_option("-s,--seed", seed,
                "random seed of the sampler (-1: a random one, printed on stderr)")
      ->capture_default_str();
}

void check_sampling_flags(const SamplingOptions& s, bool greedy, int64_t seed) {
  if (seed < -1) throw Error("--seed (-s) must be >= 0, or -1 for a random seed");
  if (!greedy) check_sampling(s);
}

}  // namespace rat::cli
