#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/error.h"

namespace rat {

namespace {

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// fsync of the directory holding `path`, so a completed rename is on disk.
// Returns 0 or errno. File systems that cannot sync a directory (EINVAL,
// ENOTSUP: some FUSE and network mounts) offer nothing more to wait for.
int sync_dir(const std::string& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errno;
  int err = ::fsync(dfd) == 0 ? 0 : errno;
  ::close(dfd);
  return err == EINVAL || err == ENOTSUP ? 0 : err;
}

int sync_parent_dir(const std::string& path) { return sync_dir(parent_dir(path)); }

}  // namespace

void sync_directory(const std::string& dir) {
  if (int err = sync_dir(dir))
    throw Error(dir + ": fsync of the directory failed (" + std::strerror(err) +
                "), expected a directory that can be synced");
}

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
  if (int err = sync_parent_dir(path_))
    throw Error(path_ + ": fsync of directory " + parent_dir(path_) + " failed (" +
                std::strerror(err) +
                "); the new file is in place but may not survive a crash, expected a "
                "directory that can be synced");
}

void write_file_atomic(const std::string& path, const void* data, size_t n) {
  AtomicFile f(path);
  f.write(data, n);
  f.commit();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

void write_file_atomic(const std::string& path, const std::function<void(AtomicFile& f)>& fill) {
  AtomicFile f(path);
  fill(f);  // a throw leaves commit() unreached: the destructor removes the temporary
  f.commit();
}

void make_parent_directories(const std::string& path, const std::string& flag) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (!std::filesystem::is_directory(parent))
    throw Error(flag + " " + path + ": cannot create the directory " + parent.string() +
                (ec ? " (" + ec.message() + ")" : std::string()));
}

}  // namespace rat
