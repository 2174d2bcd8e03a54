// Fixture of the CTest `layers_script`: allowed includes, which must pass.
#include <vector>
#include "kernels/other.h"
#include "util/error.h"
#include "nlohmann/json.hpp"
