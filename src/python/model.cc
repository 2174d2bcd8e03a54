// rat.Model: a model directory (config.yaml + model.safetensors, tokenizer.model when there)
// loaded as `rat eval`, `rat score` and `rat generate` load it, with their computations.
#include <omp.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/enum_names.h"
#include "python/common.h"
#include "train/evaluate.h"

namespace rat::python {

namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void set_threads(const py::object& threads) {
  if (threads.is_none()) return;
  const int n = threads.cast<int>();
  if (n < 1) throw Error("threads: " + std::to_string(n) + ", expected at least 1");
  omp_set_num_threads(n);
}

std::unique_ptr<LoadedModel> load(const std::string& dir, const std::string& dtype,
                                  const py::object& threads) {
  const Precision prec = parse_flag(precision_names(), "dtype", dtype);
  set_threads(threads);
  auto lm = std::make_unique<LoadedModel>();
  lm->dir = dir;
  lm->dtype = precision_names().name(prec);
  {
    py::gil_scoped_release nogil;
    lm->model = missing_if_absent(dir, [&] { return load_model_dir(dir); });
  }
  lm->model->set_frozen_weight_cache(true);  // weights are fixed from here on
  lm->model->set_precision(prec);
  const ModelConfig& cfg = lm->model->config();
  const std::string tok_path = (fs::path(dir) / "tokenizer.model").string();
  if (fs::exists(tok_path)) lm->tok.emplace(Tokenizer::load(tok_path));
  lm->vocab = load_score_vocab(dir, cfg.vocab_size, cfg.ignore_input_index);
  lm->config_yaml = read_text((fs::path(dir) / "config.yaml").string());
  return lm;
}

// ids [B, T] (or [T]) as int32, C order: the array itself when it is already that.
py::array_t<int32_t> batch_ids(const py::object& ids, int64_t vocab) {
  py::array arr = py::array::ensure(ids);
  if (!arr) throw py::type_error("ids: expected an integer array [B, T] of token ids");
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error("ids: dtype " + std::string(py::str(arr.dtype())) +
                         ", expected integer token ids");
  if (arr.ndim() != 1 && arr.ndim() != 2)
    throw Error("ids: " + std::to_string(arr.ndim()) + " dimensions, expected [B, T] or [T]");
  if (arr.size() == 0) throw Error("ids: empty, expected at least one token id");
  // Every id checked before anything runs (the embedding is a lookup).
  py::module_ np = py::module_::import("numpy");
  const int64_t lo = np.attr("min")(arr).cast<int64_t>();
  const int64_t hi = np.attr("max")(arr).cast<int64_t>();
  if (lo < 0 || hi >= vocab) {
    const int64_t bad = lo < 0 ? lo : hi;
    const int64_t at =
        np.attr("argmax")(np.attr("equal")(arr.attr("ravel")(), bad)).cast<int64_t>();
    throw Error("ids: token id " + std::to_string(bad) + " at flat position " + std::to_string(at) +
                " is outside the model's vocabulary [0, " + std::to_string(vocab) + ")");
  }
  return py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(arr);
}

py::array logits(LoadedModel& lm, const py::object& ids_obj, const py::object& out_obj) {
  const int64_t V = lm.model->config().vocab_size;
  py::array_t<int32_t> ids = batch_ids(ids_obj, V);
  const bool flat = ids.ndim() == 1;
  const int64_t B = flat ? 1 : ids.shape(0), T = flat ? ids.shape(0) : ids.shape(1);
  std::vector<py::ssize_t> shape = {py::ssize_t(B), py::ssize_t(T), py::ssize_t(V)};
  if (flat) shape.erase(shape.begin());
  py::array_t<float> out;
  if (out_obj.is_none()) {
    out = py::array_t<float>(shape);
  } else {
    py::array given = py::array::ensure(out_obj);
    const bool ok = given && given.dtype().is(py::dtype::of<float>()) &&
                    (given.flags() & py::array::c_style) && given.writeable() &&
                    std::vector<py::ssize_t>(given.shape(), given.shape() + given.ndim()) == shape;
    if (!ok) {
      std::string want;
      for (py::ssize_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      throw Error("out: expected a writeable C-contiguous float32 array of shape [" + want + "]");
    }
    out = py::reinterpret_borrow<py::array_t<float>>(given);
  }
  const int32_t* pi = ids.data();
  float* po = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> lock(lm.busy);
    lm.model->logits(pi, B, T, po);
  }
  return out;
}

// The token file for eval(data=...): a path, or a 1-D integer numpy array read in place when
// it is uint16, uint32 or int32 (ids >= 0), else converted to uint32 once.
struct EvalData {
  py::array keep;  // the array the view reads
  std::unique_ptr<TokenFile> file;
};

EvalData eval_data(const py::object& data, const ModelConfig& cfg) {
  EvalData d;
  if (is_text(data) || py::isinstance(data, py::module_::import("os").attr("PathLike"))) {
    const std::string path = py::str(py::module_::import("os").attr("fspath")(data));
    d.file = missing_if_absent(
        path, [&] { return std::make_unique<TokenFile>(path, int(cfg.num_bytes)); });
    return d;
  }
  py::array arr = py::array::ensure(data);
  if (!arr) throw py::type_error("data: expected a token file path or a 1-D integer array");
  const char kind = arr.dtype().kind();
  if ((kind != 'i' && kind != 'u') || arr.ndim() != 1)
    throw py::type_error("data: dtype " + std::string(py::str(arr.dtype())) + " with " +
                         std::to_string(arr.ndim()) +
                         " dimensions, expected a 1-D integer array of token ids");
  if (arr.size() > 0 && kind == 'i') {
    const int64_t lo = py::module_::import("numpy").attr("min")(arr).cast<int64_t>();
    if (lo < 0) throw Error("data: token id " + std::to_string(lo) + ", expected ids >= 0");
  }
  const int item = int(arr.itemsize());
  if ((kind == 'u' && item == 2) || (item == 4 && (kind == 'u' || kind == 'i')))
    d.keep = py::array::ensure(arr, py::array::c_style);  // the same array when contiguous
  else
    d.keep = py::array_t<uint32_t, py::array::c_style | py::array::forcecast>::ensure(arr);
  d.file = std::make_unique<TokenFile>(
      TokenFile::view(d.keep.data(), int64_t(d.keep.size()), int(d.keep.itemsize()), "data"));
  return d;
}

py::dict eval(LoadedModel& lm, const py::object& data, const py::object& max_samples,
              const py::object& seq_len, int64_t batch_size) {
  const ModelConfig& cfg = lm.model->config();
  const int64_t T = seq_len.is_none() ? cfg.seq_len : seq_len.cast<int64_t>();
  if (T <= 0) throw Error("seq_len: " + std::to_string(T) + ", expected at least 1");
  if (batch_size <= 0) throw Error("batch_size must be positive");
  const int64_t cap = max_samples.is_none() ? -1 : max_samples.cast<int64_t>();
  EvalData d = eval_data(data, cfg);
  EvalResult r;
  {
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> lock(lm.busy);
    const int64_t n = checked_eval_samples(*d.file, cfg.vocab_size, T, cap);
    r = evaluate(*lm.model, *d.file, T, batch_size, 0, n);
  }
  py::dict out;
  out["loss"] = r.loss;
  out["ppl"] = r.ppl;
  out["tokens"] = r.tokens;
  out["samples"] = r.samples;
  out["seq_len"] = T;
  return out;
}

// One (context, continuation) pair as `rat score` reads a request line: both text (lm-eval's
// pair encoding) or both token ids.
ScoreRequest score_request(const LoadedModel& lm, const py::handle& context,
                           const py::handle& continuation, const std::string& where) {
  if (is_text(context) != is_text(continuation))
    throw py::type_error(where + "context and continuation: give both as text or both as ids");
  if (is_text(context)) {
    if (!lm.vocab.encode)
      throw Error(where + "text needs the model's tokenizer, but " + lm.vocab.no_tokenizer +
                  "; give token ids");
    return encode_pair(lm.vocab.encode, context.cast<std::string>(),
                       continuation.cast<std::string>(), lm.vocab.eod);
  }
  const int64_t V = lm.model->config().vocab_size;
  return {ids_from_python(context, V, "context"), ids_from_python(continuation, V, "continuation")};
}

py::object score(LoadedModel& lm, const py::object& context, const py::object& continuation,
                 const py::object& ctx, int64_t batch_size) {
  if (batch_size <= 0) throw Error("batch_size must be positive");
  const int64_t T = ctx.is_none() ? lm.model->config().seq_len : ctx.cast<int64_t>();
  if (T <= 0) throw Error("ctx: " + std::to_string(T) + ", expected at least 1");
  const bool single = !continuation.is_none();
  std::vector<ScoreRequest> reqs;
  if (single) {
    reqs.push_back(score_request(lm, context, continuation, ""));
    check_request(reqs.back(), lm.vocab, T, "");
  } else {
    if (is_text(context)) throw py::type_error("score: the continuation is missing");
    int64_t i = 0;
    for (const py::handle& pair : context) {
      const std::string where = "request " + std::to_string(i++) + ": ";
      auto t = py::reinterpret_borrow<py::sequence>(pair);
      if (!py::isinstance<py::sequence>(pair) || is_text(pair) || py::len(t) != 2)
        throw py::type_error(where + "expected a (context, continuation) pair");
      reqs.push_back(score_request(lm, t[0], t[1], where));
      check_request(reqs.back(), lm.vocab, T, where);
    }
    if (reqs.empty()) return py::list();
  }
  std::vector<ScoreResult> res;
  {
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> lock(lm.busy);
    res = score_requests(*lm.model, reqs, T, batch_size);
  }
  auto pair = [](const ScoreResult& r) { return py::make_tuple(r.loglikelihood, r.is_greedy); };
  if (single) return pair(res[0]);
  py::list out;
  for (const ScoreResult& r : res) out.append(pair(r));
  return out;
}

}  // namespace

const Tokenizer& LoadedModel::tokenizer(const char* why) const {
  if (!tok)
    throw Error(std::string(why) + " needs the model's tokenizer, but " +
                (fs::path(dir) / "tokenizer.model").string() +
                " does not exist: use token ids, or copy the tokenizer.model the model was "
                "trained with into " +
                dir);
  return *tok;
}

void bind_model(py::module_& m) {
  py::class_<LoadedModel> cls(m, "Model",
                              "A model directory (config.yaml + model.safetensors, and "
                              "tokenizer.model for text), loaded with Model.load(dir).");
  cls.def_static("load", &load, py::arg("dir"), py::arg("dtype") = "f32",
                 py::arg("threads") = py::none(),
                 "Model.load(dir, dtype='f32', threads=None) -> Model\n\n"
                 "Loads a model directory as `rat eval --model DIR` does (a training run's\n"
                 "RUN/latest, or pth_to_rat.py's output). dtype: 'f32' or 'bf16' matmul\n"
                 "inputs (bf16 keeps a rounded copy of the weights). threads: OpenMP\n"
                 "threads of this process (None: as it is, OMP_NUM_THREADS or all cores).\n"
                 "Raises rat.FileNotFoundError when dir does not exist, rat.Error when its\n"
                 "files are not a model rat reads.");
  cls.def_property_readonly(
      "config",
      [](const LoadedModel& lm) {
        return py::module_::import("yaml").attr("safe_load")(lm.config_yaml);
      },
      "DIR/config.yaml as a dict (data, model and task keys, the authors' names).");
  cls.def_property_readonly(
      "vocab_size", [](const LoadedModel& lm) { return lm.model->config().vocab_size; },
      "Rows of the embedding: every token id is in [0, vocab_size).");
  cls.def_property_readonly(
      "seq_len", [](const LoadedModel& lm) { return lm.model->config().seq_len; },
      "The trained sample length (data.seq_len): the default context of score and eval.");
  cls.def_property_readonly(
      "n_params", [](const LoadedModel& lm) { return lm.model->num_params(); },
      "Distinct parameters (a tied head counted once).");
  cls.def_property_readonly(
      "n_layers", [](const LoadedModel& lm) { return int64_t(lm.model->config().layers.size()); },
      "Blocks (mixer + FFN) of the backbone.");
  cls.def_property_readonly(
      "dtype", [](const LoadedModel& lm) { return lm.dtype; }, "'f32' or 'bf16'.");
  cls.def_property_readonly(
      "dir", [](const LoadedModel& lm) { return lm.dir; }, "The model directory.");
  cls.def_property_readonly(
      "has_tokenizer", [](const LoadedModel& lm) { return lm.tok.has_value(); },
      "Whether DIR/tokenizer.model exists (text prompts, tokenize, detokenize).");
  cls.def_property_readonly(
      "eos_id",
      [](const LoadedModel& lm) -> py::object {
        if (lm.vocab.eod < 0) return py::none();
        return py::int_(lm.vocab.eod);
      },
      "The end-of-document id (data.ignore_input_index, else the tokenizer's eos), or None.");
  cls.def(
      "tokenize",
      [](const LoadedModel& lm, const std::string& text) {
        return lm.tokenizer("tokenize").encode(text);
      },
      py::arg("text"),
      "tokenize(text) -> list[int]: the ids of DIR/tokenizer.model, no bos or eos added "
      "(as `rat tokenize` encodes documents).");
  cls.def(
      "detokenize",
      [](const LoadedModel& lm, const py::object& ids) {
        const Tokenizer& tok = lm.tokenizer("detokenize");
        const std::vector<int32_t> v = ids_from_python(ids, tok.vocab_size(), "ids");
        return tok.decode(v);
      },
      py::arg("ids"), "detokenize(ids) -> str: the text of a list (or 1-D array) of ids.");
  cls.def("logits", &logits, py::arg("ids"), py::arg("out") = py::none(),
          "logits(ids, out=None) -> numpy.ndarray\n\n"
          "The next-token logits of every position: ids int [B, T] gives float32\n"
          "[B, T, vocab_size] (ids [T] gives [T, vocab_size]), one forward pass of the\n"
          "batch as training scores it. An int32 C-contiguous ids array is read in place\n"
          "(others are converted once). The logits are written straight into the result\n"
          "array: into `out` itself when given (a writeable C-contiguous float32 array of\n"
          "that shape, returned), so a loop can reuse one buffer with no copy. Ids outside\n"
          "[0, vocab_size) raise rat.Error before anything runs.");
  cls.def("eval", &eval, py::arg("data"), py::arg("max_samples") = py::none(),
          py::arg("seq_len") = py::none(), py::arg("batch_size") = 4,
          "eval(data, max_samples=None, seq_len=None, batch_size=4) -> dict\n\n"
          "`rat eval --data`: the token-weighted mean loss over whole samples of seq_len\n"
          "(default data.seq_len) tokens, labels after data.ignore_input_index masked.\n"
          "data: a token file path (uint16 or uint32 ids per data.num_bytes), or a 1-D\n"
          "integer numpy array of ids (uint16, uint32 and non-negative int32 arrays are\n"
          "read in place, other integer types converted once). Returns {'loss', 'ppl',\n"
          "'tokens' (labels that counted), 'samples', 'seq_len'}.");
  cls.def("score", &score, py::arg("context"), py::arg("continuation") = py::none(),
          py::arg("ctx") = py::none(), py::arg("batch_size") = 8,
          "score(context, continuation, ctx=None, batch_size=8) -> (loglikelihood, is_greedy)\n"
          "score([(context, continuation), ...]) -> [(loglikelihood, is_greedy), ...]\n\n"
          "`rat score` (lm-eval's loglikelihood): the summed log-probability of the\n"
          "continuation after the context, and whether each of its tokens is the argmax.\n"
          "Both text (needs tokenizer.model; lm-eval's pair encoding: the context's\n"
          "trailing whitespace moves to the continuation, an empty context is the\n"
          "end-of-document id) or both token ids. Requests longer than ctx (default\n"
          "data.seq_len) are cut from the left; requests with equal contexts share one\n"
          "prefill.");
  bind_generate(cls);
}

}  // namespace rat::python
