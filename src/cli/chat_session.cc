#include "cli/chat_session.h"

#include <algorithm>

#include "generate/stop_filter.h"
#include "serve/slot_file.h"
#include "util/error.h"

namespace rat::cli {

namespace {

constexpr const char* kContent = "{content}";

std::string render(const std::string& tmpl, const std::string& content) {
  std::string out = tmpl;
  const size_t at = out.find(kContent);
  if (at != std::string::npos) out.replace(at, std::string(kContent).size(), content);
  return out;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string assistant_suffix(const serve::ChatTemplate& t) {
  const size_t at = t.assistant.find(kContent);
  return at == std::string::npos ? "" : t.assistant.substr(at + std::string(kContent).size());
}

// The reply ends where the model starts the next user turn, or closes its own
// (the assistant template's text after "{content}", e.g. an end-of-turn
// marker); whitespace alone (the default's "\n") would end every line.
std::vector<std::string> template_stops(const serve::ChatTemplate& t) {
  std::vector<std::string> stops;
  for (const std::string& s :
       {trim(t.user.substr(0, t.user.find(kContent))), trim(assistant_suffix(t))})
    if (!s.empty() && std::find(stops.begin(), stops.end(), s) == stops.end()) stops.push_back(s);
  return stops;
}

}  // namespace

ChatSession::ChatSession(Model& model, const Tokenizer& tok, serve::ChatTemplate tmpl,
                         const ChatOptions& o)
    : model_(model),
      tok_(tok),
      tmpl_(std::move(tmpl)),
      opt_(o),
      ctx_(o.ctx),
      stops_(template_stops(tmpl_)),
      assistant_suffix_(assistant_suffix(tmpl_)),
      // Slot 1, when there are stop strings: the state where the reply
      // began, for rolling back the stop string's tokens.
      dec_(model, stops_.empty() ? 1 : 2, o.ctx, o.bf16_cache),
      sampler_(o.sampling, model.config().vocab_size, o.seed),
      logits_(size_t(model.config().vocab_size)) {
  if (ctx_ < 3) throw Error("--ctx " + std::to_string(ctx_) + ": a chat needs at least 3 tokens");
  tokens_.reserve(size_t(ctx_));  // no reallocation while a reply grows
}

std::string ChatSession::turn_text(const std::string& message) const {
  std::string text;
  if (tokens_.empty()) {
    if (!opt_.system.empty()) text += render(tmpl_.system, opt_.system);
  } else {
    text += assistant_suffix_;  // closes the previous reply
  }
  return text + render(tmpl_.user, message) + tmpl_.generation;
}

std::vector<int32_t> ChatSession::encode_continuation(const std::string& text) const {
  if (text.empty()) return {};
  // sentencepiece puts a word-boundary space before the first word of every
  // text it encodes; inside the whole conversation there is none. A newline is
  // always its own byte piece (Tokenizer: no piece spans one), so the ids of
  // "\n" + text, less those of "\n", are the ids `text` gets after a newline
  // anywhere in a longer text. A tokenizer without that property (a foreign
  // tokenizer.model) gets the plain encoding.
  const std::vector<int32_t> nl = tok_.encode("\n"), all = tok_.encode("\n" + text);
  if (all.size() > nl.size() && std::equal(nl.begin(), nl.end(), all.begin()))
    return std::vector<int32_t>(all.begin() + std::ptrdiff_t(nl.size()), all.end());
  return tok_.encode(text);
}

void ChatSession::feed(const int32_t* ids, int64_t n) {
  if (n <= 0) return;
  const int64_t slot = 0;
  // The history is never read again: the new tokens continue the slot's state
  // in one parallel pass (Decoder::extend), as n steps would.
  if (tokens_.empty())
    dec_.prefill(slot, ids, n, logits_.data());
  else
    dec_.extend(slot, ids, n, logits_.data());
  tokens_.insert(tokens_.end(), ids, ids + n);
}

ChatSession::Reply ChatSession::turn(const std::string& message,
                                     const std::function<void(const std::string&)>& emit,
                                     const std::function<bool()>& stop) {
  const std::string text = turn_text(message);
  const std::vector<int32_t> ids = tokens_.empty() ? tok_.encode(text) : encode_continuation(text);
  // Room for the turn and at least one reply token.
  if (used() + int64_t(ids.size()) + 1 > capacity())
    throw Error("the context is full: this turn needs " + std::to_string(ids.size() + 1) +
                " tokens and " + std::to_string(capacity() - used()) + " of " +
                std::to_string(capacity()) +
                " are free; /reset starts a new conversation (/save FILE keeps this one), or "
                "restart with a larger --ctx");
  const int64_t V = model_.config().vocab_size;
  for (int32_t id : ids)
    if (id < 0 || id >= V)
      throw Error("the tokenizer's id " + std::to_string(id) +
                  " is outside the model's vocabulary");
  feed(ids.data(), int64_t(ids.size()));
  const int64_t start = used();
  if (dec_.max_batch() > 1) dec_.state().copy_slot(0, 1, start);

  Reply r;
  StreamDecoder sd(tok_);
  // The turn's ids go through the stream decoder first (their text is not
  // shown) so the reply's first word keeps its leading space.
  for (int32_t id : ids)
    if (id < tok_.vocab_size()) sd.push(id);
  StopFilter filter(stops_);
  auto show = [&](const std::string& piece) {
    if (piece.empty()) return;
    r.text += piece;
    emit(piece);
  };
  const int32_t eos = tok_.eos_id();
  r.finish = ChatFinish::kLength;
  for (int64_t n = 0; opt_.max_new_tokens < 0 || n < opt_.max_new_tokens; ++n) {
    if (stop && stop()) {
      r.finish = ChatFinish::kInterrupted;
      break;
    }
    const int32_t id = sampler_.sample(logits_.data(), tokens_);
    if (id == eos) {
      r.finish = ChatFinish::kEos;
      break;
    }
    if (used() >= capacity()) {
      r.finish = ChatFinish::kContextFull;
      break;
    }
    if (id < tok_.vocab_size()) show(filter.feed(sd.push(id)));  // the vocab may be padded
    feed(&id, 1);
    ++r.tokens;
    if (filter.hit()) {
      r.finish = ChatFinish::kStop;
      break;
    }
  }
  if (!filter.hit()) show(filter.feed(sd.flush()));
  show(filter.finish());
  if (r.finish == ChatFinish::kStop) {
    // The state holds the start of the stop string too. Back to where the
    // reply began, then the reply's text as the whole conversation
    // re-read would spell it: the state is again the rendered history.
    const std::vector<int32_t> kept = encode_continuation(r.text);
    if (start + int64_t(kept.size()) <= capacity()) {
      dec_.state().copy_slot(1, 0, start);
      dec_.set_length(0, start);
      tokens_.resize(size_t(start));
      feed(kept.data(), int64_t(kept.size()));
      r.tokens = int64_t(kept.size());
    }
  }
  return r;
}

void ChatSession::reset() {
  tokens_.clear();
  dec_.set_length(0, 0);
}

int64_t ChatSession::save(const std::string& path) {
  if (tokens_.empty()) throw Error("/save: the conversation is empty, nothing to save");
  return serve::save_slot(path, dec_.state(), 0, tokens_, opt_.model_key);
}

void ChatSession::load(const std::string& path) {
  const std::vector<int32_t> ids = serve::restore_slot(path, dec_.state(), 0, opt_.model_key);
  dec_.set_length(0, int64_t(ids.size()));
  tokens_.assign(ids.begin(), ids.end());
}

}  // namespace rat::cli
