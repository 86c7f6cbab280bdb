"""Region-aware request ids (docs/operations.md, "Two regions").

With the stack in two regions and one lineage global table, a request must be processed in one region
only: a global table's replication is last-writer-wins, so two regions' conditional claims of one
request id would both succeed, each in its own replica. A request id therefore names the region it was
minted for, `<region>.<unique part>` (`us-gov-east-1.3f9c...`), and only that region's processing claims
it; the other region leaves it alone (nothing written, nothing emitted), so the region it belongs to
answers it, if need be when it returns. An id without a region (a producer's own, API Gateway's request
id) is processed where it arrives, as with one region.
"""

import re
import uuid

from xpi.domain.errors import Problem, RequestInvalid

# A region name as AWS spells it: us-gov-west-1, us-east-1, eu-central-2 (the request id's alphabet).
_MINTED = re.compile(r"^(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-[0-9]{1,2})\.(?P<unique>[A-Za-z0-9_.:-]+)$")


def mint_request_id(region: str, unique: str | None = None) -> str:
    """A request id for `region`: the region, a dot, and a unique part (a random UUID's hex by default)."""
    request_id = f"{region}.{unique or uuid.uuid4().hex}"
    if minted_region(request_id) != region:
        raise ValueError(f"not a region name: {region!r}")
    return request_id


def minted_region(request_id: str) -> str | None:
    """The region a request id was minted for, or None for an id that names none."""
    match = _MINTED.match(request_id)
    return match["region"] if match else None


def belongs_here(request_id: str, region: str) -> bool:
    """Whether this region's processing may claim the request: its id names this region, or none."""
    minted = minted_region(request_id)
    return minted is None or minted == region


def refuse_other_regions(request_id: str, region: str) -> None:
    """The API's refusal (400, before anything is written or started) of a request id minted for another
    region: the caller sends it to that region, or sends it here under an id of this one. No region
    configured (""): nothing refused."""
    if region and not belongs_here(request_id, region):
        raise RequestInvalid(
            "the request id names another region",
            request_id,
            problems=(Problem("request_id", "other_region"),),
        )


def owned_by_other_region(request_id: str, region: str) -> bool:
    """Whether a request id names a region other than this one: this region's reaper leaves it to the
    region it names (with one global table both reapers see it; each ends only its own, so the two never
    both end it). No region configured (""): nothing is another region's."""
    return bool(region) and not belongs_here(request_id, region)


def check_takeover(lost_region: str, here: str) -> None:
    """A takeover names another region by its name: a region never declares itself lost (its own
    requests its reaper ends), and a typo must not match nothing silently."""
    if minted_region(f"{lost_region}.x") != lost_region:
        raise RequestInvalid(
            "not a region name", "takeover", problems=(Problem("takeover_region", "not_a_region"),)
        )
    if lost_region == here:
        raise RequestInvalid(
            "a region cannot take over its own requests (its reaper ends them)",
            "takeover",
            problems=(Problem("takeover_region", "own_region"),),
        )


def taken_over(request_id: str, lost_region: str) -> bool:
    """Whether the takeover of `lost_region` may end this request: its id was minted for that region
    (an id naming no region is processed where it arrived, and that region's reaper ends it)."""
    return minted_region(request_id) == lost_region
