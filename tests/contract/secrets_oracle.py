"""The oracle for ``POST /v1/realtime/client_secrets``: the SDK's request and answer types.

The request body is a ``TypedDict`` in the SDK (``ClientSecretCreateParams``), which
pydantic validates but, like the models, without complaint about unknown keys; the
walk below reports every key the TypedDicts do not declare. The answer is a model
(``ClientSecretCreateResponse``), checked with the same unknown-key walk as events.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pydantic
import typing_extensions
from openai.types.realtime.client_secret_create_params import ClientSecretCreateParams
from openai.types.realtime.client_secret_create_response import ClientSecretCreateResponse
from pydantic import TypeAdapter

from tests.contract.oracle import unknown_keys

_REQUEST = TypeAdapter(ClientSecretCreateParams)


def _strip(tp: Any) -> Any:
    """The type inside Required[...], NotRequired[...], Annotated[...]."""
    wrappers = (typing_extensions.Required, typing_extensions.NotRequired, typing.Annotated)
    while typing_extensions.get_origin(tp) in wrappers:
        tp = typing_extensions.get_args(tp)[0]
    return tp


def _variants(tp: Any) -> list[Any]:
    tp = _strip(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [v for arg in typing.get_args(tp) for v in _variants(arg)]
    return [tp]


def _typed_dict_keys(value: Mapping[str, Any], tp: Any, path: str) -> Iterator[str]:
    hints = typing_extensions.get_type_hints(tp, include_extras=True)
    for key, item in value.items():
        if key not in hints:
            yield f"{path}{key}"
        else:
            yield from _unknown(item, hints[key], f"{path}{key}.")


def _unknown(value: Any, tp: Any, path: str) -> Iterator[str]:
    """Unknown keys of ``value`` against the TypedDict type ``tp`` (unions: the best fit)."""
    candidates = []
    for variant in _variants(tp):
        origin = typing.get_origin(variant)
        if typing_extensions.is_typeddict(variant) and isinstance(value, Mapping):
            candidates.append(list(_typed_dict_keys(value, variant, path)))
        elif origin is not None and isinstance(value, list) and typing.get_args(variant):
            inner = typing.get_args(variant)[0]
            if isinstance(origin, type) and issubclass(origin, Iterable):
                candidates.append(
                    [k for i, v in enumerate(value) for k in _unknown(v, inner, f"{path}{i}.")]
                )
    if candidates:
        yield from min(candidates, key=len)


def request_problems(body: dict[str, Any]) -> list[str]:
    """Everything wrong with a ``client_secrets`` request body; [] when the SDK takes it."""
    try:
        _REQUEST.validate_python(body)
    except pydantic.ValidationError as exc:
        return [f"client_secrets request: {err['loc']}: {err['msg']}" for err in exc.errors()]
    return [f"client_secrets request: unknown key {key}"
            for key in _unknown(body, ClientSecretCreateParams, "")]  # fmt: skip


def answer_problems(body: dict[str, Any]) -> list[str]:
    """Everything wrong with a ``client_secrets`` answer; [] when the SDK takes it."""
    try:
        parsed = ClientSecretCreateResponse.model_validate(body)
    except pydantic.ValidationError as exc:
        return [f"client_secrets answer: {err['loc']}: {err['msg']}" for err in exc.errors()]
    return [f"client_secrets answer: unknown key {key}" for key in unknown_keys(parsed)]
