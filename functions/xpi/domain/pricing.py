"""The model price table kept in the repo (functions/xpi/config/prices.json): per model, what Bedrock
charges per 1,000 input, output, cache-read and cache-write tokens, each line with its source and the
date it was read, and what a Bedrock batch inference job charges for the same tokens (with its own
source and date). The routing document's prices are the deployment's (they win where set); this table
gives prompt caching's prices where the routing document sets none, the batch price of a job's answer,
and the analytics' reference."""

import json
from functools import cache
from importlib import resources
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

# Bedrock batch inference bills half the on-demand price of the same model: the batch price of a model
# whose line in the table has none.
BATCH_DISCOUNT: Final = 0.5


class PriceLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]
    cache_read: Annotated[float, Field(ge=0)] | None = None  # None: the model has no prompt caching
    cache_write: Annotated[float, Field(ge=0)] | None = None
    source: Annotated[str, Field(min_length=1)]
    as_of: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    # A batch inference job's price per 1,000 tokens; None: not in the table (half the on-demand price).
    # The source says where the figure comes from (a line that only knows "50 % of on-demand" says so).
    batch_input: Annotated[float, Field(ge=0)] | None = None
    batch_output: Annotated[float, Field(ge=0)] | None = None
    batch_source: str | None = None
    batch_as_of: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None


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


def batch_prices(model_id: str, input_price: float, output_price: float) -> tuple[float, float]:
    """(input, output) per 1,000 tokens of an answer a Bedrock batch inference job gave for `model_id`:
    the price table's batch line, else half the on-demand prices given (BATCH_DISCOUNT)."""
    line = price_table().models.get(model_id)
    batch_input = line.batch_input if line is not None else None
    batch_output = line.batch_output if line is not None else None
    return (
        batch_input if batch_input is not None else input_price * BATCH_DISCOUNT,
        batch_output if batch_output is not None else output_price * BATCH_DISCOUNT,
    )
