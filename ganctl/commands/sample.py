"""`ganctl sample run=<run dir>`: grids, PNG folders, npz arrays or a latent-walk GIF."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from ganctl.errors import UserError
from ganctl.training import rundir
from ganctl.validate import check_sample_config

log = logging.getLogger("ganctl")


def run(cfg: DictConfig, _hydra_dir: Path | None = None) -> Path:
    check_sample_config(cfg)
    run_dir = rundir.check_run_dir(cfg.run)
    fmt = "gif" if cfg.interpolate else cfg.format
    out = Path(cfg.out) if cfg.out else None
    if out is not None:
        _check_writable(out, fmt)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from ganctl.training.snapshots import image_grid, save_snapshot, scatter_plot, to_uint8
    from ganctl.training.steps import generate

    generator, dataset, step = load_generator(run_dir, cfg.checkpoint, cfg.ema)
    z_dim = generator.input_shape[-1]
    rng = np.random.default_rng(cfg.seed)
    stem = f"step{step:06d}_seed{cfg.seed}" + ("" if cfg.ema else "_raw")
    default_dir = run_dir / rundir.SAMPLES_DIR
    points = dataset.kind == "points"

    if fmt == "gif":
        out = out or default_dir / f"walk_{stem}.gif"
        frames = _latent_walk(generator, rng, z_dim, cfg.num, cfg.frames, generate)
        real = dataset.arrays("train", limit=2000)[0] if points else None
        pictures = [scatter_plot(f, real) if points else image_grid(f) for f in frames]
        out.parent.mkdir(parents=True, exist_ok=True)
        pictures[0].save(out, save_all=True, append_images=pictures[1:], duration=80, loop=0)
    else:
        samples = generate(generator, rng.standard_normal((cfg.num, z_dim)).astype(np.float32))
        if fmt == "npz":
            out = out or default_dir / f"samples_{stem}.npz"
            out.parent.mkdir(parents=True, exist_ok=True)
            if points:
                np.savez_compressed(out, points=samples.astype(np.float32))
            else:
                pixels = to_uint8(samples)
                np.savez_compressed(out, images=pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        elif fmt == "png" and not points:
            out = out or default_dir / f"png_{stem}"
            out.mkdir(parents=True, exist_ok=True)
            from PIL import Image

            for i, pixels in enumerate(to_uint8(samples)):
                Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(
                    out / f"{i:06d}.png")
        else:  # grid, and png for 2-D points: a scatter plot over the real distribution
            out = out or default_dir / f"grid_{stem}.png"
            real = dataset.arrays("train", limit=2000)[0] if points else None
            save_snapshot(samples, out, real_points=real)
            if points:
                np.savez_compressed(out.with_suffix(".npz"), points=samples.astype(np.float32))
    print(f"wrote {out}  ({cfg.num} samples, step {step}, {'EMA' if cfg.ema else 'raw'} G)")
    return out


def load_generator(run_dir: Path, checkpoint: int | None = None, ema: bool = True):
    """(generator, dataset, step) restored from a run's checkpoint; only G is read."""
    import keras  # noqa: F401  (backend set by the caller)

    from ganctl.training.checkpoints import Checkpoints
    from ganctl.training.components import build_dataset, build_generator, clone_generator

    cfg = rundir.load_run_config(run_dir)
    dataset = build_dataset(cfg.dataset)
    generator = build_generator(cfg.model, dataset)
    trackables = {"generator": generator}
    has_ema = cfg.train.get("ema", 0) > 0
    if ema and has_ema:
        generator = trackables["ema_generator"] = clone_generator(generator)
    elif ema:
        log.info("this run kept no EMA generator (train.ema=0); using the raw generator")
    checkpoints = Checkpoints(run_dir / rundir.CHECKPOINT_DIR, **trackables)
    step = checkpoints.restore(checkpoint, partial=True)
    if step is None:
        raise UserError(f"run={run_dir} has no checkpoint yet in {checkpoints.directory}; train it "
                        "first (checkpoints are written every train.checkpoint_every steps).")
    return generator, dataset, step


def _latent_walk(generator, rng, z_dim: int, walks: int, frames: int, generate) -> list:
    """Frames of spherical interpolation through a loop of random latent points."""
    keypoints = rng.standard_normal((4, walks, z_dim)).astype(np.float32)
    keypoints = np.concatenate([keypoints, keypoints[:1]], 0)
    per_leg = max(1, frames // 4)
    result = []
    for a, b in zip(keypoints[:-1], keypoints[1:]):
        for t in np.linspace(0, 1, per_leg, endpoint=False):
            result.append(generate(generator, _slerp(a, b, t)))
    return result


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    cos = np.sum(a * b, -1, keepdims=True) / (np.linalg.norm(a, axis=-1, keepdims=True)
                                             * np.linalg.norm(b, axis=-1, keepdims=True))
    omega = np.arccos(np.clip(cos, -1, 1))
    sin = np.maximum(np.sin(omega), 1e-6)
    return (np.sin((1 - t) * omega) / sin * a + np.sin(t * omega) / sin * b).astype(np.float32)


def _check_writable(out: Path, fmt: str) -> None:
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"out={out} is inside '{parent}', which is a file, not a directory.")
    if fmt == "png" and out.exists() and not out.is_dir():
        raise UserError(f"out={out} is a file; format=png writes a folder of PNG files there.")
    if fmt != "png" and out.is_dir():
        suffix = {"npz": "npz", "grid": "png", "gif": "gif"}[fmt]
        raise UserError(f"out={out} is a directory; format={fmt} writes one file. "
                        f"Give a file name such as {out / ('samples.' + suffix)}.")
