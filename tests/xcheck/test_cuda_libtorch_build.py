"""The binary scripts/build_cuda_libtorch.sh builds against the pip wheel's CUDA LibTorch: it is
linked to libtorch_cuda, and on this CPU machine it computes the fixture's reference perplexity,
the same as the Debian (CPU LibTorch) build.
"""

import os
import re
import subprocess
import sys
import unittest

import xcheck_util as x

BINARY = os.environ.get("PIPEPRUNE_CUDA_LIBTORCH_BINARY", "")


class CudaLibTorchBuild(unittest.TestCase):
    def test_linked_to_cuda_libtorch_and_same_perplexity(self):
        libraries = subprocess.run(["ldd", BINARY], capture_output=True, text=True, check=True).stdout
        self.assertIn("libtorch_cuda.so", libraries)
        self.assertIn("libc10_cuda.so", libraries)
        out = x.pipeprune("eval", "--model", x.DEMO_MODEL, "--data", x.TEXT, "--seqlen", "256", "--max-chunks", "64",
                          "--device", "cpu", binary=BINARY)
        self.assertAlmostEqual(float(re.search(r"perplexity ([0-9.]+)", out).group(1)), 4.189796, delta=5e-5)


if __name__ == "__main__":
    if not os.path.exists(BINARY):
        print(f"SKIPPED: no CUDA-LibTorch build at {BINARY!r}; scripts/build_cuda_libtorch.sh BUILD_DIR makes it")
        sys.exit(77)
    unittest.main()
