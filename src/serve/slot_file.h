// One slot of a DecodeState as a file (`POST /slots/ID?action=save|restore`):
// the tokens the slot holds and every layer's state of that slot after them,
// the rows copy_slot copies (model/decode_state.h): RAT's finished chunks'
// kt, vt and the running kt, vt; attention's K, V of the held positions; the
// local attention ring; the RNN's h.
//
// Layout (little-endian), version 1:
//   "RATSLOT\0", u32 version, u32 flags (1: bf16 cache rows),
//   u64 model key (model_key()), i64 ctx (the decoder's max_len: it sets the
//   cache's row counts), i64 n tokens, i64 state bytes,
//   i32 tokens[n], the state bytes (the spans in layer order),
//   u64 FNV-1a of everything before it.
// Restoring checks every field against the running server and the checksum
// before writing anything into the state, so a bad file changes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/decode_state.h"

namespace rat::serve {

// What identifies a model for slot files: FNV-1a of its config.yaml's bytes
// and the size of its model.safetensors (weights are not hashed: reading
// gigabytes at start would slow every start down).
uint64_t model_key(const std::string& model_dir);

// Bytes of one slot's state after len tokens (the file's state part): what a
// slot keeps for prefix reuse.
int64_t slot_state_bytes(DecodeState& st, int64_t len);

// Writes slot `slot` (holding tokens) to path atomically; returns the bytes written.
int64_t save_slot(const std::string& path, DecodeState& st, int64_t slot,
                  const std::vector<int32_t>& tokens, uint64_t key);

// Reads path into slot `slot`; returns the tokens it holds. Throws rat::Error
// naming the file and what does not match (nothing written then).
std::vector<int32_t> restore_slot(const std::string& path, DecodeState& st, int64_t slot,
                                  uint64_t key);

}  // namespace rat::serve
