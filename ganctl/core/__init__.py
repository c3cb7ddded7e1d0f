"""What training, evaluation and the commands share: building the parts from a config,
generators and their samples, checkpoints, and the training state."""
