// Compiled with the kernels layer's include paths by the CTest `layers_build`,
// which expects the build to stop at the third include: the first two prove the
// paths of kernels and util are there, the third that model's is not.
#include "kernels/types.h"
#include "util/error.h"
#include "model/config.h"
