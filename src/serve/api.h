// The OpenAI request bodies `rat serve` accepts (/v1/completions and
// /v1/chat/completions), checked field by field: a value of the wrong type or
// out of range is an ApiError naming the field (OpenAI's "param"), answered
// with HTTP 4xx and {"error": {"message", "type", "param", "code"}}.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "generate/sampling.h"
#include "nlohmann/json.hpp"

namespace rat::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = "", std::string code = "",
           std::string type = "invalid_request_error")
      : std::runtime_error(message),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;
};

// {"error": {...}} of an ApiError; param and code are null when empty.
nlohmann::json error_body(const ApiError& e);

// How chat messages become one prompt: each message is its role's template
// with "{content}" replaced by the message's text, concatenated, then
// `generation` (the start of the assistant's answer) is appended. Read from
// DIR/chat_template.json ({"system", "user", "assistant", "generation"}, all
// strings) when the model directory has one; otherwise the default below is
// the prompt format of `rat sft-data` (data/sft.h), which rat's SFT trains on.
struct ChatTemplate {
  std::string system = "{content}\n";
  std::string user = "### Question:\n{content}\n";
  std::string assistant = "### Answer:\n{content}\n";
  std::string generation = "### Answer:\n";
};
// Throws rat::Error naming the file and key when the file exists but is bad.
ChatTemplate load_chat_template(const std::string& model_dir);

// What the request handler needs to know about the served model.
struct ModelInfo {
  std::string id;  // the name clients pass as "model"
  const Tokenizer* tok = nullptr;
  int64_t vocab_size = 0;
  int64_t ctx = 0;  // tokens a slot holds
  ChatTemplate chat;
};

struct CompletionRequest {
  bool chat = false;
  std::vector<std::vector<int32_t>> prompts;  // one per prompt (chat: one)
  std::vector<std::string> prompt_texts;      // their text (for echo); "" without tokenizer
  int64_t max_tokens = 16;  // already capped so that prompt + max_tokens fits the context
  SamplingOptions sampling;
  float presence_penalty = 0.f, frequency_penalty = 0.f;
  uint64_t seed = 0;
  int n = 1;
  bool echo = false;
  bool ignore_eos = false;
  bool return_token_ids = false;  // vLLM's extension: "token_ids" of each choice  // llama.cpp's
                                  // extension: generate past the end-of-document id
  int logprobs = -1;              // -1: none; else top alternatives per token (0..20)
  bool stream = false, include_usage = false;
  std::vector<std::string> stop;
};

// Throws ApiError for anything a client got wrong.
CompletionRequest parse_request(const nlohmann::json& body, bool chat, const ModelInfo& m);

}  // namespace rat::serve
