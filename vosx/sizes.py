"""The one parser of ``HEIGHTxWIDTH`` option values ('480x864' -> (480, 864)) and the size
rules of the network's input; stdlib only.

Every package may import it (``tracker_runtime`` and ``export`` alike). It bounds every side to
``low..MAX_SIDE`` (``MAX_SIDE`` is the largest input an export may have,
``vosx.manifest.MAX_INPUT_SIDE``), so no size option can ask for more memory than that; each
caller checks the further rules its own sizes need (``vosx.export.options.check_size``:
multiples of ``STRIDE``).
"""

from vosx.errors import ConfigError

MAX_SIDE = 4096
"""Largest height or width any size option accepts (a 4096 x 4096 float frame is 200 MB)."""
STRIDE = 16
"""The network's output stride: padded input sides are multiples of it, and the memory grid
(one token per cell) is the input size divided by it."""
DEFAULT_SIZE = (480, 864)
"""The padded network input (height, width) unless a ``--size`` option says otherwise: 480p
video (480 x 854) padded to multiples of ``STRIDE``."""


def parse_size(
    text: str, option: str = "--size", example: str = "x".join(map(str, DEFAULT_SIZE)), low: int = 1
) -> tuple[int, int]:
    """'480x864' (or '480X864') -> (480, 864): two integers joined by an x, each in
    ``low..MAX_SIDE``.

    Args:
        text: The option value.
        option: The option's name, for the error message.
        example: A valid value, for the error message.
        low: The smallest side the caller accepts.

    Returns:
        (height, width).

    Raises:
        ConfigError: ``text`` is not two integers joined by an x, or a side is outside
            ``low..MAX_SIDE``.
    """
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected HEIGHTxWIDTH, e.g. {example}") from None
    span = f"each in {low}..{MAX_SIDE}"
    if min(height, width) < low:
        least = "positive" if low == 1 else f"at least {low}"
        raise ConfigError(
            f"{option} {height}x{width}: height and width must be {least} ({span}), e.g. {example}"
        )
    if max(height, width) > MAX_SIDE:
        raise ConfigError(
            f"{option} {height}x{width}: each side must be at most {MAX_SIDE} ({span}), "
            f"e.g. {example}"
        )
    return height, width
