// Stop strings over streamed text (`rat generate --stop`). Text arrives in
// pieces (one per generated token); a stop string may span several pieces, so
// the filter holds back any tail that could still grow into one and releases
// it once it cannot. Neither a stop string nor what follows it is ever
// returned. Works on bytes: with UTF-8 stop strings, a held-back tail starts at
// a character boundary, so what is released never splits a character that the
// pieces kept whole.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rat {

class StopFilter {
 public:
  // Empty strings are ignored; no stop strings at all passes text through.
  explicit StopFilter(std::vector<std::string> stops);

  // Appends a piece; returns the text that is now safe to show: everything
  // before the stop string once one is complete (the first to complete, as if
  // the text came a byte at a time; hit() is then true and later pieces
  // return nothing), else all but the longest tail that is the start of a
  // stop string.
  std::string feed(std::string_view piece);
  // The stream ended: returns the held-back tail (nothing after a hit).
  std::string finish();
  bool hit() const { return hit_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // received, not yet returned: a possible start of a stop string
  bool hit_ = false;
};

}  // namespace rat
