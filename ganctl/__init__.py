"""ganctl: train, sample and evaluate GANs with Keras 3 and Hydra."""
__version__ = "0.1.0"
