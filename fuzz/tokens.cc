// A token file (data/tokens.h): byte 0 picks the id width (2 or 4), byte 1 the sample length
// and byte 2 the vocabulary; the rest is the file.
#include <vector>

#include "data/tokens.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const int num_bytes = (data[0] & 1) ? 4 : 2;
  const int64_t T = 1 + data[1] % 16;
  const int64_t vocab = 1 + int64_t(data[2]) * 257;
  const std::string path =
      rat::fuzz::put("tokens.bin", {reinterpret_cast<const char*>(data + 3), size - 3});
  rat::fuzz::accept_rat_errors([&] {
    rat::TokenFile f(path, num_bytes);
    const int64_t n = f.num_samples(T);
    std::vector<int32_t> x(static_cast<size_t>(T)), y(static_cast<size_t>(T));
    if (n > 0) {
      f.sample(0, T, 0, x.data(), y.data());
      f.sample(n - 1, T, -1, x.data(), y.data());
    }
    rat::fuzz::accept_rat_errors([&] { f.sample(n, T, -1, x.data(), y.data()); });  // out of range
    f.check_vocab(vocab);
  });
  return 0;
}
