// The table of vector kernels behind runtime instruction-set dispatch
// (kernels/isa.h): one const table per instruction set, each defined in its
// own translation unit compiled for that set (isa_avx512.cc, isa_avx2.cc,
// isa_generic.cc, flags in CMakeLists.txt), and one pointer to the table in
// use, chosen once at start. The public wrappers (vec_math.h,
// decode_attention.h, gemv.cc, activations.cc, gemm.cc's to_bf16,
// ceilings.cc) call through it; a null entry means "no vector kernel on this
// instruction set", and the caller takes its scalar or oneDNN path.
#pragma once

#include <atomic>
#include <cstdint>

namespace rat {

struct IsaKernels {
  const char* name;  // "avx512", "avx2", "generic"
  // vec_math.h
  void (*vec_exp)(const float* x, float* y, int64_t n);
  void (*vec_sigmoid)(const float* x, const float* b, float* y, int64_t n);
  float (*vec_max)(const float* x, int64_t n);
  float (*vec_exp_affine_sum)(float* x, int64_t n, float a, float b);
  void (*vec_exp_affine)(float* x, int64_t n, float a, float b);
  void (*vec_softmax_grad)(const float* p, float* ds, int64_t n, float d, float a);
  float (*vec_dot)(const float* x, const float* y, int64_t n);
  // decode_attention.h
  float (*dot_row_bf16)(const float* q, const uint16_t* k, int64_t P);
  void (*decode_attend_f32)(const float* q, const float* k, const float* v, int64_t n,
                            const float* k_extra, const float* v_extra, int64_t P, float scale,
                            float* scores, float* o);
  void (*decode_attend_bf16)(const float* q, const uint16_t* k, const uint16_t* v, int64_t n,
                             const float* k_extra, const float* v_extra, int64_t P, float scale,
                             float* scores, float* o);
  // activations.cc: x Phi(x) and its derivative times da over n floats (null: libm's erf).
  void (*gelu_forward)(const float* h, float* a, int64_t n);
  void (*gelu_backward)(const float* h, const float* da, float* dh, int64_t n);
  // gemv.cc (null: oneDNN takes every shape). xs: x packed as gemv.cc
  // describes; any M >= 1, each row computed as if alone; all threads (an
  // OpenMP loop over row groups).
  void (*gemv_f32)(const float* xs, int64_t M, const float* W, int64_t ldw, int64_t N, int64_t K,
                   float* y, int64_t ldy, float beta);
  void (*gemv_bf16)(const float* xs, int64_t M, const uint16_t* W, int64_t ldw, int64_t N,
                    int64_t K, float* y, int64_t ldy, float beta);
  // gemm.cc: round to nearest even fp32 -> bf16 (every table gives the same bits).
  void (*to_bf16)(const float* x, uint16_t* y, int64_t n);
  // ceilings.cc: the sum of n floats read as fast as this set can (n % 128 == 0).
  float (*read_sum)(const float* x, int64_t n);
};

#if defined(__x86_64__)
extern const IsaKernels kIsaAvx512Kernels;
extern const IsaKernels kIsaAvx2Kernels;
#endif
extern const IsaKernels kIsaGenericKernels;

enum class Isa;
// One set's table, whichever is in use (tests compare the sets; only call
// its kernels where isa_supported(isa)).
const IsaKernels& isa_table(Isa isa);

namespace isa_detail {
extern std::atomic<const IsaKernels*> g_kernels;  // null until chosen
const IsaKernels& choose();                       // chooses (once; idempotent)
}  // namespace isa_detail

// The table in use.
inline const IsaKernels& isa_kernels() {
  const IsaKernels* k = isa_detail::g_kernels.load(std::memory_order_relaxed);
  return k ? *k : isa_detail::choose();
}

#if defined(__x86_64__)
// Whether the AVX-512 table is the one in use (vec_math.h's inlined fast path).
inline bool isa_avx512_in_use() {
  return isa_detail::g_kernels.load(std::memory_order_relaxed) == &kIsaAvx512Kernels;
}
#endif

}  // namespace rat
