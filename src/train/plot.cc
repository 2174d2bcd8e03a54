#include "train/plot.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "nlohmann/json.hpp"
#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

std::vector<std::pair<double, double>> read_metric(const std::string& run_dir,
                                                   const std::string& metric) {
  const fs::path p = fs::path(run_dir) / "metrics.jsonl";
  std::ifstream f(p);
  if (!f) throw Error(p.string() + ": not found; expected a run directory written by `rat train`");
  // By step: a run resumed from an earlier checkpoint logs some steps again;
  // the later record (the history that led to the final weights) wins.
  std::map<double, double> pts;
  std::set<std::string> keys;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error&) {
      throw Error(p.string() + ":" + std::to_string(lineno) + ": not a JSON object");
    }
    for (const auto& [k, v] : j.items())
      if (v.is_number() && k != "step") keys.insert(k);
    if (j.contains(metric) && j[metric].is_number() && j.contains("step"))
      pts[j["step"].get<double>()] = j[metric].get<double>();
  }
  if (pts.empty()) {
    std::string have;
    for (const auto& k : keys) have += (have.empty() ? "" : ", ") + k;
    throw Error(p.string() + ": no record has '" + metric + "'" +
                (have.empty() ? std::string(" (the file has no records)") : "; it has: " + have));
  }
  return {pts.begin(), pts.end()};
}

namespace {

// gnuplot string literal in single quotes ('' is a literal quote).
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// The directory's name, or the path as given when two runs share a name.
std::string run_label(const std::vector<std::string>& runs, size_t i) {
  auto name = [](const std::string& r) {
    fs::path p = fs::path(r).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    return p.filename().string();
  };
  for (size_t k = 0; k < runs.size(); ++k)
    if (k != i && name(runs[k]) == name(runs[i])) return runs[i];
  return name(runs[i]);
}

}  // namespace

void plot_runs(const PlotOptions& opt) {
  if (opt.runs.empty()) throw Error("rat plot: give at least one run directory");
  // Read everything first, so a bad run directory fails before gnuplot runs.
  std::vector<std::vector<std::pair<double, double>>> series;
  for (const std::string& r : opt.runs) series.push_back(read_metric(r, opt.metric));

  const fs::path out = opt.out;
  // gnuplot draws into a scratch directory; the PNG then reaches `out` through
  // the atomic writer, so a failed plot never leaves a partial image there.
  const fs::path work = fs::temp_directory_path() / ("rat_plot_" + std::to_string(::getpid()));
  std::error_code ec;
  fs::create_directories(work, ec);
  const fs::path tmp_png = work / "plot.png";
  std::ostringstream gp;
  gp << "set terminal pngcairo size " << opt.width << "," << opt.height
     << " enhanced font 'Sans,11'\n"
     << "set output " << quoted(tmp_png.string()) << "\n"
     << "set title " << quoted(opt.title.empty() ? opt.metric : opt.title) << " noenhanced\n"
     << "set xlabel 'optimiser step'\nset ylabel " << quoted(opt.metric) << " noenhanced\n"
     << "set grid\nset key top right noenhanced\n";
  if (opt.log_y) gp << "set logscale y\n";
  gp << "plot ";
  for (size_t i = 0; i < series.size(); ++i) {
    const fs::path data = work / ("run" + std::to_string(i) + ".dat");
    std::ofstream d(data);
    d.precision(9);
    for (const auto& [x, y] : series[i]) d << x << " " << y << "\n";
    gp << (i ? ", " : "") << quoted(data.string()) << " using 1:2 with "
       << (series[i].size() > 1 ? "lines" : "points") << " lw 2 title "
       << quoted(run_label(opt.runs, i));
  }
  gp << "\n";
  const fs::path script = work / "plot.gp";
  std::ofstream(script) << gp.str();
  const std::string cmd = "gnuplot " + quoted(script.string()) + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string msg;
  int status = -1;
  if (pipe) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, pipe)) msg += buf;
    status = ::pclose(pipe);
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
      throw Error("gnuplot not found; install gnuplot-nox (scripts/install_deps.sh)");
    throw Error(out.string() + ": gnuplot failed" + (msg.empty() ? "" : ": " + msg));
  }
  write_file_atomic(out.string(), png);
}

}  // namespace rat
