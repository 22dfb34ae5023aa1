"""`lfr eval`: identification accuracy (TPIR/FPIR, DET) through the real Triton models and Milvus."""
