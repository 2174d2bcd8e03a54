// Fixture of the CTest `layers_script`: a back-edge and a relative include.
#include "kernels/ok.h"
#include "model/config.h"
#include "../model/config.h"
