#include "serve/api.h"

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "util/error.h"

namespace rat::serve {

using nlohmann::json;

json error_body(const ApiError& e) {
  json err = {{"message", e.what()}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return {{"error", err}};
}

ChatTemplate load_chat_template(const std::string& model_dir) {
  ChatTemplate t;
  const std::string path = (std::filesystem::path(model_dir) / "chat_template.json").string();
  std::ifstream in(path);
  if (!in) return t;
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(path + ": not a JSON object");
  for (auto [key, field] :
       {std::pair{"system", &t.system}, std::pair{"user", &t.user},
        std::pair{"assistant", &t.assistant}, std::pair{"generation", &t.generation}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_string()) throw Error(path + ": \"" + key + "\" must be a string");
    *field = j[key].get<std::string>();
  }
  return t;
}

namespace {

ApiError bad(const std::string& param, const std::string& msg) { return ApiError(400, msg, param); }

// A field that is absent or null keeps its default.
bool given(const json& b, const char* key) { return b.contains(key) && !b[key].is_null(); }

double number(const json& b, const char* key, double lo, double hi) {
  const json& v = b[key];
  if (!v.is_number()) throw bad(key, std::string("'") + key + "' must be a number");
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi))
    throw bad(key, std::string("'") + key + "' must be in [" + json(lo).dump() + ", " +
                       json(hi).dump() + "], got " + v.dump());
  return x;
}

int64_t integer(const json& b, const char* key, int64_t lo, int64_t hi) {
  const json& v = b[key];
  if (!v.is_number_integer())
    throw bad(key, std::string("'") + key + "' must be an integer, got " + v.dump());
  const int64_t x =
      v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(hi) ? hi + 1 : v.get<int64_t>();
  if (x < lo || x > hi)
    throw bad(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "], got " + v.dump());
  return x;
}

bool boolean(const json& b, const char* key) {
  if (!b[key].is_boolean()) throw bad(key, std::string("'") + key + "' must be true or false");
  return b[key].get<bool>();
}

std::vector<int32_t> encode(const ModelInfo& m, const std::string& text, const char* param) {
  if (!m.tok)
    throw bad(param, "the model directory has no tokenizer.model: send token ids instead of text");
  return m.tok->encode(text);
}

std::vector<int32_t> ids_of(const json& arr, const ModelInfo& m) {
  std::vector<int32_t> ids;
  for (const json& v : arr) {
    if (!v.is_number_integer())
      throw bad("prompt", "a token id must be an integer, got " + v.dump());
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= m.vocab_size)
      throw bad("prompt", "token id " + v.dump() + " is outside the vocabulary [0, " +
                              std::to_string(m.vocab_size) + ")");
    ids.push_back(int32_t(id));
  }
  return ids;
}

std::string message_text(const json& content, size_t i) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {  // [{"type": "text", "text": ...}, ...]
    std::string s;
    for (const json& part : content) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
          !part["text"].is_string())
        throw bad(param, param +
                             ": only text parts ({\"type\": \"text\", \"text\": ...}) are "
                             "supported");
      s += part["text"].get<std::string>();
    }
    return s;
  }
  throw bad(param, param + " must be a string or an array of text parts");
}

std::string replace_content(std::string tmpl, const std::string& content) {
  const std::string key = "{content}";
  const size_t at = tmpl.find(key);
  if (at != std::string::npos) tmpl.replace(at, key.size(), content);
  return tmpl;
}

std::string render_chat(const json& messages, const ChatTemplate& t) {
  if (!messages.is_array() || messages.empty())
    throw bad("messages", "'messages' must be a non-empty array");
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& msg = messages[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
      throw bad(param, param + " must be an object with a string 'role'");
    const std::string role = msg["role"].get<std::string>();
    const std::string text = msg.contains("content") && !msg["content"].is_null()
                                 ? message_text(msg["content"], i)
                                 : std::string();
    if (role == "system" || role == "developer")
      out += replace_content(t.system, text);
    else if (role == "user")
      out += replace_content(t.user, text);
    else if (role == "assistant")
      out += replace_content(t.assistant, text);
    else
      throw bad(param + ".role",
                "unknown role '" + role + "' (system, developer, user or assistant)");
  }
  return out + t.generation;
}

}  // namespace

CompletionRequest parse_request(const json& b, bool chat, const ModelInfo& m) {
  if (!b.is_object()) throw bad("", "the request body must be a JSON object");
  CompletionRequest r;
  r.chat = chat;
  if (given(b, "model")) {
    if (!b["model"].is_string()) throw bad("model", "'model' must be a string");
    if (b["model"].get<std::string>() != m.id)
      throw ApiError(404,
                     "the model '" + b["model"].get<std::string>() +
                         "' does not exist; this server serves '" + m.id + "'",
                     "model", "model_not_found");
  }

  // The prompt(s).
  if (chat) {
    if (!b.contains("messages")) throw bad("messages", "'messages' is required");
    const std::string text = render_chat(b["messages"], m.chat);
    r.prompts.push_back(encode(m, text, "messages"));
    r.prompt_texts.push_back(text);
  } else {
    if (!given(b, "prompt")) throw bad("prompt", "'prompt' is required");
    const json& p = b["prompt"];
    if (p.is_string()) {
      r.prompts.push_back(encode(m, p.get<std::string>(), "prompt"));
      r.prompt_texts.push_back(p.get<std::string>());
    } else if (p.is_array() && !p.empty() && p[0].is_number()) {
      r.prompts.push_back(ids_of(p, m));
    } else if (p.is_array() && !p.empty()) {
      for (const json& q : p) {
        if (q.is_string()) {
          r.prompts.push_back(encode(m, q.get<std::string>(), "prompt"));
          r.prompt_texts.push_back(q.get<std::string>());
        } else if (q.is_array()) {
          r.prompts.push_back(ids_of(q, m));
        } else {
          throw bad("prompt",
                    "'prompt' must be a string, an array of strings, an array of "
                    "token ids or an array of arrays of token ids");
        }
      }
    } else {
      throw bad("prompt",
                "'prompt' must be a non-empty string, an array of strings, an array "
                "of token ids or an array of arrays of token ids");
    }
    if (!r.prompt_texts.empty() && r.prompt_texts.size() != r.prompts.size())
      throw bad("prompt", "'prompt' mixes text and token ids");
  }
  if (r.prompt_texts.empty() && m.tok)
    for (const auto& p : r.prompts) r.prompt_texts.push_back(m.tok->decode(p));
  if (r.prompt_texts.empty()) r.prompt_texts.assign(r.prompts.size(), "");
  int64_t longest = 0;
  for (const auto& p : r.prompts) {
    if (p.empty()) throw bad(chat ? "messages" : "prompt", "the prompt encodes to no tokens");
    longest = std::max<int64_t>(longest, int64_t(p.size()));
  }
  // Room for at least one generated token: the slot holds the prompt and
  // every generated token but the last.
  if (longest >= m.ctx)
    throw ApiError(400,
                   "the prompt has " + std::to_string(longest) +
                       " tokens; this server's context (--ctx) is " + std::to_string(m.ctx) +
                       " tokens, which must hold the prompt and at least one new token",
                   chat ? "messages" : "prompt", "context_length_exceeded");

  // Lengths and counts.
  const int64_t room = m.ctx - longest;
  r.max_tokens = chat ? room : 16;  // OpenAI's defaults: 16 for completions, "the rest" for chat
  for (const char* key : {"max_tokens", "max_completion_tokens"})
    if (given(b, key)) r.max_tokens = integer(b, key, 0, std::numeric_limits<int32_t>::max());
  r.max_tokens = std::min(r.max_tokens, room);
  if (given(b, "n")) r.n = int(integer(b, "n", 1, 16));
  if (given(b, "echo")) {
    if (chat) throw bad("echo", "'echo' is a parameter of /v1/completions only");
    r.echo = boolean(b, "echo");
  }

  if (given(b, "ignore_eos")) r.ignore_eos = boolean(b, "ignore_eos");
  if (given(b, "return_token_ids")) r.return_token_ids = boolean(b, "return_token_ids");

  // Sampling (OpenAI's ranges; top_k, min_p, repetition_penalty are the
  // common extensions of local servers).
  SamplingOptions& s = r.sampling;
  if (given(b, "temperature")) s.temperature = float(number(b, "temperature", 0, 2));
  if (given(b, "top_p")) s.top_p = float(number(b, "top_p", 0, 1));
  if (s.top_p <= 0.f) throw bad("top_p", "'top_p' must be > 0");
  if (given(b, "top_k")) s.top_k = integer(b, "top_k", 0, std::numeric_limits<int32_t>::max());
  if (given(b, "min_p")) s.min_p = float(number(b, "min_p", 0, 1));
  if (given(b, "repetition_penalty"))
    s.repetition_penalty = float(number(b, "repetition_penalty", 1e-3, 100));
  if (given(b, "presence_penalty"))
    r.presence_penalty = float(number(b, "presence_penalty", -2, 2));
  if (given(b, "frequency_penalty"))
    r.frequency_penalty = float(number(b, "frequency_penalty", -2, 2));
  s.greedy = s.temperature <= 0.f;
  if (given(b, "seed")) {
    const json& v = b["seed"];
    if (!v.is_number_integer()) throw bad("seed", "'seed' must be an integer");
    r.seed = v.is_number_unsigned() ? v.get<uint64_t>() : uint64_t(v.get<int64_t>());
  }

  // Stop strings: one string or up to 4.
  if (given(b, "stop")) {
    const json& v = b["stop"];
    if (v.is_string()) {
      r.stop.push_back(v.get<std::string>());
    } else if (v.is_array() && v.size() <= 4) {
      for (const json& x : v) {
        if (!x.is_string()) throw bad("stop", "'stop' must be a string or an array of strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      throw bad("stop", "'stop' must be a string or an array of at most 4 strings");
    }
    for (const auto& x : r.stop)
      if (!x.empty() && !m.tok)
        throw bad("stop", "stop strings need the model's tokenizer.model, which is missing");
  }

  // Log-probabilities: completions take "logprobs": k; chat takes
  // "logprobs": true and "top_logprobs": k.
  if (chat) {
    const bool on = given(b, "logprobs") && boolean(b, "logprobs");
    if (given(b, "top_logprobs")) {
      if (!on) throw bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
      r.logprobs = int(integer(b, "top_logprobs", 0, 20));
    } else if (on) {
      r.logprobs = 0;
    }
  } else if (given(b, "logprobs")) {
    r.logprobs = int(integer(b, "logprobs", 0, 20));
    if (r.echo)
      throw bad("logprobs",
                "'logprobs' with 'echo' (log-probabilities of the prompt) is not "
                "supported");
  }

  if (given(b, "stream")) r.stream = boolean(b, "stream");
  if (given(b, "stream_options")) {
    const json& so = b["stream_options"];
    if (!so.is_object()) throw bad("stream_options", "'stream_options' must be an object");
    if (!r.stream) throw bad("stream_options", "'stream_options' needs 'stream': true");
    if (so.contains("include_usage") && !so["include_usage"].is_null()) {
      if (!so["include_usage"].is_boolean())
        throw bad("stream_options", "'stream_options.include_usage' must be true or false");
      r.include_usage = so["include_usage"].get<bool>();
    }
  }
  if (int64_t(r.prompts.size()) * r.n > 128)
    throw bad("n", "a request may ask for at most 128 sequences (prompts x n)");
  return r;
}

}  // namespace rat::serve
