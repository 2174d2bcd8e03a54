#include "serve/slot_file.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "util/atomic_file.h"
#include "util/error.h"

namespace rat::serve {

namespace {

constexpr char kMagic[8] = {'R', 'A', 'T', 'S', 'L', 'O', 'T', '\0'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 8 + 4 + 4 + 8 + 8 + 8 + 8;

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

using Span = std::function<void(char* data, size_t bytes)>;

// Every span of memory that holds slot `slot`'s state after len tokens, in a
// fixed order (the layout of model/decode_state.h, as copy_slot walks it).
void for_each_span(DecodeState& st, int64_t slot, int64_t len, const Span& f) {
  const int64_t S = st.max_batch;
  auto kv_rows = [&](KvRows& kv, int64_t at, int64_t n) {
    if (kv.bf16) {
      f(reinterpret_cast<char*>(kv.k16.data() + at), size_t(n) * 2);
      f(reinterpret_cast<char*>(kv.v16.data() + at), size_t(n) * 2);
    } else {
      f(reinterpret_cast<char*>(kv.k.data() + at), size_t(n) * 4);
      f(reinterpret_cast<char*>(kv.v.data() + at), size_t(n) * 4);
    }
  };
  auto row = [&](std::vector<float>& v) {
    const int64_t w = int64_t(v.size()) / S;
    f(reinterpret_cast<char*>(v.data() + slot * w), size_t(w) * 4);
  };
  for (RatState& s : st.rat) {
    if (s.heads == 0) continue;
    const int64_t D = int64_t(s.run_k.size()) / S;
    const int64_t P = D / s.heads, rows = std::min(s.chunks, len / s.chunk_size);
    for (int64_t h = 0; h < s.heads; ++h) kv_rows(s.kv, (h * S + slot) * s.chunks * P, rows * P);
    row(s.run_k), row(s.run_v);
  }
  for (auto* list : {&st.attention, &st.local})
    for (KvState& s : *list) {
      if (s.heads == 0) continue;
      const int64_t per_slot = int64_t(s.kv.bf16 ? s.kv.k16.size() : s.kv.k.size()) / S;
      const int64_t P = per_slot / (s.heads * s.rows), rows = std::min(len, s.rows);
      for (int64_t h = 0; h < s.heads; ++h)
        kv_rows(s.kv, (slot * s.heads + h) * s.rows * P, rows * P);
    }
  for (RnnState& s : st.rnn) row(s.h);
}

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <class T>
T get(const std::string& in, size_t& at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof(T));
  at += sizeof(T);
  return v;
}

}  // namespace

uint64_t model_key(const std::string& model_dir) {
  const std::filesystem::path dir(model_dir);
  std::ifstream f(dir / "config.yaml", std::ios::binary);
  const std::string cfg((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::error_code ec;
  const uint64_t weights = std::filesystem::file_size(dir / "model.safetensors", ec);
  const uint64_t h = fnv1a(cfg.data(), cfg.size());
  return fnv1a(&weights, sizeof(weights), h);
}

int64_t slot_state_bytes(DecodeState& st, int64_t len) {
  int64_t n = 0;
  for_each_span(st, 0, len, [&](char*, size_t b) { n += int64_t(b); });
  return n;
}

int64_t save_slot(const std::string& path, DecodeState& st, int64_t slot,
                  const std::vector<int32_t>& tokens, uint64_t key) {
  const int64_t len = int64_t(tokens.size());
  std::string out(kMagic, 8);
  put(out, kVersion);
  put(out, uint32_t(st.bf16 ? 1 : 0));
  put(out, key);
  put(out, st.max_len);
  put(out, len);
  put(out, slot_state_bytes(st, len));
  out.append(reinterpret_cast<const char*>(tokens.data()), tokens.size() * sizeof(int32_t));
  for_each_span(st, slot, len, [&](char* p, size_t b) { out.append(p, b); });
  put(out, fnv1a(out.data(), out.size()));
  AtomicFile f(path);
  f.write(out);
  f.commit();
  return int64_t(out.size());
}

std::vector<int32_t> restore_slot(const std::string& path, DecodeState& st, int64_t slot,
                                  uint64_t key) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open the slot file");
  const std::string in((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto bad = [&](const std::string& why) { return Error(path + ": " + why); };
  if (in.size() < kHeader + 8 || std::memcmp(in.data(), kMagic, 8) != 0)
    throw bad("not a rat slot file");
  size_t at = 8;
  const auto version = get<uint32_t>(in, at), flags = get<uint32_t>(in, at);
  const auto file_key = get<uint64_t>(in, at);
  const auto ctx = get<int64_t>(in, at), len = get<int64_t>(in, at), bytes = get<int64_t>(in, at);
  if (version != kVersion)
    throw bad("slot file version " + std::to_string(version) + ", expected " +
              std::to_string(kVersion));
  if (file_key != key) throw bad("saved from another model (config or weights differ)");
  if (ctx != st.max_len)
    throw bad("saved with --ctx " + std::to_string(ctx) + ", this server runs --ctx " +
              std::to_string(st.max_len));
  if ((flags & 1) != (st.bf16 ? 1u : 0u))
    throw bad(std::string("saved with --cache-dtype ") + (flags & 1 ? "bf16" : "f32") +
              ", this server runs the other");
  if (len < 1 || len >= ctx) throw bad("token count " + std::to_string(len) + " out of range");
  if (bytes != slot_state_bytes(st, len)) throw bad("state size does not match this model");
  if (in.size() != kHeader + size_t(len) * 4 + size_t(bytes) + 8)
    throw bad("truncated or overlong (" + std::to_string(in.size()) + " bytes)");
  uint64_t sum;
  std::memcpy(&sum, in.data() + in.size() - 8, 8);
  if (sum != fnv1a(in.data(), in.size() - 8)) throw bad("checksum mismatch (corrupt file)");
  std::vector<int32_t> tokens(static_cast<size_t>(len));
  std::memcpy(tokens.data(), in.data() + at, size_t(len) * 4);
  at += size_t(len) * 4;
  for_each_span(st, slot, len, [&](char* p, size_t b) {
    std::memcpy(p, in.data() + at, b);
    at += b;
  });
  return tokens;
}

}  // namespace rat::serve
