// Errors at the program's boundaries (files, configs, command line).
// Kernels never throw; they assert their shape contracts in debug builds only (RAT_ASSERT).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace rat {

// A user-facing failure: the message is one line naming the file, key or tensor
// and what was expected. The CLI prints it after "error: " and exits non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
[[noreturn]] inline void assert_failed(const char* cond, const char* func, const char* file,
                                       int line) {
  std::fprintf(stderr, "%s:%d: %s: kernel contract violated: %s\n", file, line, func, cond);
  std::abort();
}
}  // namespace detail

}  // namespace rat

// A kernel's shape contract (H % G == 0, even P, ld >= width, non-null pointers), checked at
// the kernel's entry. A violation is a bug in the caller, not bad input, so it aborts with the
// condition's text instead of throwing. Under NDEBUG (Release) it compiles to nothing: the
// condition is type-checked but never evaluated, so hot paths pay no branch.
#ifdef NDEBUG
#define RAT_ASSERT(cond) static_cast<void>(sizeof(!(cond)))
#else
#define RAT_ASSERT(cond)         \
  ((cond) ? static_cast<void>(0) \
          : ::rat::detail::assert_failed(#cond, __func__, __FILE__, __LINE__))
#endif
