#include "util/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "util/timer.h"

namespace rat {

Progress::Progress(std::string label, int64_t total, std::string unit, bool show)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), start_(now_seconds()) {
  const char* force = std::getenv("RAT_PROGRESS");
  enabled_ = show && (force ? std::string(force) != "0" : isatty(2));
}

Progress::~Progress() { finish(); }

static std::string fmt_time(double s) {
  char buf[32];
  int t = int(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  return buf;
}

void Progress::update(int64_t done, const std::string& extra) {
  if (!enabled_) return;
  double t = now_seconds();
  if (done < total_ && t - last_draw_ < 0.1) return;
  last_draw_ = t;
  double el = t - start_, rate = el > 0 ? double(done) / el : 0;
  double eta = rate > 0 ? double(total_ - done) / rate : 0;
  const int width = 24;
  int fill = total_ > 0 ? int(double(width) * double(done) / double(total_)) : 0;
  std::string bar(size_t(fill), '#');
  bar.resize(size_t(width), '.');
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %.1f %s/s ETA %s %s\x1b[K", label_.c_str(), bar.c_str(),
               (long long)done, (long long)total_, rate, unit_.c_str(), fmt_time(eta).c_str(),
               extra.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (enabled_ && !finished_) std::fprintf(stderr, "\n");
  finished_ = true;
}

}  // namespace rat
