// A sentencepiece model file (data/tokenizer.h Tokenizer::load), then encoding, decoding and
// streaming decode with whatever it defines.
#include <vector>

#include "data/tokenizer.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      rat::fuzz::put("tokenizer.model", {reinterpret_cast<const char*>(data), size});
  rat::fuzz::accept_rat_errors([&] {
    const rat::Tokenizer tok = rat::Tokenizer::load(path);
    std::vector<int32_t> ids = tok.encode("def f(x):\n    return x  # caf\xc3\xa9 \xff\n");
    tok.decode(ids);
    const int64_t v = tok.vocab_size();
    for (int32_t id : {0, 1, 2, 3, int32_t(v - 1), tok.eos_id(), tok.bos_id(), tok.unk_id()}) {
      if (id < 0 || id >= v) continue;
      tok.decode_piece(id);
      if (tok.is_byte(id)) tok.byte_value(id);
      ids.push_back(id);
    }
    rat::StreamDecoder sd(tok);
    for (int32_t id : ids) sd.push(id);
    sd.flush();
    rat::fuzz::accept_rat_errors(
        [&] { tok.decode(std::vector<int32_t>{int32_t(v)}); });  // out of range
  });
  return 0;
}
