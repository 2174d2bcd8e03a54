#include "serve/responses.h"

namespace rat::serve {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

namespace {

// The text of one token as logprobs show it: its piece ("▁" as a space, a
// byte piece as its byte); the id in decimal without a tokenizer.
std::string token_text(int32_t id, const ModelInfo& m) {
  if (m.tok && id < m.tok->vocab_size()) return m.tok->decode_piece(id);
  return std::to_string(id);
}

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

// json(string) that survives bytes that are not UTF-8 when dumped: done by
// dump() with error_handler_t::replace, so plain strings are fine here.
json completion_logprobs_init() {
  return {{"tokens", json::array()},
          {"token_logprobs", json::array()},
          {"top_logprobs", json::array()},
          {"text_offset", json::array()}};
}

}  // namespace

std::string take_events(Choice& c, std::deque<TokenEvent>& events, const ModelInfo& m, bool chat) {
  std::string added;
  const bool want_lp = c.job->top_logprobs >= 0;
  if (want_lp && c.logprobs.is_null())
    c.logprobs = chat ? json{{"content", json::array()}} : completion_logprobs_init();
  for (TokenEvent& ev : events) {
    if (ev.id >= 0) {
      ++c.tokens;
      c.ids.push_back(ev.id);
      if (want_lp) {
        const std::string tt = token_text(ev.id, m);
        if (chat) {
          json top = json::array();
          for (auto [id, lp] : ev.top) {
            const std::string t = token_text(id, m);
            top.push_back({{"token", t}, {"logprob", lp}, {"bytes", bytes_of(t)}});
          }
          c.logprobs["content"].push_back({{"token", tt},
                                           {"logprob", ev.logprob},
                                           {"bytes", bytes_of(tt)},
                                           {"top_logprobs", top}});
        } else {
          json top = json::object();
          for (auto [id, lp] : ev.top) top[token_text(id, m)] = lp;
          c.logprobs["tokens"].push_back(tt);
          c.logprobs["token_logprobs"].push_back(ev.logprob);
          c.logprobs["top_logprobs"].push_back(top);
          c.logprobs["text_offset"].push_back(c.text.size() + added.size());
        }
      }
    }
    added += ev.text;
  }
  events.clear();
  c.text += added;
  return added;
}

std::string finish_reason(const Job& j) {
  return j.finish == "stop" || j.finish == "length" ? j.finish : std::string();
}

json usage(const CompletionRequest& r, const std::vector<Choice>& cs) {
  int64_t prompt = 0, completion = 0;
  for (const auto& p : r.prompts) prompt += int64_t(p.size());
  for (const Choice& c : cs) completion += c.job->generated;
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion}};
}

json full_response(const ResponseHead& h, const CompletionRequest& r,
                   const std::vector<Choice>& cs) {
  json choices = json::array();
  for (size_t i = 0; i < cs.size(); ++i) {
    const Choice& c = cs[i];
    json ch = {{"index", i}, {"finish_reason", finish_reason(*c.job)}};
    ch["logprobs"] = c.logprobs.is_null() ? json(nullptr) : c.logprobs;
    if (r.return_token_ids) ch["token_ids"] = c.ids;
    if (h.chat) {
      ch["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      ch["text"] = (r.echo ? r.prompt_texts[size_t(c.prompt)] : std::string()) + c.text;
    }
    choices.push_back(ch);
  }
  return {{"id", h.id},
          {"object", h.chat ? "chat.completion" : "text_completion"},
          {"created", h.created},
          {"model", h.model},
          {"system_fingerprint", nullptr},
          {"choices", choices},
          {"usage", usage(r, cs)}};
}

json stream_chunk(const ResponseHead& h, int64_t index, const std::string& text,
                  const json& logprobs, bool first, const std::string& finish) {
  json ch = {{"index", index}, {"logprobs", logprobs.is_null() ? json(nullptr) : logprobs}};
  ch["finish_reason"] = finish.empty() ? json(nullptr) : json(finish);
  if (h.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (finish.empty()) delta["content"] = text;
    ch["delta"] = delta;
  } else {
    ch["text"] = text;
  }
  return {{"id", h.id},
          {"object", h.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", h.created},
          {"model", h.model},
          {"system_fingerprint", nullptr},
          {"choices", json::array({ch})}};
}

}  // namespace rat::serve
