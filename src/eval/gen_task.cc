#include "eval/gen_task.h"

#include <algorithm>
#include <fstream>

#include "data/tokenizer.h"
#include "generate/generate.h"
#include "model/model.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

namespace {

const char* kExpected =
    "expected {\"prompt\": TEXT or \"prompt_ids\": [ids], \"answers\": [TEXT, ...], "
    "\"max_new_tokens\"?: n}";

bool is_int(const nlohmann::json& v) { return v.is_number_integer() || v.is_number_unsigned(); }

GenCase parse_case(const std::string& text, const std::string& where, bool niah) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw Error(where + "not JSON; " + kExpected);
  }
  if (!j.is_object()) throw Error(where + "not a JSON object; " + std::string(kExpected));
  GenCase c;
  const bool has_text = j.contains("prompt"), has_ids = j.contains("prompt_ids");
  if (has_text == has_ids)
    throw Error(where + (has_text ? "both \"prompt\" and \"prompt_ids\"" : "no \"prompt\"") + "; " +
                kExpected);
  if (has_text) {
    if (!j["prompt"].is_string()) throw Error(where + "\"prompt\" is not a string; " + kExpected);
    c.prompt = j["prompt"].get<std::string>();
  } else {
    const auto& ids = j["prompt_ids"];
    if (!ids.is_array() || ids.empty())
      throw Error(where + "\"prompt_ids\" is not a non-empty list of token ids; " + kExpected);
    for (const auto& v : ids) {
      if (!is_int(v) || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
        throw Error(where + "\"prompt_ids\" holds " + v.dump() + ", not a token id >= 0");
      c.prompt_ids.push_back(int32_t(v.get<int64_t>()));
    }
    c.has_ids = true;
  }
  const auto a = j.find("answers");
  if (a == j.end() || !a->is_array() || a->empty())
    throw Error(where + "\"answers\" " + (a == j.end() ? "is missing" : "is not a non-empty list") +
                "; " + kExpected);
  for (const auto& x : *a) {
    if (!x.is_string()) throw Error(where + "\"answers\" holds a non-string " + x.dump());
    c.answers.push_back(x.get<std::string>());
  }
  if (j.contains("max_new_tokens")) {
    const auto& m = j["max_new_tokens"];
    if (!is_int(m) || m.get<int64_t>() < 0)
      throw Error(where + "\"max_new_tokens\" is " + m.dump() + ", expected an integer >= 0");
    c.max_new_tokens = m.get<int64_t>();
  }
  if (j.contains("max_prompt_tokens")) {
    const auto& m = j["max_prompt_tokens"];
    if (!is_int(m) || m.get<int64_t>() < 1)
      throw Error(where + "\"max_prompt_tokens\" is " + m.dump() + ", expected an integer >= 1");
    c.max_prompt_tokens = m.get<int64_t>();
  }
  if (niah) {
    const auto l = j.find("length"), d = j.find("depth");
    if (l == j.end() || !is_int(*l))
      throw Error(where +
                  "\"length\" is missing or not an integer (a niah case of rat tasks niah)");
    if (d == j.end() || !d->is_number())
      throw Error(where + "\"depth\" is missing or not a number (a niah case of rat tasks niah)");
    c.length = l->get<int64_t>();
    c.depth = d->get<double>();
  }
  c.fields = std::move(j);
  return c;
}

}  // namespace

std::vector<GenCase> read_gen_cases(const std::string& path, int64_t limit, bool niah) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read the task file");
  std::vector<GenCase> cases;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (limit >= 0 && int64_t(cases.size()) >= limit) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    cases.push_back(parse_case(line, path + ":" + std::to_string(n) + ": ", niah));
    cases.back().line = n;
  }
  if (cases.empty()) throw Error(path + ": no case (" + kExpected + " per line)");
  return cases;
}

std::vector<int32_t> truncate_middle(const std::vector<int32_t>& ids, int64_t limit) {
  if (limit < 1) throw Error("truncate_middle: the limit must be >= 1");
  if (int64_t(ids.size()) <= limit) return ids;
  const int64_t head = limit / 2, tail = limit - head;
  std::vector<int32_t> out(ids.begin(), ids.begin() + head);
  out.insert(out.end(), ids.end() - tail, ids.end());
  return out;
}

double string_match_all(const std::string& prediction, const std::vector<std::string>& answers) {
  if (answers.empty()) throw Error("string_match_all: no answer");
  auto lower = [](std::string s) {
    for (char& ch : s)
      if (ch >= 'A' && ch <= 'Z') ch = char(ch - 'A' + 'a');
    return s;
  };
  const std::string p = lower(prediction);
  int64_t found = 0;
  for (const auto& a : answers) found += p.find(lower(a)) != std::string::npos;
  return double(found) / double(answers.size());
}

std::vector<GenOutput> run_gen_cases(Model& model, const Tokenizer* tok,
                                     const std::vector<GenCase>& cases, const GenTaskOptions& opt,
                                     const std::string& path,
                                     const std::function<void(int64_t)>& on_done) {
  if (opt.batch_size <= 0) throw Error("--batch-size must be positive");
  const int64_t V = model.config().vocab_size, N = int64_t(cases.size());
  // Every prompt is encoded and checked first, so a bad line fails before any
  // generation is spent.
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(N));
  std::vector<GenOutput> outs(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    const GenCase& c = cases[size_t(i)];
    const std::string where = path + ":" + std::to_string(c.line) + ": ";
    GenOutput& o = outs[size_t(i)];
    o.new_tokens = opt.max_new_tokens >= 0 ? opt.max_new_tokens
                   : c.max_new_tokens >= 0 ? c.max_new_tokens
                                           : opt.default_new_tokens;
    std::vector<int32_t> ids;
    if (c.has_ids) {
      ids = c.prompt_ids;
    } else {
      if (!tok)
        throw Error(where +
                    "a text \"prompt\" needs the model's tokenizer.model, which the model "
                    "directory lacks: give \"prompt_ids\", or copy the tokenizer the "
                    "model was trained with into the model directory");
      ids = tok->encode(c.prompt);
      if (ids.empty()) throw Error(where + "the prompt encodes to no tokens");
    }
    for (int32_t id : ids)
      if (id >= V)
        throw Error(where + "token id " + std::to_string(id) +
                    " is outside the model's vocabulary [0, " + std::to_string(V) + ")");
    o.prompt_tokens_in = int64_t(ids.size());
    int64_t limit = opt.max_prompt_tokens;
    if (limit == 0 && c.max_prompt_tokens > 0) limit = c.max_prompt_tokens;
    if (limit == 0) {
      limit = opt.context - o.new_tokens;
      if (limit < 1)
        throw Error(where + "max_new_tokens " + std::to_string(o.new_tokens) +
                    " leaves no room for the prompt in the model's context of " +
                    std::to_string(opt.context) + " tokens; give --max-prompt-tokens");
    }
    if (limit > 0) ids = truncate_middle(ids, limit);
    o.prompt_tokens = int64_t(ids.size());
    prompts[size_t(i)] = std::move(ids);
  }

  GenerateOptions g;
  g.sampling.greedy = true;
  g.eos_id = opt.eos_id;
  g.bf16_cache = opt.bf16_cache;
  g.batch_invariant = opt.batch_invariant;
  std::vector<std::vector<int32_t>> batch;
  std::vector<int64_t> made;
  for (int64_t b0 = 0; b0 < N; b0 += opt.batch_size) {
    const int64_t b1 = std::min(N, b0 + opt.batch_size);
    batch.assign(prompts.begin() + b0, prompts.begin() + b1);
    g.max_new_tokens = 0;
    for (int64_t i = b0; i < b1; ++i)
      g.max_new_tokens = std::max(g.max_new_tokens, outs[size_t(i)].new_tokens);
    // A case whose budget is below the batch's stops on its own (generate
    // calls that "stop"; it is reported as "length", which it is).
    made.assign(size_t(b1 - b0), 0);
    GenerateResult r = generate(model, batch, g, [&](int64_t k, int32_t) {
      return ++made[size_t(k)] < outs[size_t(b0 + k)].new_tokens;
    });
    for (int64_t i = b0; i < b1; ++i) {
      GenOutput& o = outs[size_t(i)];
      o.ids = std::move(r.ids[size_t(i - b0)]);
      if (int64_t(o.ids.size()) > o.new_tokens) o.ids.resize(size_t(o.new_tokens));
      o.finish = !o.ids.empty() && o.ids.back() == opt.eos_id ? "eos" : "length";
      std::vector<int32_t> text_ids;
      for (int32_t id : o.ids)
        if (id != opt.eos_id && (!tok || id < tok->vocab_size())) text_ids.push_back(id);
      if (tok) {
        o.prediction = tok->decode(text_ids);
      } else {
        for (size_t k = 0; k < text_ids.size(); ++k) {
          if (k) o.prediction += ' ';
          o.prediction += std::to_string(text_ids[k]);
        }
      }
    }
    if (on_done) on_done(b1);
  }
  return outs;
}

void write_predictions(const std::string& out, const std::vector<GenCase>& cases,
                       const std::vector<GenOutput>& outputs, const std::vector<double>& scores) {
  std::string text;
  for (size_t i = 0; i < cases.size(); ++i) {
    nlohmann::json j = cases[i].fields;
    j["prediction"] = outputs[i].prediction;
    j["score"] = scores[i];
    j["prompt_tokens"] = outputs[i].prompt_tokens;
    j["finish"] = outputs[i].finish;
    // Invalid UTF-8 cannot come out of decode (it writes U+FFFD), so dump
    // does not throw; replace keeps a stray byte from the input fields safe.
    text += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  make_parent_directories(out, "--out");
  write_file_atomic(out, text);
}

}  // namespace rat
