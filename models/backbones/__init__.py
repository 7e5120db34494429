"""Frame encoders: (B, M, C, H, W) clips -> (B, M, D) frame features."""
