#include "eval/heatmap.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/gnuplot.h"

namespace rat {

namespace {

// "512", "4k", "1.5k", "128k": the usual way context lengths are named.
std::string length_label(int64_t n) {
  if (n < 1024 || n % 512 != 0) return std::to_string(n);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%gk", double(n) / 1024.0);
  return buf;
}

}  // namespace

void write_heatmap(const std::string& out, const std::vector<HeatCell>& cells,
                   const std::string& title) {
  if (cells.empty()) throw Error(out + ": no score to draw");
  std::vector<int64_t> lengths;
  std::vector<double> depths;
  for (const HeatCell& c : cells) lengths.push_back(c.length), depths.push_back(c.depth);
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  std::sort(depths.begin(), depths.end());
  depths.erase(std::unique(depths.begin(), depths.end()), depths.end());
  auto index_of = [](const auto& v, auto x) {
    return int64_t(std::lower_bound(v.begin(), v.end(), x) - v.begin());
  };
  const int64_t nx = int64_t(lengths.size()), ny = int64_t(depths.size());
  // Cells are at integer grid points (lengths need not be evenly spaced);
  // boxes, not `with image`, so a missing cell is simply not drawn.
  const int width = int(std::clamp<int64_t>(160 + 90 * nx, 480, 1600));
  const int height = int(std::clamp<int64_t>(140 + 45 * ny, 360, 1200));
  gnuplot_png(out, [&](const std::string& png, const std::string& dir) {
    const std::string data = (std::filesystem::path(dir) / "cells.dat").string();
    {
      std::ofstream d(data);
      for (const HeatCell& c : cells) {
        char line[96];
        std::snprintf(line, sizeof line, "%lld %lld %.6f\n", (long long)index_of(lengths, c.length),
                      (long long)index_of(depths, c.depth), std::clamp(c.score, 0.0, 1.0));
        d << line;
      }
    }
    std::ostringstream gp;
    gp << "set terminal pngcairo size " << width << "," << height << " font 'Sans,10'\n"
       << "set output " << gnuplot_quoted(png) << "\n"
       << "set title " << gnuplot_quoted(title) << " noenhanced\n"
       << "set xlabel 'context length (tokens)'\nset ylabel 'needle depth'\n"
       << "set xrange [-0.5:" << nx - 0.5 << "]\nset yrange [" << ny - 0.5 << ":-0.5]\n"
       << "set cbrange [0:1]\nset cblabel 'score'\n"
       << "set palette defined (0 '#d7301f', 0.5 '#fee08b', 1 '#1a9850')\n"
       << "unset key\nset tics out nomirror\nset style fill solid 1.0 noborder\n";
    gp << "set xtics (";
    for (int64_t i = 0; i < nx; ++i)
      gp << (i ? ", " : "") << gnuplot_quoted(length_label(lengths[size_t(i)])) << " " << i;
    gp << ")\nset ytics (";
    for (int64_t i = 0; i < ny; ++i) {
      char buf[32];
      // Explicit tic labels are gnuplot format strings: "%%" prints "%".
      std::snprintf(buf, sizeof buf, "%g%%%%", depths[size_t(i)] * 100.0);
      gp << (i ? ", " : "") << gnuplot_quoted(buf) << " " << i;
    }
    gp << ")\n"
       << "plot " << gnuplot_quoted(data)
       << " using 1:2:(0.5):(0.5):3 with boxxyerror fillcolor palette, \\\n  '' using "
          "1:2:(sprintf('%.2f', $3)) with labels textcolor 'black'\n";
    return gp.str();
  });
}

}  // namespace rat
