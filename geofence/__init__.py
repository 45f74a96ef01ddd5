"""Cell catalogue, fences, compilation of fences to cells, and Numba fence matching."""
