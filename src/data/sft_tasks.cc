#include "data/sft_tasks.h"

#include "util/error.h"

namespace rat {

namespace {

// The templates are the authors' PROMPT_DICT strings; the budgets their
// max_new_tokens_dict and prefill_max_len_dict values.
const std::vector<SftTask>& tasks() {
  static const std::string kNqa =
      "narrativeqa: {\"document\": {\"summary\": {\"text\"}, \"text\"}, \"question\": {\"text\"}, "
      "\"answers\": [{\"text\"}]} (deepmind/narrativeqa), {\"summary\"|\"text\"|\"full_text\", "
      "\"question\", \"answer\"}, or {\"context\", \"input\", \"answer\"|\"answers\"}";
  static const std::vector<SftTask> t = {
      {"narrativeqa_summary",
       "Story: {context}\n\nQuestion: {input}\n\nAnswer:",
       128,
       {{4096, 3840}, {16384, 16256}},
       kNqa},
      {"narrativeqa_text",
       "Story: {context}\n\nQuestion: {input}\n\nAnswer:",
       128,
       {{4096, 3840}, {16384, 16256}},
       kNqa},
      {"narrativeqa_full",
       "Story: {context}\n\nQuestion: {input}\n\nAnswer:",
       128,
       {{4096, 3840}, {16384, 16256}},
       kNqa},
      {"qmsum",
       "Transcript: {context}\n\nQuestion: {input}\n\nAnswer:",
       384,
       {{4096, 3712}, {16384, 16000}},
       "qmsum: {\"prompt\", \"input\", \"output\"} (pszemraj/qmsum-cleaned) or {\"context\", "
       "\"input\", \"answers\"|\"answer\"} (THUDM/LongBench)"},
      {"wikisum",
       "Article: {context}\n\nQuestion: {input}\n\nAnswer:",
       256,
       {{4096, 3840}, {16384, 16128}},
       "wikisum: {\"article\", \"title\", \"summary\"} (d0rj/wikisum) or {\"context\", \"input\", "
       "\"answer\"|\"answers\"}"},
  };
  return t;
}

// One published layout of a dataset's line: dotted paths into nested objects.
struct Form {
  std::vector<std::string> context;  // joined with "\n\n" (narrativeqa_full's summary + text)
  std::string input;
  std::vector<std::string> answer;  // alternatives, the first present is read
};

const Form kCommon{{"context"}, "input", {"answers", "answer"}};

std::vector<Form> forms_of(const std::string& task) {
  if (task == "narrativeqa_summary")
    return {{{"document.summary.text"}, "question.text", {"answers"}},
            {{"summary"}, "question", {"answer", "answers"}},
            kCommon};
  if (task == "narrativeqa_text")
    return {{{"document.text"}, "question.text", {"answers"}},
            {{"text"}, "question", {"answer", "answers"}},
            kCommon};
  if (task == "narrativeqa_full")
    return {{{"document.summary.text", "document.text"}, "question.text", {"answers"}},
            {{"full_text"}, "question", {"answer", "answers"}},
            kCommon};
  if (task == "qmsum") return {{{"input"}, "prompt", {"output"}}, kCommon};
  if (task == "wikisum") return {{{"article"}, "title", {"summary"}}, kCommon};
  return {kCommon};
}

const nlohmann::json* lookup(const nlohmann::json& j, const std::string& path) {
  const nlohmann::json* v = &j;
  size_t at = 0;
  while (true) {
    const size_t dot = path.find('.', at);
    const std::string key =
        path.substr(at, dot == std::string::npos ? std::string::npos : dot - at);
    if (!v->is_object()) return nullptr;
    auto it = v->find(key);
    if (it == v->end()) return nullptr;
    v = &*it;
    if (dot == std::string::npos) return v;
    at = dot + 1;
  }
}

std::string string_at(const nlohmann::json& j, const std::string& path, const std::string& where) {
  const nlohmann::json* v = lookup(j, path);
  if (!v->is_string())
    throw Error(where + "field \"" + path + "\" is " + v->dump() + ", expected a string");
  return v->get<std::string>();
}

std::vector<std::string> answers_at(const nlohmann::json& v, const std::string& key,
                                    const std::string& where) {
  const std::string expected =
      ", expected a string, a list of strings or a list of {\"text\": string}";
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array() || v.empty())
    throw Error(where + "field \"" + key + "\" is " + v.dump().substr(0, 80) + expected);
  std::vector<std::string> out;
  for (const auto& a : v) {
    if (a.is_string()) {
      out.push_back(a.get<std::string>());
    } else if (a.is_object() && a.contains("text") && a["text"].is_string()) {
      out.push_back(a["text"].get<std::string>());
    } else {
      throw Error(where + "field \"" + key + "\" holds " + a.dump().substr(0, 80) + expected);
    }
  }
  return out;
}

}  // namespace

const SftTask* find_sft_task(const std::string& name) {
  for (const SftTask& t : tasks())
    if (t.name == name) return &t;
  return nullptr;
}

std::string sft_task_names() {
  std::string s;
  for (const SftTask& t : tasks()) s += (s.empty() ? "" : ", ") + t.name;
  return s;
}

SftRecord read_sft_record(const std::string& task, const nlohmann::json& line,
                          const std::string& where) {
  if (!line.is_object()) throw Error(where + "expected a JSON object (one example per line)");
  const std::vector<Form> forms = forms_of(task);
  // The form the line comes closest to names the missing field.
  size_t best = 0;
  int best_present = -1;
  std::string best_missing;
  for (size_t f = 0; f < forms.size(); ++f) {
    const Form& form = forms[f];
    int present = 0;
    std::string missing;
    auto need = [&](const std::string& path) {
      if (lookup(line, path)) {
        ++present;
      } else if (missing.empty()) {
        missing = path;
      }
    };
    for (const auto& c : form.context) need(c);
    need(form.input);
    bool any_answer = false;
    for (const auto& a : form.answer) any_answer = any_answer || lookup(line, a);
    if (any_answer) {
      ++present;
    } else if (missing.empty()) {
      missing = form.answer[0];
    }
    if (missing.empty()) {
      best = f, best_missing.clear();
      break;
    }
    if (present > best_present) best = f, best_present = present, best_missing = missing;
  }
  if (!best_missing.empty()) {
    const SftTask* t = find_sft_task(task);
    throw Error(where + "missing field \"" + best_missing + "\" (" +
                (t ? t->fields : task + ": {\"context\", \"input\", \"answer\"|\"answers\"}") +
                ")");
  }
  const Form& form = forms[best];
  SftRecord r;
  for (size_t i = 0; i < form.context.size(); ++i)
    r.context += (i ? "\n\n" : "") + string_at(line, form.context[i], where);
  r.input = string_at(line, form.input, where);
  for (const auto& a : form.answer)
    if (const nlohmann::json* v = lookup(line, a)) {
      r.answers = answers_at(*v, a, where);
      break;
    }
  return r;
}

namespace {

// Walks `tmpl` as str.format_map does for plain fields; emit(field) is called
// with "" for literal text pieces handled by `lit`.
template <class Lit, class Field>
void walk_template(const std::string& tmpl, const Lit& lit, const Field& field) {
  auto bad = [&](const std::string& why) {
    throw Error("prompt template '" + tmpl + "': " + why +
                " (fields are {context} and {input}; {{ and }} are literal braces)");
  };
  for (size_t i = 0; i < tmpl.size(); ++i) {
    const char c = tmpl[i];
    if (c == '{' && i + 1 < tmpl.size() && tmpl[i + 1] == '{') {
      lit('{'), ++i;
    } else if (c == '}' && i + 1 < tmpl.size() && tmpl[i + 1] == '}') {
      lit('}'), ++i;
    } else if (c == '{') {
      const size_t end = tmpl.find('}', i);
      if (end == std::string::npos) bad("a '{' is not closed");
      const std::string name = tmpl.substr(i + 1, end - i - 1);
      if (name != "context" && name != "input") bad("unknown field {" + name + "}");
      field(name);
      i = end;
    } else if (c == '}') {
      bad("a lone '}'");
    } else {
      lit(c);
    }
  }
}

}  // namespace

void check_sft_template(const std::string& tmpl) {
  walk_template(
      tmpl, [](char) {}, [](const std::string&) {});
}

std::string format_sft_prompt(const std::string& tmpl, const SftRecord& r) {
  std::string out;
  walk_template(
      tmpl, [&](char c) { out += c; },
      [&](const std::string& f) { out += f == "context" ? r.context : r.input; });
  return out;
}

}  // namespace rat
