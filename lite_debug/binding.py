"""Bind the user's arrays to the model's inputs, the way the user meant to.

Users hand over a list (bound by position, like ``set_tensor(details[i]['index'], …)``) or a
mapping of names (from an ``.npz``, a JSON object, a bundle). Names are matched to the model's
input names with the decorations the converter adds stripped (``serving_default_…:0``); the
rest is bound in order. Whether that binding is *right* is the diagnosis's business.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from .records import Feed, ModelSpec, TensorSpec

__all__ = ["bind", "bind_mixed", "normalise_name"]

_DECORATION = re.compile(r"^(serving_default_)|(:\d+)$")


def normalise_name(name: str) -> str:
    """``serving_default_input_1:0`` → ``input_1``: the name a user would type."""
    return _DECORATION.sub("", _DECORATION.sub("", name)).lower()


def _match(tensor: TensorSpec, key: str) -> bool:
    k = normalise_name(key)
    return k in (normalise_name(tensor.name), normalise_name(tensor.tensor_name or tensor.name))


def bind(
    spec: ModelSpec,
    data: Feed | Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray,
    signature: str | None = None,
) -> Feed:
    """Key the data by the model's input names (or the signature's).

    A ``Feed`` is returned unchanged. Arrays that match no input keep their own key, so the
    diagnosis can report them as extra.
    """
    if isinstance(data, Feed):
        return data
    inputs, _ = spec.io(signature)
    if isinstance(data, np.ndarray):
        data = [data]
    if isinstance(data, Mapping):
        bound: dict[str, np.ndarray] = {}
        rest: list[tuple[str, np.ndarray]] = []
        for key, value in data.items():
            target = next((t for t in inputs if t.name not in bound and _match(t, key)), None)
            if target is None:
                rest.append((key, np.asarray(value)))
            else:
                bound[target.name] = np.asarray(value)
        free = [t for t in inputs if t.name not in bound]
        extras: dict[str, np.ndarray] = {}
        for (key, value) in rest:
            if free:
                bound[free.pop(0).name] = value
            else:
                extras[key] = value
        ordered = {t.name: bound[t.name] for t in inputs if t.name in bound}
        ordered.update(extras)
        return Feed(arrays=ordered)
    arrays = [np.asarray(a) for a in data]
    ordered = {t.name: a for t, a in zip(inputs, arrays)}
    for i, extra in enumerate(arrays[len(inputs):], start=len(inputs)):
        ordered[f"extra_{i}"] = extra
    return Feed(arrays=ordered)


def bind_mixed(
    spec: ModelSpec,
    keyed: Mapping[str, np.ndarray],
    positional: Sequence[np.ndarray],
    signature: str | None = None,
) -> Feed:
    """Bind named arrays (an ``.npz``, ``--input NAME=FILE``) and positional ones (one file per
    input) together: names first, then the positional arrays fill the remaining inputs in order."""
    if not (keyed and positional):
        return bind(spec, keyed or positional, signature)
    bound = dict(bind(spec, keyed, signature).arrays)
    inputs, _ = spec.io(signature)
    free = [t.name for t in inputs if t.name not in bound]
    bound.update(zip(free, positional))
    return Feed(arrays=bound)
