// `rat chat`: an interactive conversation with a model directory in the
// terminal. The conversation lives in one generation state (ChatSession), so
// each turn reads only its own tokens. Lines are read with GNU readline
// (editing, in-memory history, optionally a history file); with stdin not a
// terminal, each line is one turn (or command) and only the replies are
// printed, for scripts.
//
// Signals: readline runs in its callback mode, so SIGINT only sets a flag and
// interrupts select(): at the prompt the flag clears the line, during a reply
// the generation loop sees it between two steps and ends the reply.
#include <fcntl.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <sys/select.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>

#include "cli/chat_session.h"
#include "cli/commands.h"
#include "cli/sampling_flags.h"
#include "data/tokenizer.h"
#include "model/enum_names.h"
#include "model/model.h"
#include "serve/api.h"
#include "serve/slot_file.h"
#include "util/error.h"

namespace rat::cli {

namespace {

struct ChatOpts {
  std::string model, system, history_file, dtype = "f32", cache_dtype = "f32";
  int64_t max_new_tokens = -1;
  int64_t ctx = 0;  // 0: the trained data.seq_len
  bool greedy = false;
  SamplingOptions s = interactive_sampling();
  int64_t seed = -1;
};

volatile std::sig_atomic_t g_sigint = 0;
// The self-pipe: a SIGINT that lands while the prompt loop is between two
// select() calls still wakes the next one.
int g_wake[2] = {-1, -1};
extern "C" void on_sigint(int) {
  g_sigint = 1;
  const int saved = errno;
  if (g_wake[1] >= 0 && write(g_wake[1], "", 1) < 0) {
    // a full pipe already holds a wake-up
  }
  errno = saved;
}

// The line readline hands over in callback mode (on_line runs inside
// rl_callback_read_char).
struct PendingLine {
  bool done = false, eof = false;
  std::string text;
};
PendingLine g_line;

extern "C" void on_line(char* line) {
  g_line.done = true;
  g_line.eof = line == nullptr;
  if (line) {
    g_line.text = line;
    std::free(line);
  }
  rl_callback_handler_remove();  // the terminal goes back to its own mode for the reply
}

// One line from the terminal; nullopt at Ctrl-D on an empty line.
std::optional<std::string> read_tty_line(const char* prompt) {
  g_line = PendingLine{};
  g_sigint = 0;
  rl_callback_handler_install(prompt, on_line);
  const int in = fileno(rl_instream);
  while (!g_line.done) {
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(in, &fds);
    FD_SET(g_wake[0], &fds);
    const int r = select(std::max(in, g_wake[0]) + 1, &fds, nullptr, nullptr, nullptr);
    if (r < 0 && errno != EINTR) {
      rl_callback_handler_remove();
      throw Error(std::string("reading the terminal: ") + std::strerror(errno));
    }
    if (r > 0 && FD_ISSET(g_wake[0], &fds)) {
      char drain[64];
      while (read(g_wake[0], drain, sizeof(drain)) > 0) {
      }
    }
    if (g_sigint) {  // Ctrl-C at the prompt: drop what was typed, prompt again
      g_sigint = 0;
      rl_echo_signal_char(SIGINT);
      rl_replace_line("", 0);
      rl_crlf();
      rl_on_new_line();
      rl_redisplay();
      continue;
    }
    if (r > 0 && FD_ISSET(in, &fds)) rl_callback_read_char();
  }
  if (g_line.eof) return std::nullopt;
  return g_line.text;
}

const char* kHelp =
    "  /reset        start a new conversation (the --system message comes again)\n"
    "  /save FILE    write the conversation (tokens and generation state) to FILE\n"
    "  /load FILE    continue a conversation /save wrote (same model, --ctx, --cache-dtype)\n"
    "  /help         this list\n"
    "  /exit         quit (also Ctrl-D on an empty line)\n"
    "  A line ending in \\ continues on the next one; //text sends \"/text\".\n"
    "  Ctrl-C stops a reply (what it said so far stays in the conversation) or clears the line.\n";

int run_chat(const ChatOpts& o) {
  if (o.max_new_tokens < -1 || o.max_new_tokens == 0)
    throw Error("--max-new-tokens (-n) must be >= 1, or -1 for no limit");
  if (o.ctx < 0) throw Error("--ctx (-c) must be >= 0 (0: the trained data.seq_len)");
  check_sampling_flags(o.s, o.greedy, o.seed);
  const Precision prec = parse_flag(precision_names(), "--dtype", o.dtype);
  const bool bf16_cache =
      parse_flag(precision_names(), "--cache-dtype", o.cache_dtype) == Precision::kBF16;
  const std::string tok_path = (std::filesystem::path(o.model) / "tokenizer.model").string();
  if (!std::filesystem::exists(o.model + "/config.yaml"))
    throw Error(o.model + "/config.yaml does not exist: --model takes a model directory");
  if (!std::filesystem::exists(tok_path))
    throw Error("rat chat needs the model's tokenizer, but " + tok_path +
                " does not exist: copy the tokenizer.model the model was trained with there");
  const serve::ChatTemplate tmpl = serve::load_chat_template(o.model);
  auto model = load_model_dir(o.model);
  model->set_frozen_weight_cache(true);
  model->set_precision(prec);
  const Tokenizer tok = Tokenizer::load(tok_path);

  ChatOptions c;
  c.sampling = o.s;
  c.sampling.greedy = o.greedy;
  c.max_new_tokens = o.max_new_tokens;
  c.seed = o.seed >= 0 ? uint64_t(o.seed) : std::random_device{}();
  c.system = o.system;
  c.ctx = o.ctx > 0 ? o.ctx : model->config().seq_len;
  c.bf16_cache = bf16_cache;
  c.model_key = serve::model_key(o.model);
  if (c.ctx > model->config().seq_len)
    std::fprintf(stderr,
                 "warning: --ctx %lld is past the %lld positions the model was trained on "
                 "(data.seq_len); replies late in a long conversation may degrade\n",
                 (long long)c.ctx, (long long)model->config().seq_len);
  ChatSession chat(*model, tok, tmpl, c);

  const bool tty = isatty(STDIN_FILENO);
  bool failed = false;  // piped input: exit 1 if a command or turn failed
  if (tty) {
    std::fprintf(stderr, "rat chat: %s, context %lld tokens%s", o.model.c_str(),
                 (long long)chat.capacity(), o.greedy ? ", greedy" : "");
    if (!o.greedy && o.seed < 0) std::fprintf(stderr, ", seed %llu", (unsigned long long)c.seed);
    std::fprintf(stderr, ". /help lists commands; Ctrl-C stops a reply, Ctrl-D quits.\n");
    rl_catch_signals = 0;  // SIGINT is ours (see the top of this file)
    if (pipe2(g_wake, O_NONBLOCK | O_CLOEXEC) != 0)
      throw Error(std::string("cannot make a pipe: ") + std::strerror(errno));
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: select() returns EINTR
    sigaction(SIGINT, &sa, nullptr);
    using_history();
    stifle_history(1000);
    if (!o.history_file.empty()) read_history(o.history_file.c_str());  // absent: a new one
  } else if (!o.greedy && o.seed < 0) {
    std::fprintf(stderr, "seed: %llu\n", (unsigned long long)c.seed);
  }

  auto read_line = [&](const char* prompt) -> std::optional<std::string> {
    if (tty) return read_tty_line(prompt);
    std::string line;
    if (!std::getline(std::cin, line)) return std::nullopt;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  };
  auto note = [&](const std::string& msg) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", msg.c_str());
  };

  for (;;) {
    std::optional<std::string> line = read_line("> ");
    if (!line) break;
    // A trailing backslash continues the message on the next line.
    while (!line->empty() && line->back() == '\\') {
      line->back() = '\n';
      std::optional<std::string> more = read_line("... ");
      if (!more) break;
      *line += *more;
    }
    if (line->empty()) continue;
    if (tty) add_history(line->c_str());
    std::string msg = *line;
    if (msg[0] == '/' && msg.rfind("//", 0) != 0) {
      const size_t sp = msg.find(' ');
      const std::string cmd = msg.substr(0, sp);
      const size_t from = sp == std::string::npos ? sp : msg.find_first_not_of(' ', sp);
      const std::string arg = from == std::string::npos ? "" : msg.substr(from);
      try {
        if (cmd == "/exit" || cmd == "/quit") {
          break;
        } else if (cmd == "/help") {
          std::fputs(kHelp, stderr);
        } else if (cmd == "/reset") {
          chat.reset();
          note("(a new conversation)");
        } else if (cmd == "/save" || cmd == "/load") {
          if (arg.empty()) throw Error(cmd + " needs a file name: " + cmd + " FILE");
          if (cmd == "/save") {
            const int64_t bytes = chat.save(arg);
            note("(saved " + std::to_string(chat.used()) + " tokens, " + std::to_string(bytes) +
                 " bytes, to " + arg + ")");
          } else {
            chat.load(arg);
            note("(loaded " + std::to_string(chat.used()) + " tokens from " + arg + ")");
          }
        } else {
          throw Error("unknown command " + cmd + "; /help lists them (//text sends \"/text\")");
        }
      } catch (const Error& e) {
        note(std::string("error: ") + e.what());
        failed = true;
      }
      continue;
    }
    if (msg.rfind("//", 0) == 0) msg.erase(0, 1);

    g_sigint = 0;
    ChatSession::Reply r;
    try {
      r = chat.turn(
          msg,
          [](const std::string& piece) {
            std::fputs(piece.c_str(), stdout);
            std::fflush(stdout);
          },
          [] { return g_sigint != 0; });
    } catch (const Error& e) {
      note(std::string("error: ") + e.what());
      failed = true;
      continue;
    }
    // Piped: one newline after every reply, for scripts; a terminal needs no
    // empty line after a reply that ended its own line.
    if (!tty || r.text.empty() || r.text.back() != '\n') std::fputs("\n", stdout);
    std::fflush(stdout);
    if (r.finish == ChatFinish::kInterrupted) {
      g_sigint = 0;
      note("(stopped; the reply so far stays in the conversation)");
    } else if (r.finish == ChatFinish::kContextFull) {
      note(
          "(the context is full: the reply was cut; /reset starts a new conversation, /save "
          "FILE keeps this one)");
    } else if (chat.used() * 10 >= chat.capacity() * 9) {
      note("(context: " + std::to_string(chat.used()) + " of " + std::to_string(chat.capacity()) +
           " tokens used)");
    }
  }
  if (tty) {
    std::fputs("\n", stderr);
    if (!o.history_file.empty() && write_history(o.history_file.c_str()) != 0)
      std::fprintf(stderr, "warning: could not write the history to %s\n", o.history_file.c_str());
  }
  return failed && !tty ? 1 : 0;
}

}  // namespace

void register_chat(CLI::App& app, Runner& run) {
  static ChatOpts o;
  auto* c = app.add_subcommand(
      "chat",
      "Talk with a model directory in the terminal (config.yaml, model.safetensors,\n"
      "tokenizer.model, and chat_template.json if the model has its own format; the default is\n"
      "rat sft-data's \"### Question:\" / \"### Answer:\"). The conversation is kept as the\n"
      "model's generation state: each turn reads only its own tokens. Replies stream as they\n"
      "are generated; Ctrl-C stops one, Ctrl-D quits. Commands: /reset, /save FILE, /load FILE,\n"
      "/help, /exit. With stdin not a terminal, each line is a turn and only replies print.\n"
      "Examples:\n"
      "  rat chat -m runs/rat-sft/latest\n"
      "  rat chat -m DIR --system \"You answer in one sentence.\" --temp 0.7 -c 4096\n"
      "  printf 'What is a list?\\n/save conv.slot\\n' | rat chat -m DIR --greedy -n 64\n"
      "Sampling defaults are llama.cpp's (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05),\n"
      "as for rat generate.");
  c->add_option("-m,--model", o.model, "model directory")->required();
  c->add_option("--system", o.system,
                "system message at the start of every conversation (the template's \"system\")");
  c->add_option("-c,--ctx", o.ctx,
                "tokens the conversation may hold (0: the trained data.seq_len); when it is full "
                "a turn is refused until /reset")
      ->capture_default_str();
  c->add_option("-n,--max-new-tokens,--n-predict", o.max_new_tokens,
                "tokens per reply at most (-1: until the model ends it or the context is full)")
      ->capture_default_str();
  add_sampling_flags(c, o.s, o.greedy, o.seed, "conversation");
  c->add_option("--history-file", o.history_file,
                "keep the line history in this file across sessions (default: in memory only)");
  c->add_option("--dtype", o.dtype, "f32 | bf16 matmul inputs")->capture_default_str();
  c->add_option("--cache-dtype", o.cache_dtype, "f32 | bf16 storage of the layers' caches")
      ->capture_default_str();
  c->callback([&run] { run = [] { return run_chat(o); }; });
}

}  // namespace rat::cli
