"""Sources of the compiled kernels (the fused TSSL-BP neuron on the CPU) and how to build them."""
