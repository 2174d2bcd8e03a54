// Guarding a run directory: a new run (not resuming) only starts in an empty or
// missing directory, so metrics.jsonl never holds two histories; --overwrite
// clears a previous run first, but only a directory that looks like a rat run,
// so a mistyped path (".", a home directory) is never emptied.
#pragma once

#include <filesystem>

namespace rat {

// The entries that make a directory a rat run directory.
bool looks_like_run_dir(const std::filesystem::path& run);

// Before a run writes into `run`. resuming: trainer.load_checkpoint is true and
// run/latest exists. Throws (one line: what is there and the two ways out) when
// `run` holds more than a config.yaml (a run that never started) and neither
// resuming nor overwrite; with overwrite, empties
// a rat run directory and refuses anything else.
void claim_run_dir(const std::filesystem::path& run, bool resuming, bool overwrite);

}  // namespace rat
