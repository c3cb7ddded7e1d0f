"""ganctl: train, sample and evaluate GANs with Keras 3 and Hydra."""
# The one place the version is written: pyproject.toml reads it ([tool.setuptools.dynamic]).
__version__ = "0.1.0"
