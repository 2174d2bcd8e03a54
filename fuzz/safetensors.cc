// A .safetensors file (model/safetensors.h): the header JSON, then every tensor's data read
// back at its own shape (the body) and once at a wrong shape (the error path).
#include <vector>

#include "fuzz_util.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      rat::fuzz::put("model.safetensors", {reinterpret_cast<const char*>(data), size});
  rat::fuzz::accept_rat_errors([&] {
    rat::SafetensorsReader r(path);
    std::vector<float> buf;
    for (const std::string& name : r.names()) {
      const rat::TensorInfo& t = r.info(name);
      buf.assign(size_t(t.numel()),
                 0.0f);  // numel * dtype size <= the file's size: checked on open
      r.read_f32(name, t.shape, buf.data());
      std::vector<int64_t> wrong = t.shape;
      wrong.push_back(1);
      rat::fuzz::accept_rat_errors([&] { r.read_f32(name, wrong, buf.data()); });
    }
    rat::fuzz::accept_rat_errors([&] { r.info("no.such.tensor"); });
  });
  return 0;
}
