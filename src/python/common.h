// What the binding files of the Python module `rat` share: the model handle, the
// conversions of token ids between Python and C++, and the error types.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "eval/score.h"
#include "model/model.h"
#include "util/error.h"

namespace rat::python {

namespace py = pybind11;

// A rat::Error about a file or directory that does not exist: raised in Python
// as rat.FileNotFoundError (a FileNotFoundError) with rat's message.
class FileMissing : public Error {
 public:
  using Error::Error;
};

bool path_exists(const std::string& path);

// Runs fn(); a rat::Error it throws while `path` does not exist becomes
// FileMissing with the same message.
template <class F>
auto missing_if_absent(const std::string& path, F&& fn) {
  try {
    return fn();
  } catch (const FileMissing&) {
    throw;
  } catch (const Error& e) {
    if (!path_exists(path)) throw FileMissing(e.what());
    throw;
  }
}

// A loaded model directory and what comes with it. The model's buffers serve
// one call at a time: `busy` serialises calls from several Python threads
// (each runs with the GIL released).
struct LoadedModel {
  std::string dir;
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tok;  // DIR/tokenizer.model, when there
  ScoreVocab vocab;              // what `rat score` reads requests with
  std::string config_yaml;       // DIR/config.yaml as written
  std::string dtype;
  std::mutex busy;

  const Tokenizer& tokenizer(const char* why) const;
};

// Token ids from Python: a sequence of ints or an integer numpy array, every
// id in [0, vocab) (`what` names the argument in errors: "ids", "prompt").
// Raises TypeError for what is not integers, rat.Error for ids out of range.
std::vector<int32_t> ids_from_python(const py::handle& obj, int64_t vocab, const char* what);
// True for a str; false for anything else.
bool is_text(const py::handle& obj);

void bind_model(py::module_& m);
void bind_generate(py::class_<LoadedModel>& cls);
void bind_train(py::module_& m);

}  // namespace rat::python
