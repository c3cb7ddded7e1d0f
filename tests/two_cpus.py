"""`python -m tests.two_cpus <ganctl args>`: ganctl with the CPU split into two logical devices,
so MirroredStrategy has two replicas on a machine without GPUs (set before TF initialises)."""
from __future__ import annotations

import sys

import tensorflow as tf

if __name__ == "__main__":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ganctl.cli import main

    main(sys.argv[1:])
