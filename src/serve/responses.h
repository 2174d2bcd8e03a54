// OpenAI response objects built from finished or streaming Jobs: whole
// completions (text_completion, chat.completion), stream chunks
// (text_completion, chat.completion.chunk) and their log-probabilities.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "serve/api.h"
#include "serve/scheduler.h"

namespace rat::serve {

// One request's jobs and what has been taken from them so far.
struct Choice {
  std::shared_ptr<Job> job;
  int64_t prompt = 0;        // index into CompletionRequest::prompts
  std::string text;          // visible text so far
  nlohmann::json logprobs;   // completions: {tokens, ...}; chat: {content: [...]}
  int64_t tokens = 0;        // generated tokens taken
  std::vector<int32_t> ids;  // their ids
  bool started = false;      // stream: the first chunk was sent
  bool finished = false;     // stream: the finish chunk was sent
};

struct ResponseHead {
  std::string id, model;
  int64_t created = 0;
  bool chat = false;
};

// Appends events to c (text and log-probabilities); returns the text they add.
std::string take_events(Choice& c, std::deque<TokenEvent>& events, const ModelInfo& m, bool chat);
// "stop" or "length"; a job that ended otherwise has none.
std::string finish_reason(const Job& j);
nlohmann::json usage(const CompletionRequest& r, const std::vector<Choice>& cs);
// The whole response of a non-streamed request whose jobs are all done.
nlohmann::json full_response(const ResponseHead& h, const CompletionRequest& r,
                             const std::vector<Choice>& cs);
// One stream chunk for choice `index`: new text (and its logprobs), or the
// finish reason when finish is not empty.
nlohmann::json stream_chunk(const ResponseHead& h, int64_t index, const std::string& text,
                            const nlohmann::json& logprobs, bool first, const std::string& finish);
// JSON text that never throws on bytes that are not UTF-8 (a token may be
// part of a character): they become U+FFFD.
std::string dump(const nlohmann::json& j);

}  // namespace rat::serve
