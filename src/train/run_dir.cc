#include "train/run_dir.h"

#include <iterator>
#include <string>
#include <vector>

#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

namespace {
const char* const kRunEntries[] = {"metrics.jsonl", "checkpoints", "latest", "config.yaml"};

// "metrics.jsonl, checkpoints/ and 3 more": enough to recognise the directory.
std::string describe(const fs::path& run) {
  std::vector<std::string> names;
  for (const auto& d : fs::directory_iterator(run))
    names.push_back(d.path().filename().string() + (d.is_directory() ? "/" : ""));
  std::string s;
  const size_t shown = std::min<size_t>(names.size(), 4);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > shown) s += " and " + std::to_string(names.size() - shown) + " more";
  return s;
}
}  // namespace

bool looks_like_run_dir(const fs::path& run) {
  std::error_code ec;
  for (const char* e : kRunEntries)
    if (fs::exists(run / e, ec) || fs::is_symlink(run / e, ec)) return true;
  return false;
}

void claim_run_dir(const fs::path& run, bool resuming, bool overwrite) {
  std::error_code ec;
  if (resuming || !fs::exists(run, ec)) return;
  if (!fs::is_directory(run, ec))
    throw Error(run.string() + ": the run directory is a file, expected a directory");
  if (fs::is_empty(run, ec)) return;
  // Only config.yaml: a run that failed before its first step (bad data, say)
  // left no history to mix with; the new run rewrites the file.
  if (std::distance(fs::directory_iterator(run), fs::directory_iterator()) == 1 &&
      fs::is_regular_file(run / "config.yaml", ec))
    return;
  const std::string what = describe(run);
  if (!looks_like_run_dir(run))
    throw Error(run.string() + ": not empty (" + what +
                ") and not a rat run directory (no metrics.jsonl, checkpoints/, latest or "
                "config.yaml); choose another --run-dir or trainer.save_dir" +
                (overwrite ? " (--overwrite only replaces a rat run directory)" : ""));
  if (!overwrite)
    throw Error(run.string() + ": the run directory holds a previous run (" + what + "); add " +
                (fs::exists(run / "latest", ec)
                     ? "--overwrite to replace it, or trainer.load_checkpoint=true to resume it"
                     : "--overwrite to replace it (it has no latest checkpoint, so "
                       "trainer.load_checkpoint=true cannot resume it)"));
  for (const auto& d : fs::directory_iterator(run)) {
    fs::remove_all(d.path(), ec);
    if (ec)
      throw Error(d.path().string() + ": cannot remove it to overwrite the run (" + ec.message() +
                  ")");
  }
}

}  // namespace rat
