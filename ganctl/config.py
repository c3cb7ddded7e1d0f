"""Typed schemas for every config group, registered once with Hydra's ConfigStore.

Plain types only: this module is imported for `--help` and must not pull in TensorFlow.
A typo in a YAML key or a wrong type fails at compose time, before any model is built.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, OmegaConf


@dataclass
class DatasetConfig:
    _target_: str = MISSING
    path: Optional[str] = None          # local copy of the data (IDX .gz files, mnist.npz, image dir)
    resolution: Optional[int] = None    # folder: resize + centre-crop to this size
    channels: Optional[int] = None      # folder: 1 (grayscale) or 3 (RGB)
    on_bad_file: str = "skip"           # folder: skip | error
    labels: bool = False                # folder: classes from sub-folder names (path/<class>/...)
    limit: Optional[int] = None         # use only the first N training examples (small-data runs)
    std: Optional[float] = None         # ring / grid: standard deviation of each Gaussian mode
    size: Optional[int] = None          # ring / grid: number of points drawn for the training pool
    source: Optional[str] = None        # filled in by ganctl: which files were actually used


@dataclass
class NetworkConfig:
    _target_: str = MISSING
    width: int = 64                     # channels of the first conv layer (dcgan) / units (mlp)
    depth: int = 2                      # mlp: hidden layers; dcgan: ignored (follows resolution)
    batch_norm: bool = False
    dropout: float = 0.0
    spectral_norm: bool = False         # discriminator: spectral normalisation (Miyato et al. 2018)
    # discriminator, mode coverage (ganctl/models/mode_coverage.py): judge packs of N samples
    # (PacGAN, Lin et al. 2018; 1 is off), and a minibatch-stddev feature (Karras et al. 2018).
    pack: int = 1
    minibatch_std: bool = False
    upsampling: str = "transposed"      # dcgan/cdcgan generator: transposed | resize (+3x3 conv)


@dataclass
class ModelConfig:
    z_dim: int = 100
    generator: NetworkConfig = field(default_factory=NetworkConfig)
    discriminator: NetworkConfig = field(default_factory=NetworkConfig)


@dataclass
class LossConfig:
    _target_: str = MISSING
    d_steps_per_g_step: int = 1         # critic updates per generator update (WGAN-GP uses 5)
    gp_weight: float = 0.0              # gradient penalty weight (lambda); 0 disables it
    r1_weight: float = 0.0              # R1 penalty on real images (gamma, Mescheder 2018); 0 off


@dataclass
class TrainConfig:
    steps: int = 5000                   # generator updates (about 6 min on a 2-core CPU)
    batch_size: int = 64
    seed: int = II("seed")
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    g_beta1: float = 0.5
    g_beta2: float = 0.999
    d_beta1: float = 0.5
    d_beta2: float = 0.999
    ema: float = 0.999                  # decay of G's weight average used for samples; 0 disables
    # The average's half-life in thousands of images instead of train.ema's fixed decay, at most
    # ema_rampup x the images seen so far (StyleGAN's ema_kimg / ema_rampup; training/ema.py).
    ema_kimg: Optional[float] = None
    ema_rampup: Optional[float] = None
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    progress: bool = True
    jit_compile: bool = False           # XLA; measured slower on CPU, helps on GPU
    precision: str = "float32"          # float32 | mixed_bfloat16 | mixed_float16 | auto
    update_rule: str = "alternating"    # alternating | simultaneous (the TF DCGAN tutorial's)
    joint_d_call: bool = False          # one D call on concat(real, fake) when D has no BN
    steps_per_call: int = 1             # training steps per compiled call (GPU dispatch)
    deterministic: bool = False         # op determinism for bit-exact resume (slower)
    # auto: multi_worker when TF_CONFIG names several workers, mirrored on >1 GPU, else single.
    # batch_size stays the global batch, so N replicas compute what one device would.
    strategy: str = "auto"              # auto | single | mirrored | multi_worker
    augment: str = "none"               # none | diffaug (DiffAugment, Zhao et al. 2020)
    # diffaug: the transforms, applied in this order; e.g. train.augment_policy=[translation,cutout]
    augment_policy: List[str] = field(default_factory=lambda: ["color", "translation", "cutout"])
    on_nan: str = "stop"                # stop | rollback
    nan_retries: int = 3                # rollback: attempts before giving up
    sample_grid: int = 64               # images in each snapshot grid
    eval_every: int = 0                 # steps between in-training evaluations; 0 disables
    eval_num: int = 2000                # samples per in-training evaluation
    eval_metrics: List[str] = field(default_factory=lambda: ["fid"])  # first one picks `best`


@dataclass
class TrainRunConfig:
    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    loss: LossConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    resume: Optional[str] = None        # run directory to continue
    recipe: Optional[str] = None        # set by the conf/recipe/<dataset>_<model>.yaml that applied


@dataclass
class SampleConfig:
    run: str = MISSING                  # run directory
    checkpoint: Optional[str] = None    # a step, or best (train.eval_every's); default the latest
    num: int = 64
    format: str = "grid"                # grid | png | npz | gif | dataset (also: interpolate=true)
    out: Optional[str] = None           # default: inside <run>/samples/
    ema: bool = True
    seed: int = 0
    interpolate: bool = False
    frames: int = 60                    # interpolate: frames in the GIF
    # Class-conditional runs (model=cdcgan). Default: every class, one grid row each.
    labels: Optional[List[int]] = None  # classes to draw, e.g. labels=[3,7]; grid: one row each
    per_class: Optional[int] = None     # N samples of each class (instead of num)


@dataclass
class EvalConfig:
    run: Optional[str] = None           # score a run's checkpoint against its dataset
    checkpoint: Optional[str] = None    # a step, or best (train.eval_every's); default the latest
    fake: Optional[str] = None          # ...or any two sets: npz / image folder
    real: Optional[str] = None          # npz / image folder / dataset name (mnist, cifar10, ...)
    sweep: Optional[str] = None         # ...or gather a multirun's jobs into one table
    num: int = 10000                    # generated samples (and at most this many real ones)
    metrics: List[str] = field(default_factory=lambda: ["auto"])
    features: str = "auto"              # auto | classifier | inception | pixels
    inception_weights: Optional[str] = None  # a local InceptionV3 .h5 for offline machines
    split: str = "train"                # real split a run is compared with
    ema: bool = True
    seed: int = 0
    batch_size: int = 250
    sort_by: Optional[str] = None       # sweep table: default the first metric
    cas_epochs: int = 3                 # cas: epochs of each classifier (synthetic and real)


MAX_DIR_NAME = 120  # file systems allow 255 bytes; leave room for the job number and suffixes


def short_dir_name(name: str) -> str:
    """A sweep job's folder name: the overrides, cut short with a hash of the whole when they
    would make a name too long to create (Optuna's many-digit floats quickly do)."""
    if len(name.encode()) <= MAX_DIR_NAME:
        return name
    import hashlib

    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return name.encode()[:MAX_DIR_NAME - 12].decode(errors="ignore") + "__" + digest


def batch_scaled_lr(lr: float, reference_batch: int, batch: int) -> float:
    """`lr` measured at `reference_batch`, scaled to `batch` by the square-root rule for Adam
    (Malladi et al. 2022; measured on Fashion-MNIST, README "Quality"). A recipe writes
    g_lr: ${ganctl_batch_lr:2e-4,64,${train.batch_size}}, so train.batch_size=256 alone also
    scales the rates, and train.g_lr=... on the command line still wins."""
    return float(lr) * (float(batch) / float(reference_batch)) ** 0.5


def register_configs() -> None:
    if not OmegaConf.has_resolver("ganctl_dir_name"):
        OmegaConf.register_new_resolver("ganctl_dir_name", short_dir_name)
    if not OmegaConf.has_resolver("ganctl_batch_lr"):
        OmegaConf.register_new_resolver("ganctl_batch_lr", batch_scaled_lr)
    cs = ConfigStore.instance()
    # Group YAMLs merge into these typed nodes, so their keys and types are checked too.
    cs.store(name="base_train", node=TrainRunConfig)
    cs.store(name="base_sample", node=SampleConfig)
    cs.store(name="base_eval", node=EvalConfig)
