// util/atomic_file: the one writer of every file rat produces. Content lands
// whole, no temporary survives success or failure, and a failed write leaves
// the previous file byte for byte.
#include "util/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.h"

namespace rat {
namespace {

namespace fs = std::filesystem;
using rat::testing::error_of;
using rat::testing::slurp;
using rat::testing::TempDir;

// The names in `dir`, sorted.
std::vector<std::string> listing(const TempDir& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir.path())) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(AtomicFile, EachFormWritesTheContentAndNoTemporary) {
  TempDir dir;
  const std::string text = "first line\nsecond\n";
  write_file_atomic(dir.file("a.txt"), text);
  EXPECT_EQ(slurp(dir.file("a.txt")), text);

  const unsigned char bytes[] = {0, 1, 2, 255, 0, 7};
  write_file_atomic(dir.file("b.bin"), bytes, sizeof bytes);
  EXPECT_EQ(slurp(dir.file("b.bin")), std::string("\0\1\2\xff\0\7", 6));

  // Streaming: many appends, more than one stdio buffer in all.
  write_file_atomic(dir.file("c.bin"), [](AtomicFile& f) {
    for (int i = 0; i < 3000; ++i) f.write("0123456789abcdef", 16);
  });
  const std::string c = slurp(dir.file("c.bin"));
  ASSERT_EQ(c.size(), 3000u * 16);
  EXPECT_EQ(c.substr(16 * 2999), "0123456789abcdef");

  // Replacing an existing file.
  write_file_atomic(dir.file("a.txt"), std::string("new"));
  EXPECT_EQ(slurp(dir.file("a.txt")), "new");
  EXPECT_EQ(listing(dir), (std::vector<std::string>{"a.txt", "b.bin", "c.bin"}));
}

TEST(AtomicFile, MissingDirectoryNamesPathAndErrno) {
  TempDir dir;
  const std::string p = dir.file("missing/out.bin");
  std::string msg = error_of([&] { write_file_atomic(p, std::string("x")); });
  EXPECT_HAS(msg, p + ": cannot create temporary file " + p + ".tmp");
  EXPECT_HAS(msg, "No such file or directory");
  EXPECT_TRUE(listing(dir).empty());
}

// A file size limit makes a write fail half way (EFBIG), as a full disk would:
// the previous file must be unchanged and the temporary gone.
TEST(AtomicFile, FailedWriteKeepsPreviousFileAndRemovesTemporary) {
  TempDir dir;
  const std::string p = dir.file("model.bin");
  write_file_atomic(p, std::string("previous"));

  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of death
  rlimit small = old;
  small.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::vector<char> chunk(1 << 16, 'z');
  std::string msg = error_of([&] {
    write_file_atomic(p, [&](AtomicFile& f) {
      for (int i = 0; i < 16; ++i) f.write(chunk.data(), chunk.size());
    });
  });
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_HAS(msg, p + ": ");
  EXPECT_HAS(msg, "File too large");
  EXPECT_HAS(msg, "the previous file is unchanged");
  EXPECT_EQ(slurp(p), "previous");
  EXPECT_EQ(listing(dir), std::vector<std::string>{"model.bin"});
}

TEST(AtomicFile, ThrowingFillerLeavesPreviousFileAndNoTemporary) {
  TempDir dir;
  const std::string p = dir.file("tokens.bin");
  write_file_atomic(p, std::string("old"));
  EXPECT_THROW(write_file_atomic(p,
                                 [](AtomicFile& f) {
                                   f.write("partial", 7);
                                   throw std::runtime_error("encoder failed");
                                 }),
               std::runtime_error);
  EXPECT_EQ(slurp(p), "old");
  EXPECT_EQ(listing(dir), std::vector<std::string>{"tokens.bin"});
}

TEST(AtomicFile, RenameOntoADirectoryFailsAndRemovesTemporary) {
  TempDir dir;
  const std::string p = dir.file("out");
  fs::create_directories(p + "/keep");
  std::string msg = error_of([&] { write_file_atomic(p, std::string("x")); });
  EXPECT_HAS(msg, p + ": renaming " + p + ".tmp to " + p + " failed");
  EXPECT_TRUE(fs::is_directory(p + "/keep"));
  EXPECT_EQ(listing(dir), std::vector<std::string>{"out"});
}

TEST(AtomicFile, SyncDirectoryPassesOnADirectoryAndNamesAMissingOne) {
  TempDir dir;
  sync_directory(dir.file(""));
  const std::string missing = dir.file("nope");
  EXPECT_HAS(error_of([&] { sync_directory(missing); }),
             missing + ": fsync of the directory failed (No such file or directory)");
}

}  // namespace
}  // namespace rat
