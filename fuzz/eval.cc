// `rat eval`'s and `rat score`'s input files (eval/): byte 0 picks the reader.
//   0/1: generation cases (read_gen_cases, gen / niah);  2: multiple choice (read_mc_task);
//   3: scoring requests (read_score_requests);  4: predictions scored by every metric
//   (score_predictions);  5: an mqar test set (read_mqar_test: PREFIX.json, NUL, inputs, NUL,
//   labels).
// Text is encoded with the tiny tokenizer, vocabulary 340.
#include "eval/gen_task.h"
#include "eval/mc.h"
#include "eval/metrics.h"
#include "eval/mqar.h"
#include "eval/score.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using rat::fuzz::accept_rat_errors;
  using rat::fuzz::put;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const rat::Tokenizer& tok = rat::fuzz::tiny_tokenizer();
  rat::ScoreVocab vocab;
  vocab.vocab_size = tok.vocab_size();
  vocab.eod = tok.eos_id();
  vocab.encode = [&tok](std::string_view s) { return tok.encode(s); };
  const int64_t T = 32;
  switch (data[0] % 6) {
    case 0:
    case 1: {
      const std::string path = put("eval/cases.jsonl", rest);
      accept_rat_errors(
          [&] { rat::read_gen_cases(path, data[0] % 7 == 3 ? 2 : -1, data[0] % 6 == 1); });
      break;
    }
    case 2: {
      const std::string path = put("eval/mc.jsonl", rest);
      accept_rat_errors([&] { rat::read_mc_task(path, vocab, T); });
      break;
    }
    case 3: {
      const std::string path = put("eval/score.jsonl", rest);
      accept_rat_errors([&] { rat::read_score_requests(path, vocab, T); });
      break;
    }
    case 4: {
      const std::string path = put("eval/predictions.jsonl", rest);
      for (rat::Metric m : {rat::Metric::kQaF1, rat::Metric::kRougeL, rat::Metric::kExactMatch,
                            rat::Metric::kEditSim})
        accept_rat_errors([&] { rat::score_predictions(path, m); });
      break;
    }
    case 5: {
      const auto p = rat::fuzz::parts(data + 1, size - 1, 3);
      const std::string dir = rat::fuzz::dir("mqar");
      put("mqar/m.json", p[0]);
      put("mqar/m.test.inputs.bin", p[1]);
      put("mqar/m.test.labels.bin", p[2]);
      accept_rat_errors([&] { rat::read_mqar_test(dir + "/m"); });
      break;
    }
  }
  return 0;
}
