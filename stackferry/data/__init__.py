"""The data plane: bytes streamed between clouds, verified end to end, optionally archived."""
