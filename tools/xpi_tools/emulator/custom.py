"""Model ARNs of the account's own resources, answered by the runtime API with a base model's
behaviour: Custom Model Import (``imported-model/``), provisioned throughput
(``provisioned-model/``) and application inference profiles (``application-inference-profile/``).

Each is registered through the control endpoint (``POST /_emulator/custom-models``) or
``EmulatorConfig.custom_models``, naming the foundation model (or system inference profile) whose
request and response bodies, limits and counters it takes. Invoking one resolves to that base model;
nothing else of the resource (its import job, model units, tags, the control-plane Get/List
operations for it) is modelled. An ARN of these kinds that is not registered answers the catalogue's
invalid-model ValidationException, as any unknown model identifier does.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from typing import Any, Final

from xpi_tools.emulator.catalogue import MODELS_BY_ID, PROFILES, ModelSpec, Resolved

KINDS: Final = ("imported-model", "provisioned-model", "application-inference-profile")
RESOURCE_ID: Final = re.compile(r"[a-z0-9]{12}")
ID_ALPHABET: Final = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class CustomModel:
    """``kind`` is the ARN's resource type; ``base_model`` a foundation-model or system profile id."""

    kind: str
    base_model: str
    resource_id: str = ""
    name: str = ""


@dataclass(frozen=True)
class Registered:
    arn: str
    kind: str
    resource_id: str
    name: str
    model: ModelSpec

    def describe(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "kind": self.kind,
            "id": self.resource_id,
            "name": self.name,
            "base_model": self.model.model_id,
        }


def base_model_of(identifier: str) -> ModelSpec:
    """The foundation model a base-model id (or system inference-profile id) names."""
    if identifier in MODELS_BY_ID:
        return MODELS_BY_ID[identifier]
    if identifier in PROFILES:
        return PROFILES[identifier].model
    raise ValueError(f"unknown base model {identifier!r}")


class CustomModels:
    def __init__(self, partition: str, region: str, account_id: str, initial: list[CustomModel]) -> None:
        self._prefix = f"arn:{partition}:bedrock:{region}:{account_id}:"
        self._initial = list(initial)
        self.by_arn: dict[str, Registered] = {}
        for model in initial:
            self.add(model)

    def add(self, model: CustomModel) -> Registered:
        if model.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        base = base_model_of(model.base_model)
        resource_id = model.resource_id or "".join(secrets.choice(ID_ALPHABET) for _ in range(12))
        if not RESOURCE_ID.fullmatch(resource_id):
            raise ValueError("id must be 12 lower-case letters or digits")
        arn = f"{self._prefix}{model.kind}/{resource_id}"
        registered = Registered(arn, model.kind, resource_id, model.name or resource_id, base)
        self.by_arn[arn] = registered
        return registered

    def resolve(self, identifier: str) -> Resolved | None:
        """The base model a registered ARN invokes; None for anything else (the catalogue decides)."""
        registered = self.by_arn.get(identifier)
        if registered is None:
            return None
        return Resolved(registered.model, registered.resource_id, None)

    def reset(self) -> dict[str, Any]:
        self.by_arn.clear()
        for model in self._initial:
            self.add(model)
        return self.describe()

    def describe(self) -> dict[str, Any]:
        return {"custom_models": [r.describe() for r in self.by_arn.values()]}

    def control_add(self, body: dict[str, Any]) -> dict[str, Any]:
        kind, base, resource_id, name = (
            body.get("kind"),
            body.get("base_model"),
            body.get("id", ""),
            body.get("name", ""),
        )
        if not all(isinstance(v, str) for v in (kind, base, resource_id, name)):
            raise ValueError("kind and base_model are required strings; id and name optional strings")
        return self.add(CustomModel(str(kind), str(base), str(resource_id), str(name))).describe()
