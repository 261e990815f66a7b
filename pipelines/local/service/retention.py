"""What UpdateEndpoint deploys when it keeps the endpoint's variant properties.

With RetainAllVariantProperties, SageMaker keeps each variant's current desired weight and
instance count and the endpoint's data capture, except the kinds ExcludeRetainedVariantProperties
names, which come from the new endpoint config. Locally the current values are always those of the
config the endpoint serves (UpdateEndpointWeightsAndCapacities is not served), so keeping them
means taking them from that config: by variant name, for the variants both configs have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.local.storage.database import Body

# VariantPropertyType -> the ProductionVariant member that sets it.
VARIANT_MEMBERS = {"DesiredWeight": "InitialVariantWeight", "DesiredInstanceCount": "InitialInstanceCount"}
DEFAULTS = {"InitialVariantWeight": 1.0, "InitialInstanceCount": 1}


def retained_config(request: Mapping[str, Any], new: Body, serving: Body) -> Body:
    """The config to deploy: `new`, with what the update retains of `serving`."""
    if request.get("RetainAllVariantProperties") is not True:
        return new
    excluded = request.get("ExcludeRetainedVariantProperties") or []
    overridden = {item["VariantPropertyType"] for item in excluded}
    kept = [member for kind, member in VARIANT_MEMBERS.items() if kind not in overridden]
    current = {variant["VariantName"]: variant for variant in serving["ProductionVariants"]}
    variants = []
    for variant in new["ProductionVariants"]:
        old = current.get(variant["VariantName"])
        if old is not None:
            variant = {**variant, **{member: old.get(member, DEFAULTS[member]) for member in kept}}
        variants.append(variant)
    deployed = {**new, "ProductionVariants": variants}
    if "DataCaptureConfig" not in overridden:
        deployed.pop("DataCaptureConfig", None)
        if serving.get("DataCaptureConfig"):
            deployed["DataCaptureConfig"] = serving["DataCaptureConfig"]
    return deployed
