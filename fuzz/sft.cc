// SFT data (data/sft.h, data/sft_padded.h, data/sft_tasks.h): byte 0 picks the reader.
//   0: `rat sft-data`'s JSONL of {"prompt", "answer"} (build_sft_data with the tiny tokenizer);
//   1: the padded layout of an authors' task (build_sft_padded: its train/test JSONL);
//   2: each JSONL line read as every task's record (read_sft_record) and its prompt formatted;
//   3: an inputs/labels token-file pair sampled as the SFT loaders do (part 1 inputs, part 2
//   labels).
// The rest of the input: NUL-separated parts.
#include <vector>

#include "data/sft.h"
#include "data/sft_padded.h"
#include "data/sft_tasks.h"
#include "data/tokens.h"
#include "fuzz_util.h"

namespace {

const char* const kTasks[] = {"narrativeqa_summary", "qmsum", "wikisum", "narrativeqa", "other"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto p = rat::fuzz::parts(data + 1, size - 1, 3);
  using rat::fuzz::put;
  switch (data[0] % 4) {
    case 0: {
      rat::SftOptions o;
      o.jsonl = put("sft/data.jsonl", p[0]);
      o.tokenizer = rat::fuzz::tiny_tokenizer_path();
      o.out_prefix = rat::fuzz::dir("sft_out") + "/sft";
      if (!p[1].empty()) o.prompt_template = std::string(p[1]);
      rat::fuzz::accept_rat_errors([&] { rat::build_sft_data(o); });
      break;
    }
    case 1: {
      rat::SftPaddedOptions o;
      o.task = kTasks[p[1].size() % 5];
      o.train = put("padded/train.jsonl", p[0]);
      if (!p[2].empty()) o.test = put("padded/test.jsonl", p[2]);
      if (o.task == std::string("other")) o.prompt_template = "{context}\n{input}\n";
      o.tokenizer = rat::fuzz::tiny_tokenizer_path();
      o.out_dir = rat::fuzz::dir("padded_out");
      o.seq_len = 64;
      o.max_new_tokens = 8;
      rat::fuzz::accept_rat_errors([&] { rat::build_sft_padded(o); });
      break;
    }
    case 2: {
      for (const std::string& line : rat::fuzz::lines(p[0])) {
        const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded()) continue;
        for (const char* name : kTasks) {
          rat::fuzz::accept_rat_errors([&] {
            const rat::SftRecord r = rat::read_sft_record(name, j, "line 1: ");
            const rat::SftTask* t = rat::find_sft_task(name);
            rat::format_sft_prompt(t ? t->prompt_template : "{context}{input}", r);
          });
        }
      }
      rat::fuzz::accept_rat_errors([&] { rat::check_sft_template(std::string(p[1])); });
      break;
    }
    case 3: {
      const int nb = (p[0].size() % 2) ? 4 : 2;
      const std::string xi = put("pair/x.inputs.bin", p[1]), yi = put("pair/x.labels.bin", p[2]);
      rat::fuzz::accept_rat_errors([&] {
        rat::TokenFile x(xi, nb), y(yi, nb);
        if (x.num_tokens() != y.num_tokens()) return;  // the loaders' check (train/sampler.cc)
        const int64_t T = 1 + int64_t(p[0].size() % 8);
        std::vector<int32_t> a(static_cast<size_t>(T)), b(static_cast<size_t>(T));
        for (int64_t r = 0; r < x.num_tokens() / T && r < 4; ++r)
          rat::sft_sample(x, y, r, T, a.data(), b.data());
      });
      break;
    }
  }
  return 0;
}
