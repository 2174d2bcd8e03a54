#include "eval/score.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "data/tokenizer.h"
#include "model/model.h"
#include "util/error.h"
#include "util/timer.h"

namespace rat {

namespace {

// The code point ending at s[end) and its first byte's index (malformed UTF-8
// reads as a non-space byte).
uint32_t last_code_point(std::string_view s, size_t end, size_t* begin) {
  size_t i = end - 1;
  int cont = 0;
  while (i > 0 && cont < 3 && (uint8_t(s[i]) & 0xC0) == 0x80) --i, ++cont;
  const auto b0 = uint8_t(s[i]);
  const int need = b0 < 0x80 ? 0 : b0 >= 0xF0 ? 3 : b0 >= 0xE0 ? 2 : b0 >= 0xC0 ? 1 : -1;
  if (need != cont) {
    *begin = end - 1;
    return 0xFFFD;
  }
  uint32_t cp = need == 0 ? b0 : b0 & (0x3F >> need);
  for (size_t k = i + 1; k < end; ++k) cp = (cp << 6) | (uint8_t(s[k]) & 0x3F);
  *begin = i;
  return cp;
}

bool py_isspace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

const char* kExpected =
    "expected {\"context\": TEXT, \"continuation\": TEXT} or {\"context_ids\": [ids], "
    "\"continuation_ids\": [ids]}";

// log_softmax(logits)[y] in double, and whether y is the argmax (the first
// maximal index, as torch.argmax).
void score_token(const float* logits, int64_t V, int32_t y, ScoreResult& r) {
  int64_t best = 0;
  for (int64_t v = 1; v < V; ++v)
    if (logits[v] > logits[best]) best = v;
  const double mx = logits[best];
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(logits[v]) - mx);
  r.loglikelihood += double(logits[y]) - mx - std::log(sum);
  r.is_greedy = r.is_greedy && best == y;
}

}  // namespace

size_t rstrip_length(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t begin = 0;
    if (!py_isspace(last_code_point(s, end, &begin))) break;
    end = begin;
  }
  return end;
}

ScoreRequest encode_pair(const EncodeFn& encode, std::string_view context,
                         std::string_view continuation, int32_t eod) {
  ScoreRequest r;
  const size_t keep = rstrip_length(context);
  std::string cont = std::string(context.substr(keep)) + std::string(continuation);
  context = context.substr(0, keep);
  if (context.empty()) {
    if (eod < 0)
      throw Error(
          "an empty context is scored after the end-of-document id, but the model has none "
          "(data.ignore_input_index unset and no tokenizer eos)");
    r.context = {eod};
    r.continuation = encode(cont);
    return r;
  }
  const std::vector<int32_t> whole = encode(std::string(context) + cont);
  r.context = encode(context);
  const size_t n = std::min(r.context.size(), whole.size());
  r.continuation.assign(whole.begin() + std::ptrdiff_t(n), whole.end());
  return r;
}

std::vector<int32_t> cut_context(const ScoreRequest& r, int64_t T) {
  const int64_t keep = T + 1 - int64_t(r.continuation.size());
  const int64_t n = int64_t(r.context.size());
  return {r.context.begin() + std::ptrdiff_t(std::max<int64_t>(0, n - keep)), r.context.end()};
}

std::vector<int32_t> parse_ids(const nlohmann::json& value, const std::string& key,
                               int64_t vocab_size, const std::string& where) {
  if (!value.is_array()) throw Error(where + "\"" + key + "\" is not a list of token ids");
  std::vector<int32_t> ids;
  ids.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const auto& x = value[i];
    if (!x.is_number_integer())
      throw Error(where + "\"" + key + "\"[" + std::to_string(i) + "] = " + x.dump() +
                  " is not an integer token id");
    const int64_t id = x.is_number_unsigned()
                           ? int64_t(std::min<uint64_t>(x.get<uint64_t>(), uint64_t(INT64_MAX)))
                           : x.get<int64_t>();
    if (id < 0 || id >= vocab_size)
      throw Error(where + "\"" + key + "\"[" + std::to_string(i) + "] = " + x.dump() +
                  " is outside the model's vocabulary [0, " + std::to_string(vocab_size) + ")");
    ids.push_back(int32_t(id));
  }
  return ids;
}

void check_request(const ScoreRequest& r, const ScoreVocab& vocab, int64_t T,
                   const std::string& where) {
  if (r.continuation.empty())
    throw Error(where +
                "the continuation is empty (it encodes to no tokens); a request scores "
                "at least one token");
  if (r.context.empty()) throw Error(where + "the context is empty");
  for (const auto* ids : {&r.context, &r.continuation})
    for (int32_t id : *ids)
      if (id < 0 || id >= vocab.vocab_size)
        throw Error(where + "the " + (ids == &r.context ? "context" : "continuation") +
                    " encodes to token id " + std::to_string(id) +
                    ", outside the model's vocabulary [0, " + std::to_string(vocab.vocab_size) +
                    "): the tokenizer does not match the model");
  if (int64_t(r.continuation.size()) > T)
    throw Error(where + "the continuation has " + std::to_string(r.continuation.size()) +
                " tokens, more than the context of " + std::to_string(T) +
                " tokens the model reads (--ctx)");
}

ScoreVocab load_score_vocab(const std::string& model_dir, int64_t vocab_size,
                            int64_t ignore_input_index) {
  ScoreVocab v;
  v.vocab_size = vocab_size;
  v.eod = int32_t(ignore_input_index);
  const std::string path = (std::filesystem::path(model_dir) / "tokenizer.model").string();
  if (!std::filesystem::exists(path)) {
    v.no_tokenizer = path + " does not exist";
    return v;
  }
  auto tok = std::make_shared<const Tokenizer>(Tokenizer::load(path));
  if (v.eod < 0) v.eod = tok->eos_id();
  v.encode = [tok](std::string_view text) { return tok->encode(text); };
  return v;
}

void for_each_jsonl_object(
    const std::string& path, const std::string& what, const std::string& expected,
    const std::function<bool(const nlohmann::json&, const std::string&)>& fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read the " + what);
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno) + ": ";
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + "not valid JSON (" + std::string(e.what()) + "); " + expected);
    }
    if (!j.is_object()) throw Error(where + "not a JSON object; " + expected);
    if (!fn(j, where)) return;
  }
}

std::vector<ScoreRequest> read_score_requests(const std::string& path, const ScoreVocab& vocab,
                                              int64_t T) {
  std::vector<ScoreRequest> reqs;
  for_each_jsonl_object(
      path, "requests file", kExpected, [&](const nlohmann::json& j, const std::string& where) {
        const bool text = j.contains("context") || j.contains("continuation");
        const bool ids = j.contains("context_ids") || j.contains("continuation_ids");
        if (text && ids)
          throw Error(where + "mixes text keys and _ids keys; " + std::string(kExpected));
        if (!text && !ids) throw Error(where + "has no continuation; " + std::string(kExpected));
        ScoreRequest r;
        if (ids) {
          for (const char* k : {"context_ids", "continuation_ids"})
            if (!j.contains(k)) throw Error(where + "\"" + k + "\" is missing; " + kExpected);
          r.context = parse_ids(j["context_ids"], "context_ids", vocab.vocab_size, where);
          r.continuation =
              parse_ids(j["continuation_ids"], "continuation_ids", vocab.vocab_size, where);
          if (r.context.empty()) {  // lm-eval's empty context: the end-of-text token
            if (vocab.eod < 0)
              throw Error(where +
                          "an empty context is scored after the end-of-document id, but the model "
                          "has none (data.ignore_input_index unset and no tokenizer eos)");
            r.context = {vocab.eod};
          }
        } else {
          for (const char* k : {"context", "continuation"}) {
            if (!j.contains(k)) throw Error(where + "\"" + k + "\" is missing; " + kExpected);
            if (!j[k].is_string())
              throw Error(where + "\"" + k + "\" is not a string; " + kExpected);
          }
          if (!vocab.encode)
            throw Error(where + "a text request needs the model's tokenizer, but " +
                        vocab.no_tokenizer + "; give context_ids and continuation_ids instead");
          try {
            r = encode_pair(vocab.encode, j["context"].get<std::string>(),
                            j["continuation"].get<std::string>(), vocab.eod);
          } catch (const Error& e) {
            throw Error(where + e.what());
          }
        }
        check_request(r, vocab, T, where);
        reqs.push_back(std::move(r));
        return true;
      });
  if (reqs.empty()) throw Error(path + ": no requests (" + std::string(kExpected) + " per line)");
  return reqs;
}

std::vector<std::vector<int64_t>> group_by_context(const std::vector<ScoreRequest>& reqs,
                                                   int64_t T) {
  std::map<std::vector<int32_t>, size_t> index;
  std::vector<std::vector<int64_t>> groups;
  for (int64_t i = 0; i < int64_t(reqs.size()); ++i) {
    auto [it, added] = index.try_emplace(cut_context(reqs[size_t(i)], T), groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  return groups;
}

// The decode loop. Slots 0 .. batch-1 hold continuations being decoded; slot
// `batch` takes the prefill of a context shared by several requests, copied
// into a free slot per continuation. A step advances every busy slot by one
// token, each at its own position, so continuations of different contexts
// and lengths decode together; a slot is freed when its continuation is
// scored. A context with one request of one token needs no step at all.
std::vector<ScoreResult> score_requests(Model& model, const std::vector<ScoreRequest>& reqs,
                                        int64_t T, int64_t batch, ScoreStats* stats) {
  const double t0 = now_seconds();
  const int64_t V = model.config().vocab_size;
  batch = std::max<int64_t>(1, std::min(batch, int64_t(reqs.size())));  // no slot left idle
  const auto groups = group_by_context(reqs, T);
  std::vector<ScoreResult> res(reqs.size());
  auto st = model.make_decode_state(batch + 1, T);
  std::vector<float> logits(static_cast<size_t>(batch * V)), first(static_cast<size_t>(V));
  struct Row {
    int64_t req, slot, ctx_len, j;  // j: index of the continuation token fed next
  };
  std::vector<Row> active;
  std::vector<int64_t> free_slots;
  active.reserve(size_t(batch)), free_slots.reserve(size_t(batch));
  for (int64_t s = batch - 1; s >= 0; --s) free_slots.push_back(s);
  std::vector<int32_t> ids(static_cast<size_t>(batch));
  std::vector<int64_t> slots(static_cast<size_t>(batch)), pos(static_cast<size_t>(batch));
  ScoreStats s;

  auto step_all = [&] {
    const int64_t n = int64_t(active.size());
    for (int64_t i = 0; i < n; ++i) {
      const Row& a = active[size_t(i)];
      ids[size_t(i)] = reqs[size_t(a.req)].continuation[size_t(a.j)];
      slots[size_t(i)] = a.slot, pos[size_t(i)] = a.ctx_len + a.j;
    }
    model.step(ids.data(), slots.data(), pos.data(), n, *st, logits.data());
    ++s.steps;
    size_t kept = 0;  // rows still decoding move to the front
    for (int64_t i = 0; i < n; ++i) {
      Row a = active[size_t(i)];
      const auto& cont = reqs[size_t(a.req)].continuation;
      score_token(logits.data() + i * V, V, cont[size_t(a.j + 1)], res[size_t(a.req)]);
      if (++a.j + 1 < int64_t(cont.size()))
        active[kept++] = a;
      else
        free_slots.push_back(a.slot);
    }
    active.resize(kept);
  };
  auto take_slot = [&] {
    while (free_slots.empty()) step_all();
    const int64_t slot = free_slots.back();
    free_slots.pop_back();
    return slot;
  };

  for (const auto& g : groups) {
    const std::vector<int32_t> ctx = cut_context(reqs[size_t(g[0])], T);
    const int64_t n = int64_t(ctx.size());
    // A lone request prefills straight into its decode slot.
    const bool lone = g.size() == 1 && reqs[size_t(g[0])].continuation.size() > 1;
    const int64_t pslot = lone ? take_slot() : batch;
    model.prefill(ctx.data(), n, *st, pslot, first.data());
    ++s.groups, s.context_tokens += n;
    for (int64_t r : g) {
      const auto& cont = reqs[size_t(r)].continuation;
      ScoreResult& out = res[size_t(r)];
      out.is_greedy = true, out.tokens = int64_t(cont.size());
      s.continuation_tokens += out.tokens;
      score_token(first.data(), V, cont[0], out);
      if (cont.size() == 1) continue;
      int64_t slot = pslot;
      if (!lone) {
        slot = take_slot();
        st->copy_slot(pslot, slot, n);
      }
      active.push_back({r, slot, n, 0});
    }
  }
  while (!active.empty()) step_all();
  s.requests = int64_t(reqs.size()), s.batch = batch;
  s.seconds = now_seconds() - t0;
  if (stats) *stats = s;
  return res;
}

std::string score_result_json(const ScoreResult& r) {
  nlohmann::json j = {
      {"loglikelihood", r.loglikelihood}, {"is_greedy", r.is_greedy}, {"tokens", r.tokens}};
  return j.dump();
}

}  // namespace rat
