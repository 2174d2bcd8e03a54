// `rat serve`: OpenAI-compatible HTTP endpoints over a Scheduler (cpp-httplib,
// one thread per connection; the model itself runs on the scheduler's thread).
//   POST /v1/completions, POST /v1/chat/completions (stream: server-sent
//   events ending with `data: [DONE]`), GET /v1/models, GET /health,
//   GET /metrics (Prometheus text), POST /slots/ID?action=save|restore with
//   {"filename": NAME} (files under --slot-save-path, slot_file.h).
// Errors are OpenAI's shape {"error": {"message", "type", "param", "code"}}.
// SIGTERM or SIGINT: new requests get 503, running ones have --shutdown-grace
// seconds to finish before they are cancelled, then the server returns 0.
#pragma once

#include <cstdint>
#include <string>

namespace rat::serve {

struct ServeOptions {
  std::string model_dir, name;  // name: the model id clients pass; "" = the directory's name
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port (the one taken is printed)
  int64_t parallel = 4, ctx = 0;  // ctx 0: the model's seq_len
  std::string dtype = "f32", cache_dtype = "f32";
  std::string api_key;
  int threads = 0;
  int64_t max_queue = 256;
  int64_t max_body_bytes = 8 << 20;
  double shutdown_grace_s = 10;
  std::string slot_save_path;    // directory of POST /slots/ID files; "": the endpoint answers 501
  double cache_mib = -1;         // bound on free slots' prefix-reuse state; < 0: none
  int64_t ubatch = 512;          // prompt tokens prefilled between two decode steps at most
  bool batch_invariant = false;  // Decoder::set_batch_invariant
};

// Serves until SIGTERM or SIGINT; returns the exit status (0 after a clean
// shutdown). Prints "rat serve: listening on http://HOST:PORT" to stderr once
// the model is warm and the port is bound.
int run_server(const ServeOptions& opt);

}  // namespace rat::serve
