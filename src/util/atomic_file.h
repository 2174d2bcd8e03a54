// Crash-safe file replacement, the one way rat writes a file: everything goes
// to `path + ".tmp"` (same directory, so the rename cannot cross file
// systems), which is flushed and fsynced, renamed over `path`, and then the
// directory is fsynced so the rename itself survives a crash. A failure at
// any step (missing or unwritable directory, full disk, file size limit)
// removes the temporary and throws rat::Error naming the path and errno's
// words, so the previous file, if any, is left exactly as it was.
#pragma once

#include <cstddef>
#include <cstdio>
#include <functional>
#include <string>

namespace rat {

class AtomicFile {
 public:
  // Opens `path + ".tmp"` for writing; throws rat::Error if it cannot.
  explicit AtomicFile(const std::string& path);
  // Removes the temporary if commit() was not reached.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends n bytes; throws rat::Error (and removes the temporary) on failure.
  void write(const void* data, size_t n);
  void write(const std::string& bytes) { write(bytes.data(), bytes.size()); }
  // fflush + fsync + close + rename + fsync of the directory; throws
  // rat::Error on failure (the temporary is removed; if only the directory
  // fsync fails, the new file is already in place and the message says so).
  void commit();

  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_; }

 private:
  [[noreturn]] void fail(const std::string& what, int err);
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool done_ = false;
};

// Atomically replaces `path` with `bytes` (text or binary).
void write_file_atomic(const std::string& path, const std::string& bytes);
void write_file_atomic(const std::string& path, const void* data, size_t n);
// Streaming form for files too large to hold twice (safetensors, token
// files): `fill` appends through f.write(); commit follows if it returns.
// If it throws, the temporary is removed and the exception passes through.
void write_file_atomic(const std::string& path, const std::function<void(AtomicFile& f)>& fill);
// fsync of a directory, so that renames done in it (a checkpoint directory
// renamed into place, a symlink repointed) survive a crash. Throws rat::Error
// naming the directory; file systems that cannot sync directories pass.
void sync_directory(const std::string& dir);
// Creates the directories above an output path a user named (`--out
// runs/eval/preds.jsonl`), as `mkdir -p` would; throws rat::Error naming
// `flag` and the directory when one cannot be made.
void make_parent_directories(const std::string& path, const std::string& flag);

}  // namespace rat
