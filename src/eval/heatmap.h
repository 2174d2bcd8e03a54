// The needle-in-a-haystack figure: mean score per (depth, length) cell as a
// colour grid (red 0 .. green 1), lengths across, depths down, the score
// printed in each cell; drawn by gnuplot (util/gnuplot.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rat {

struct HeatCell {
  int64_t length = 0;
  double depth = 0;
  double score = 0;  // mean over the cell's cases, in [0, 1]
  int64_t n = 0;     // cases
};

// Writes the PNG to `out` atomically. Cells may be sparse (a missing cell
// stays blank). Throws rat::Error for no cell, and as gnuplot_png does.
void write_heatmap(const std::string& out, const std::vector<HeatCell>& cells,
                   const std::string& title);

}  // namespace rat
