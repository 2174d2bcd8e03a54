// safetensors files: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {...}},
// then the raw little-endian tensor bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rat {

enum class DType { kF32, kBF16, kF16 };

const char* dtype_name(DType d);  // "F32", "BF16", "F16" as in the header JSON
int64_t dtype_size(DType d);      // bytes per element
// IEEE binary16 bits -> float, exact (subnormals, infinities, NaN payloads).
float half_to_float(uint16_t h);
// "[384, 64]": how shapes appear in messages.
std::string shape_str(const std::vector<int64_t>& shape);

struct TensorInfo {
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
  int64_t numel() const;
};

// Parsed and validated on open: header JSON well formed, every dtype known
// (F32, BF16, F16), offsets inside the file, non-overlapping, and each
// tensor's byte size = numel * dtype size. Errors name the file and tensor.
//
// The header is read with pread; only once it has passed every check is the
// file mapped (read-only, MAP_PRIVATE), so no tensor byte is touched before
// then. Tensors are converted straight from the mapping into their final
// place when asked for, and the mapping's pages are dropped block by block
// behind the conversion: loading a model holds its weights once, plus one
// 8 MiB block of the file, not the file beside the weights.
//
// What the size checks cover, and what they cannot: the file's size is taken
// with fstat before mapping and every offset is checked against it, so a
// file that is short or whose header lies about offsets is a rat::Error
// before any access. A file truncated by another process AFTER it was opened
// would make a later access to the vanished pages raise SIGBUS (pread used
// to report it as a short read); guarding that would need a SIGBUS handler
// around every copy, which a library should not install. Bytes rewritten in
// place underneath (same size) are read as whatever they are then, as with
// pread: the format has no checksum.
class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;
  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;  // throws if absent
  std::vector<std::string> names() const;
  // Converts to fp32 into dst (numel floats). Checks that the stored shape
  // equals `expect_shape` and throws naming the tensor and both shapes if not.
  void read_f32(const std::string& name, const std::vector<int64_t>& expect_shape,
                float* dst) const;
  // Elements [first, first + count) of the flattened tensor only (comparing
  // a big tensor in pieces without a whole-tensor buffer); same shape check.
  void read_f32_part(const std::string& name, const std::vector<int64_t>& expect_shape,
                     int64_t first, int64_t count, float* dst) const;

 private:
  void convert(const TensorInfo& t, int64_t first, int64_t count, float* dst) const;

  std::string path_;
  std::map<std::string, TensorInfo> tensors_;
  const uint8_t* map_ = nullptr;  // the whole file, read-only
  uint64_t map_size_ = 0;
  uint64_t data_offset_ = 0;  // where the data section starts in the file
};

struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;  // fp32 source
};

// Writes atomically (util/atomic_file.h: `path + ".tmp"`, fsync, rename, fsync
// of the directory). dtype F32 or BF16.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       DType dtype = DType::kF32);

}  // namespace rat
