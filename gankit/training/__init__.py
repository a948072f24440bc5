"""The pieces of a training recipe beyond the seed's loop: augmentation, regularisers, quality monitor, presets."""
