// Compiles the shared precompiled header once; every other target reuses it.
