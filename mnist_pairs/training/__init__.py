"""Training one run or a batch of seeds: data, augmentation, random streams, the training loop."""
