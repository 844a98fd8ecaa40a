"""A property test of the JSON API against its own OpenAPI document (schemathesis): the
real server on 127.0.0.1 over a real indexed collection gets generated requests, valid
and invalid, for every documented operation; no answer may be a server error, use a status
or a content type the document does not list, or break the documented body schema.

Each operation is driven through its hypothesis strategy directly: schemathesis' own
pytest plugin does not run under this pytest (it reads a private attribute pytest 9
dropped).

Every check schemathesis has runs except "a schema-valid request is accepted": the API
checks what a schema cannot say (an upload must be an image, ``min_size <= max_size``,
``offset + k <= 10000``, a known format name), and answers those with a documented 4xx.
Invalid requests (negative mode) are generated for the operations that take parameters
a request can get wrong."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from lookalike.collection import Collection
from lookalike.web import create_app
from web.live import LiveServer

OPERATIONS = [
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/search"),
    ("POST", "/api/v1/search"),
    ("POST", "/api/v1/search/image"),
    ("GET", "/api/v1/images/{doc_id}"),
    ("GET", "/api/v1/images/{doc_id}/similar"),
    ("GET", "/api/v1/images/{doc_id}/file"),
    ("GET", "/api/v1/images/{doc_id}/thumbnail"),
    ("GET", "/api/v1/duplicates"),
]
#: operations with parameters or a body that a request can get wrong
NEGATABLE = {path for _, path in OPERATIONS} - {
    "/api/v1/health",
    "/api/v1/stats",
    "/api/v1/images/{doc_id}",  # any string is a valid id (unknown ones are a 404)
}
EXAMPLES = 12  # per operation and mode: the whole module runs in about half a minute here


@pytest.fixture(scope="module")
def api_schema(shared_collection: Collection) -> Iterator[Any]:
    with LiveServer(create_app(shared_collection.settings, collection=shared_collection)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_every_documented_operation_is_fuzzed(api_schema: Any) -> None:
    documented = {
        (method.upper(), path)
        for path, ops in api_schema.raw_schema["paths"].items()
        for method in ops
    }
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [(method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS]
    + [(method, path, GenerationMode.NEGATIVE) for method, path in OPERATIONS if path in NEGATABLE],
)
def test_the_api_keeps_its_documented_promises(
    api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples on every run: a failure here is reproducible
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    run()
