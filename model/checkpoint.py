"""Checkpoints: ``{"config": dict, "model": state_dict}`` read with
``torch.load(weights_only=True)``.

A bare state_dict loads with the default config. Every failure is a ``CheckpointError`` naming
the file, what is wrong and the fix. A checkpoint is untrusted input: before anything else reads
it, every state_dict key must be a string and every entry a dense CPU tensor of a float dtype
(integer only for BatchNorm's ``num_batches_tracked`` counters) holding no NaN or infinity
(``check_tensors``).
"""

import os
import pickle
import stat
import warnings
import zipfile
from pathlib import Path

import torch

from vosx.errors import CheckpointError, ConfigError
from vosx.files import atomic_path
from vosx.model.config import ModelConfig
from vosx.model.network import TrickVOS, build_model
from vosx.paths import checkpoint_or_bundled


def count_parameters(model: TrickVOS) -> dict[str, int]:
    """Parameter count per top-level part and in total."""
    counts = {
        name: sum(p.numel() for p in part.parameters()) for name, part in model.named_children()
    }
    counts["total"] = sum(counts.values())
    return counts


def save_checkpoint(
    model: TrickVOS, path: str | os.PathLike, extra: dict | None = None, overwrite: bool = True
) -> Path:
    """Write ``{"config", "model"}`` (plus ``extra`` entries) atomically to ``path``.

    ``overwrite`` False: refuse (``OutputError``) when ``path`` appeared since it was checked.
    """
    path = Path(path)
    # Contiguous copies: training keeps the weights channels-last, files stay layout-neutral.
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    payload = {"config": model.config.to_dict(), "model": weights, **(extra or {})}
    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file safely (weights only) and return
    ``{"config": dict, "model": ...}``.
    """
    path = Path(path)
    try:
        st = path.stat()
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        raise CheckpointError(
            f"{path}: no such file; give the path of a .pth written by vosx"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file; give the .pth file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise CheckpointError(
            f"{path}: not a regular file (a pipe, socket or device); give the .pth file itself"
        )
    try:
        with warnings.catch_warnings():  # torch warns before refusing a raw pickle: noise
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        blocked = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln]
        if blocked:
            raise CheckpointError(
                f"{path}: refused to load: it would run code or build objects "
                f"({blocked[0][:120]}); "
                "only tensors are read — re-save the weights as a plain state_dict"
            ) from None
        if "Weights only load failed" in str(e) and _is_raw_pickle(path):
            raise CheckpointError(
                f"{path}: refused to load: a raw pickle the safe (weights-only) loader cannot "
                "check; it may run code — re-save the weights with torch.save(state_dict, path)"
            ) from None
        raise _unreadable(path, e) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise _unreadable(path, e) from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        check_tensors(path, obj["model"])
        return {"config": obj.get("config") or {}, **obj}
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        check_tensors(path, obj)
        return {"config": {}, "model": obj}  # a bare state_dict: default config
    raise CheckpointError(
        f"{path}: not a vosx checkpoint (expected a dict with 'config' and 'model', or a "
        "state_dict); write one with `vosx init` or vosx.model.save_checkpoint"
    )


_COUNTER = "num_batches_tracked"  # BatchNorm's step counter: the one integer tensor of a model


def check_tensors(path: str | os.PathLike, state: dict) -> None:
    """Refuse a state_dict that is not plain float weights, before anything else reads it.

    Every key must be a string; every value a dense (strided) CPU tensor of a float dtype (an
    integer dtype only for ``*.num_batches_tracked``) whose values are all finite.

    Raises:
        CheckpointError: naming the file, the entry and what is wrong with it.
    """
    resave = "re-save the weights with vosx.model.save_checkpoint"
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(
                f"{path}: state_dict key {str(key)[:80]!r} is a {type(key).__name__}, not a "
                f"string; {resave}"
            )
        name = key[:120]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: state_dict entry {name!r} is a {type(value).__name__}, not a tensor; "
                f"{resave}"
            )
        if value.layout != torch.strided or value.is_quantized or value.device.type != "cpu":
            raise CheckpointError(
                f"{path}: tensor {name} is a {value.layout} {value.dtype} tensor on "
                f"{value.device.type}, not a dense float tensor; {resave}"
            )
        integer = not value.is_floating_point()
        if integer and not (key.endswith(_COUNTER) and not value.is_complex()):
            raise CheckpointError(
                f"{path}: tensor {name} has dtype {value.dtype}, not a float dtype; {resave}"
            )
        if not integer and not bool(torch.isfinite(value).all()):
            bad = "NaN" if bool(torch.isnan(value).any()) else "infinite"
            raise CheckpointError(
                f"{path}: tensor {name} holds {bad} values (a diverged training run?); the "
                "model would output garbage — use an earlier checkpoint"
            )


def _is_raw_pickle(path: Path) -> bool:
    """Whether the file starts like a pickle of protocol 2 or later (not a torch zip archive)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _unreadable(path: Path, e: Exception) -> CheckpointError:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    reason = lines[-1][:160] if lines else type(e).__name__
    return CheckpointError(
        f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {reason}); "
        "the file may be truncated or of another format — re-download or re-save it"
    )


def config_of(path: str | os.PathLike, ckpt: dict) -> ModelConfig:
    """The ``ModelConfig`` stored in a read checkpoint (default when absent).

    Every value is type- and range-checked (``ModelConfig.from_dict``) before any tensor exists.

    Raises:
        CheckpointError: naming the file, the key, the bad value and the allowed range.
    """
    try:
        return ModelConfig.from_dict(ckpt["config"]) if ckpt["config"] else ModelConfig()
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{path}: bad model config in checkpoint: {e}; re-save it from a valid model "
            "(vosx.model.save_checkpoint)"
        ) from None


def load_checkpoint(path: str | os.PathLike) -> TrickVOS:
    """Load a checkpoint into a freshly built model, in eval mode.

    Raises:
        CheckpointError: missing/unsafe/corrupt file, or keys and shapes that do not match the
            config (the missing, unexpected and mis-shaped keys are listed).
    """
    ckpt = read_checkpoint(path)
    model = build_model(config_of(path, ckpt))
    check_state_dict(path, model, ckpt["model"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


def check_state_dict(path: str | os.PathLike, model: torch.nn.Module, state: dict) -> None:
    """Raise a ``CheckpointError`` listing missing, unexpected and mis-shaped keys, if any."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != v.shape
    )
    if not (missing or unexpected or misshaped):
        return
    parts = []
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("mis-shaped", misshaped),
    ):
        if keys:
            shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
            parts.append(f"{len(keys)} {label}: {shown}")
    raise CheckpointError(
        f"{path}: state_dict does not match the model config ({'; '.join(parts)}); "
        "was it saved from another architecture or config?"
    )


def resolve_checkpoint(path: str | os.PathLike | None) -> Path:
    """The checkpoint a command should use: ``path``, else the bundled default.

    Raises:
        CheckpointError: no ``path`` and no bundled checkpoint (a given path is checked when it
            is read).
    """
    ckpt = checkpoint_or_bundled(path)
    if path is None and not ckpt.is_file():
        raise CheckpointError(
            f"no checkpoint given and no bundled default at {ckpt}; pass a CKPT path "
            "(e.g. one written by `vosx init model.pth`)"
        )
    return ckpt
