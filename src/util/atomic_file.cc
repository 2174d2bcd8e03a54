#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace rat {

namespace {

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) {
    int err = errno;
    throw Error(path_ + ": cannot create temporary file " + tmp_ + " (" + std::strerror(err) +
                "), expected a writable directory; the previous file is unchanged");
  }
}

AtomicFile::~AtomicFile() {
  if (f_) std::fclose(f_);
  if (!done_) std::remove(tmp_.c_str());
}

void AtomicFile::fail(const std::string& what, int err) {
  if (f_) std::fclose(f_);
  f_ = nullptr;
  std::remove(tmp_.c_str());
  done_ = true;  // nothing left to clean up
  throw Error(path_ + ": " + what + " failed (" + std::strerror(err) +
              "), expected a writable file system with free space; the previous file is "
              "unchanged");
}

void AtomicFile::write(const void* data, size_t n) {
  if (n == 0) return;
  if (!f_) throw Error(path_ + ": write after commit or failure");
  if (std::fwrite(data, 1, n, f_) != n) fail("writing " + tmp_, errno);
}

void AtomicFile::commit() {
  if (!f_) throw Error(path_ + ": commit after commit or failure");
  if (std::fflush(f_) != 0) fail("flushing " + tmp_, errno);
  if (::fsync(::fileno(f_)) != 0) fail("fsync of " + tmp_, errno);
  std::FILE* f = f_;
  f_ = nullptr;
  if (std::fclose(f) != 0) fail("closing " + tmp_, errno);
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail("renaming " + tmp_ + " to " + path_, errno);
  done_ = true;
  // Make the rename itself durable; best effort (some file systems refuse).
  int dfd = ::open(parent_dir(path_).c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

}  // namespace rat
