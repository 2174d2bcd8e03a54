#include "eval/mc.h"

#include <cmath>
#include <fstream>
#include <limits>

#include "util/error.h"

namespace rat {

namespace {

const char* kExpected =
    "expected {\"context\": TEXT, \"choices\": [TEXT, ...], \"gold\": i}, {\"context_ids\": "
    "[ids], \"choices_ids\": [[ids], ...], \"gold\": i}, {\"contexts\": [TEXT, ...], "
    "\"continuation\": TEXT, \"gold\": i} or {\"contexts_ids\": [[ids], ...], "
    "\"continuation_ids\": [ids], \"gold\": i}";

// A non-empty JSON list under `key`, at least two entries (one choice is no choice).
const nlohmann::json& list_of(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) throw Error(where + "\"" + key + "\" is missing; " + kExpected);
  if (!it->is_array()) throw Error(where + "\"" + key + "\" is not a list; " + kExpected);
  if (it->size() < 2)
    throw Error(where + "\"" + key + "\" holds " + std::to_string(it->size()) +
                " entries; a multiple-choice line needs at least two");
  return *it;
}

std::string string_of(const nlohmann::json& v, const std::string& what, const std::string& where) {
  if (!v.is_string()) throw Error(where + what + " is not a string; " + kExpected);
  return v.get<std::string>();
}

// The first index of the largest value (numpy's argmax).
int64_t argmax(const std::vector<double>& x) {
  int64_t best = 0;
  for (int64_t i = 1; i < int64_t(x.size()); ++i)
    if (x[size_t(i)] > x[size_t(best)]) best = i;
  return best;
}

}  // namespace

McTask read_mc_task(const std::string& path, const ScoreVocab& vocab, int64_t T, int64_t limit) {
  McTask task;
  if (limit == 0) return task;
  for_each_jsonl_object(
      path, "task file", kExpected, [&](const nlohmann::json& j, const std::string& where) {
        McItem item;
        item.first = int64_t(task.requests.size());
        std::vector<ScoreRequest> reqs;
        auto need_text = [&] {
          if (!vocab.encode)
            throw Error(where + "a text line needs the model's tokenizer, but " +
                        vocab.no_tokenizer + "; give the _ids form instead");
        };
        auto pair = [&](const std::string& ctx, const std::string& cont) {
          try {
            return encode_pair(vocab.encode, ctx, cont, vocab.eod);
          } catch (const Error& e) {
            throw Error(where + e.what());
          }
        };
        auto ids_context = [&](const nlohmann::json& v, const std::string& key) {
          std::vector<int32_t> ids = parse_ids(v, key, vocab.vocab_size, where);
          if (ids.empty()) {  // lm-eval's empty context: the end-of-text token
            if (vocab.eod < 0)
              throw Error(where +
                          "an empty context is scored after the end-of-document id, but the " +
                          "model has none (data.ignore_input_index unset and no tokenizer eos)");
            ids = {vocab.eod};
          }
          return ids;
        };
        if (j.contains("choices")) {
          need_text();
          const std::string ctx = string_of(j.contains("context") ? j["context"] : nlohmann::json(),
                                            "\"context\"", where);
          const std::string delim =
              j.contains("target_delimiter")
                  ? string_of(j["target_delimiter"], "\"target_delimiter\"", where)
                  : std::string();
          const auto& choices = list_of(j, "choices", where);
          for (size_t c = 0; c < choices.size(); ++c) {
            const std::string ch =
                string_of(choices[c], "\"choices\"[" + std::to_string(c) + "]", where);
            if (ch.empty())
              throw Error(where + "\"choices\"[" + std::to_string(c) + "] is empty (acc_norm " +
                          "divides by its length)");
            reqs.push_back(pair(ctx, delim + ch));
            item.lengths.push_back(double(ch.size()));
          }
        } else if (j.contains("choices_ids")) {
          if (!j.contains("context_ids"))
            throw Error(where + "\"context_ids\" is missing; " + kExpected);
          const std::vector<int32_t> ctx = ids_context(j["context_ids"], "context_ids");
          const auto& choices = list_of(j, "choices_ids", where);
          for (size_t c = 0; c < choices.size(); ++c) {
            const std::string key = "choices_ids[" + std::to_string(c) + "]";
            reqs.push_back({ctx, parse_ids(choices[c], key, vocab.vocab_size, where)});
            item.lengths.push_back(double(reqs.back().continuation.size()));
          }
        } else if (j.contains("contexts")) {
          need_text();
          const std::string cont =
              string_of(j.contains("continuation") ? j["continuation"] : nlohmann::json(),
                        "\"continuation\"", where);
          const auto& ctxs = list_of(j, "contexts", where);
          for (size_t c = 0; c < ctxs.size(); ++c) {
            reqs.push_back(
                pair(string_of(ctxs[c], "\"contexts\"[" + std::to_string(c) + "]", where), cont));
            item.lengths.push_back(double(cont.size()));
          }
        } else if (j.contains("contexts_ids")) {
          if (!j.contains("continuation_ids"))
            throw Error(where + "\"continuation_ids\" is missing; " + kExpected);
          const std::vector<int32_t> cont =
              parse_ids(j["continuation_ids"], "continuation_ids", vocab.vocab_size, where);
          const auto& ctxs = list_of(j, "contexts_ids", where);
          for (size_t c = 0; c < ctxs.size(); ++c) {
            reqs.push_back({ids_context(ctxs[c], "contexts_ids[" + std::to_string(c) + "]"), cont});
            item.lengths.push_back(double(cont.size()));
          }
        } else {
          throw Error(where + "has none of \"choices\", \"choices_ids\", \"contexts\", " +
                      "\"contexts_ids\"; " + kExpected);
        }
        const auto g = j.find("gold");
        if (g == j.end()) throw Error(where + "\"gold\" is missing; " + kExpected);
        if (!g->is_number_integer() || g->get<int64_t>() < 0 ||
            g->get<int64_t>() >= int64_t(reqs.size()))
          throw Error(where + "\"gold\" = " + g->dump() + " is not a choice index in [0, " +
                      std::to_string(reqs.size()) + ")");
        item.gold = g->get<int64_t>();
        for (size_t c = 0; c < reqs.size(); ++c)
          check_request(reqs[c], vocab, T, where + "choice " + std::to_string(c) + ": ");
        for (auto& r : reqs) task.requests.push_back(std::move(r));
        task.items.push_back(std::move(item));
        return limit < 0 || int64_t(task.items.size()) < limit;
      });
  if (task.items.empty()) throw Error(path + ": no items (" + std::string(kExpected) + ")");
  return task;
}

double mean_stderr(const std::vector<double>& x) {
  const auto n = double(x.size());
  if (x.size() < 2) return std::numeric_limits<double>::quiet_NaN();
  double mean = 0;
  for (double v : x) mean += v;
  mean /= n;
  double ss = 0;
  for (double v : x) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / (n - 1)) / std::sqrt(n);
}

McReport mc_report(const McTask& task, const std::vector<ScoreResult>& results) {
  McReport r;
  std::vector<double> hit, hit_norm;
  for (const McItem& it : task.items) {
    std::vector<double> ll, norm;
    for (size_t c = 0; c < it.lengths.size(); ++c) {
      ll.push_back(results[size_t(it.first) + c].loglikelihood);
      norm.push_back(ll.back() / it.lengths[c]);
    }
    r.pred.push_back(argmax(ll));
    r.pred_norm.push_back(argmax(norm));
    hit.push_back(r.pred.back() == it.gold ? 1.0 : 0.0);
    hit_norm.push_back(r.pred_norm.back() == it.gold ? 1.0 : 0.0);
  }
  r.n = int64_t(hit.size());
  for (size_t i = 0; i < hit.size(); ++i) r.acc += hit[i], r.acc_norm += hit_norm[i];
  r.acc /= double(r.n), r.acc_norm /= double(r.n);
  r.acc_stderr = mean_stderr(hit);
  r.acc_norm_stderr = mean_stderr(hit_norm);
  return r;
}

}  // namespace rat
