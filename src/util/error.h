// Errors at the program's boundaries (files, configs, command line).
// Kernels never throw; they assert in debug builds only.
#pragma once

#include <stdexcept>
#include <string>

namespace rat {

// A user-facing failure: the message is one line naming the file, key or tensor
// and what was expected. The CLI prints it after "error: " and exits non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

}  // namespace rat
