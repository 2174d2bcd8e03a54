// Model.generate: `rat generate` for one prompt or a batch, text or token ids, with the same
// sampling, end-of-document rule and text assembly (streaming decoder, stop strings).
#include <random>

#include "generate/generate.h"
#include "generate/prompts.h"
#include "generate/stop_filter.h"
#include "python/common.h"

namespace rat::python {

namespace {

struct GenArgs {
  int64_t max_new_tokens = 64;
  SamplingOptions s = interactive_sampling();
  py::object seed = py::none();
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool bf16_cache = false;
  bool batch_invariant = false;
};

// prompt: str, ids (list of ints, 1-D array), or a list of either (a batch).
py::object generate(LoadedModel& lm, const py::object& prompt, const GenArgs& a) {
  if (a.max_new_tokens < 0) throw Error("max_new_tokens must be >= 0");
  if (!a.s.greedy) check_sampling(a.s);
  const ModelConfig& cfg = lm.model->config();
  const int64_t V = cfg.vocab_size;

  // The batch and its kind: text prompts give text back, id prompts ids.
  bool batch = false, text = is_text(prompt);
  std::vector<py::object> items;
  if (text) {
    items.push_back(prompt);
  } else {
    py::array arr = py::array::ensure(prompt);
    const bool nested = arr && arr.ndim() == 2;
    const bool list_of = py::isinstance<py::list>(prompt) || py::isinstance<py::tuple>(prompt);
    if (nested) {
      batch = true;
      for (py::ssize_t i = 0; i < arr.shape(0); ++i) items.push_back(arr[py::int_(i)]);
    } else if (list_of && py::len(prompt) > 0 &&
               (is_text(prompt[py::int_(0)]) || py::isinstance<py::sequence>(prompt[py::int_(0)]) ||
                py::isinstance<py::array>(prompt[py::int_(0)]))) {
      batch = true;
      for (const py::handle& h : prompt) items.push_back(py::reinterpret_borrow<py::object>(h));
      text = is_text(items[0]);
    } else {
      items.push_back(prompt);
    }
  }
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < items.size(); ++i) {
    if (is_text(items[i]) != text)
      throw py::type_error("prompt: a batch holds text prompts or id prompts, not both");
    if (text) {
      prompts.push_back(lm.tokenizer("a text prompt").encode(items[i].cast<std::string>()));
      if (prompts.back().empty()) throw Error("the prompt encodes to no tokens");
    } else {
      prompts.push_back(ids_from_python(items[i], V, "prompt"));
      if (prompts.back().empty()) throw Error("prompt: no token ids, expected at least one");
    }
  }
  if (prompts.empty()) throw Error("prompt: an empty batch, expected at least one prompt");
  check_prompt_ids(prompts, V, lm.dir + "/config.yaml");
  for (const std::string& s : a.stop)
    if (!s.empty()) lm.tokenizer("stop");
  const Tokenizer* tok = lm.tok ? &*lm.tok : nullptr;

  GenerateOptions g;
  g.max_new_tokens = a.max_new_tokens;
  g.sampling = a.s;
  if (a.seed.is_none()) {
    g.seed = std::random_device{}();
  } else {
    const int64_t seed = a.seed.cast<int64_t>();
    if (seed < 0) throw Error("seed must be >= 0 (None: a random one)");
    g.seed = uint64_t(seed);
  }
  g.bf16_cache = a.bf16_cache;
  g.batch_invariant = a.batch_invariant;
  if (!a.ignore_eos) g.eos_id = tok ? tok->eos_id() : int32_t(cfg.ignore_input_index);

  // As `rat generate` assembles text: each prompt goes through its stream decoder first (its
  // text is not returned) so the first new word keeps its leading space.
  const size_t B = prompts.size();
  std::vector<std::unique_ptr<StreamDecoder>> dec;
  std::vector<StopFilter> stops;
  std::vector<std::string> texts(B);
  for (size_t i = 0; i < B; ++i) {
    stops.emplace_back(a.stop);
    if (!tok) continue;
    dec.push_back(std::make_unique<StreamDecoder>(*tok));
    for (int32_t id : prompts[i])
      if (id < tok->vocab_size()) dec.back()->push(id);
  }
  auto on_token = [&](int64_t i, int32_t id) {
    if (!tok) return true;
    if (id == g.eos_id) return true;           // the loop ends it; eos has no text
    if (id >= tok->vocab_size()) return true;  // the model's vocab may be padded
    texts[size_t(i)] += stops[size_t(i)].feed(dec[size_t(i)]->push(id));
    return !stops[size_t(i)].hit();
  };
  GenerateResult r;
  {
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> lock(lm.busy);
    r = rat::generate(*lm.model, prompts, g, on_token);
    if (tok)
      for (size_t i = 0; i < B; ++i) {
        if (!stops[i].hit()) texts[i] += stops[i].feed(dec[i]->flush());
        texts[i] += stops[i].finish();
      }
  }
  py::list out;
  for (size_t i = 0; i < B; ++i) {
    if (text)
      out.append(py::str(texts[i]));
    else
      out.append(py::cast(r.ids[i]));
  }
  if (batch) return out;
  return out[0];
}

}  // namespace

void bind_generate(py::class_<LoadedModel>& cls) {
  cls.def(
      "generate",
      [](LoadedModel& lm, const py::object& prompt, int64_t max_new_tokens, bool greedy,
         float temperature, int64_t top_k, float top_p, float min_p, float repeat_penalty,
         const py::object& seed, const py::object& stop, bool ignore_eos,
         const std::string& cache_dtype, bool batch_invariant) {
        GenArgs a;
        a.max_new_tokens = max_new_tokens;
        a.s.greedy = greedy;
        a.s.temperature = temperature;
        a.s.top_k = top_k;
        a.s.top_p = top_p;
        a.s.min_p = min_p;
        a.s.repetition_penalty = repeat_penalty;
        a.seed = seed;
        if (is_text(stop))
          a.stop.push_back(stop.cast<std::string>());
        else if (!stop.is_none())
          a.stop = stop.cast<std::vector<std::string>>();
        a.ignore_eos = ignore_eos;
        if (cache_dtype != "f32" && cache_dtype != "bf16")
          throw Error("cache_dtype: '" + cache_dtype + "', expected f32 or bf16");
        a.bf16_cache = cache_dtype == "bf16";
        a.batch_invariant = batch_invariant;
        return generate(lm, prompt, a);
      },
      py::arg("prompt"), py::arg("max_new_tokens") = 64, py::arg("greedy") = false,
      py::arg("temperature") = 0.8f, py::arg("top_k") = 40, py::arg("top_p") = 0.95f,
      py::arg("min_p") = 0.05f, py::arg("repeat_penalty") = 1.f, py::arg("seed") = py::none(),
      py::arg("stop") = py::none(), py::arg("ignore_eos") = false, py::arg("cache_dtype") = "f32",
      py::arg("batch_invariant") = false,
      "generate(prompt, max_new_tokens=64, greedy=False, temperature=0.8, top_k=40,\n"
      "         top_p=0.95, min_p=0.05, repeat_penalty=1.0, seed=None, stop=None,\n"
      "         ignore_eos=False, cache_dtype='f32', batch_invariant=False)\n"
      "         -> str | list[int] | list\n\n"
      "`rat generate`: the prompt is read in one forward pass, then tokens are decoded\n"
      "one at a time from the layers' caches. prompt: text (needs tokenizer.model;\n"
      "returns the new text, without the prompt) or token ids (a list of ints or a 1-D\n"
      "array; returns the new ids, the end-of-document id included when it ended the\n"
      "sequence). A list of prompts (or a 2-D id array) is a batch decoded together and\n"
      "returns a list. Sampling defaults are `rat generate`'s (llama.cpp's); greedy=True\n"
      "(or temperature 0) takes the argmax; seed None draws a random seed. Generation\n"
      "ends after max_new_tokens, at the end-of-document id (unless ignore_eos), or at a\n"
      "stop string (str or list, not returned). cache_dtype 'bf16' halves the caches.\n"
      "batch_invariant=True: each prompt of a batch gets bit for bit what it would\n"
      "alone (slower from three prompts on).");
}

}  // namespace rat::python
