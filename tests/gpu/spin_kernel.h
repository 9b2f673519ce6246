// A kernel that holds a stream until the host sets a flag: stands in for a
// collective whose peer never arrives.
#pragma once

#include <cuda_runtime.h>

void launch_spin_until(volatile int* flag, cudaStream_t stream);
