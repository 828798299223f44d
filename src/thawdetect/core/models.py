"""Shared pydantic building blocks for configuration: strict models and unit-carrying ranges."""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from thawdetect.core.errors import ConfigError

__all__ = [
    "AngleRange",
    "Range",
    "StrictModel",
    "render_validation_error",
    "to_commented_yaml",
    "validate_section",
]

_M = TypeVar("_M", bound=BaseModel)  # PEP 695 syntax needs 3.12; requires-python is 3.11


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors (``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class Range(StrictModel):
    """A closed interval ``[min, max]`` (units given by the field name that holds it)."""

    min: float = Field(description="lower bound (inclusive)")
    max: float = Field(description="upper bound (inclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the closed interval.

        Examples:
            >>> Range(min=1, max=30).contains(30)
            True
        """
        return self.min <= value <= self.max


class AngleRange(StrictModel):
    """An interval of compass angles in degrees (0 = north, clockwise), both ends in [0, 360].

    ``min > max`` means the interval wraps through north: ``{min: 315, max: 45}`` is 315-360 ∪ 0-45.
    """

    min: float = Field(ge=0, le=360, description="start angle, degrees from north clockwise")
    max: float = Field(ge=0, le=360, description="end angle, degrees from north clockwise")

    @property
    def wraps(self) -> bool:
        """True when the interval passes through north (min > max)."""
        return self.min > self.max

    def contains(self, angle: float) -> bool:
        """Whether ``angle`` (degrees) lies in the interval.

        Examples:
            >>> AngleRange(min=315, max=45).contains(10)
            True
            >>> AngleRange(min=0, max=112.5).contains(120)
            False
            >>> AngleRange(min=270, max=360).contains(0)  # 0 and 360 are both north
            True
        """
        a = angle % 360.0
        if self.wraps:
            return a >= self.min or a <= self.max
        return self.min <= a <= self.max or self.min <= a + 360.0 <= self.max


def render_validation_error(exc: ValidationError, source: str) -> str:
    """One line per error, ``SOURCE: field.path: message`` (llm's renderer, file name prepended)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"{source}: {loc}: {err['msg']}")
    return "; ".join(lines)


def validate_section(model: type[_M], data: Any, source: str) -> _M:
    """Validate ``data`` against ``model``; raise :class:`ConfigError` with a one-line message.

    Args:
        model: the pydantic model class.
        data: the raw mapping (from YAML).
        source: prefix for messages, e.g. ``"run.yaml: detectors.insar_sbas"``.
    """
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(render_validation_error(exc, source)) from None


def to_commented_yaml(model: BaseModel, indent: int = 0) -> str:
    """Render a model as YAML with each field's description as a comment (dolphin style).

    Nested models recurse (their fields get comments too); every other value, lists of models
    included, is dumped as block YAML.
    """
    pad = " " * indent
    out: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if field.description:
            out.append(f"{pad}# {field.description}")
        if isinstance(value, BaseModel):
            out.append(f"{pad}{name}:")
            out.append(to_commented_yaml(value, indent + 2))
            continue
        dumped = _plain(value)
        nested = (isinstance(dumped, dict) and dumped) or (
            isinstance(dumped, list) and any(isinstance(v, dict) for v in dumped)
        )
        if nested:
            text = yaml.safe_dump(
                {name: dumped}, default_flow_style=False, sort_keys=False, allow_unicode=True
            )
        else:
            flow = yaml.safe_dump(dumped, default_flow_style=True, allow_unicode=True)
            text = f"{name}: {flow.strip().removesuffix('...').strip()}"
        out.extend(f"{pad}{line}" for line in text.splitlines())
    return "\n".join(out)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__fspath__"):
        return str(value)
    return value
