// A one-line progress bar on stderr with rate and ETA; silent when stderr is
// not a terminal unless forced, so logs and CI output stay clean.
#pragma once

#include <cstdint>
#include <string>

namespace rat {

class Progress {
 public:
  // show = false: never draws (e.g. every MPI rank but rank 0).
  Progress(std::string label, int64_t total, std::string unit, bool show = true);
  ~Progress();
  // Sets the count done; `extra` is shown after the rate (e.g. "loss 3.21").
  void update(int64_t done, const std::string& extra = "");
  void finish();

 private:
  std::string label_, unit_;
  int64_t total_;
  double start_, last_draw_ = 0;
  bool enabled_, finished_ = false;
};

}  // namespace rat
