// Drawing a PNG with gnuplot (pngcairo), the one way rat makes figures
// (`rat plot`'s loss curves, `rat eval --task niah --heatmap`).
#pragma once

#include <functional>
#include <string>

namespace rat {

// A gnuplot string literal in single quotes ('' is a literal quote).
std::string gnuplot_quoted(const std::string& s);

// Runs the gnuplot script that `script(png, dir)` returns, then writes the
// PNG it drew to `out` atomically (so a failed plot never leaves a partial
// image there). The script must `set output` to `png`; `dir` is a scratch
// directory for its data files, removed afterwards. Throws rat::Error when
// gnuplot is missing (naming the package to install) or fails (with its
// message), or when `script` throws.
void gnuplot_png(
    const std::string& out,
    const std::function<std::string(const std::string& png, const std::string& dir)>& script);

// Throws the "gnuplot not found" rat::Error of gnuplot_png, naming `out`,
// unless gnuplot runs: for commands that draw after a long computation.
void require_gnuplot(const std::string& out);

}  // namespace rat
