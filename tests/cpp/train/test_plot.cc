// `rat plot`'s library half: metrics.jsonl of several runs -> a PNG (gnuplot).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "train/plot.h"

namespace fs = std::filesystem;
using namespace rat;
using rat::testing::error_of;
using rat::testing::TempDir;

namespace {

// A run directory whose metrics.jsonl looks like rat train's: training
// records every step, a validation record every 10.
std::string make_run(const TempDir& d, const std::string& name, double scale) {
  fs::create_directories(d.file(name));
  std::ofstream f(d.file(name + "/metrics.jsonl"));
  for (int s = 1; s <= 40; ++s) {
    f << "{\"step\":" << s << ",\"loss\":" << scale * (2.0 + 6.0 / std::sqrt(double(s)))
      << ",\"lr\":0.001,\"grad_norm\":1.5}\n";
    if (s % 10 == 0)
      f << "{\"step\":" << s << ",\"val_loss\":" << scale * 3.0 << ",\"val_ppl\":20.1}\n";
  }
  return d.file(name);
}

uint32_t be32(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 |
         uint32_t(uint8_t(s[at + 2])) << 8 | uint32_t(uint8_t(s[at + 3]));
}

}  // namespace

TEST(Plot, WritesAPngOfSeveralRuns) {
  TempDir d;
  PlotOptions o;
  o.runs = {make_run(d, "rat", 1.0), make_run(d, "attention", 1.1)};
  o.out = d.file("loss.png");
  o.width = 640, o.height = 400;
  plot_runs(o);
  const std::string png = rat::testing::slurp(o.out);
  ASSERT_GE(png.size(), 24u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(be32(png, 16), 640u);
  EXPECT_EQ(be32(png, 20), 400u);
  // Two anti-aliased curves, axes and labels: far more than a blank image.
  EXPECT_GT(png.size(), 8000u);
  EXPECT_FALSE(fs::exists(o.out + ".tmp"));
  // Validation records only: a different (single-valued) series still plots.
  o.metric = "val_loss";
  o.out = d.file("val.png");
  plot_runs(o);
  EXPECT_EQ(rat::testing::slurp(o.out).substr(1, 3), "PNG");
}

TEST(Plot, RunWithoutMetricsOrMetricIsNamed) {
  TempDir d;
  fs::create_directories(d.file("empty_run"));
  PlotOptions o;
  o.runs = {make_run(d, "rat", 1.0), d.file("empty_run")};
  o.out = d.file("loss.png");
  std::string msg = error_of([&] { plot_runs(o); });
  EXPECT_NE(msg.find("empty_run/metrics.jsonl: not found"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(o.out));
  o.runs = {make_run(d, "rat", 1.0)};
  o.metric = "val_los";
  msg = error_of([&] { plot_runs(o); });
  EXPECT_NE(msg.find("no record has 'val_los'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("val_loss"), std::string::npos)
      << "should list the metrics there are: " << msg;
  EXPECT_FALSE(fs::exists(o.out));
}
