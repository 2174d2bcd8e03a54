// The mapped safetensors reader: values come out bit for bit as written
// (hand-chosen bit patterns, tensors at unaligned offsets, tensors longer than
// one conversion block, pieces read with read_f32_part), a file cut short
// after it was written is an error on open, the file's pages are not left
// mapped beside the weights, and no tensor byte is read before the header has
// been checked (page-cache residency, where the file system lets the test
// evict the file).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "test_util.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::TempDir;

std::string st_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char(uint8_t(n >> (8 * i)));
  return out + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

// Pattern i of a long tensor: every exponent and many mantissas, no NaN.
uint32_t pattern(uint32_t i) { return (i * 2654435761u) & 0x7f7fffffu; }

TEST(SafetensorsMapped, UnalignedOffsetsGiveTheWrittenBits) {
  // A 1-byte pad puts 'a' (F32) at offset 1 and 'h' (F16) at odd offset 13:
  // the reader must not assume aligned loads from the mapping.
  const std::vector<uint32_t> a = {0x3f800000u, 0xc0200000u, 0x00000001u /*subnormal*/};
  const std::vector<uint16_t> b = {0x3f80, 0xbfc0, 0x0001, 0x7f80};  // bf16: 1, -1.5, tiny, inf
  const std::vector<uint16_t> h = {0x3c00, 0xc000, 0x0001, 0x7bff};  // f16: 1, -2, 2^-24, 65504
  std::string data = std::string(1, '\x55') + raw(a) + raw(b) + raw(h);
  std::string header = R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [1, 13]},)"
                       R"( "b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [13, 21]},)"
                       R"( "h": {"dtype": "F16", "shape": [4], "data_offsets": [21, 29]}})";
  TempDir dir;
  std::string p = dir.write("m.safetensors", st_bytes(header, data));
  SafetensorsReader r(p);
  std::vector<float> fa(3), fb(4), fh(4);
  r.read_f32("a", {3}, fa.data());
  r.read_f32("b", {2, 2}, fb.data());
  r.read_f32("h", {4}, fh.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(bits(fa[i]), a[i]) << i;
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(bits(fb[i]), uint32_t(b[i]) << 16) << i;
  EXPECT_EQ(fh[0], 1.f);
  EXPECT_EQ(fh[1], -2.f);
  EXPECT_EQ(fh[2], 0x1p-24f);
  EXPECT_EQ(fh[3], 65504.f);
}

TEST(SafetensorsMapped, LongTensorsCrossBlocksBitForBit) {
  // 3.5M F32 (14 MiB) and 5M BF16 (10 MiB) elements: longer than the 8 MiB
  // block the reader converts and drops at a time.
  const uint32_t n32 = 3'500'000, n16 = 5'000'000;
  std::vector<uint32_t> w(n32);
  std::vector<uint16_t> v(n16);
  for (uint32_t i = 0; i < n32; ++i) w[i] = pattern(i);
  for (uint32_t i = 0; i < n16; ++i) v[i] = uint16_t(pattern(i) >> 16);
  std::string header = "{\"v\": {\"dtype\": \"BF16\", \"shape\": [" + std::to_string(n16) +
                       "], \"data_offsets\": [0, " + std::to_string(2 * n16) +
                       "]}, \"w\": {\"dtype\": \"F32\", \"shape\": [" + std::to_string(n32) +
                       "], \"data_offsets\": [" + std::to_string(2 * n16) + ", " +
                       std::to_string(2 * n16 + 4 * n32) + "]}}";
  TempDir dir;
  std::string p = dir.write("m.safetensors", st_bytes(header, raw(v) + raw(w)));
  SafetensorsReader r(p);
  std::vector<float> fw(n32), fv(n16);
  r.read_f32("w", {n32}, fw.data());
  r.read_f32("v", {n16}, fv.data());
  int bad = 0;
  for (uint32_t i = 0; i < n32; ++i) bad += bits(fw[i]) != w[i];
  for (uint32_t i = 0; i < n16; ++i) bad += bits(fv[i]) != uint32_t(v[i]) << 16;
  EXPECT_EQ(bad, 0);
  // Pieces, with boundaries inside and across blocks, equal the whole.
  std::vector<float> part(1'400'000);
  for (int64_t first : {int64_t(0), int64_t(1), int64_t(2'097'151), int64_t(500'000)}) {
    r.read_f32_part("w", {n32}, first, 1'400'000, part.data());
    EXPECT_EQ(std::memcmp(part.data(), fw.data() + first, part.size() * 4), 0) << first;
  }
  r.read_f32_part("w", {n32}, n32, 0, nullptr);  // empty piece at the end
  EXPECT_NE(error_of([&] { r.read_f32_part("w", {n32}, 1, n32, part.data()); })
                .find(p + ": tensor 'w': elements [1, +3500000) asked for, expected a range "
                          "inside its 3500000"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              r.read_f32_part("w", {7}, 0, 1, part.data());
            }).find("has shape [3500000], expected [7]"),
            std::string::npos);
}

TEST(SafetensorsMapped, FileCutShortAfterWritingIsAnErrorOnOpen) {
  TempDir dir;
  std::vector<float> a(100, 1.5f), b(50, -2.f);
  std::string p = dir.file("model.safetensors");
  write_safetensors(p, {{"a", {100}, a.data()}, {"b", {50}, b.data()}});
  std::filesystem::resize_file(p, std::filesystem::file_size(p) - 1);
  // 'b' is stored last; its end now lies one byte past the data section.
  std::string msg = error_of([&] { SafetensorsReader r(p); });
  EXPECT_NE(msg.find(p + ": tensor 'b': data_offsets [400,600] reach past the 599-byte data "
                         "section (the header lies about offsets)"),
            std::string::npos)
      << msg;
}

// Resident file-backed memory of this process (RssFile in /proc/self/status), bytes.
int64_t rss_file() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("RssFile:", 0) == 0) return std::stoll(line.substr(8)) * 1024;
  return -1;
}

TEST(SafetensorsMapped, ConvertedPagesAreNotLeftMapped) {
  if (rss_file() < 0) GTEST_SKIP() << "no RssFile in /proc/self/status";
  const int64_t n = int64_t(16) << 20;  // 64 MiB of F32
  std::vector<float> src(size_t(n), 0.25f), dst(size_t(n), 0.f);
  TempDir dir;
  std::string p = dir.file("model.safetensors");
  write_safetensors(p, {{"w", {n}, src.data()}});
  SafetensorsReader r(p);
  const int64_t before = rss_file();
  r.read_f32("w", {n}, dst.data());
  // Mapped and kept, the file would add 64 MiB here while the reader lives;
  // dropped block by block it adds at most one 8 MiB block.
  EXPECT_LT(rss_file() - before, int64_t(16) << 20);
  EXPECT_EQ(dst[size_t(n) - 1], 0.25f);
}

// Pages of [from, to) of the file in the page cache (mincore on a mapping of our own).
int64_t cached_pages(const std::string& path, uint64_t from, uint64_t to) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  void* m = ::mmap(nullptr, to, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return -1;
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((to + page - 1) / page);
  int64_t n = -1;
  if (::mincore(m, to, v.data()) == 0) {
    n = 0;
    for (size_t i = from / page; i < v.size(); ++i) n += v[i] & 1;
  }
  ::munmap(m, to);
  return n;
}

// Writes the file, syncs it and asks the kernel to drop it from the cache.
bool write_evicted(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ::fsync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  return cached_pages(path, 0, bytes.size()) == 0;
}

TEST(SafetensorsMapped, NoTensorByteIsReadBeforeTheHeaderIsChecked) {
  // Tensor data from 4 MiB on (readahead of the header's pread may bring in
  // the first pages after it); 'late' is valid in the good file and overlaps
  // 'w' in the bad one, so only a complete header check rejects it.
  const uint64_t n = uint64_t(8) << 20;  // 'w': 8M BF16 = 16 MiB
  const uint64_t gap = uint64_t(4) << 20;
  auto file = [&](uint64_t late_begin) {
    std::string h = "{\"pad\": {\"dtype\": \"F32\", \"shape\": [" + std::to_string(gap / 4) +
                    "], \"data_offsets\": [0, " + std::to_string(gap) +
                    "]}, \"w\": {\"dtype\": \"BF16\", \"shape\": [" + std::to_string(n) +
                    "], \"data_offsets\": [" + std::to_string(gap) + ", " +
                    std::to_string(gap + 2 * n) +
                    "]}, \"z_late\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [" +
                    std::to_string(late_begin) + ", " + std::to_string(late_begin + 8) + "]}}";
    return st_bytes(h, std::string(gap + 2 * n + 8, '\x3f'));
  };
  TempDir dir;
  const std::string good = dir.file("good.safetensors"), bad = dir.file("bad.safetensors");
  const std::string gbytes = file(gap + 2 * n), bbytes = file(gap + 2 * n - 4);
  if (!write_evicted(good, gbytes) || !write_evicted(bad, bbytes))
    GTEST_SKIP() << "the file system keeps " << dir.file("") << " cached (tmpfs?)";
  const uint64_t tensors_from = gbytes.size() - (2 * n + 8);  // where 'w' starts in the file

  EXPECT_NE(error_of([&] { SafetensorsReader r(bad); }).find("overlap"), std::string::npos);
  EXPECT_EQ(cached_pages(bad, tensors_from, bbytes.size()), 0);

  SafetensorsReader r(good);
  EXPECT_EQ(cached_pages(good, tensors_from, gbytes.size()), 0);
  // The test can fail: reading 'w' does bring its pages in.
  std::vector<float> w(n);
  r.read_f32("w", {int64_t(n)}, w.data());
  EXPECT_GT(cached_pages(good, tensors_from, gbytes.size()), 0);
  EXPECT_EQ(bits(w[0]), 0x3f3f0000u);
}

}  // namespace
}  // namespace rat
