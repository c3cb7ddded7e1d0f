"""The history of generated images a CycleGAN discriminator learns from (Shrivastava et al.
2017; Zhu et al. 2017, section 4): D sees older fakes too, which damps oscillation.

All of it lives in variables (the stored images, how many are stored, the random generator's
state), so a checkpoint holds it and a resumed run draws exactly what an unbroken one would;
`query` runs eagerly and inside tf.function.
"""
from __future__ import annotations

import tensorflow as tf

DEFAULT_SIZE = 50   # the authors' pool_size


class ImagePool(tf.Module):
    """Until `size` fakes are stored, each new fake is stored and returned. Once full, each
    new fake is, with probability 1/2, swapped for a random stored one (that one is returned,
    the new one takes its place), else returned as it is."""

    def __init__(self, image_shape, size: int = DEFAULT_SIZE, seed: int = 0, name=None):
        super().__init__(name=name)
        self.size = int(size)
        self.images = tf.Variable(tf.zeros((max(self.size, 1), *map(int, image_shape))),
                                  trainable=False, name="images")
        self.stored = tf.Variable(0, dtype=tf.int64, trainable=False, name="stored")
        self.random = tf.random.Generator.from_seed(seed)

    def query(self, fake_images):
        """The batch D trains on in place of `fake_images`, image by image as the authors do."""
        if self.size == 0:
            return fake_images
        fake_images = tf.cast(fake_images, self.images.dtype)

        def one(index, out):
            image = fake_images[index]
            filling = self.stored < self.size
            swap = self.random.uniform(()) < 0.5
            slot = self.random.uniform((), 0, self.size, dtype=tf.int64)
            # The draws are made every time, so the generator's state after a query does not
            # depend on whether the pool was full.
            slot = tf.where(filling, self.stored, slot)
            stored_image = tf.gather(self.images, slot)
            returned = tf.where(filling | ~swap, image, stored_image)
            with tf.control_dependencies([returned]):  # read the slot before overwriting it
                updates = [self.images.scatter_nd_update(
                               [[slot]], tf.where(filling | swap, image, stored_image)[None]),
                           self.stored.assign(tf.minimum(self.stored + 1, self.size))]
            with tf.control_dependencies(updates):  # the next image sees this one's updates
                return index + 1, out.write(index, returned)

        count = tf.shape(fake_images)[0]
        out = tf.TensorArray(self.images.dtype, size=count, element_shape=fake_images.shape[1:])
        _, out = tf.while_loop(lambda index, _: index < count, one, (0, out), parallel_iterations=1)
        return out.stack()
