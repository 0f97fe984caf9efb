"""The base of every settings model read from a project's files (dinsync.yml's and the sync files'
models, each destination's own keys): a number is no boolean.

pydantic's lax mode reads `true` as 1 and `false` as 0 for an int or float field, so
`concurrency: true` ran one request at a time and `timeout_seconds: false` failed every request;
a YAML boolean where a number is expected is a mistake (or a switch that does not exist), told at
its line. A mapping of numbers (`rate_limits`) is checked value by value.
"""
from __future__ import annotations

import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..pydantic_plugins import look_up

look_up()  # before the first model of dinsync is built (see the module)


def _kinds(annotation: Any) -> tuple[frozenset, frozenset]:
    """(the plain types an annotation accepts, those of a mapping's values), through Optional,
    unions and Annotated."""
    args, origin = typing.get_args(annotation), typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kinds(args[0])
    if origin is dict:
        return frozenset({dict}), (_kinds(args[1])[0] if args else frozenset())
    if args and origin is not typing.Literal:
        kinds = [_kinds(a) for a in args]
        return frozenset().union(*(k for k, _ in kinds)), frozenset().union(*(v for _, v in kinds))
    return frozenset({origin or annotation}), frozenset()


def _numeric(kinds: frozenset) -> bool:
    return bool(kinds & {int, float}) and bool not in kinds


class Settings(BaseModel):
    """A settings model whose int and float fields (and mappings of them) refuse booleans."""

    unset_means: ClassVar[str] = "use the default"  # what leaving out a key whose default is None does

    # (a model validator: pydantic allows no `before` field validator on a discriminator such as `type`)
    @model_validator(mode="wrap")
    @classmethod
    def _no_boolean_number(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, dict):
            errors = [InitErrorDetails(type=PydanticCustomError("boolean_number", message), loc=loc, input=value)
                      for loc, value, message in cls._boolean_numbers(data)]
            if errors:
                raise ValidationError.from_exception_data(cls.__name__, errors)
        return handler(data)

    @classmethod
    def _boolean_numbers(cls, data: dict) -> list[tuple[tuple, bool, str]]:
        """(location, value, message) of each boolean given for a number."""
        found = []
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if field is None:
                continue
            kinds, values = _kinds(field.annotation)
            if isinstance(value, bool) and _numeric(kinds):
                found.append(((name,), value, f"expected a number, got {str(value).lower()}"
                                                f"{cls._default_hint(field.default)}"))
            elif isinstance(value, dict) and _numeric(values):
                found += [((name, key), item, f"expected a number, got {str(item).lower()}")
                          for key, item in value.items() if isinstance(item, bool)]
        return found

    @classmethod
    def _default_hint(cls, default: Any) -> str:
        """What leaving the key out means: its default, or `unset_means` when that is None."""
        if default is None:
            return f" (leave the key out to {cls.unset_means})"
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            return ""
        return f" (leave the key out to keep the default, {default:g})"
