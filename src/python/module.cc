// The Python module `rat` (README "Python"): a model directory loaded once, then logits,
// generation, log-likelihoods and evaluation from it, and training runs, all through the
// same library code as the `rat` commands, so their results are the commands' results.
#include <filesystem>

#include "python/common.h"

namespace rat::python {

bool path_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

std::vector<int32_t> ids_from_python(const py::handle& obj, int64_t vocab, const char* what) {
  if (is_text(obj))
    throw py::type_error(std::string(what) + ": a str, expected token ids (a list of ints)");
  py::array arr;
  try {
    arr = py::array::ensure(obj);
  } catch (const py::error_already_set&) {
  }
  if (!arr || (arr.ndim() != 1 && arr.size() > 0))
    throw py::type_error(std::string(what) + ": expected a flat sequence of token ids");
  if (arr.size() == 0) return {};
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error(std::string(what) + ": dtype " + std::string(py::str(arr.dtype())) +
                         ", expected integer token ids");
  // Through int64 so that no id wraps before it is checked.
  auto wide = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!wide) throw py::type_error(std::string(what) + ": ids do not fit int64, expected token ids");
  const int64_t* p = wide.data();
  std::vector<int32_t> ids(size_t(wide.size()));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (p[i] < 0 || p[i] >= vocab)
      throw Error(std::string(what) + ": token id " + std::to_string(p[i]) + " at position " +
                  std::to_string(i) + " is outside the model's vocabulary [0, " +
                  std::to_string(vocab) + ")");
    ids[i] = int32_t(p[i]);
  }
  return ids;
}

bool is_text(const py::handle& obj) { return py::isinstance<py::str>(obj); }

}  // namespace rat::python

PYBIND11_MODULE(rat, m) {
  using namespace rat::python;
  // Each docstring starts with its own signature, in Python's terms.
  py::options options;
  options.disable_function_signatures();
  m.doc() =
      "rat: RAT language models (and their attention, local attention and RNN baselines) in\n"
      "native code, the library behind the `rat` command.\n\n"
      "    import rat\n"
      "    model = rat.Model.load('runs/rat-small/latest')\n"
      "    model.generate('def f(', max_new_tokens=32, greedy=True)\n"
      "    model.score('The Python', ' interpreter')      # (loglikelihood, is_greedy)\n"
      "    model.eval(data='data/pydoc/val.bin', max_samples=64)\n"
      "    model.logits(np.array([[1, 2, 3]], dtype=np.int32))   # float32 [B, T, V]\n"
      "    rat.train('configs/experiment/pydoc/rat-small.yaml', {'trainer.max_steps': 10},\n"
      "              run_dir='runs/py')                   # the metrics.jsonl records\n\n"
      "Every result equals the matching command's (`rat generate --greedy`, `rat score`,\n"
      "`rat eval --data`, `rat train`). Bad input raises rat.Error (a ValueError) with rat's\n"
      "one-line message naming the file, key or id; a missing file or directory raises\n"
      "rat.FileNotFoundError (a FileNotFoundError). Long computations release the GIL;\n"
      "one model serves one call at a time.";
  py::register_exception<rat::Error>(m, "Error", PyExc_ValueError);
  // Registered after rat.Error so that its translator is tried first.
  py::register_exception<FileMissing>(m, "FileNotFoundError", PyExc_FileNotFoundError);
  bind_model(m);
  bind_train(m);
}
