"""The model price table kept in the repo (functions/xpi/config/prices.json): per model, what Bedrock
charges per 1,000 input, output, cache-read and cache-write tokens, each line with its source and the
date it was read. The routing document's prices are the deployment's (they win where set); this table
gives prompt caching's prices where the routing document sets none, and the analytics' reference."""

import json
from functools import cache
from importlib import resources
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class PriceLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]
    cache_read: Annotated[float, Field(ge=0)] | None = None  # None: the model has no prompt caching
    cache_write: Annotated[float, Field(ge=0)] | None = None
    source: Annotated[str, Field(min_length=1)]
    as_of: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    currency: str
    unit: str
    models: dict[str, PriceLine]


@cache
def price_table() -> PriceTable:
    text = resources.files("xpi.config").joinpath("prices.json").read_text(encoding="utf-8")
    return PriceTable.model_validate(json.loads(text))


def cache_prices(model_id: str, input_price: float) -> tuple[float, float]:
    """(read, write) per 1,000 prompt-cache tokens of `model_id`: the price table's line, else the input
    price (a model the table does not price for caching is never under-counted)."""
    line = price_table().models.get(model_id)
    read = line.cache_read if line is not None and line.cache_read is not None else input_price
    write = line.cache_write if line is not None and line.cache_write is not None else input_price
    return read, write
