// One conversation of `rat chat`, held as the generation state of one
// Decoder slot: each turn feeds only its new tokens (the user's message in
// the chat template, then the start of the assistant's answer) to the state
// the previous turns left, and the reply is sampled from there. The history
// is never read again, so a turn costs its own length, not the
// conversation's.
//
// What the slot holds is the chat template rendered over the conversation
// (serve/api.h ChatTemplate: the optional system message, then per turn the
// user template, `generation`, the reply, and the text after "{content}" in
// the assistant template), tokenized so that it equals the tokenization of
// that whole text when the replies are in the tokenizer's own spelling: a
// greedy reply then equals `rat generate --greedy` on the rendered text.
// The reply's tokens stay in the state as they were sampled, except the end
// of document id. A reply cut by a stop string is rolled back to its start
// and its shown text fed again (the tokens of the stop string's start must
// not stay): with stop strings the decoder has a second slot, where each
// reply's starting state is copied (one copy of the state per turn, twice
// the state's memory). A reply stopped by the caller (Ctrl-C) stays as far
// as it went.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "generate/decoder.h"
#include "generate/sampling.h"
#include "model/model.h"
#include "serve/api.h"

namespace rat::cli {

struct ChatOptions {
  SamplingOptions sampling;     // greedy set inside when wanted
  int64_t max_new_tokens = -1;  // per reply; -1: until eos, a stop string or a full context
  uint64_t seed = 0;
  std::string system;  // the system message of every new conversation; "" : none
  int64_t ctx = 0;     // tokens the slot is allocated for (it holds at most ctx - 1)
  bool bf16_cache = false;
  uint64_t model_key = 0;  // serve::model_key of the model directory (slot files)
};

enum class ChatFinish { kEos, kStop, kLength, kContextFull, kInterrupted };

class ChatSession {
 public:
  ChatSession(Model& model, const Tokenizer& tok, serve::ChatTemplate tmpl, const ChatOptions& o);

  struct Reply {
    std::string text;  // what emit() received, stop strings excluded
    ChatFinish finish = ChatFinish::kEos;
    int64_t tokens = 0;  // reply tokens the state holds
  };
  // One turn: feeds the user's message and samples the reply, calling emit()
  // with each piece of text as it becomes printable. stop() is polled between
  // steps; true ends the reply (kInterrupted). Throws rat::Error, with the
  // state unchanged, when the message does not fit the context.
  Reply turn(const std::string& message, const std::function<void(const std::string&)>& emit,
             const std::function<bool()>& stop);

  // A fresh conversation (the system message comes again with the next turn).
  void reset();
  // The state and its tokens as a slot file (serve/slot_file.h), atomically;
  // returns the bytes written. Throws when the conversation is empty.
  int64_t save(const std::string& path);
  // Replaces the conversation by a slot file's; throws rat::Error naming the
  // file and the mismatch (another model, --ctx, --cache-dtype, corrupt) with
  // the conversation unchanged.
  void load(const std::string& path);

  int64_t used() const { return int64_t(tokens_.size()); }
  // Tokens the conversation may hold: the slot's length minus one (a slot
  // file holds fewer tokens than its context).
  int64_t capacity() const { return ctx_ - 1; }
  const std::vector<std::string>& stop_strings() const { return stops_; }

  // The text a new turn feeds (the template around the message), for tests
  // and the documentation of what the model sees.
  std::string turn_text(const std::string& message) const;

 private:
  // Appends ids to the slot (prefill when it is empty), logits_ then holds
  // the prediction after the last one.
  void feed(const int32_t* ids, int64_t n);
  // ids of `text` as it tokenizes after a newline in a longer text (no
  // word-boundary space of a text start).
  std::vector<int32_t> encode_continuation(const std::string& text) const;

  Model& model_;
  const Tokenizer& tok_;
  serve::ChatTemplate tmpl_;
  ChatOptions opt_;
  int64_t ctx_;
  std::vector<std::string> stops_;
  std::string assistant_suffix_;  // the assistant template after "{content}"
  Decoder dec_;
  TokenSampler sampler_;
  std::vector<int32_t> tokens_;  // every token in slot 0, in order
  std::vector<float> logits_;
};

}  // namespace rat::cli
