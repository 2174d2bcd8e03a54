#include "serve/server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "generate/decoder.h"
#include "model/enum_names.h"
#include "model/model.h"
#include "serve/api.h"
#include "serve/responses.h"
#include "serve/scheduler.h"
#include "serve/slot_file.h"
#include "util/error.h"
#include "util/timer.h"

namespace rat::serve {

using nlohmann::json;

namespace {

struct Counters {
  std::atomic<int64_t> completions{0}, chat{0}, rejected_full{0}, rejected_bad{0}, rejected_auth{0},
      disconnects{0};
};

class Server {
 public:
  Server(const ServeOptions& opt, Scheduler& sched, ModelInfo info)
      : opt_(opt), sched_(sched), info_(std::move(info)) {}

  void routes(httplib::Server& svr);
  std::atomic<bool> draining{false};
  // Streams whose last chunk is not written yet: httplib stops writing
  // chunked responses once stop() is called, so shutdown waits for them.
  std::shared_ptr<std::atomic<int64_t>> open_streams = std::make_shared<std::atomic<int64_t>>(0);

 private:
  void send_error(httplib::Response& res, const ApiError& e);
  void completion(const httplib::Request& req, httplib::Response& res, bool chat);
  void metrics(httplib::Response& res);
  void slot(const httplib::Request& req, httplib::Response& res);

  const ServeOptions& opt_;
  Scheduler& sched_;
  ModelInfo info_;
  Counters n_;
  std::atomic<int64_t> next_id_{0};
};

void Server::send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(error_body(e)), "application/json");
}

// The jobs of one request, submitted together: all, or none (queue full).
std::optional<std::vector<Choice>> submit_all(Scheduler& sched, const CompletionRequest& r,
                                              const ModelInfo& m) {
  std::vector<Choice> cs;
  auto ch = std::make_shared<Channel>();
  for (size_t p = 0; p < r.prompts.size(); ++p)
    for (int i = 0; i < r.n; ++i) {
      auto j = std::make_shared<Job>();
      j->ch = ch;
      j->prompt = r.prompts[p];
      j->sampling = r.sampling;
      j->presence_penalty = r.presence_penalty;
      j->frequency_penalty = r.frequency_penalty;
      j->seed = seed_for(r.seed, int64_t(cs.size()));
      j->max_tokens = r.max_tokens;
      j->eos_id = m.tok && !r.ignore_eos ? m.tok->eos_id() : -1;
      j->top_logprobs = r.logprobs;
      j->stop = r.stop;
      Choice c;
      c.job = j;
      c.prompt = int64_t(p);
      cs.push_back(std::move(c));
    }
  for (size_t i = 0; i < cs.size(); ++i)
    if (!sched.submit(cs[i].job)) {
      for (size_t k = 0; k < i; ++k) cs[k].job->cancel = true;
      return std::nullopt;
    }
  return cs;
}

void Server::completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  (chat ? n_.chat : n_.completions)++;
  if (draining) {
    send_error(res,
               ApiError(503, "the server is shutting down", "", "shutting_down", "server_error"));
    return;
  }
  CompletionRequest r;
  try {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded())
      throw ApiError(400, "the request body is not valid JSON", "", "invalid_json");
    r = parse_request(body, chat, info_);
  } catch (const ApiError& e) {
    ++n_.rejected_bad;
    send_error(res, e);
    return;
  } catch (const nlohmann::json::exception& e) {  // a field of an unexpected JSON type
    ++n_.rejected_bad;
    send_error(res, ApiError(400, std::string("bad request body: ") + e.what()));
    return;
  }
  auto submitted = submit_all(sched_, r, info_);
  if (!submitted) {
    ++n_.rejected_full;
    send_error(res, ApiError(503,
                             "the server is busy: " + std::to_string(opt_.max_queue) +
                                 " requests are already waiting (--max-queue); retry later",
                             "", "queue_full", "server_error"));
    return;
  }
  ResponseHead head{(chat ? "chatcmpl-" : "cmpl-") + std::to_string(++next_id_), info_.id,
                    int64_t(std::time(nullptr)), chat};
  auto cs = std::make_shared<std::vector<Choice>>(std::move(*submitted));
  auto ch = cs->front().job->ch;

  if (!r.stream) {
    std::deque<TokenEvent> evs;
    {
      std::unique_lock<std::mutex> lk(ch->mu);
      ch->cv.wait(lk, [&] {
        for (const Choice& c : *cs)
          if (!c.job->done) return false;
        return true;
      });
    }
    for (Choice& c : *cs) {
      {
        std::lock_guard<std::mutex> lk(ch->mu);
        evs.swap(c.job->events);
      }
      take_events(c, evs, info_, chat);
      if (c.job->finish == "error")
        return send_error(
            res, ApiError(500, "generation failed: " + c.job->error, "", "", "server_error"));
      if (c.job->finish == "cancelled")
        return send_error(res, ApiError(503, "the server shut down before the request finished", "",
                                        "shutting_down", "server_error"));
    }
    res.set_content(dump(full_response(head, r, *cs)), "application/json");
    return;
  }

  // Streaming: each call of the provider waits for news from any job of the
  // request and writes it as one chunk per choice; a failed write (the client
  // went away) cancels the request's jobs, which frees their slots.
  auto req_copy = std::make_shared<CompletionRequest>(std::move(r));
  const ModelInfo* info = &info_;
  Counters* counters = &n_;
  res.set_header("Cache-Control", "no-cache");
  auto open = open_streams;
  ++*open;
  res.set_chunked_content_provider(
      "text/event-stream",
      [cs, ch, head, req_copy, info, counters](size_t, httplib::DataSink& sink) {
        auto send = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
        auto cancel_all = [&] {
          for (Choice& c : *cs) c.job->cancel = true;
          ++counters->disconnects;
          return false;
        };
        std::vector<std::deque<TokenEvent>> evs(cs->size());
        std::vector<bool> done(cs->size());
        {
          std::unique_lock<std::mutex> lk(ch->mu);
          auto news = [&] {
            for (const Choice& c : *cs)
              if (!c.finished && (!c.job->events.empty() || c.job->done)) return true;
            return false;
          };
          if (!ch->cv.wait_for(lk, std::chrono::seconds(1), news)) {
            lk.unlock();
            // Nothing new for a second (queued, or a long prefill): a comment
            // line, which clients ignore, finds out whether the client is there.
            return send(": waiting\n\n") ? true : cancel_all();
          }
          for (size_t i = 0; i < cs->size(); ++i) {
            evs[i].swap((*cs)[i].job->events);
            done[i] = (*cs)[i].job->done;
          }
        }
        bool all_finished = true;
        for (size_t i = 0; i < cs->size(); ++i) {
          Choice& c = (*cs)[i];
          if (c.finished) continue;
          if (!evs[i].empty()) {
            c.logprobs = json();  // a chunk carries its own tokens' log-probabilities only
            const std::string text = take_events(c, evs[i], *info, head.chat);
            std::string prefix;
            if (!c.started && req_copy->echo) prefix = req_copy->prompt_texts[size_t(c.prompt)];
            if (!send("data: " +
                      dump(stream_chunk(head, int64_t(i), prefix + text, c.logprobs, !c.started,
                                        "")) +
                      "\n\n"))
              return cancel_all();
            c.started = true;
          }
          if (done[i]) {
            const std::string why = finish_reason(*c.job);
            std::string line;
            if (why.empty()) {
              ApiError e(c.job->finish == "error" ? 500 : 503,
                         c.job->finish == "error"
                             ? "generation failed: " + c.job->error
                             : std::string("the server shut down before the request finished"),
                         "", "", "server_error");
              line = "data: " + dump(error_body(e)) + "\n\n";
            } else {
              // echo: a choice that ended before its first token still shows its prompt.
              const std::string text = !c.started && req_copy->echo && !head.chat
                                           ? req_copy->prompt_texts[size_t(c.prompt)]
                                           : std::string();
              line =
                  "data: " + dump(stream_chunk(head, int64_t(i), text, json(), !c.started, why)) +
                  "\n\n";
            }
            if (!send(line)) return cancel_all();
            c.started = c.finished = true;
          }
          all_finished = all_finished && c.finished;
        }
        if (!all_finished) return true;
        if (req_copy->include_usage) {
          json u = {{"id", head.id},
                    {"object", head.chat ? "chat.completion.chunk" : "text_completion"},
                    {"created", head.created},
                    {"model", head.model},
                    {"choices", json::array()},
                    {"usage", usage(*req_copy, *cs)}};
          if (!send("data: " + dump(u) + "\n\n")) return cancel_all();
        }
        if (!send("data: [DONE]\n\n")) return cancel_all();
        sink.done();
        return true;
      },
      [cs, open](bool) {
        // However the response ended, nothing more is read from these jobs.
        for (Choice& c : *cs) c.job->cancel = true;
        --*open;
      });
}

void Server::metrics(httplib::Response& res) {
  const SchedulerStats s = sched_.stats();
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help,
                    const std::string& samples) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           samples;
  };
  auto one = [](const char* name, int64_t v) {
    return std::string(name) + " " + std::to_string(v) + "\n";
  };
  metric("rat_requests_total", "counter", "HTTP requests to the generation endpoints",
         "rat_requests_total{endpoint=\"completions\"} " + std::to_string(n_.completions) +
             "\nrat_requests_total{endpoint=\"chat\"} " + std::to_string(n_.chat) + "\n");
  metric("rat_requests_rejected_total", "counter", "requests answered with an error",
         "rat_requests_rejected_total{reason=\"bad_request\"} " + std::to_string(n_.rejected_bad) +
             "\nrat_requests_rejected_total{reason=\"queue_full\"} " +
             std::to_string(n_.rejected_full) + "\nrat_requests_rejected_total{reason=\"auth\"} " +
             std::to_string(n_.rejected_auth) + "\n");
  metric("rat_stream_disconnects_total", "counter", "streams whose client went away",
         one("rat_stream_disconnects_total", n_.disconnects));
  metric("rat_prompt_tokens_total", "counter", "prompt tokens prefilled",
         one("rat_prompt_tokens_total", s.prompt_tokens));
  metric("rat_prompt_tokens_reused_total", "counter",
         "prompt tokens not prefilled: a free slot still held their state (prefix reuse)",
         one("rat_prompt_tokens_reused_total", s.reused_tokens));
  metric("rat_completion_tokens_total", "counter", "tokens generated",
         one("rat_completion_tokens_total", s.completion_tokens));
  metric("rat_sequences_total", "counter", "sequences finished (choices)",
         one("rat_sequences_total", s.jobs_done));
  metric("rat_sequences_cancelled_total", "counter", "sequences cancelled (client gone, shutdown)",
         one("rat_sequences_cancelled_total", s.jobs_cancelled));
  metric("rat_queue_length", "gauge", "sequences waiting for a slot",
         one("rat_queue_length", s.queued));
  metric("rat_slots_busy", "gauge", "slots holding a sequence", one("rat_slots_busy", s.busy));
  metric("rat_slots_total", "gauge", "slots (--parallel)", one("rat_slots_total", s.slots));
  metric("rat_cache_bytes", "gauge", "bytes of the layers' caches of all slots",
         one("rat_cache_bytes", s.cache_bytes));
  metric("rat_cache_reuse_bytes", "gauge",
         "bytes of state free slots keep for prefix reuse (bounded by --cache-mib)",
         one("rat_cache_reuse_bytes", s.reuse_bytes));
  metric("rat_cache_reuse_evictions_total", "counter",
         "free slots' reuse state dropped to stay under --cache-mib",
         one("rat_cache_reuse_evictions_total", s.reuse_evictions));
  metric("rat_decode_steps_total", "counter", "batched decode steps",
         one("rat_decode_steps_total", s.steps));
  metric("rat_prefills_total", "counter", "prompts prefilled",
         one("rat_prefills_total", s.prefills));
  metric("rat_prefill_pieces_total", "counter",
         "prefill passes of at most --ubatch prompt tokens, each between two decode steps",
         one("rat_prefill_pieces_total", s.prefill_pieces));
  res.set_content(out, "text/plain; version=0.0.4");
}

// POST /slots/ID?action=save|restore {"filename": NAME}: NAME is a plain file
// name inside --slot-save-path (no separators, not "." or "..").
void Server::slot(const httplib::Request& req, httplib::Response& res) {
  try {
    if (opt_.slot_save_path.empty())
      throw ApiError(501, "slot save/restore is off: start the server with --slot-save-path DIR",
                     "", "not_implemented");
    const std::string action = req.get_param_value("action");
    if (action != "save" && action != "restore")
      throw ApiError(400, "action: '" + action + "', expected save or restore", "action");
    int64_t id = -1;
    try {
      size_t used = 0;
      id = std::stoll(req.matches[1].str(), &used);
      if (used != req.matches[1].str().size()) id = -1;
    } catch (...) {
    }
    json body;
    try {
      body = json::parse(req.body);
    } catch (const std::exception& e) {
      throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
    }
    if (!body.is_object() || !body.contains("filename") || !body["filename"].is_string())
      throw ApiError(400, "filename: a string is required", "filename");
    const std::string name = body["filename"].get<std::string>();
    if (name.empty() || name == "." || name == ".." ||
        name.find_first_of(std::string("/\\\0", 3)) != std::string::npos || name.size() > 200)
      throw ApiError(400,
                     "filename: '" + name +
                         "' is not a plain file name (no path separators, not . or .., at most "
                         "200 bytes)",
                     "filename");
    const std::string path = (std::filesystem::path(opt_.slot_save_path) / name).string();
    if (action == "restore" && !std::filesystem::is_regular_file(path))
      throw ApiError(404, "no slot file '" + name + "' in --slot-save-path", "filename");
    const SlotResult r = sched_.slot_action(id, action == "save", path);
    if (r.status != 200) throw ApiError(r.status, r.message);
    json out = {{"id_slot", id}, {"filename", name}};
    if (action == "save")
      out["n_saved"] = r.tokens, out["n_written"] = r.bytes;
    else
      out["n_restored"] = r.tokens;
    res.set_content(dump(out), "application/json");
  } catch (const ApiError& e) {
    send_error(res, e);
  }
}

void Server::routes(httplib::Server& svr) {
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (opt_.api_key.empty() || req.path == "/health")
      return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + opt_.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    ++n_.rejected_auth;
    send_error(res, ApiError(401, "a valid API key is required: Authorization: Bearer KEY", "",
                             "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  svr.Post("/v1/completions",
           [this](const httplib::Request& q, httplib::Response& s) { completion(q, s, false); });
  svr.Post("/v1/chat/completions",
           [this](const httplib::Request& q, httplib::Response& s) { completion(q, s, true); });
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", info_.id},
              {"object", "model"},
              {"created", 0},
              {"owned_by", "rat"},
              {"context_length", info_.ctx}};
    res.set_content(dump({{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const SchedulerStats s = sched_.stats();
    res.status = draining ? 503 : 200;
    res.set_content(dump({{"status", draining ? "shutting_down" : "ok"},
                          {"slots_busy", s.busy},
                          {"slots_total", s.slots},
                          {"queue_length", s.queued}}),
                    "application/json");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) { metrics(res); });
  svr.Post(R"(/slots/(-?\d+))",
           [this](const httplib::Request& q, httplib::Response& s) { slot(q, s); });
  // Whatever reached no handler or was refused by httplib itself (an unknown
  // path 404, a body over --max-body-bytes 413) still gets an error object.
  svr.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg = "error " + std::to_string(res.status);
    if (res.status == 404) msg = "no such endpoint: " + req.method + " " + req.path;
    if (res.status == 413)
      msg = "the request body is larger than " + std::to_string(opt_.max_body_bytes) +
            " bytes (--max-body-bytes)";
    if (res.status == 405) msg = "method not allowed: " + req.method + " " + req.path;
    send_error(res, ApiError(res.status, msg));
  });
  svr.set_exception_handler(
      [this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string msg = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          msg += std::string(": ") + e.what();
        } catch (...) {
        }
        send_error(res, ApiError(500, msg, "", "", "server_error"));
      });
}

// httplib 0.11 listens with a backlog of 5: a burst of clients connecting at
// once overflows it and some get their connection reset. Listening again on
// the same socket with SOMAXCONN (Linux lets listen() change the backlog of a
// listening socket) makes room; the socket is found as the one of this
// process listening on `port`.
void widen_backlog(int port) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    try {
      fd = std::stoi(e.path().filename().string());
    } catch (...) {
      continue;
    }
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int p = -1;
    if (addr.ss_family == AF_INET) p = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) p = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (p == port) ::listen(fd, SOMAXCONN);
  }
}

std::string default_name(const std::string& dir) {
  std::filesystem::path p(dir);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // a trailing '/'
  std::string name = p.filename().string();
  // runs/NAME/latest: the run's name says more than "latest".
  if ((name == "latest" || name.rfind("step", 0) == 0) && p.has_parent_path())
    name = p.parent_path().filename().string() + "/" + name;
  return name.empty() ? "rat" : name;
}

}  // namespace

int run_server(const ServeOptions& opt) {
  // SIGTERM and SIGINT are taken by one thread (sigwait), so every thread
  // started from here on (the scheduler, httplib's pool) inherits them blocked.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not a signal

  auto model = load_model_dir(opt.model_dir);
  model->set_frozen_weight_cache(true);
  model->set_precision(parse_flag(precision_names(), "--dtype", opt.dtype));
  const bool bf16_cache =
      parse_flag(precision_names(), "--cache-dtype", opt.cache_dtype) == Precision::kBF16;
  const std::string tok_path = (std::filesystem::path(opt.model_dir) / "tokenizer.model").string();
  std::optional<Tokenizer> tok;
  if (std::filesystem::exists(tok_path)) tok.emplace(Tokenizer::load(tok_path));

  ModelInfo info;
  info.id = opt.name.empty() ? default_name(opt.model_dir) : opt.name;
  info.tok = tok ? &*tok : nullptr;
  info.vocab_size = model->config().vocab_size;
  info.ctx = opt.ctx > 0 ? opt.ctx : model->config().seq_len;
  info.chat = load_chat_template(opt.model_dir);
  if (opt.max_body_bytes <= 0) throw Error("--max-body-bytes must be positive");
  if (opt.port < 0 || opt.port > 65535) throw Error("--port must be in [0, 65535]");

  SchedulerOptions so;
  so.parallel = opt.parallel;
  so.ctx = info.ctx;
  so.bf16_cache = bf16_cache;
  so.batch_invariant = opt.batch_invariant;
  so.threads = opt.threads;
  so.max_queue = opt.max_queue;
  so.ubatch = opt.ubatch;
  so.reuse_cache_bytes = opt.cache_mib < 0 ? -1 : int64_t(opt.cache_mib * double(1 << 20));
  if (!opt.slot_save_path.empty()) {
    if (!std::filesystem::is_directory(opt.slot_save_path))
      throw Error("--slot-save-path " + opt.slot_save_path + ": not a directory");
    so.slot_dir = opt.slot_save_path;
    so.model_key = model_key(opt.model_dir);
  }
  // Warm-up, paid here rather than by the first clients. The model's forward
  // buffers grow (reallocated, their pages faulted in) at the first prompt
  // longer than any before: measured, that cost the first 256-token prompt
  // after a 64-token one 25-30% of its prefill. One prefill of the longest
  // prompt a slot takes, in a throwaway one-slot decoder, grows them once.
  // Capped at 4096 tokens: past that the prefill's own (quadratic) attention
  // dwarfs the growth, and a long context would make the start slow.
  const double warm_t0 = now_seconds();
  const int64_t warm_n = std::min<int64_t>(info.ctx - 1, 4096);
  if (warm_n > 0) {
    Decoder longest(*model, 1, warm_n + 1, bf16_cache);
    std::vector<int32_t> ids(size_t(warm_n), 0);
    std::vector<float> logits(size_t(info.vocab_size));
    longest.prefill(0, ids.data(), warm_n, logits.data());
  }
  const double warm_prefill_s = now_seconds() - warm_t0;
  // Then the scheduler's own (a prefill in every slot, a step of every batch
  // size 1..parallel: their plans and the caches' pages).
  Scheduler sched(*model, info.tok, so);
  sched.start();
  const double warm_s = now_seconds() - warm_t0;

  httplib::Server svr;
  Server server(opt, sched, info);
  server.routes(svr);
  svr.set_payload_max_length(size_t(opt.max_body_bytes));
  svr.set_keep_alive_timeout(2);
  // A thread per connection: enough for every slot and every queued request
  // to wait on its own, plus a few for /health and /metrics.
  const size_t threads = size_t(std::min<int64_t>(opt.parallel + opt.max_queue + 8, 1024));
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  int port = opt.port;
  if (port == 0) {
    port = svr.bind_to_any_port(opt.host);
    if (port < 0) throw Error("cannot bind " + opt.host + " to a free port");
  } else if (!svr.bind_to_port(opt.host, port)) {
    throw Error("cannot listen on " + opt.host + ":" + std::to_string(port) +
                " (in use, or not an address of this machine)");
  }

  widen_backlog(port);

  std::atomic<bool> stopping{false};
  std::thread sig_thread([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (stopping) return;  // woken by the main thread: the server ended on its own
    stopping = true;
    std::fprintf(stderr, "rat serve: %s: finishing running requests (up to %.0f s), then exiting\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", opt.shutdown_grace_s);
    server.draining = true;
    sched.drain(opt.shutdown_grace_s);
    // Every job has ended; give the streams a moment to write their last chunks.
    for (int i = 0; i < 500 && *server.open_streams > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    svr.stop();
  });
  std::fprintf(
      stderr,
      "rat serve: %s (%lld slots x %lld tokens, cache %.1f MiB, warm-up %.2f s: prefill of "
      "%lld tokens %.2f s, steps of batch 1..%lld) listening on http://%s:%d\n",
      info.id.c_str(), (long long)so.parallel, (long long)so.ctx,
      double(sched.stats().cache_bytes) / (1 << 20), warm_s, (long long)warm_n, warm_prefill_s,
      (long long)so.parallel, opt.host.c_str(), port);
  const bool ok = svr.listen_after_bind();
  if (!stopping) {
    stopping = true;
    pthread_kill(sig_thread.native_handle(), SIGTERM);
  }
  sig_thread.join();
  sched.drain(0);
  if (!ok && !server.draining) throw Error("the HTTP server stopped unexpectedly");
  std::fprintf(stderr, "rat serve: stopped\n");
  return 0;
}

}  // namespace rat::serve
