"""imgret eval: text-to-image recall on captioned datasets (metrics, protocol, datasets)."""
