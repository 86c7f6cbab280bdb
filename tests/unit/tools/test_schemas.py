from xpi_tools import schemas


def test_published_schemas_match_the_models() -> None:
    # A contract change must come with its regenerated schema (python -m xpi_tools.schemas).
    assert schemas.main(["--check"]) == 0


def test_request_schema_states_the_limits() -> None:
    rendered = schemas.render(schemas.InferenceRequest)
    assert '"maxLength": 150000' in rendered
    assert '"pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$"' in rendered
