#include "generate/stop_filter.h"

#include <algorithm>
#include <utility>

namespace rat {

StopFilter::StopFilter(std::vector<std::string> stops) {
  for (std::string& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopFilter::feed(std::string_view piece) {
  if (hit_) return "";
  if (stops_.empty()) return std::string(piece);
  pending_ += piece;
  // The stop string that completes first ends the text: the match that ends
  // earliest (on a tie the one that starts earliest), so the output does not
  // depend on how the text was cut into pieces. pending_ holds no complete
  // stop string from before (it would have been found then).
  size_t start = std::string::npos, end = std::string::npos;
  for (const std::string& s : stops_) {
    const size_t at = pending_.find(s);
    if (at == std::string::npos) continue;
    if (at + s.size() < end || (at + s.size() == end && at < start))
      start = at, end = at + s.size();
  }
  if (start != std::string::npos) {
    hit_ = true;
    std::string out = pending_.substr(0, start);
    pending_.clear();
    return out;
  }
  // Hold back the longest tail of pending_ that some stop string starts
  // with (a proper start: a whole one would have matched above).
  size_t keep = 0;
  for (const std::string& s : stops_) {
    for (size_t k = std::min(pending_.size(), s.size() - 1); k > keep; --k)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
  }
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StopFilter::finish() { return hit_ ? "" : std::exchange(pending_, ""); }

}  // namespace rat
