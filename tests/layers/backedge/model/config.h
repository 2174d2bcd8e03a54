// Fixture of the CTest `layers_script`: model may include kernels.
#include <kernels/ok.h>
