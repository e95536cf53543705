"""The simulated guest: a 64-bit Linux-like kernel, its processes and its devices."""
