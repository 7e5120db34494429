"""Models: frame encoders (Dassl backbones), temporal heads (Dassl heads), attention blocks, VideoNet."""
