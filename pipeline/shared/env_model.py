"""Settings read from environment variables and validated by pydantic: each model field is one
variable (its alias), and whatever pydantic refuses becomes one line naming the variable and its
value, never a traceback. Pure: the caller passes the environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from pipeline.shared.errors import ConfigError

__all__ = ["env_var", "one_line", "read_env"]

M = TypeVar("M", bound=BaseModel)

#: pydantic's error types in the words of an operator reading one line
_SAID: dict[str, str] = {
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_parsing": "is not a number",
    "finite_number": "is not a finite number",
    "bool_parsing": "use 1 or 0",
    "greater_than": "must be above {gt}",
    "greater_than_equal": "must be {ge} or more",
    "less_than": "must be below {lt}",
    "less_than_equal": "must be {le} or less",
    "literal_error": "choose {expected}",
    "string_pattern_mismatch": "use letters, digits, '.', '_' or '-'",
    "string_too_short": "must be at least {min_length} characters",
}


def env_var(default: Any, name: str, description: str, **constraints: Any) -> Any:
    """A field read from the variable `name`, which `description` explains (`--help`, the manual)."""
    return Field(default, alias=name, description=description, **constraints)


def read_env(model: type[M], env: Mapping[str, str]) -> M:
    """The model from the variables named by its fields' aliases; unset or empty ones keep their
    defaults. Raises ConfigError with one line naming the first variable refused."""
    values: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        var = f.alias or name
        raw = env.get(var, "")
        if raw != "":
            values[var] = raw
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(one_line(exc, values)) from None


def one_line(exc: ValidationError, given: Mapping[str, Any]) -> str:
    """The first error pydantic found, as `VAR='value': what is wrong`; the models' own checks say
    their own sentence, which names its variables."""
    err = exc.errors(include_url=False)[0]
    loc = err["loc"]
    ctx = err.get("ctx") or {}
    if err["type"] == "value_error":
        said = str(ctx.get("error", err["msg"]))
        return said if not loc or said.startswith(str(loc[0])) else f"{loc[0]}: {said}"
    template = _SAID.get(err["type"])
    said = template.format(**ctx) if template is not None else err["msg"][:1].lower() + err["msg"][1:]
    if not loc:
        return said
    var = str(loc[0])
    return f"{var}={given.get(var, err.get('input'))!r}: {said}"
