// `rat serve`'s request bodies (serve/api.h), handled as Server::completion does: a body that
// is not JSON is answered 400, parse_request's ApiError (and a JSON type error) become an
// OpenAI error body, which must serialise. Byte 0: completions or chat; the rest: the body,
// then optionally NUL and a chat_template.json for load_chat_template.
#include "fuzz_util.h"
#include "serve/api.h"
#include "serve/responses.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using rat::serve::ApiError;
  const auto p = rat::fuzz::parts(data + 1, size - 1, 2);
  rat::serve::ModelInfo info;
  info.id = "rat";
  info.tok = &rat::fuzz::tiny_tokenizer();
  info.vocab_size = info.tok->vocab_size();
  info.ctx = 64;
  if (!p[1].empty()) {
    const std::string dir = rat::fuzz::dir("model");
    rat::fuzz::put("model/chat_template.json", p[1]);
    rat::fuzz::accept_rat_errors([&] { info.chat = rat::serve::load_chat_template(dir); });
  }
  const bool chat = data[0] & 1;
  const nlohmann::json body = nlohmann::json::parse(p[0], nullptr, false);
  if (body.is_discarded()) return 0;
  try {
    const rat::serve::CompletionRequest r = rat::serve::parse_request(body, chat, info);
    rat::serve::dump(nlohmann::json(r.stop));
  } catch (const ApiError& e) {
    rat::serve::dump(rat::serve::error_body(e));
  } catch (const nlohmann::json::exception& e) {
    rat::serve::dump(
        rat::serve::error_body(ApiError(400, std::string("bad request body: ") + e.what())));
  }
  return 0;
}
