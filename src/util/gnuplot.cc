#include "util/gnuplot.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

std::string gnuplot_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

namespace {

std::string not_found(const std::string& out) {
  return out + ": gnuplot not found; install gnuplot-nox (scripts/install_deps.sh)";
}

}  // namespace

void require_gnuplot(const std::string& out) {
  FILE* pipe = ::popen("gnuplot --version 2>&1", "r");
  int status = -1;
  if (pipe) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, pipe)) {
    }
    status = ::pclose(pipe);
  }
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) throw Error(not_found(out));
}

void gnuplot_png(
    const std::string& out,
    const std::function<std::string(const std::string& png, const std::string& dir)>& script) {
  static std::atomic<int> serial{0};
  const fs::path work = fs::temp_directory_path() / ("rat_gnuplot_" + std::to_string(::getpid()) +
                                                     "_" + std::to_string(serial++));
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work, ec);
  if (ec) throw Error(work.string() + ": cannot create the plot's scratch directory");
  const fs::path tmp_png = work / "plot.png", gp = work / "plot.gp";
  std::string msg;
  int status = -1;
  try {
    const std::string text = script(tmp_png.string(), work.string());
    std::ofstream(gp) << text;
    const std::string cmd = "gnuplot " + gnuplot_quoted(gp.string()) + " 2>&1";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    if (pipe) {
      char buf[512];
      while (std::fgets(buf, sizeof buf, pipe)) msg += buf;
      status = ::pclose(pipe);
    }
  } catch (...) {
    fs::remove_all(work, ec);
    throw;
  }
  const bool ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                  fs::exists(tmp_png) && fs::file_size(tmp_png, ec) > 0;
  std::string png;
  if (ok) {
    std::ifstream in(tmp_png, std::ios::binary);
    png.assign(std::istreambuf_iterator<char>(in), {});
  }
  fs::remove_all(work, ec);
  if (!ok) {
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 127)
      throw Error(not_found(out));
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    throw Error(out + ": gnuplot failed" + (msg.empty() ? "" : ": " + msg));
  }
  make_parent_directories(out, "output");
  write_file_atomic(out, png);
}

}  // namespace rat
