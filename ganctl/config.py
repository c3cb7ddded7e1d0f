"""Typed schemas for every config group, registered once with Hydra's ConfigStore.

Plain types only: this module is imported for `--help` and must not pull in TensorFlow.
A typo in a YAML key or a wrong type fails at compose time, before any model is built.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, DictConfig, OmegaConf

from ganctl.errors import UserError, did_you_mean


# --- Rules on single values, declared on the fields below -----------------------------------
# Each field's rule lives next to it, as dataclass metadata; `check_values` reads them for the
# pre-run check (ganctl/validate.py) and for registry.build, and nothing else re-checks.

def _rule(default, accepted: str, ok, **kwargs):
    factory = {"default_factory": default} if callable(default) else {"default": default}
    return field(**factory, metadata={"accepted": accepted, "ok": ok, **kwargs})


def positive(default, accepted: str | None = None):
    """An int of 1 or more, or a float above 0; `accepted` says it in the field's own words."""
    accepted = accepted or ("positive (> 0)" if isinstance(default, float)
                            else "positive (1 or more)")
    return _rule(default, accepted, lambda v: v > 0)


def non_negative(default):
    return _rule(default, "0 or more", lambda v: v >= 0)


def fraction(default):
    return _rule(default, "in [0, 1)", lambda v: 0 <= v < 1)


def one_of(default, choices: tuple, described: str | None = None):
    """One of `choices`; `described` says what they are, for the message (else they are listed)."""
    return _rule(default, "one of: " + ", ".join(map(str, choices)), lambda v: v in choices,
                 choices=choices, described=described)


def path(default=None):
    """A file or folder: the command line takes it as typed (~, spaces, any language), quoted
    for Hydra by ganctl, so the user need not."""
    return field(default=default, metadata={"path": True})


def path_keys(command: str) -> set[str]:
    """Every dotted key of a command's config that holds a path."""
    keys, todo = set(), [("", COMMAND_SCHEMAS.get(command))]
    while todo:
        prefix, schema = todo.pop()
        for spec in dataclasses.fields(schema) if dataclasses.is_dataclass(schema) else ():
            child = globals().get(spec.type) if isinstance(spec.type, str) else spec.type
            if "schema" in spec.metadata:  # dataset: each option's schema may hold paths
                todo += [(f"{prefix}{spec.name}.", option) for option in DATASET_SCHEMAS.values()]
            elif dataclasses.is_dataclass(child):
                todo.append((f"{prefix}{spec.name}.", child))
            elif spec.metadata.get("path"):
                keys.add(prefix + spec.name)
    return keys | {"hydra.run.dir", "hydra.sweep.dir"}


STRATEGIES = ("auto", "single", "mirrored", "multi_worker")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
UPDATE_RULES = ("alternating", "simultaneous")
AUGMENTS = ("none", "diffaug", "ada")
SAMPLE_FORMATS = ("grid", "png", "npz", "gif", "dataset")
FEATURES = ("auto", "classifier", "inception", "pixels")
SPLITS = ("train", "test")
EXPORT_FORMATS = ("savedmodel", "tflite", "keras")
UPSAMPLINGS = ("transposed", "resize")   # stride-2 transposed convs, or nearest 2x + 3x3 conv



@dataclass
class DatasetConfig:
    """What every dataset option has. Each option's YAML picks its own schema below
    (`defaults: [/schema/dataset/<name>@_here_]`), so it offers exactly its own settings."""
    _target_: str = MISSING
    source: Optional[str] = None        # filled in by ganctl: which files were actually used


@dataclass
class FileDatasetConfig(DatasetConfig):
    """mnist, fashion_mnist, cifar10: a standard file set."""
    path: Optional[str] = path()        # local copy of the data (IDX .gz files, mnist.npz, ...)
    limit: Optional[int] = None         # use only the first N training examples (small-data runs)


@dataclass
class StackedMnistConfig(FileDatasetConfig):
    size: int = positive(60000)         # stacked images drawn for the training set


@dataclass
class FolderConfig(DatasetConfig):
    """Any folder of images."""
    path: Optional[str] = path()        # the folder (required)
    resolution: int = positive(64)      # resize + centre-crop to this size
    channels: int = one_of(3, (1, 3))   # 1 (grayscale) or 3 (RGB)
    on_bad_file: str = one_of("skip", ("skip", "error"))  # skip a bad file, or stop
    labels: bool = False                # classes from sub-folder names (path/<class>/...)
    limit: Optional[int] = None         # a fixed random subset of N images


@dataclass
class MixtureConfig(DatasetConfig):
    """ring, grid: 2-D Gaussian mixtures."""
    std: float = positive(0.01)         # standard deviation of each Gaussian mode
    size: int = positive(100000)        # points drawn for the training pool


@dataclass
class TranslationDatasetConfig(DatasetConfig):
    """Two image domains, A and B, for image-to-image translation (model=pix2pix)."""
    path: Optional[str] = path()        # the folder (required); a test split is read from it too
    resolution: int = positive(256)     # random crop to this size (the papers: 256)
    load_size: int = positive(286)      # resize to this first (the papers: 286); = resolution: no crop
    flip: bool = True                   # random horizontal flip (the same for both halves of a pair)
    channels: int = one_of(3, (1, 3))   # 1 (grayscale) or 3 (RGB), for both domains
    limit: Optional[int] = None         # use only the first N training examples of each domain


@dataclass
class PairedFolderConfig(TranslationDatasetConfig):
    """Aligned pairs: side-by-side A|B files, or folders A/ and B/ with matching file names."""


@dataclass
class UnpairedFolderConfig(TranslationDatasetConfig):
    """Unrelated images of two domains: folders A/ and B/ (or trainA/ and trainB/)."""


# The schema each dataset YAML names in its defaults list (conf/dataset/<option>.yaml).
DATASET_SCHEMAS = {"file": FileDatasetConfig, "stacked_mnist": StackedMnistConfig,
                   "folder": FolderConfig, "mixture": MixtureConfig,
                   "paired_folder": PairedFolderConfig, "unpaired_folder": UnpairedFolderConfig}


@dataclass
class NetworkConfig:
    _target_: str = MISSING
    width: int = positive(64)           # channels of the first conv layer (dcgan) / units (mlp)
    depth: int = positive(2)            # mlp: hidden layers; dcgan: ignored (follows resolution)
    batch_norm: bool = False
    dropout: float = fraction(0.0)      # share of D's units dropped (pix2pix: G's inner decoder)
    spectral_norm: bool = False         # discriminator: spectral normalisation (Miyato et al. 2018)
    # discriminator, mode coverage (ganctl/models/mode_coverage.py): judge packs of N samples
    # (PacGAN, Lin et al. 2018; 1 is off), and a minibatch-stddev feature (Karras et al. 2018).
    pack: int = positive(1, "a whole number >= 1 (1: no packing)")
    minibatch_std: bool = False
    upsampling: str = one_of("transposed", UPSAMPLINGS)  # dcgan/cdcgan G; resize: 2x + 3x3 conv
    # dcgan/cdcgan G: 3x3 convs after each inner doubling (0: Radford et al.'s G)
    extra_convs: int = non_negative(0)
    # cyclegan G: residual blocks (default 9 at 256x256 and above, 6 below)
    blocks: Optional[int] = positive(None)
    affine: bool = False                # cyclegan G: instance norm with a learnable scale, shift


TRANSLATIONS = ("pix2pix", "cyclegan")  # the objectives of image-to-image translation models
# cyclegan's objective is its own; the default loss (ns) and lsgan pass, others are refused.
CYCLEGAN_LOSSES = ("ns", "lsgan")


@dataclass
class TranslationConfig:
    """An image-to-image model (model=pix2pix): G maps domain A to B; absent for noise -> image."""
    kind: str = one_of("pix2pix", TRANSLATIONS)  # which objective and networks
    l1_weight: float = non_negative(100.0)   # pix2pix: lambda of L1(G(a), b) (Isola et al.: 100)
    d_loss_scale: float = positive(0.5)      # D's loss times this: the papers halve it, so D
    #                                          learns slower than G
    cycle_weight: float = non_negative(10.0)    # cyclegan: lambda of both cycle terms (Zhu et al.)
    identity_weight: float = non_negative(0.5)  # cyclegan: identity terms, times cycle_weight
    pool_size: int = non_negative(50)           # cyclegan: fakes each D's history holds; 0: none


@dataclass
class ModelConfig:
    z_dim: int = positive(100)
    generator: NetworkConfig = field(default_factory=NetworkConfig)
    discriminator: NetworkConfig = field(default_factory=NetworkConfig)
    translation: Optional[TranslationConfig] = None  # set by an image-to-image model (pix2pix)


@dataclass
class LossConfig:
    _target_: str = MISSING
    d_steps_per_g_step: int = positive(1)  # critic updates per generator update (WGAN-GP uses 5)
    # generator updates after each D phase, each on fresh noise (no real images, so the image
    # budget is unchanged); the Fashion-MNIST recipe uses 2 (README "Quality")
    g_steps_per_d_step: int = positive(1)
    gp_weight: float = non_negative(0.0)  # gradient penalty weight (lambda); 0 disables it
    r1_weight: float = non_negative(0.0)  # R1 penalty on real images (gamma, Mescheder 2018); 0 off
    # R1 on every k-th step only, at k x the weight: the same penalty on average for 1/k of its
    # cost (StyleGAN2's lazy regularisation, Karras et al. 2020, used 16); 1: every step
    r1_every: int = positive(1, "a whole number >= 1 (1: R1 on every step)")


@dataclass
class TrainConfig:
    # training steps: each loss.d_steps_per_g_step D updates, then loss.g_steps_per_d_step G
    # updates (about 8 min for the default on a 2-core CPU)
    steps: int = positive(5000)
    batch_size: int = positive(64)      # images per step (the global batch over all devices)
    # fakes per G update, a divisor of batch_size (G's updates take the first rows of the
    # batch's labels); null: batch_size. With loss.g_steps_per_d_step=2, half the batch gives G
    # two updates for the work of one (the Fashion-MNIST recipe; README "Quality").
    g_batch_size: Optional[int] = positive(None)
    seed: int = II("seed")
    g_lr: float = positive(2e-4)
    d_lr: float = positive(2e-4)
    g_beta1: float = fraction(0.5)
    g_beta2: float = fraction(0.999)
    d_beta1: float = fraction(0.5)
    d_beta2: float = fraction(0.999)
    # Step at which the learning rates start falling linearly to 0 at train.steps (CycleGAN's
    # schedule); null keeps them constant (training/lr_schedule.py).
    lr_decay_start: Optional[int] = non_negative(None)
    # Thousands of images over which the rates rise linearly from ~0 to g_lr / d_lr (Goyal et
    # al. 2017's warm-up for large batches); null: the full rates from the first step.
    lr_warmup_kimg: Optional[float] = positive(None)
    ema: float = fraction(0.999)        # decay of G's weight average used for samples; 0 disables
    # The average's half-life in thousands of images instead of train.ema's fixed decay, at most
    # ema_rampup x the images seen so far (StyleGAN's ema_kimg / ema_rampup; training/ema.py).
    ema_kimg: Optional[float] = positive(None)
    ema_rampup: Optional[float] = positive(None)
    log_every: int = positive(50)
    sample_every: int = positive(500)
    checkpoint_every: int = positive(500)
    keep_checkpoints: int = positive(3)
    progress: bool = True
    jit_compile: bool = False           # XLA; measured slower on CPU, helps on GPU
    precision: str = one_of("float32", PRECISIONS)  # auto: bf16 on CPUs with native bf16
    update_rule: str = one_of("alternating", UPDATE_RULES)  # simultaneous: the TF tutorial's
    joint_d_call: bool = False          # one D call on concat(real, fake) when D has no BN
    steps_per_call: int = positive(1)   # training steps per compiled call (GPU dispatch)
    deterministic: bool = False         # op determinism for bit-exact resume (slower)
    # auto: multi_worker when TF_CONFIG names several workers, mirrored on >1 GPU, else single.
    # batch_size stays the global batch, so N replicas compute what one device would.
    strategy: str = one_of("auto", STRATEGIES)
    # diffaug: DiffAugment (Zhao et al. 2020); ada: its transforms, each applied to an image with
    # a probability p that follows D's overfitting (Karras et al. 2020, training/augment.py)
    augment: str = one_of("none", AUGMENTS)
    # diffaug, ada: the transforms, applied in this order; e.g. train.augment_policy=[translation,cutout]
    augment_policy: List[str] = field(default_factory=lambda: ["color", "translation", "cutout"])
    # ada: the r_t = E[sign D(real)] that p steers toward. ADA's 0.6 was set for StyleGAN2; here a
    # D that does not overfit sat at r_t 0.25-0.43 (0.43 early in training) and one that does at
    # 0.55-0.68 (2,000 Fashion-MNIST images): at 0.6 p barely moved for the overfitting D (FID
    # 32.7), at 0.4 it rose early on the other and cost it 4% FID (3 seeds); 0.5 helps the first
    # (25.4 against 40.9 without) and leaves the second alone (README, ADA table)
    ada_target: float = fraction(0.5)
    # ada: thousands of images for p to go from 0 to 1 at most; null: 5% of the run, at most
    # ADA's 500 (training/augment.py: its 500 is ~2% of a 25,000 kimg run, too slow for a short one)
    ada_kimg: Optional[float] = positive(None)
    on_nan: str = one_of("stop", ("stop", "rollback"))
    nan_retries: int = positive(3)      # rollback: attempts before giving up
    sample_grid: int = positive(64)     # images in each snapshot grid
    eval_every: int = non_negative(0)   # steps between in-training evaluations; 0 disables
    eval_num: int = positive(2000)      # samples per in-training evaluation
    eval_metrics: List[str] = field(default_factory=lambda: ["fid"],  # first one picks `best`
                                    metadata={"names": "metrics"})
    # evaluations in a row without a new best before the run stops early (needs eval_every); 0: never
    patience: int = non_negative(0)
    health: bool = True                 # watch the run and warn, with what to change (health.jsonl)


@dataclass
class TrainRunConfig:
    # Any, not DatasetConfig: each dataset option brings its own schema (a user's --config-dir
    # YAML may bring none), which dataset_schema finds from the node or its _target_.
    dataset: Any = field(default=MISSING, metadata={"schema": lambda node: dataset_schema(node)})
    model: ModelConfig = MISSING
    loss: LossConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    resume: Optional[str] = path()      # run directory to continue
    # set by the conf/recipe/<dataset>_<model>.yaml that applied; a recipe's measured settings
    # beat the defaults listed here (`ganctl train [key=value ...] --cfg job` shows the result)
    recipe: Optional[str] = None


@dataclass
class SampleConfig:
    run: str = field(default=MISSING, metadata={"path": True})  # run directory
    checkpoint: Optional[str] = None    # a step, or best (train.eval_every's); default the latest
    num: int = positive(64, "1 or more (the number of samples to write)")
    format: str = one_of("grid", SAMPLE_FORMATS)  # (and interpolate=true: a GIF)
    out: Optional[str] = path()         # default: inside <run>/samples/
    ema: bool = True                    # the EMA generator; false: the raw one
    seed: int = 0                       # the noise drawn (same seed, same samples)
    interpolate: bool = False           # an animated GIF walking through latent space
    frames: int = positive(60)          # interpolate: frames in the GIF
    # Class-conditional runs (model=cdcgan). Default: every class, one grid row each.
    labels: Optional[List[int]] = None  # classes to draw, e.g. labels=[3,7]; grid: one row each
    # N samples of each class (instead of num)
    per_class: Optional[int] = positive(None, "1 or more (samples of each class)")
    overwrite: bool = False             # replace an existing out= file or folder
    # Translation runs (model=pix2pix): translate these real images (an image file or a folder)
    # into out= instead of the test split's comparison grid.
    input: Optional[str] = path()
    direction: str = one_of("AtoB", ("AtoB", "BtoA"))  # which way to translate


@dataclass
class EvalConfig:
    run: Optional[str] = path()         # score a run's checkpoint against its dataset
    checkpoint: Optional[str] = None    # a step, or best (train.eval_every's); default the latest
    fake: Optional[str] = path()        # ...or any two sets: npz / image folder
    real: Optional[str] = path()        # npz / image folder / dataset name (mnist, cifar10, ...)
    sweep: Optional[str] = path()       # ...or gather a multirun's jobs into one table
    # generated samples (and at most this many real ones)
    num: int = _rule(10000, "at least 2 (a few thousand for stable scores)", lambda v: v >= 2)
    metrics: List[str] = field(default_factory=lambda: ["auto"], metadata={"names": "metrics"})
    features: str = one_of("auto", FEATURES)  # auto: classifier for labelled data, else inception
    inception_weights: Optional[str] = path()  # a local InceptionV3 .h5 for offline machines
    split: str = one_of("train", SPLITS)  # real split a run is compared with
    ema: bool = True                    # the EMA generator; false: the raw one
    seed: int = 0                       # the noise drawn (same seed, same samples and scores)
    batch_size: int = positive(250)     # samples generated and featurised at once
    sort_by: Optional[str] = None       # sweep table: default the first metric
    cas_epochs: int = positive(3)       # cas: epochs of each classifier (synthetic and real)
    direction: str = one_of("AtoB", ("AtoB", "BtoA"))  # translation runs: which way to score


@dataclass
class ReportConfig:
    run: Optional[str] = path()         # a run directory -> <run>/report.html
    sweep: Optional[str] = path()       # ...or a multirun directory -> <sweep>/report.html


@dataclass
class DoctorConfig:
    run: Optional[str] = path()         # a run directory, finished or still training
    sweep: Optional[str] = path()       # ...or a multirun directory: one line per job


@dataclass
class ExportConfig:
    run: str = path(MISSING)            # run directory
    format: str = one_of("savedmodel", EXPORT_FORMATS, "an export format. Formats: savedmodel (a "
                         "TensorFlow SavedModel folder), tflite (one .tflite file), keras (a "
                         ".keras file of the generator)")
    out: Optional[str] = path()         # default: <run>/export/generator_step<N>.<format>
    checkpoint: Optional[str] = None    # a step, or best (train.eval_every's); default the latest
    ema: bool = True


GROUP_SCHEMAS = {"dataset": DatasetConfig, "model": ModelConfig, "loss": LossConfig}
# The schema of each command's whole config: help, "did you mean" and the checks read it.
COMMAND_SCHEMAS = {"train": TrainRunConfig, "sample": SampleConfig, "eval": EvalConfig,
                   "report": ReportConfig, "export": ExportConfig, "doctor": DoctorConfig}


def schema_at(command: str, dotted: str) -> type | None:
    """The schema of the node at `dotted` ("" for the top, "train", "model.generator") in a
    command's config, or None where there is no schema (hydra.*, a plain dict)."""
    schema = COMMAND_SCHEMAS.get(command)
    for part in [p for p in dotted.split(".") if p]:
        spec = next((f for f in dataclasses.fields(schema) if f.name == part), None) if (
            dataclasses.is_dataclass(schema)) else None
        if spec is None:
            return None
        schema = globals().get(spec.type) if isinstance(spec.type, str) else spec.type
    return schema if dataclasses.is_dataclass(schema) else None


def shipped_options(group: str) -> list[str]:
    """The choices ganctl ships for a config group (conf/<group>/*.yaml), sorted."""
    from importlib.resources import files

    return sorted(p.name[:-len(".yaml")] for p in (files("ganctl.conf") / group).iterdir()
                  if p.name.endswith(".yaml"))


def shipped_option(group: str, name: str, *overrides) -> DictConfig | None:
    """conf/<group>/<name>.yaml merged into its schema (then `overrides`, dicts or configs), as
    Hydra composes it; None when ganctl ships no such choice."""
    from importlib.resources import files

    path = files("ganctl.conf") / group / f"{name}.yaml"
    if "/" in name or not path.is_file():
        return None
    return load_option(GROUP_SCHEMAS[group], path, *overrides)


def load_option(schema: type, path, *overrides) -> DictConfig:
    """A group option's YAML merged into its schema, so a key the schema lacks fails here. An
    option that names its own schema (a dataset's `/schema/dataset/<name>@_here_`) gets that."""
    node = OmegaConf.load(str(path))
    for entry in node.pop("defaults", []):
        if isinstance(entry, str) and entry.startswith("/schema/dataset/"):
            schema = DATASET_SCHEMAS[entry.split("/")[-1].split("@")[0]]
    return OmegaConf.merge(OmegaConf.structured(schema), node, *overrides)


def dataset_schema(node) -> type:
    """The schema of a dataset node: its own type once composed, else (a run's saved config) the
    schema of the shipped option with the same _target_; DatasetConfig when neither tells."""
    own = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    if own is not None and dataclasses.is_dataclass(own) and issubclass(own, DatasetConfig):
        return own
    target = node.get("_target_")
    for name in shipped_options("dataset"):
        option = shipped_option("dataset", name)
        if option._target_ == target:
            return OmegaConf.get_type(option)
    return DatasetConfig


def dataset_options_by_schema() -> dict[type, list[str]]:
    """The shipped dataset choices grouped by the schema each names (for --help)."""
    found: dict[type, list[str]] = {}
    for name in shipped_options("dataset"):
        found.setdefault(OmegaConf.get_type(shipped_option("dataset", name)), []).append(name)
    return found


def compose(command: str, overrides: list[str]) -> DictConfig:
    """The config `ganctl <command>` builds from these overrides, not yet checked. Hydra's global
    state is cleared before and after, so one composition never sees another's."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("ganctl.conf", version_base="1.3"):
            return hydra_compose(command, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def choice_name(target: str) -> str:
    """The config choice a `_target_` belongs to: ganctl.<package>.<choice>.<object>, because
    YAML stem = module name (conf/model/dcgan.yaml names ganctl.models.dcgan.build_generator)."""
    return str(target).split(".")[2]


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


def warmup_steps(warmup_kimg: float | None, images_per_step: int) -> int:
    """The updates that train.lr_warmup_kimg thousand images take (0: no warm-up); the step's
    schedule (training/lr_schedule.py) and check_train_run both count with it."""
    if warmup_kimg is None:
        return 0
    return max(1, math.ceil(float(warmup_kimg) * 1000.0 / images_per_step))


def share_of_steps(share: float, steps: int) -> int:
    """The step `share` of the way through a run: a recipe writes
    lr_decay_start: ${ganctl_share_of_steps:0.5,${train.steps}}, so the decay keeps its place
    when the user sets train.steps, and train.lr_decay_start=... still wins."""
    return int(float(share) * int(steps))


def without_penalty(*weights: float) -> bool:
    """True when every penalty weight given is 0: a recipe writes
    batch_norm: ${ganctl_without_penalty:${loss.gp_weight},${loss.r1_weight}}, so D gets batch
    norm under the losses that allow it, and loss=wgan_gp still composes (check_train_run)."""
    return all(float(weight) == 0 for weight in weights)


def simultaneous_if_one_d_step(d_steps_per_g_step: int) -> str:
    """"simultaneous" when the loss takes one D step per G step, else "alternating": a recipe
    writes update_rule: ${ganctl_simultaneous_if_one_d_step:${loss.d_steps_per_g_step}}, so
    loss=wgan_gp (5 critic steps, which the simultaneous update cannot take) still composes."""
    return "simultaneous" if int(d_steps_per_g_step) == 1 else "alternating"


def g_steps_for(g_steps: int, d_steps_per_g_step: int, update_rule: str) -> int:
    """`g_steps` when the step is alternating with one D update, else 1: a recipe writes
    g_steps_per_d_step: ${ganctl_g_steps_for:2,${loss.d_steps_per_g_step},${train.update_rule}},
    so loss=wgan_gp keeps its paper's 5:1 and train.update_rule=simultaneous still composes."""
    return int(g_steps) if int(d_steps_per_g_step) == 1 and update_rule == "alternating" else 1


def split_batch(batch_size: int, g_steps: int) -> int:
    """The largest divisor of `batch_size` that is at most batch_size / g_steps: a recipe writes
    g_batch_size: ${ganctl_split_batch:${train.batch_size},${loss.g_steps_per_d_step}}, so
    G's updates together draw one batch of fakes, whatever batch or G steps the user sets."""
    batch_size, g_steps = int(batch_size), max(int(g_steps), 1)
    return max(d for d in divisors(batch_size) if d <= max(batch_size // g_steps, 1))


def divisors(n: int) -> list[int]:
    """The divisors of n, ascending: the batch sizes that split a batch of n evenly."""
    return [d for d in range(1, n + 1) if n % d == 0]


def lazy_every(every: int, weight: float) -> int:
    """`every` while the penalty is on, else 1: a recipe writes
    r1_every: ${ganctl_lazy_every:4,${loss.r1_weight}}, so loss.r1_weight=0 on the command line
    turns the recipe's R1 off without tripping check_train_run's rule that r1_every > 1 needs R1."""
    return int(every) if float(weight) > 0 else 1


RESOLVERS = {"ganctl_dir_name": short_dir_name, "ganctl_batch_lr": batch_scaled_lr,
             "ganctl_share_of_steps": share_of_steps, "ganctl_without_penalty": without_penalty,
             "ganctl_simultaneous_if_one_d_step": simultaneous_if_one_d_step,
             "ganctl_lazy_every": lazy_every, "ganctl_g_steps_for": g_steps_for,
             "ganctl_split_batch": split_batch}


def register_configs() -> None:
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    cs = ConfigStore.instance()
    # Group YAMLs merge into these typed nodes, so their keys and types are checked too.
    cs.store(name="base_train", node=TrainRunConfig)
    cs.store(name="base_sample", node=SampleConfig)
    cs.store(name="base_eval", node=EvalConfig)
    for name, schema in DATASET_SCHEMAS.items():
        cs.store(group="schema/dataset", name=name, node=schema)
    cs.store(name="base_report", node=ReportConfig)
    cs.store(name="base_export", node=ExportConfig)
    cs.store(name="base_doctor", node=DoctorConfig)


# --- Checking a composed config: each field's rule, then the rules that join fields -----------

def field_docs(schema: type) -> dict[str, str]:
    """Each field's comment in this file (on its line, or the lines just above it): the help
    text, so a new field documents itself in `ganctl <command> --help` by its comment."""
    import inspect
    import io
    import tokenize

    docs, above = {}, []
    names = {f.name for f in dataclasses.fields(schema)}
    tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(schema)).readline)
    line_name = None
    for tok in tokens:
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names:
            line_name = tok.string
            if above:
                docs[line_name] = " ".join(above)
        elif tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if line_name and tok.start[1] > 4:
                docs[line_name] = (docs.get(line_name, "") + " " + text).strip()
            elif tok.start[1] == 4:
                above.append(text)
        elif tok.type == tokenize.NEWLINE:
            above = [] if line_name else above
            line_name = None
        elif tok.type == tokenize.NL and line_name is None and not above:
            above = []
    return docs


def accepted_values(spec, names: dict | None = None) -> str:
    """What a field accepts, in words, for help and messages. `names` maps a field's "names"
    metadata (e.g. "metrics") to the registered names, which live above this layer."""
    if "choices" in spec.metadata:
        return "one of: " + ", ".join(map(str, spec.metadata["choices"]))
    if spec.metadata.get("names") in (names or {}):
        return "a list of: " + ", ".join(names[spec.metadata["names"]]) + (
            ", or [auto]" if "auto" in str(spec.default_factory()) else "")
    if "accepted" in spec.metadata:
        return spec.metadata["accepted"]
    if spec.metadata.get("path"):
        return "a path (~ and any characters are fine)"
    return ""


def check_values(node, schema: type, prefix: str = "") -> None:
    """UserError for the first value in `node` (or the nodes below it) that breaks its field's
    rule. Unknown keys and missing values are the pre-run check's to report."""
    for spec in dataclasses.fields(schema):
        if spec.name not in node or (isinstance(node, DictConfig)
                                     and OmegaConf.is_missing(node, spec.name)):
            continue
        value, key = node[spec.name], f"{prefix}{spec.name}"
        child_schema = globals().get(spec.type) if isinstance(spec.type, str) else spec.type
        if "schema" in spec.metadata and isinstance(value, (DictConfig, dict)):
            child_schema = spec.metadata["schema"](value)
        if dataclasses.is_dataclass(child_schema):
            if isinstance(value, (DictConfig, dict)):
                check_values(value, child_schema, key + ".")
            continue
        ok = spec.metadata.get("ok")
        if ok is None or value is None or ok(value):
            continue
        if spec.metadata.get("described"):
            raise UserError(f"{key}={value} is not {spec.metadata['described']}.")
        if "choices" in spec.metadata:
            raise UserError(f"{key}={value} is not one of: "
                            f"{', '.join(map(str, spec.metadata['choices']))}."
                            f"{did_you_mean(value, spec.metadata['choices'], key + '=')}")
        raise UserError(f"{key}={value} must be {spec.metadata['accepted']}.")


def default_of(schema: type, name: str):
    """A field's default value."""
    spec = next(f for f in dataclasses.fields(schema) if f.name == name)
    return spec.default_factory() if spec.default is dataclasses.MISSING else spec.default


# Steps at which the loop acts; with train.steps_per_call=K it only sees every K-th step.
STEP_MULTIPLES = ("steps", "log_every", "sample_every", "checkpoint_every", "eval_every")


def check_train_run(cfg) -> None:
    """The rules of `ganctl train` that join several fields (each field's own rule first)."""
    check_values(cfg, TrainRunConfig)
    t = cfg.train
    if t.augment == "none" and list(t.augment_policy) != default_of(TrainConfig, "augment_policy"):
        raise UserError(f"train.augment_policy={list(t.augment_policy)} has no effect with "
                        "train.augment=none; add train.augment=diffaug or train.augment=ada.")
    penalties = [f"loss.{k}" for k in ("gp_weight", "r1_weight") if cfg.loss[k] > 0]
    if penalties and cfg.model.discriminator.batch_norm:
        # The penalty is per example; batch norm makes D's output depend on the whole batch.
        given = ", ".join(f"{key}={OmegaConf.select(cfg, key)}" for key in penalties)
        raise UserError("model.discriminator.batch_norm=true cannot be combined with a gradient "
                        f"penalty ({given}); set model.discriminator.batch_norm=false "
                        f"or drop the penalty ({' '.join(f'{key}=0' for key in penalties)}).")
    if cfg.loss.get("r1_every", 1) > 1 and not cfg.loss.r1_weight:
        raise UserError(f"loss.r1_every={cfg.loss.r1_every} spaces out the R1 penalty, but "
                        "loss.r1_weight=0 turns it off; set loss.r1_weight too (e.g. "
                        "loss.r1_weight=0.1), or leave loss.r1_every out.")
    g_batch = t.get("g_batch_size")
    if g_batch is not None and t.batch_size % g_batch:
        raise UserError(f"train.g_batch_size={g_batch} is not a divisor of train.batch_size="
                        f"{t.batch_size}: G's updates take the first g_batch_size rows of each "
                        f"replica's share of the batch; use one of {divisors(t.batch_size)}, "
                        "or null for the whole batch.")
    d_steps, g_steps = cfg.loss.d_steps_per_g_step, cfg.loss.get("g_steps_per_d_step", 1)
    # (key, value, the setting for one update of the whole batch) where they differ
    not_one_update = [(key, value, plain) for key, value, plain, differs in (
        ("loss.d_steps_per_g_step", d_steps, 1, d_steps != 1),
        ("loss.g_steps_per_d_step", g_steps, 1, g_steps != 1),
        ("train.g_batch_size", g_batch, "null", g_batch not in (None, t.batch_size))) if differs]
    if t.update_rule == "simultaneous" and not_one_update:
        raise UserError("train.update_rule=simultaneous updates D and G once each from one "
                        "forward pass, so it cannot take "
                        f"{' and '.join(f'{key}={value}' for key, value, _ in not_one_update)}; "
                        f"set {' '.join(f'{key}={plain}' for key, _, plain in not_one_update)}, "
                        "or use train.update_rule=alternating.")
    kimg, rampup = t.get("ema_kimg"), t.get("ema_rampup")
    if t.ema == 0 and (kimg is not None or rampup is not None):
        raise UserError(f"train.ema=0 keeps no average of G, so train.ema_kimg={kimg} and "
                        f"train.ema_rampup={rampup} have no effect; set train.ema to a decay > 0 "
                        "(e.g. 0.999) to keep one, or set train.ema_kimg=null "
                        "train.ema_rampup=null.")
    if rampup is not None and kimg is None:
        raise UserError(f"train.ema_rampup={rampup} limits the horizon of train.ema_kimg, which "
                        "is null (a fixed decay train.ema); set train.ema_kimg too (e.g. "
                        "train.ema_kimg=10).")
    decay_start = t.get("lr_decay_start")
    if decay_start is not None and decay_start >= t.steps:
        raise UserError(f"train.lr_decay_start={decay_start} is not before train.steps={t.steps}, "
                        "so the learning rates would never decay; set it below train.steps (e.g. "
                        f"train.lr_decay_start={t.steps // 2}: constant for the first half, then "
                        "linear to 0) or to null for constant rates.")
    warmup = warmup_steps(t.get("lr_warmup_kimg"), t.batch_size)
    if warmup >= t.steps:
        raise UserError(f"train.lr_warmup_kimg={t.lr_warmup_kimg} ramps the learning rates up over "
                        f"{warmup} steps of train.batch_size={t.batch_size}, which is not shorter "
                        f"than train.steps={t.steps}, so the run would never train at its rates; "
                        "set it below train.steps x train.batch_size / 1000 (e.g. "
                        f"train.lr_warmup_kimg={t.steps * t.batch_size / 10000:g}: the first 10%), "
                        "or to null for no warm-up.")
    if t.patience and not t.eval_every:
        raise UserError(f"train.patience={t.patience} counts evaluations without a new best, but "
                        "train.eval_every=0 evaluates never; set train.eval_every too (e.g. "
                        "train.eval_every=500), or train.patience=0.")
    check_translation_pair(cfg)
    if t.steps_per_call > 1:
        # 0 disables eval_every, and 0 is a multiple of anything.
        off = [f"train.{k}={t[k]}" for k in STEP_MULTIPLES if t[k] % t.steps_per_call]
        if off:
            raise UserError(f"train.steps_per_call={t.steps_per_call} runs {t.steps_per_call} "
                            "steps per call, so the loop can only log, sample, evaluate, "
                            f"checkpoint and stop at multiples of {t.steps_per_call}, but "
                            f"{', '.join(off)} is not one. Make them multiples of "
                            f"{t.steps_per_call} or lower train.steps_per_call.")


def is_translation_data(dataset_node) -> bool:
    return issubclass(dataset_schema(dataset_node), TranslationDatasetConfig)


def check_translation_pair(cfg) -> None:
    """An image-to-image model needs two image domains, and a noise model cannot use them."""
    translation = cfg.model.get("translation")
    data = is_translation_data(cfg.dataset)
    paired = issubclass(dataset_schema(cfg.dataset), PairedFolderConfig)
    if translation is None and data:
        raise UserError(f"dataset={choice_name(cfg.dataset._target_)} holds two image domains "
                        "for image-to-image translation, which this model (noise -> image) "
                        "cannot learn; use model=pix2pix (paired images) or model=cyclegan "
                        "(paired or unpaired).")
    if translation is not None and not data:
        raise UserError(f"model={translation.kind} translates images of one domain into "
                        f"another, so it needs two domains: dataset=paired_folder "
                        f"(got dataset={choice_name(cfg.dataset._target_)}).")
    if translation is not None and translation.kind == "pix2pix" and not paired:
        raise UserError("model=pix2pix learns from aligned pairs (its L1 term compares G(a) "
                        "with a's own partner b), so it needs dataset=paired_folder, not "
                        "dataset=unpaired_folder.")
    if translation is not None and data and cfg.dataset.load_size < cfg.dataset.resolution:
        raise UserError(f"dataset.load_size={cfg.dataset.load_size} is smaller than "
                        f"dataset.resolution={cfg.dataset.resolution}: images are resized to "
                        "load_size, then randomly cropped to resolution, so load_size must be "
                        "at least resolution (equal: no crop).")
    if translation is None:
        return
    unsupported = [f"{key}={value}" for key, value, default in (
        ("loss.d_steps_per_g_step", cfg.loss.d_steps_per_g_step, 1),
        ("loss.g_steps_per_d_step", cfg.loss.get("g_steps_per_d_step", 1), 1),
        ("train.g_batch_size", cfg.train.get("g_batch_size") or cfg.train.batch_size,
         cfg.train.batch_size),
        ("train.update_rule", cfg.train.update_rule, "alternating"),
        ("train.augment", cfg.train.augment, "none")) if value != default]
    if unsupported:
        raise UserError(f"model={translation.kind} updates D once, then G, on each batch of "
                        f"pairs, so {', '.join(unsupported)} has no meaning here; set "
                        "loss.d_steps_per_g_step=1 (loss=wgan_gp sets 5), "
                        "loss.g_steps_per_d_step=1, train.g_batch_size=null, "
                        "train.update_rule=alternating and train.augment=none.")
    if cfg.train.eval_every:
        raise UserError(f"train.eval_every={cfg.train.eval_every}: in-training evaluation scores "
                        "noise -> image generators only; for a translation run set "
                        "train.eval_every=0 and score it with `ganctl eval run=<run>`.")
    loss = choice_name(cfg.loss._target_)
    if translation.kind == "cyclegan" and (loss not in CYCLEGAN_LOSSES or cfg.loss.gp_weight
                                           or cfg.loss.r1_weight):
        raise UserError(f"model=cyclegan trains with its paper's least-squares objective "
                        f"(ganctl/losses/cyclegan.py), so loss={loss} (gp_weight="
                        f"{cfg.loss.gp_weight}, r1_weight={cfg.loss.r1_weight}) would have no "
                        "effect; leave loss= out (or give loss=lsgan) and set neither penalty.")


def check_sample(cfg) -> None:
    """The rules of `ganctl sample` that join several fields."""
    check_values(cfg, SampleConfig)
    if cfg.interpolate and cfg.format == "dataset":
        raise UserError("interpolate=true writes an animated GIF, so it cannot be combined with "
                        "format=dataset; drop one of them.")
    if cfg.labels is not None and not list(cfg.labels):
        raise UserError("labels=[] names no class. Give class numbers such as labels=[3,7], "
                        "or leave labels out to draw every class.")


def check_eval(cfg) -> None:
    """The rules of `ganctl eval` that join several fields."""
    check_values(cfg, EvalConfig)
    chosen = [k for k in ("run", "sweep") if cfg[k]] + (["fake"] if cfg.fake or cfg.real else [])
    if len(chosen) != 1:
        raise UserError("ganctl eval scores one thing: give run=<run dir>, or fake=<npz or image "
                        "folder> real=<npz, image folder or dataset name>, or sweep=<multirun dir>"
                        f"{' (got ' + ', '.join(chosen) + ')' if chosen else ''}.")
    if chosen == ["fake"] and not (cfg.fake and cfg.real) and list(cfg.metrics) != ["is"]:
        raise UserError("fake= and real= go together: give both (real may be a dataset name such "
                        "as mnist), or metrics=[is] with fake= alone.")


def check_report(cfg) -> None:
    """`ganctl report` writes one page: a run's or a sweep's."""
    check_values(cfg, ReportConfig)
    _check_run_or_sweep(cfg, "ganctl report writes one report")


def check_doctor(cfg) -> None:
    """`ganctl doctor` diagnoses a run or a sweep."""
    check_values(cfg, DoctorConfig)
    _check_run_or_sweep(cfg, "ganctl doctor diagnoses one thing")


def _check_run_or_sweep(cfg, what: str) -> None:
    chosen = [k for k in ("run", "sweep") if cfg[k]]
    if len(chosen) != 1:
        raise UserError(f"{what}: give run=<run dir> (e.g. "
                        "outputs/<date>/<time>) or sweep=<multirun dir> (e.g. "
                        "outputs/multirun/<date>/<time>)"
                        f"{', not both' if len(chosen) > 1 else ''}.")


def check_export(cfg) -> None:
    check_values(cfg, ExportConfig)
