#include "train/plot.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "nlohmann/json.hpp"
#include "util/error.h"
#include "util/gnuplot.h"

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
    } catch (const nlohmann::json::exception&) {
      throw Error(p.string() + ":" + std::to_string(lineno) + ": not a JSON object");
    }
    for (const auto& [k, v] : j.items())
      if (v.is_number() && k != "step") keys.insert(k);
    if (j.contains(metric) && j[metric].is_number() && j.contains("step")) {
      if (!j["step"].is_number())  // else json's type_error escapes (found by fuzz/metrics.cc)
        throw Error(p.string() + ":" + std::to_string(lineno) + ": 'step' is " +
                    j["step"].type_name() + ", expected a number");
      pts[j["step"].get<double>()] = j[metric].get<double>();
    }
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

  gnuplot_png(opt.out, [&](const std::string& png, const std::string& dir) {
    std::ostringstream gp;
    gp << "set terminal pngcairo size " << opt.width << "," << opt.height
       << " enhanced font 'Sans,11'\n"
       << "set output " << gnuplot_quoted(png) << "\n"
       << "set title " << gnuplot_quoted(opt.title.empty() ? opt.metric : opt.title)
       << " noenhanced\n"
       << "set xlabel 'optimiser step'\nset ylabel " << gnuplot_quoted(opt.metric)
       << " noenhanced\n"
       << "set grid\nset key top right noenhanced\n";
    if (opt.log_y) gp << "set logscale y\n";
    gp << "plot ";
    for (size_t i = 0; i < series.size(); ++i) {
      const fs::path data = fs::path(dir) / ("run" + std::to_string(i) + ".dat");
      std::ofstream d(data);
      d.precision(9);
      for (const auto& [x, y] : series[i]) d << x << " " << y << "\n";
      gp << (i ? ", " : "") << gnuplot_quoted(data.string()) << " using 1:2 with "
         << (series[i].size() > 1 ? "lines" : "points") << " lw 2 title "
         << gnuplot_quoted(run_label(opt.runs, i));
    }
    gp << "\n";
    return gp.str();
  });
}

}  // namespace rat
