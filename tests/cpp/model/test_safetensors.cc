// safetensors: exact F32 round trip, BF16 rounding, F16 decoding from known
// bit patterns, the writer's layout and atomicity, and one test per kind of
// malformed file, asserting the message names the file, tensor and expectation.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/safetensors.h"
#include "test_util.h"

namespace rat {
namespace {

using nlohmann::json;
using rat::testing::error_of;
using rat::testing::slurp;
using rat::testing::TempDir;

// [u64 header length][header][data], as the format lays it out.
std::string st_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char(uint8_t(n >> (8 * i)));
  return out + header + data;
}

// Opening `header` with `data_size` zero bytes of data must fail; returns the message.
std::string open_error(const std::string& header, size_t data_size = 64) {
  TempDir dir;
  std::string p = dir.write("model.safetensors", st_bytes(header, std::string(data_size, '\0')));
  std::string msg = error_of([&] { SafetensorsReader r(p); });
  EXPECT_HAS(msg, p + ": ");
  return msg;
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

TEST(SafetensorsRoundTrip, F32IsExact) {
  TempDir dir;
  std::vector<float> a = {1.f,
                          -2.5f,
                          3.14159265f,
                          1e-40f /*subnormal*/,
                          -0.f,
                          std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::max()};
  std::vector<float> b(3 * 5);
  for (size_t i = 0; i < b.size(); ++i) b[i] = std::sin(float(i)) * 1e3f;
  float scalar = 42.f;
  std::string p = dir.file("model.safetensors");
  write_safetensors(p, {{"zeta.weight", {3, 5}, b.data()},
                        {"alpha", {7}, a.data()},
                        {"scalar", {}, &scalar},
                        {"empty", {0, 4}, nullptr}});
  SafetensorsReader r(p);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"alpha", "empty", "scalar", "zeta.weight"}));
  EXPECT_EQ(r.info("alpha").dtype, DType::kF32);
  EXPECT_EQ(r.info("zeta.weight").numel(), 15);
  EXPECT_EQ(r.info("scalar").numel(), 1);
  EXPECT_EQ(r.info("empty").numel(), 0);
  std::vector<float> a2(7), b2(15);
  float s2 = 0;
  r.read_f32("alpha", {7}, a2.data());
  r.read_f32("zeta.weight", {3, 5}, b2.data());
  r.read_f32("scalar", {}, &s2);
  r.read_f32("empty", {0, 4}, nullptr);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(bits(a[i]), bits(a2[i])) << i;
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(bits(b[i]), bits(b2[i])) << i;
  EXPECT_EQ(s2, 42.f);
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
}

TEST(SafetensorsRoundTrip, Bf16RoundsToNearestEven) {
  TempDir dir;
  std::vector<float> x = {1.f,
                          1.f + 0x1p-8f,      // tie between 1 and 1+2^-7: even is 1
                          1.f + 3 * 0x1p-8f,  // tie between 1+2^-7 and 1+2^-6: even is 1+2^-6
                          1.f + 0x1p-8f + 0x1p-20f,  // just above the tie: up
                          -3.3f,
                          1e-3f,
                          65504.f,
                          std::numeric_limits<float>::infinity()};
  std::vector<float> many(1000);
  for (size_t i = 0; i < many.size(); ++i) many[i] = std::cos(float(i) * 0.37f) * float(i);
  std::string p = dir.file("model.safetensors");
  write_safetensors(p, {{"x", {int64_t(x.size())}, x.data()}, {"many", {10, 100}, many.data()}},
                    DType::kBF16);
  SafetensorsReader r(p);
  EXPECT_EQ(r.info("x").dtype, DType::kBF16);
  EXPECT_EQ(r.info("x").end - r.info("x").begin, x.size() * 2);
  std::vector<float> y(x.size()), m(many.size());
  r.read_f32("x", {int64_t(x.size())}, y.data());
  r.read_f32("many", {10, 100}, m.data());
  EXPECT_EQ(y[0], 1.f);
  EXPECT_EQ(y[1], 1.f);
  EXPECT_EQ(y[2], 1.f + 0x1p-6f);
  EXPECT_EQ(y[3], 1.f + 0x1p-7f);
  EXPECT_TRUE(std::isinf(y[7]));
  for (size_t i = 0; i < many.size(); ++i) {
    EXPECT_LE(std::fabs(m[i] - many[i]), std::fabs(many[i]) * 0x1p-8f) << i;
    EXPECT_EQ(bits(m[i]) & 0xffffu, 0u) << i;  // representable in bf16
  }
}

// Reference decoding of binary16 in double arithmetic, for every bit pattern.
double half_reference(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
  double v;
  if (exp == 0)
    v = std::ldexp(mant, -24);
  else if (exp == 31)
    v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else
    v = std::ldexp(1024 + mant, exp - 25);
  return sign ? -v : v;
}

TEST(SafetensorsF16, HalfToFloatMatchesReferenceForAllBitPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float got = half_to_float(uint16_t(h));
    double want = half_reference(uint16_t(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << std::hex << h;
      EXPECT_EQ(std::signbit(got), bool(h >> 15)) << std::hex << h;
    } else {
      EXPECT_EQ(double(got), want) << std::hex << h;
      EXPECT_EQ(std::signbit(got), bool(h >> 15)) << std::hex << h;  // keeps -0
    }
  }
}

TEST(SafetensorsF16, ReadsKnownBitPatternsFromFile) {
  // Bytes as PyTorch's torch.float16 stores them (little-endian binary16).
  const uint16_t h[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400,
                        0x7c00, 0xfc00, 0x7e00, 0x8000, 0x3555, 0x3800};
  const float want[] = {1.f,      -2.f,      65504.f, 0x1p-24f, 1023 * 0x1p-24f, 0x1p-14f,
                        INFINITY, -INFINITY, NAN,     -0.f,     0.333251953125f, 0.5f};
  std::string data(reinterpret_cast<const char*>(h), sizeof(h));
  std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[3,4],"data_offsets":[0,24]}})";
  TempDir dir;
  std::string p = dir.write("f16.safetensors", st_bytes(header, data));
  SafetensorsReader r(p);
  EXPECT_EQ(r.info("w").dtype, DType::kF16);
  float got[12];
  r.read_f32("w", {3, 4}, got);
  for (int i = 0; i < 12; ++i) {
    if (std::isnan(want[i]))
      EXPECT_TRUE(std::isnan(got[i])) << i;
    else
      EXPECT_EQ(bits(got[i]), bits(want[i])) << i;
  }
}

// Cross-check with bytes PyTorch itself produces, when python3 + torch exist.
TEST(SafetensorsF16, ReadsHalfAndBf16BytesWrittenByTorch) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 with torch not available";
  TempDir dir;
  std::string p = dir.file("torch.safetensors");
  std::string script =
      "import json,struct,torch\n"
      "x=torch.linspace(-70000,70000,101,dtype=torch.float64).float()\n"
      "x[0]=1e-6; x[1]=-3e-8\n"
      "h=x.half(); b=x.bfloat16()\n"
      "hb=h.numpy().tobytes(); bb=b.view(torch.int16).numpy().tobytes()\n"
      "head={'h':{'dtype':'F16','shape':[101],'data_offsets':[0,len(hb)]},"
      "'b':{'dtype':'BF16','shape':[101],'data_offsets':[len(hb),len(hb)+len(bb)]}}\n"
      "hs=json.dumps(head).encode()\n"
      "open('" +
      p +
      "','wb').write(struct.pack('<Q',len(hs))+hs+hb+bb)\n"
      "open('" +
      p +
      ".txt','w').write('\\n'.join(repr(float(v)) for v in "
      "list(h.float())+list(b.float())))\n";
  std::string sp = dir.write("make.py", script);
  ASSERT_EQ(std::system(("/usr/bin/python3 " + sp).c_str()), 0);
  SafetensorsReader r(p);
  std::vector<float> h(101), b(101);
  r.read_f32("h", {101}, h.data());
  r.read_f32("b", {101}, b.data());
  std::istringstream want(slurp(p + ".txt"));
  for (int i = 0; i < 202; ++i) {
    std::string line;
    std::getline(want, line);
    float w = std::stof(line);  // repr() spells infinities "inf", which stof reads
    float g = i < 101 ? h[i] : b[i - 101];
    if (std::isinf(w))
      EXPECT_EQ(g, w) << i;
    else
      EXPECT_EQ(bits(g), bits(w)) << i << " " << line;
  }
}

TEST(SafetensorsWriter, HeaderIsSortedAlignedAndContiguous) {
  TempDir dir;
  std::vector<float> a(6, 1.f), b(4, 2.f), c(1, 3.f);
  std::string p = dir.file("m.safetensors");
  write_safetensors(p, {{"c", {1}, c.data()}, {"a", {2, 3}, a.data()}, {"b", {4}, b.data()}},
                    DType::kBF16);
  std::string bytes = slurp(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u);
  json h = json::parse(bytes.substr(8, n));
  EXPECT_EQ(h["__metadata__"]["format"], "pt");
  EXPECT_EQ(h["a"]["dtype"], "BF16");
  EXPECT_EQ(h["a"]["shape"], json({2, 3}));
  EXPECT_EQ(h["a"]["data_offsets"], json({0, 12}));
  EXPECT_EQ(h["b"]["data_offsets"], json({12, 20}));
  EXPECT_EQ(h["c"]["data_offsets"], json({20, 22}));
  EXPECT_EQ(bytes.size(), 8 + n + 22);
  // Names appear in sorted order in the text itself.
  std::string text = bytes.substr(8, n);
  EXPECT_LT(text.find("\"a\""), text.find("\"b\""));
  EXPECT_LT(text.find("\"b\""), text.find("\"c\""));
}

TEST(SafetensorsWriter, UnwritableDirectoryNamesPath) {
  std::vector<float> a(2, 1.f);
  std::string p = "/nonexistent_rat_dir/model.safetensors";
  std::string msg = error_of([&] { write_safetensors(p, {{"a", {2}, a.data()}}); });
  EXPECT_HAS(msg, p + ": cannot create temporary file " + p + ".tmp");
  EXPECT_HAS(msg, "No such file or directory");
}

TEST(SafetensorsWriter, FailureLeavesPreviousFileIntact) {
  TempDir dir;
  std::vector<float> a = {1.f, 2.f}, b = {9.f, 9.f};
  std::string p = dir.file("model.safetensors");
  write_safetensors(p, {{"a", {2}, a.data()}});
  const std::string before = slurp(p);
  // The temporary cannot be created: a directory sits at its name.
  std::filesystem::create_directory(p + ".tmp");
  std::string msg = error_of([&] { write_safetensors(p, {{"a", {2}, b.data()}}); });
  EXPECT_HAS(msg, p + ": ");
  EXPECT_EQ(slurp(p), before);
  std::filesystem::remove(p + ".tmp");

  // The final rename fails: the target is a non-empty directory. The
  // temporary must be gone afterwards.
  std::string q = dir.file("dir.safetensors");
  std::filesystem::create_directories(q + "/keep");
  msg = error_of([&] { write_safetensors(q, {{"a", {2}, b.data()}}); });
  EXPECT_HAS(msg, q + ": renaming " + q + ".tmp to " + q + " failed");
  EXPECT_FALSE(std::filesystem::exists(q + ".tmp"));
}

TEST(SafetensorsWriter, FullDiskNamesPathAndRemovesTemporary) {
  // /dev/full accepts open and fails every write with ENOSPC; a symlink at the
  // temporary's name routes the writer there.
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "/dev/full not available";
  TempDir dir;
  std::string p = dir.file("model.safetensors");
  std::filesystem::create_symlink("/dev/full", p + ".tmp");
  std::vector<float> big(1 << 16, 1.f);
  std::string msg = error_of([&] { write_safetensors(p, {{"a", {1 << 16}, big.data()}}); });
  EXPECT_HAS(msg, p + ": ");
  EXPECT_HAS(msg, "No space left on device");
  EXPECT_FALSE(std::filesystem::exists(p));
  EXPECT_FALSE(std::filesystem::is_symlink(p + ".tmp"));
}

TEST(SafetensorsWriter, RejectsBadInput) {
  TempDir dir;
  std::string p = dir.file("m.safetensors");
  std::vector<float> a(4, 0.f);
  EXPECT_HAS(error_of([&] {
               write_safetensors(p, {{"a", {4}, a.data()}, {"a", {4}, a.data()}});
             }),
             p + ": tensor 'a' is given twice, expected unique names");
  EXPECT_HAS(error_of([&] {
               write_safetensors(p, {{"a", {-4}, a.data()}});
             }),
             p + ": tensor 'a' has shape [-4], expected non-negative sizes");
  EXPECT_HAS(error_of([&] {
               write_safetensors(p, {{"a", {4}, nullptr}});
             }),
             p + ": tensor 'a' has no data");
  EXPECT_HAS(error_of([&] {
               write_safetensors(p, {{"a", {4}, a.data()}}, DType::kF16);
             }),
             p + ": cannot write dtype F16, expected F32 or BF16");
  EXPECT_FALSE(std::filesystem::exists(p));
}

// --- malformed files --------------------------------------------------------

TEST(SafetensorsErrors, MissingFile) {
  std::string msg = error_of([] { SafetensorsReader r("/nonexistent_rat_dir/m.safetensors"); });
  EXPECT_HAS(msg, "/nonexistent_rat_dir/m.safetensors: cannot open (No such file or directory)");
}

TEST(SafetensorsErrors, ShorterThanEightBytes) {
  TempDir dir;
  std::string p = dir.write("m.safetensors", std::string("\x05\0\0\0\0", 5));
  EXPECT_HAS(error_of([&] { SafetensorsReader r(p); }),
             p + ": file is 5 bytes, shorter than the 8-byte header length");
}

TEST(SafetensorsErrors, HeaderLengthLargerThanFile) {
  TempDir dir;
  std::string bytes = st_bytes("{}", "");
  bytes[0] = char(0x40);  // claims 64 header bytes, has 2
  std::string p = dir.write("m.safetensors", bytes);
  EXPECT_HAS(error_of([&] { SafetensorsReader r(p); }),
             p + ": header length 64 is larger than the 2 bytes after it");
}

TEST(SafetensorsErrors, HeaderNotJsonOrNotObject) {
  EXPECT_HAS(open_error("{\"a\": {\"dtype\": "), "header is not valid JSON");
  EXPECT_HAS(open_error("{\"a\": {\"dtype\": "), "expected a JSON object");
  EXPECT_HAS(open_error("[1, 2, 3]"), "header is JSON array, expected a JSON object of tensors");
  EXPECT_HAS(open_error(R"({"w": [1, 2]})"),
             "tensor 'w': entry is [1,2], expected an object {dtype, shape, data_offsets}");
}

TEST(SafetensorsErrors, MissingFields) {
  EXPECT_HAS(open_error(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})"),
             "tensor 'w': missing 'dtype', expected one of F32, BF16, F16");
  EXPECT_HAS(open_error(R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})"),
             "tensor 'w': missing 'shape', expected a list of non-negative integers");
  EXPECT_HAS(open_error(R"({"w": {"dtype": "F32", "shape": [2]}})"),
             "tensor 'w': missing 'data_offsets', expected [begin, end]");
}

TEST(SafetensorsErrors, UnsupportedDtype) {
  std::string msg = open_error(
      R"({"embedding.wte.weight": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}})");
  EXPECT_HAS(msg,
             "tensor 'embedding.wte.weight': unsupported dtype 'I64', expected one of F32, "
             "BF16, F16");
  EXPECT_HAS(open_error(R"({"w": {"dtype": 3, "shape": [2], "data_offsets": [0, 8]}})"),
             "tensor 'w': unsupported dtype '3'");
}

TEST(SafetensorsErrors, BadShapeEntries) {
  EXPECT_HAS(open_error(R"({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}})"),
             "tensor 'w': shape [2,-1] has the negative entry -1, expected non-negative integers");
  EXPECT_HAS(
      open_error(R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})"),
      "tensor 'w': shape [2.5] has the non-integer entry 2.5, expected non-negative integers");
  EXPECT_HAS(open_error(R"({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})"),
             "tensor 'w': shape [\"2\"] has the non-integer entry \"2\"");
  EXPECT_HAS(open_error(R"({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})"),
             "tensor 'w': shape is 2, expected a list of non-negative integers");
}

TEST(SafetensorsErrors, BadOffsets) {
  EXPECT_HAS(open_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [60, 68]}})"),
             "tensor 'w': data_offsets [60,68] reach past the 64-byte data section (the header "
             "lies about offsets), expected end <= 64");
  EXPECT_HAS(open_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})"),
             "tensor 'w': data_offsets [8,0] have begin > end, expected begin <= end");
  EXPECT_HAS(
      open_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})"),
      "tensor 'w': data_offsets is [-8,0], expected [begin, end] with non-negative integers");
  EXPECT_HAS(open_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})"),
             "tensor 'w': data_offsets is [0], expected [begin, end]");
}

TEST(SafetensorsErrors, ByteSizeDisagreesWithShape) {
  EXPECT_HAS(open_error(R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 24]}})"),
             "tensor 'w': data_offsets [0,24] hold 24 bytes but shape [2, 3] of BF16 needs 12, "
             "expected end - begin = numel * dtype size");
  // numel * size overflowing 64 bits is reported, not wrapped.
  EXPECT_HAS(
      open_error(
          R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})"),
      "needs more than 2^64");
}

TEST(SafetensorsErrors, OverlappingTensors) {
  std::string msg = open_error(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                   "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})");
  EXPECT_HAS(msg,
             "tensor 'b': bytes [8, 24) overlap tensor 'a' at [0, 16), expected disjoint "
             "data_offsets");
  // Empty tensors sit anywhere without overlapping.
  TempDir dir;
  std::string p = dir.write(
      "m.safetensors", st_bytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                   "e": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]}})",
                                std::string(16, '\0')));
  EXPECT_NO_THROW(SafetensorsReader r(p));
}

TEST(SafetensorsErrors, ReadShapeMismatchAndMissingTensor) {
  TempDir dir;
  std::vector<float> w(384 * 64, 0.f);
  std::string p = dir.file("model.safetensors");
  const std::string name = "backbone.layers.0.seq_layer.in_proj.weight";
  write_safetensors(p, {{name, {384, 64}, w.data()}});
  SafetensorsReader r(p);
  std::vector<float> dst(448 * 64);
  EXPECT_EQ(error_of([&] {
              r.read_f32(name, {448, 64}, dst.data());
            }),
            p + ": tensor '" + name + "' has shape [384, 64], expected [448, 64]");
  EXPECT_HAS(
      error_of([&] { r.read_f32("head.lm_head.weight", {1}, dst.data()); }),
      p + ": tensor 'head.lm_head.weight' is missing, expected it among the file's 1 tensors");
  EXPECT_FALSE(r.has("head.lm_head.weight"));
  EXPECT_TRUE(r.has(name));
}

TEST(SafetensorsErrors, ControlCharactersInNamesAreEscaped) {
  std::string msg =
      open_error(R"({"bad\nname": {"dtype": "I8", "shape": [1], "data_offsets": [0, 1]}})");
  EXPECT_HAS(msg, "tensor 'bad\\x0aname': unsupported dtype 'I8'");  // error_of checks one line
}

TEST(SafetensorsErrors, MetadataIsIgnored) {
  TempDir dir;
  std::string p =
      dir.write("m.safetensors", st_bytes(R"({"__metadata__": {"format": "pt", "x": "y"},
                   "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                                          std::string("\0\0\x80\x3f", 4)));
  SafetensorsReader r(p);
  EXPECT_EQ(r.names(), std::vector<std::string>{"w"});
  float v = 0;
  r.read_f32("w", {1}, &v);
  EXPECT_EQ(v, 1.f);
}

}  // namespace
}  // namespace rat
