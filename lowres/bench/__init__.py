"""Benchmark suite: `lowres bench CASE` (train, data, checkpoint, scale, decode) with MFU accounting."""
