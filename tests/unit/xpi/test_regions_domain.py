import pytest
from xpi.domain.regions import belongs_here, mint_request_id, minted_region
from xpi.models.request import REQUEST_ID_PATTERN


def test_a_minted_id_names_its_region_and_is_a_valid_request_id() -> None:
    request_id = mint_request_id("us-gov-east-1")

    assert minted_region(request_id) == "us-gov-east-1"
    assert __import__("re").match(REQUEST_ID_PATTERN, request_id)
    assert mint_request_id("us-gov-west-1", "abc") == "us-gov-west-1.abc"


def test_only_the_region_an_id_was_minted_for_claims_it() -> None:
    west = mint_request_id("us-gov-west-1")

    assert belongs_here(west, "us-gov-west-1")
    assert not belongs_here(west, "us-gov-east-1")


@pytest.mark.parametrize("request_id", ["it-1234", "3f9c2d8e-0000-4000-8000-000000000000", "batch.line-7"])
def test_an_id_naming_no_region_is_processed_where_it_arrives(request_id: str) -> None:
    assert minted_region(request_id) is None
    assert belongs_here(request_id, "us-gov-west-1") and belongs_here(request_id, "us-gov-east-1")


def test_a_region_that_is_no_region_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not a region name"):
        mint_request_id("West")
