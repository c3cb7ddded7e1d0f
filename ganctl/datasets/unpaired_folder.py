"""Unpaired images of two domains (CycleGAN's layout): folders A/ and B/, or trainA/ and
trainB/, with testA/ and testB/ as the test split."""
from __future__ import annotations

from pathlib import Path

from ganctl.datasets.translation import (B_STREAM, TEST_FOLDERS, Split, TranslationDataset,
                                         domain_folders)
from ganctl.errors import UserError
from ganctl.images import find_images


class UnpairedFolder(TranslationDataset):
    """Each example is an A image and an unrelated B image, each domain in its own shuffled
    order with its own crops. An epoch is as long as the larger domain: the smaller one is
    cycled through again rather than the larger one cut short."""

    paired = False

    def _find(self, root: Path) -> tuple[Split, Split | None]:
        folders = domain_folders(root)
        if folders is None:
            raise UserError(f"dataset.path={root} has no domain folders: unpaired data needs "
                            "A/ and B/ (or trainA/ and trainB/) in it, one folder per domain.")
        test = domain_folders(root, (TEST_FOLDERS,))
        return (Split(*map(find_images, folders)),
                Split(*map(find_images, test)) if test else None)

    def tf_dataset(self, batch_size: int, seed: int, skip: int = 0, repeat: bool = True):
        import tensorflow as tf

        files = self.split("train")

        def domain(paths, stream):
            paths = tf.constant([str(p) for p in paths])

            def load(index, augment_seed):
                return self._augment([self._load(paths[index])], augment_seed)[0]

            return self._stream(len(paths), seed, skip, stream).map(
                load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

        examples = tf.data.Dataset.zip(domain(files.a, 0), domain(files.b, B_STREAM))
        if not repeat:
            examples = examples.take(max(0, max(len(files.a), len(files.b)) - skip))
        return self._batched(examples, batch_size)
