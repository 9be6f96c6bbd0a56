"""The one parser of ``HEIGHTxWIDTH`` option values ('480x864' -> (480, 864)); stdlib only.

Every package may import it (``tracker_runtime`` and ``export`` alike); each caller checks the
bounds its own sizes need (``export.pipeline.check_size``: multiples of 16).
"""

from vosx.errors import ConfigError


def parse_size(text: str, option: str = "--size", example: str = "480x864") -> tuple[int, int]:
    """'480x864' (or '480X864') -> (480, 864): two integers joined by an x.

    Args:
        text: The option value.
        option: The option's name, for the error message.
        example: A valid value, for the error message.

    Returns:
        (height, width); not checked for bounds.

    Raises:
        ConfigError: ``text`` is not two integers joined by an x.
    """
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected HEIGHTxWIDTH, e.g. {example}") from None
    return height, width
