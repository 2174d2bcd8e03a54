// safetensors reader and atomic writer. Every failure is one rat::Error line
// naming the file and, where there is one, the tensor.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "kernels/gemm.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader assumes a little-endian host");

namespace {

using nlohmann::json;

constexpr const char* kSupported = "one of F32, BF16, F16";

// Tensor names come from the file: escape control characters so every
// message stays on one line.
std::string quoted(const std::string& name) {
  std::string out = "'";
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "'";
}

[[noreturn]] void fail_tensor(const std::string& file, const std::string& name,
                              const std::string& what) {
  throw Error(file + ": tensor " + quoted(name) + ": " + what);
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32")
    *out = DType::kF32;
  else if (s == "BF16")
    *out = DType::kBF16;
  else if (s == "F16")
    *out = DType::kF16;
  else
    return false;
  return true;
}

// A JSON value as it reads in a message, kept short.
std::string brief(const json& j) {
  std::string s = j.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

// Reads exactly n bytes at offset `at` or throws naming the file.
void pread_exact(int fd, const std::string& path, void* dst, size_t n, uint64_t at) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, std::min<size_t>(n, size_t(1) << 30), off_t(at));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = errno;
      throw Error(
          path + ": read failed (" +
          (r == 0 ? std::string("unexpected end of file") : std::string(std::strerror(err))) +
          "), expected a readable safetensors file");
    }
    p += r;
    n -= size_t(r);
    at += uint64_t(r);
  }
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Checks one header entry and returns its TensorInfo.
TensorInfo parse_entry(const std::string& file, const std::string& name, const json& e,
                       uint64_t data_size) {
  if (!e.is_object())
    fail_tensor(file, name,
                "entry is " + brief(e) + ", expected an object {dtype, shape, data_offsets}");
  TensorInfo t;

  auto dt = e.find("dtype");
  if (dt == e.end())
    fail_tensor(file, name, std::string("missing 'dtype', expected ") + kSupported);
  if (!dt->is_string() || !parse_dtype(dt->get<std::string>(), &t.dtype)) {
    std::string got = dt->is_string() ? dt->get<std::string>() : brief(*dt);
    fail_tensor(file, name, "unsupported dtype '" + got + "', expected " + kSupported);
  }

  auto sh = e.find("shape");
  if (sh == e.end())
    fail_tensor(file, name, "missing 'shape', expected a list of non-negative integers");
  if (!sh->is_array())
    fail_tensor(file, name,
                "shape is " + brief(*sh) + ", expected a list of non-negative integers");
  for (const json& d : *sh) {
    if (!d.is_number_integer())
      fail_tensor(file, name,
                  "shape " + brief(*sh) + " has the non-integer entry " + brief(d) +
                      ", expected non-negative integers");
    if (d.is_number_unsigned() ? d.get<uint64_t>() > uint64_t(INT64_MAX) : d.get<int64_t>() < 0)
      fail_tensor(file, name,
                  "shape " + brief(*sh) + " has the " +
                      (d.is_number_unsigned() ? "oversized" : "negative") + " entry " + brief(d) +
                      ", expected non-negative integers");
    t.shape.push_back(d.get<int64_t>());
  }

  auto off = e.find("data_offsets");
  if (off == e.end())
    fail_tensor(file, name, "missing 'data_offsets', expected [begin, end] byte offsets");
  if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    fail_tensor(
        file, name,
        "data_offsets is " + brief(*off) + ", expected [begin, end] with non-negative integers");
  t.begin = (*off)[0].get<uint64_t>();
  t.end = (*off)[1].get<uint64_t>();
  if (t.begin > t.end)
    fail_tensor(file, name,
                "data_offsets " + brief(*off) + " have begin > end, expected begin <= end");
  if (t.end > data_size)
    fail_tensor(file, name,
                "data_offsets " + brief(*off) + " reach past the " + std::to_string(data_size) +
                    "-byte data section (the header lies about offsets), expected end <= " +
                    std::to_string(data_size));

  // numel * size, refusing overflow (it must equal end - begin, which fits).
  uint64_t need = uint64_t(dtype_size(t.dtype));
  bool overflow = false;
  for (int64_t d : t.shape) overflow |= __builtin_mul_overflow(need, uint64_t(d), &need);
  if (overflow || need != t.end - t.begin)
    fail_tensor(file, name,
                "data_offsets " + brief(*off) + " hold " + std::to_string(t.end - t.begin) +
                    " bytes but shape " + shape_str(t.shape) + " of " + dtype_name(t.dtype) +
                    " needs " + (overflow ? std::string("more than 2^64") : std::to_string(need)) +
                    ", expected end - begin = numel * dtype size");
  return t;
}

}  // namespace

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
  }
  return "?";
}

int64_t dtype_size(DType d) { return d == DType::kF32 ? 4 : 2; }

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    float mag = float(mant) * 0x1p-24f;
    bits = sign | std::bit_cast<uint32_t>(mag);
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf, or NaN keeping its payload
  } else {
    bits = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t TensorInfo::numel() const { return numel_of(shape); }

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) {
    int err = errno;
    throw Error(path + ": cannot open (" + std::strerror(err) + "), expected a safetensors file");
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(path + ": not a regular file, expected a safetensors file");
  const uint64_t size = uint64_t(st.st_size);
  if (size < 8)
    throw Error(path + ": file is " + std::to_string(size) +
                " bytes, shorter than the 8-byte header length, expected a safetensors file");
  uint8_t len_bytes[8];
  pread_exact(f.fd, path, len_bytes, 8, 0);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > size - 8)
    throw Error(path + ": header length " + std::to_string(header_len) + " is larger than the " +
                std::to_string(size - 8) +
                " bytes after it, expected a safetensors file (truncated or not safetensors?)");
  std::string header(header_len, '\0');
  pread_exact(f.fd, path, header.data(), header_len, 8);
  const uint64_t data_size = size - 8 - header_len;

  json h;
  try {
    h = json::parse(header);
  } catch (const json::parse_error& e) {
    throw Error(path + ": header is not valid JSON (error at byte " + std::to_string(e.byte) +
                " of the " + std::to_string(header_len) + "-byte header), expected a JSON object");
  } catch (
      const json::exception& e) {  // a number out of range (1e999): found by fuzz/safetensors.cc
    throw Error(path + ": header is not valid JSON (" + e.what() + "), expected a JSON object");
  }
  if (!h.is_object())
    throw Error(path + ": header is JSON " + std::string(h.type_name()) +
                ", expected a JSON object of tensors");
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    tensors_.emplace(it.key(), parse_entry(path, it.key(), it.value(), data_size));
  }

  // Overlaps: sorted by start, each non-empty tensor must end before the next starts.
  std::vector<std::pair<const std::string*, const TensorInfo*>> order;
  for (const auto& [name, t] : tensors_)
    if (t.end > t.begin) order.emplace_back(&name, &t);
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    const TensorInfo& prev = *order[i - 1].second;
    const TensorInfo& cur = *order[i].second;
    if (cur.begin < prev.end)
      fail_tensor(path, *order[i].first,
                  "bytes [" + std::to_string(cur.begin) + ", " + std::to_string(cur.end) +
                      ") overlap tensor " + quoted(*order[i - 1].first) + " at [" +
                      std::to_string(prev.begin) + ", " + std::to_string(prev.end) +
                      "), expected disjoint data_offsets");
  }

  // Mapped only now, once every offset is known to lie inside the file, so
  // no tensor byte is touched before the whole header has been checked.
  void* m = ::mmap(nullptr, size_t(size), PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (m == MAP_FAILED) {
    int err = errno;
    throw Error(path + ": cannot map (" + std::strerror(err) +
                "), expected a readable safetensors file");
  }
  // Read front to back once: the kernel may read ahead aggressively and
  // drop pages behind (each read_f32 also drops what it has converted).
  ::madvise(m, size_t(size), MADV_SEQUENTIAL);
  map_ = static_cast<const uint8_t*>(m);
  map_size_ = size;
  data_offset_ = 8 + header_len;
  // The mapping keeps the file's contents reachable; the descriptor closes here.
}

SafetensorsReader::~SafetensorsReader() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_t(map_size_));
}

const TensorInfo& SafetensorsReader::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw Error(path_ + ": tensor " + quoted(name) + " is missing, expected it among the file's " +
                std::to_string(tensors_.size()) + " tensors");
  return it->second;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors_) out.push_back(kv.first);
  return out;
}

void SafetensorsReader::read_f32(const std::string& name, const std::vector<int64_t>& expect_shape,
                                 float* dst) const {
  const TensorInfo& t = info(name);
  if (t.shape != expect_shape)
    throw Error(path_ + ": tensor " + quoted(name) + " has shape " + shape_str(t.shape) +
                ", expected " + shape_str(expect_shape));
  convert(t, 0, t.numel(), dst);
}

void SafetensorsReader::read_f32_part(const std::string& name,
                                      const std::vector<int64_t>& expect_shape, int64_t first,
                                      int64_t count, float* dst) const {
  const TensorInfo& t = info(name);
  if (t.shape != expect_shape)
    throw Error(path_ + ": tensor " + quoted(name) + " has shape " + shape_str(t.shape) +
                ", expected " + shape_str(expect_shape));
  if (first < 0 || count < 0 || first > t.numel() || count > t.numel() - first)
    throw Error(path_ + ": tensor " + quoted(name) + ": elements [" + std::to_string(first) +
                ", +" + std::to_string(count) + ") asked for, expected a range inside its " +
                std::to_string(t.numel()));
  convert(t, first, count, dst);
}

void SafetensorsReader::convert(const TensorInfo& t, int64_t first, int64_t count,
                                float* dst) const {
  const int64_t esize = dtype_size(t.dtype);
  const uint8_t* src = map_ + data_offset_ + t.begin + uint64_t(first * esize);
  // A block of the mapping at a time, its pages dropped once converted: the
  // file's pages then add at most one block to the resident set, not the
  // whole file beside the weights (the page cache still holds them for the
  // next load; MADV_DONTNEED on a read-only private file mapping only unmaps).
  constexpr int64_t kBlockBytes = int64_t(8) << 20;
  const int64_t per_block = kBlockBytes / esize;
  // The kernel maps more than the faulting page (fault-around, whole large
  // folios of the page cache): pages past the block, in the next tensor of
  // the file, which the model may load much later. So the range dropped is
  // the block widened to 2 MiB (the largest folio on x86-64) on each side,
  // kept inside the mapping; a page dropped too early is only faulted in
  // again from the page cache. Measured on a 1.3B F32 file (polled RssFile):
  // dropping 1 MiB blocks alone left up to 215 MiB of the file mapped at
  // once; the widened range leaves about 7 MiB.
  constexpr uintptr_t kAlign = uintptr_t(2) << 20;
  const uintptr_t map_lo = uintptr_t(map_), map_hi = uintptr_t(map_ + map_size_);
  for (int64_t i0 = 0; i0 < count; i0 += per_block) {
    const int64_t m = std::min(per_block, count - i0);
    const uint8_t* s = src + i0 * esize;
    float* d = dst + i0;
    if (t.dtype == DType::kF32) {
      std::memcpy(d, s, size_t(m) * 4);  // unaligned-safe: offsets need not be multiples of 4
    } else {
      for (int64_t i = 0; i < m; ++i) {
        uint16_t raw;
        std::memcpy(&raw, s + 2 * i, 2);
        d[i] = t.dtype == DType::kBF16 ? std::bit_cast<float>(uint32_t(raw) << 16)
                                       : half_to_float(raw);
      }
    }
    const uintptr_t below = uintptr_t(s) & ~(kAlign - 1);
    const uintptr_t lo = below >= map_lo + kAlign ? below - kAlign : map_lo;
    const uintptr_t hi =
        std::min(map_hi, ((uintptr_t(s + m * esize) + kAlign - 1) & ~(kAlign - 1)) + kAlign);
    ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  }
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       DType dtype) {
  if (dtype != DType::kF32 && dtype != DType::kBF16)
    throw Error(path + ": cannot write dtype " + dtype_name(dtype) + ", expected F32 or BF16");
  // Validate everything before touching the disk.
  std::vector<const TensorToWrite*> sorted;
  std::set<std::string> seen;
  for (const TensorToWrite& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      throw Error(path + ": tensor name '" + t.name +
                  "' is reserved or empty, expected a state_dict name");
    if (!seen.insert(t.name).second)
      throw Error(path + ": tensor '" + t.name + "' is given twice, expected unique names");
    for (int64_t d : t.shape)
      if (d < 0)
        throw Error(path + ": tensor '" + t.name + "' has shape " + shape_str(t.shape) +
                    ", expected non-negative sizes");
    const int64_t n = numel_of(t.shape);
    if (n > 0 && t.data == nullptr)
      throw Error(path + ": tensor '" + t.name + "' has no data, expected a pointer to " +
                  std::to_string(n) + " floats");
    sorted.push_back(&t);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorToWrite* a, const TensorToWrite* b) { return a->name < b->name; });

  const int64_t esize = dtype_size(dtype);
  json h = json::object();
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const TensorToWrite* t : sorted) {
    const uint64_t bytes = uint64_t(numel_of(t->shape) * esize);
    h[t->name] = {{"dtype", dtype_name(dtype)},
                  {"shape", t->shape},
                  {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header = h.dump();
  // Pad with spaces so the data section starts 8-byte aligned.
  while ((8 + header.size()) % 8 != 0) header.push_back(' ');

  AtomicFile f(path);
  uint8_t len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  f.write(len_bytes, 8);
  f.write(header.data(), header.size());
  std::vector<uint16_t> buf;
  for (const TensorToWrite* t : sorted) {
    const int64_t n = numel_of(t->shape);
    if (dtype == DType::kF32) {
      f.write(t->data, size_t(n) * 4);
      continue;
    }
    constexpr int64_t kChunk = int64_t(1) << 20;  // bounded scratch for big tensors
    for (int64_t i = 0; i < n; i += kChunk) {
      int64_t m = std::min(kChunk, n - i);
      buf.resize(size_t(m));
      to_bf16(t->data + i, buf.data(), m);
      f.write(buf.data(), size_t(m) * 2);
    }
  }
  f.commit();
}

}  // namespace rat
