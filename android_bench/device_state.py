"""What a phone reports about itself: ``DeviceInfo`` and ``ThermalState``, and their parsers.

Reads ``getprop``'s ``[key]: [value]`` lines, ``dumpsys thermalservice`` (Android's 0..6 thermal
status and the HAL temperatures) and ``/sys/class/thermal`` zone files; ``adb.Adb`` runs the
commands. Standard library only.
"""

import re
from dataclasses import asdict, dataclass

THERMAL_STATUS = ("none", "light", "moderate", "severe", "critical", "emergency", "shutdown")


@dataclass(frozen=True)
class DeviceInfo:
    """What the report records about a phone (None where the device does not say)."""

    serial: str
    model: str | None
    manufacturer: str | None
    soc: str | None
    hardware: str | None
    android_version: str | None
    sdk: str | None
    abi: str | None
    abilist: str | None
    gpu: str | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ThermalState:
    """Thermal status (Android's 0..6 scale) and temperatures in degrees Celsius at one moment."""

    status: int | None
    temperatures: dict  # sensor name -> degrees C
    source: str | None  # "thermalservice", "sysfs" or None when unreadable

    @property
    def status_name(self) -> str | None:
        if self.status is None:
            return None
        return (
            THERMAL_STATUS[self.status]
            if 0 <= self.status < len(THERMAL_STATUS)
            else str(self.status)
        )

    @property
    def throttled(self) -> bool:
        """True when Android reports any thermal throttling (status light or worse)."""
        return self.status is not None and self.status >= 1

    @property
    def max_temperature(self) -> float | None:
        return max(self.temperatures.values()) if self.temperatures else None

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "status_name": self.status_name,
            "throttled": self.throttled,
            "max_temperature_c": self.max_temperature,
            "temperatures_c": self.temperatures,
            "source": self.source,
        }


def parse_getprop(text: str) -> dict[str, str]:
    """``[key]: [value]`` lines of ``getprop`` into a dict."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, re.M))


def parse_thermalservice(text: str) -> ThermalState | None:
    """``dumpsys thermalservice``: "Thermal Status: N" and HAL temperatures; None if neither."""
    m = re.search(r"Thermal Status:\s*(\d+)", text)
    temps = {}
    for value, typ, name in re.findall(
        r"Temperature\{mValue=([-\d.eE+]+), mType=(-?\d+), mName=([^,}]+)", text
    ):
        try:
            temps[name.strip()] = round(float(value), 2)
        except ValueError:
            continue
        del typ  # the type is implied by the sensor name
    if m is None and not temps:
        return None
    return ThermalState(int(m.group(1)) if m else None, temps, "thermalservice")


def parse_sysfs_thermal(text: str) -> dict[str, float]:
    """``grep -H . .../thermal_zoneN/type .../temp`` output into {zone type: degrees C}."""
    types, temps = {}, {}
    for zone, field, value in re.findall(r"/(thermal_zone\d+)/(type|temp):(.*)$", text, re.M):
        (types if field == "type" else temps)[zone] = value.strip()
    out = {}
    for zone, raw in temps.items():
        try:
            v = float(raw)
        except ValueError:
            continue
        out[types.get(zone, zone)] = round(v / 1000.0 if abs(v) > 200 else v, 2)
    return out
