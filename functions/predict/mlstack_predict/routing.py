"""Which version answers a request: the aliases (production, canary, shadow), read from the
registry at most every ``ALIAS_TTL_SECONDS`` (``ALIAS_ERROR_TTL_SECONDS`` after a failed read,
serving the last known ones meanwhile), and how a shadow's answer compares with the one served."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np

from mlstack_core.contract import LoadedModel
from mlstack_core.errors import ModelNotFound, ModelUnavailableError
from mlstack_core.observability.requests import logger
from mlstack_core.registry_keys import CANARY, PRODUCTION, SHADOW
from mlstack_core.settings import ServingSettings
from mlstack_core.tasks import CLASSIFICATION

if TYPE_CHECKING:
    from mlstack_core.documents import AliasEntry
    from mlstack_core.registry import RegistryReader

VARIANT_PRODUCTION: Final = "production"
VARIANT_CANARY: Final = "canary"
VARIANT_PINNED: Final = "pinned"
# Model names remembered as unreachable at most: a name is caller input.
MAX_UNREACHABLE: Final = 1024


@dataclass(frozen=True)
class Routing:
    """What the registry says about one model's traffic, cached for alias_ttl_seconds."""

    production: int | None
    canary: int | None = None
    canary_share: float = 0.0
    shadow: int | None = None

    def aliased(self, version: int) -> bool:
        return version in (self.production, self.canary, self.shadow)

    @classmethod
    def from_aliases(cls, aliases: dict[str, AliasEntry]) -> Routing:
        def version(alias: str) -> int | None:
            entry = aliases.get(alias)
            return None if entry is None else int(entry["version"])

        canary = aliases.get(CANARY)
        return cls(
            production=version(PRODUCTION),
            canary=version(CANARY),
            canary_share=float(canary.get("share") or 0.0) if canary else 0.0,
            shadow=version(SHADOW),
        )


@dataclass
class AliasCache:
    """Each model's Routing, cached for ``alias_ttl_seconds``, so a promotion, rollback or
    challenger change is served within that time and the registry is read once per TTL.

    A failed read is cached too, for ``alias_error_ttl_seconds``: the last known Routing is
    served (stale-if-error), or, with none, 503 is answered at once, until the registry is
    read again. A throttled or unreachable registry thus costs one failed read per model per
    window, not one (with its SDK retries and timeouts) per request.
    """

    registry: RegistryReader
    settings: ServingSettings
    aws_errors: tuple[type[Exception], ...]
    _routing: dict[str, tuple[Routing, float]] = field(default_factory=dict)
    # Models with no known Routing whose last read failed: until when 503 is answered.
    _unreachable: dict[str, float] = field(default_factory=dict)
    _random: random.Random = field(default_factory=random.Random)

    def get(self, model: str) -> Routing:
        """Production, canary and shadow of ``model``: one registry query at most every
        alias_ttl_seconds (alias_error_ttl_seconds after a failed one), so a promotion, rollback
        or challenger change is served within it."""
        now = time.monotonic()
        cached = self._routing.get(model)
        if cached and cached[1] > now:
            return cached[0]
        if self._unreachable.get(model, 0.0) > now:
            raise _registry_unavailable()
        try:
            routing = Routing.from_aliases(self.registry.aliases(model))
        except self.aws_errors as error:
            retry_at = time.monotonic() + self.settings.alias_error_ttl_seconds
            if cached:  # a registry hiccup must not take down a model we already know
                logger.warning(
                    "Registry read failed; serving cached aliases",
                    exc_info=True,
                    extra={"model": model, "version": cached[0].production},
                )
                self._routing[model] = (cached[0], retry_at)
                return cached[0]
            # A cold container has nothing to fall back on: the client should come back.
            logger.warning("Registry read failed; nothing cached", exc_info=True)
            if len(self._unreachable) >= MAX_UNREACHABLE:  # names are caller input: bounded
                self._unreachable.clear()
            self._unreachable[model] = retry_at
            raise _registry_unavailable() from error
        self._unreachable.pop(model, None)
        if routing.production is None:
            self._routing.pop(model, None)
            raise ModelNotFound(f"no model named {model!r} is in production")
        self._routing[model] = (routing, now + self.settings.alias_ttl_seconds)
        return routing

    def canary_turn(self, routing: Routing) -> bool:
        """Whether this request goes to the canary (its share of requests)."""
        return (
            routing.canary is not None
            and routing.canary != routing.production
            and self._random.random() < routing.canary_share
        )


def _registry_unavailable() -> ModelUnavailableError:
    return ModelUnavailableError(
        "the model registry cannot be reached; retry shortly",
        [{"field": "model", "message": "registry unavailable"}],
    )


def compare_outputs(
    served: LoadedModel,
    served_outputs: list[np.ndarray],
    shadow: LoadedModel,
    shadow_outputs: list[np.ndarray],
) -> tuple[float, float]:
    """(share of rows with the same prediction, largest absolute difference of any output).

    Classifiers: same label; probabilities compared when both list the same classes, else the
    difference is NaN (unknown). Regressors: agreement within 1e-6 relative, and the largest
    absolute prediction difference.
    """
    if served.layout.task != shadow.layout.task:
        raise ValueError("shadow and production are different tasks")
    if served.layout.task == CLASSIFICATION:
        same = np.asarray(served_outputs[0]).astype(str) == np.asarray(shadow_outputs[0]).astype(
            str
        )
        if served.layout.classes == shadow.layout.classes:
            difference = float(np.max(np.abs(served_outputs[1] - shadow_outputs[1])))
        else:
            difference = float("nan")
        return float(np.mean(same)), difference
    a = np.asarray(served_outputs[0], dtype=np.float64).reshape(-1)
    b = np.asarray(shadow_outputs[0], dtype=np.float64).reshape(-1)
    gap = np.abs(a - b)
    agree = gap <= 1e-6 * np.maximum(1.0, np.abs(a))
    return float(np.mean(agree)), float(np.max(gap))
