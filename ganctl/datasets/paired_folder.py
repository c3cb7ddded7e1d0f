"""Aligned image pairs for pix2pix: side-by-side A|B files (the pix2pix datasets' layout, split at
half the width), or folders A/ and B/ whose file names match."""
from __future__ import annotations

from pathlib import Path

from ganctl.datasets.translation import TEST_FOLDERS, Split, TranslationDataset, domain_folders
from ganctl.errors import UserError
from ganctl.images import find_images

TEST_DIRS = ("test", "val")  # side-by-side: the pix2pix datasets' test (or val) folder


class PairedFolder(TranslationDataset):
    """`path/A/x.png` pairs with `path/B/x.png` (any image suffix; trainA/, trainB/ also work,
    testA/ and testB/ are the test split); or each file under `path/train/` (or `path/` itself)
    is one pair side by side, with `path/test/` (or `val/`) as the test split."""

    paired = True

    def _find(self, root: Path) -> tuple[Split, Split | None]:
        folders = domain_folders(root)
        if folders is not None:
            test = domain_folders(root, (TEST_FOLDERS,))
            return matched(*folders), matched(*test) if test else None
        train_dir = root / "train" if (root / "train").is_dir() else root
        others = [root / name for name in TEST_DIRS] + ([root / "train"] if train_dir != root else [])
        train = [p for p in find_images(train_dir)
                 if train_dir != root or not any(d in p.parents for d in others)]
        test_dir = next((root / name for name in TEST_DIRS if (root / name).is_dir()), None)
        test = find_images(test_dir) if test_dir else []
        return Split(train, train, side_by_side=True), (
            Split(test, test, side_by_side=True) if test else None)

    def tf_dataset(self, batch_size: int, seed: int, skip: int = 0, repeat: bool = True):
        import tensorflow as tf

        files = self.split("train")
        paths_a = tf.constant([str(p) for p in files.a])
        paths_b = tf.constant([str(p) for p in files.b])
        side_by_side = files.side_by_side

        def load(index, augment_seed):
            if side_by_side:
                a, b = self._load(paths_a[index], "a"), self._load(paths_a[index], "b")
            else:
                a, b = self._load(paths_a[index]), self._load(paths_b[index])
            a, b = self._augment([a, b], augment_seed)
            return a, b

        stream = self._stream(len(files.a), seed, skip)
        if not repeat:
            stream = stream.take(max(0, len(files.a) - skip))
        return self._batched(stream.map(load, num_parallel_calls=tf.data.AUTOTUNE,
                                        deterministic=True), batch_size)


def matched(folder_a: Path, folder_b: Path) -> Split:
    """A's and B's files paired by name (the path below each folder, suffix aside); a file
    without its partner is an error that names it."""
    def by_name(folder):
        return {p.relative_to(folder).with_suffix("").as_posix(): p for p in find_images(folder)}

    a, b = by_name(folder_a), by_name(folder_b)
    lonely = [(folder_a, n) for n in sorted(a.keys() - b.keys())] + [
        (folder_b, n) for n in sorted(b.keys() - a.keys())]
    if lonely:
        named = ", ".join(f"{folder / name}.*" for folder, name in lonely[:5])
        raise UserError(f"{len(lonely)} image(s) have no partner of the same name in the other "
                        f"folder of {folder_a.parent}: {named}"
                        f"{' ...' if len(lonely) > 5 else ''}. Paired data needs A/x and B/x "
                        "for every x; remove the extra files or add their partners (or use "
                        "dataset=unpaired_folder).")
    names = sorted(a)
    return Split([a[n] for n in names], [b[n] for n in names])
