"""The numbers of a plugin's `NAME:VALUES` spec (a noise model's `gaussian:0.3`, a training callback's
`l1-activity:0.01`), checked in one place: how many, the defaults of those left out, whole numbers,
ranges. The class declares `params`, `defaults` (for the trailing params a spec may leave out),
`integer` and `ranges`."""

from __future__ import annotations

from typing import Any, Sequence

from zoo.errors import ConfigError


def spec_numbers(cls: Any, values: Sequence, where: str) -> list[float | int]:
    """`values` (text or numbers) as the numbers of `cls.params`, defaults filled in: one ConfigError
    for any mistake, starting with `where` ("gaussian noise", "train_callbacks: 'l1-activity:x'")."""
    params, defaults = tuple(cls.params), tuple(cls.defaults)
    form = ":".join([cls.name, *params])
    if len(values) > len(params):
        raise ConfigError(f"{where} has {len(values)} value(s); {cls.name} takes {len(params)} value(s)",
                          f"Write it as {form}.")
    try:
        numbers: list[float | int] = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: its values must be numbers", f"Write it as {form}.") from None
    missing = len(params) - len(numbers)
    if missing > len(defaults):
        raise ConfigError(f"{where} leaves out a value {cls.name} needs", f"Write it as {form}.")
    numbers += [float(d) for d in defaults[len(defaults) - missing:]] if missing else []
    for i, (key, number) in enumerate(zip(params, numbers)):
        if key in getattr(cls, "integer", ()):
            if not float(number).is_integer():
                raise ConfigError(f"{where}: {key} must be a whole number, got {number:g}")
            numbers[i] = number = int(number)
        low, high = cls.ranges.get(key, (float("-inf"), float("inf")))
        if not low <= number <= high:
            valid = f">= {low:g}" if high == float("inf") else f"in {low:g}..{high:g}"
            raise ConfigError(f"{where}: {key} must be {valid}, got {number:g}")
    return numbers
