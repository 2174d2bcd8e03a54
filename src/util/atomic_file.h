// Crash-safe file replacement: write everything to `path + ".tmp"`, flush and
// fsync it, then rename over `path`. A failure at any step (unwritable
// directory, full disk) removes the temporary and throws rat::Error naming the
// path, so the previous file, if any, is left exactly as it was.
#pragma once

#include <cstddef>
#include <cstdio>
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
  // fflush + fsync + close + rename; throws rat::Error on failure.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_; }

 private:
  [[noreturn]] void fail(const std::string& what, int err);
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool done_ = false;
};

// Convenience: atomically replaces `path` with `text`.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace rat
