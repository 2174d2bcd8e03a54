// `rat generate`'s prompt inputs (generate/prompts.h): --prompt-ids text and --batch-file
// lines, checked against a vocabulary.
#include "generate/prompts.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  rat::fuzz::accept_rat_errors([&] {
    auto ids = rat::parse_prompt_ids(text);
    rat::check_prompt_ids(ids, 1000, "config.yaml");
  });
  rat::fuzz::accept_rat_errors([&] { rat::parse_batch_prompts(text, "prompts.txt"); });
  return 0;
}
