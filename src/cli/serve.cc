// `rat serve`: an OpenAI-compatible HTTP server (src/serve/server.h).
#include "cli/commands.h"
#include "serve/server.h"

namespace rat::cli {

void register_serve(CLI::App& app, Runner& run) {
  static serve::ServeOptions o;
  auto* c = app.add_subcommand(
      "serve",
      "Serve a model directory over HTTP with OpenAI's API: POST /v1/completions,\n"
      "POST /v1/chat/completions (stream: server-sent events), GET /v1/models, GET /health,\n"
      "GET /metrics (Prometheus). Requests are decoded together: one thread runs the model over\n"
      "--parallel slots, and requests join and leave the batch between steps. SIGTERM/SIGINT\n"
      "finish running requests (up to --shutdown-grace s) and exit 0.\n"
      "Examples:\n"
      "  rat serve --model runs/rat-small/latest --parallel 8\n"
      "  curl -s localhost:8080/v1/completions -d '{\"prompt\": \"def f(\", \"max_tokens\": 32}'");
  c->add_option("-m,--model", o.model_dir,
                "model directory (config.yaml, model.safetensors, "
                "tokenizer.model for text, optional chat_template.json)")
      ->required();
  c->add_option("--name", o.name,
                "model id clients pass as \"model\" (default: the directory's name)");
  c->add_option("--host", o.host, "address to bind")->capture_default_str();
  c->add_option("--port", o.port, "port (0: any free port, printed at start)")
      ->capture_default_str();
  c->add_option("--parallel", o.parallel, "slots: sequences decoded together (llama.cpp: -np)")
      ->capture_default_str();
  c->add_option("-c,--ctx", o.ctx, "tokens per slot, prompt + generated (0: the model's seq_len)")
      ->capture_default_str();
  c->add_option("--dtype", o.dtype, "f32 | bf16 matmul inputs")->capture_default_str();
  c->add_option("--cache-dtype", o.cache_dtype, "f32 | bf16 storage of the layers' caches")
      ->capture_default_str();
  c->add_option("--api-key", o.api_key,
                "require `Authorization: Bearer KEY` on every endpoint but /health");
  c->add_option("-t,--threads", o.threads, "OpenMP threads of the model (0: OpenMP's default)")
      ->capture_default_str();
  c->add_option("--max-queue", o.max_queue,
                "sequences that may wait for a slot; beyond, requests get 503")
      ->capture_default_str();
  c->add_option("--max-body-bytes", o.max_body_bytes, "largest request body (413 beyond)")
      ->capture_default_str();
  c->add_option("--shutdown-grace", o.shutdown_grace_s,
                "seconds running requests may take to finish after SIGTERM before they are "
                "cancelled")
      ->capture_default_str();
  c->add_option("--slot-save-path", o.slot_save_path,
                "directory of slot files: POST /slots/ID?action=save|restore {\"filename\": NAME} "
                "(without it the endpoint answers 501)");
  c->add_option("--ubatch,--ubatch-size", o.ubatch,
                "prompt tokens prefilled at most between two decode steps of the running "
                "requests (long prompts go in pieces, so streams keep flowing; llama.cpp: -ub)")
      ->capture_default_str();
  c->add_flag("--batch-invariant", o.batch_invariant,
              "a request's tokens bit for bit the same whatever else is decoded with it "
              "(slower from 3 busy slots on; with --cache-mib 0 also whatever came before)");
  c->add_option("--cache-mib", o.cache_mib,
                "bound (MiB) on the state free slots keep for prefix reuse; least recently used "
                "slots forget theirs beyond it (< 0: no bound)")
      ->capture_default_str();
  c->callback([&run] { run = [] { return serve::run_server(o); }; });
}

}  // namespace rat::cli
