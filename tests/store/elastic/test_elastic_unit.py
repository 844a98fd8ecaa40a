"""ElasticStore against a scripted wire, with the real ``elasticsearch`` client.

No Elasticsearch server can run here, so the HTTP node is replaced (``node_class``)
by ``WireNode``: the real client builds, serialises and sends every request
(auth headers, compatibility headers, NDJSON), the node records it and answers
with a canned response that each test scripts. It is not an emulator: nothing is
stored or searched; the tests assert what the backend *sends* and how it reads
the answers. The same ``Store`` behaviour is checked against live clusters by
tests/store/test_contract.py when LOOKALIKE_TEST_ES_URL is set (CI:
.github/workflows/elasticsearch.yml).
"""

from __future__ import annotations

import base64
import json
import math
import re
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import elastic_transport
import numpy as np
import pytest
from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders

from lookalike.config import Settings
from lookalike.errors import (
    ConfigError,
    ModelError,
    ModelMismatchError,
    QueryError,
    StoreError,
    StoreUnavailableError,
)
from lookalike.records import Filters, ModelInfo, Record
from lookalike.store.base import Store
from lookalike.store.elastic import store as elastic_module
from lookalike.store.elastic.client import BulkStoreError
from lookalike.store.elastic.store import ElasticStore, project_ram

MODEL = ModelInfo("sentence-transformers/clip-ViT-B-32", 8, "clip-224-v1")
OTHER = ModelInfo("openai/some-other-model", 8, "clip-224-v1")
ALIAS = "lookalike-photos"
INDEX = "lookalike-photos.v1"


# -- the scripted wire ------------------------------------------------------------------------


@dataclass
class Sent:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    raw: bytes | None

    @property
    def json(self) -> Any:
        assert self.raw is not None
        return json.loads(self.raw)

    @property
    def ndjson(self) -> list[Any]:
        assert self.raw is not None
        return [json.loads(line) for line in self.raw.decode("utf-8").splitlines() if line]


class Reply(NamedTuple):
    """What a node returns to the transport (elastic_transport's NodeApiResponse shape)."""

    meta: ApiResponseMeta
    body: bytes


Answer = tuple[int, Any] | Callable[["Sent"], tuple[int, Any]] | Exception


@dataclass
class Wire:
    """Requests the client sent, and the answers to give, by method and path pattern."""

    sent: list[Sent] = field(default_factory=list)
    routes: list[tuple[str, re.Pattern[str], list[Answer]]] = field(default_factory=list)
    product: str = "Elasticsearch"  # the X-Elastic-Product header of every answer

    def on(self, method: str, path: str, *answers: Answer) -> None:
        """Answer ``method path`` (a regex, fully matched) with ``answers`` in turn; the last
        one repeats. Later routes win over earlier ones."""
        self.routes.insert(0, (method, re.compile(path), list(answers)))

    def answer(self, sent: Sent) -> tuple[int, Any]:
        for method, pattern, answers in self.routes:
            if method == sent.method and pattern.fullmatch(sent.path):
                reply = answers.pop(0) if len(answers) > 1 else answers[0]
                if isinstance(reply, Exception):
                    raise reply
                return reply(sent) if callable(reply) else reply
        raise AssertionError(f"unscripted request {sent.method} {sent.path}")

    def requests(self, method: str, path: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and re.fullmatch(path, s.path)]

    def one(self, method: str, path: str) -> Sent:
        found = self.requests(method, path)
        assert len(found) == 1, f"{method} {path}: {len(found)} requests"
        return found[0]


class WireNode(BaseNode):
    _CLIENT_META_HTTP_CLIENT = ("wire", "1")
    wire: Wire

    def perform_request(self, method, target, body=None, headers=None, request_timeout=None):  # type: ignore[no-untyped-def,override]
        parts = urllib.parse.urlsplit(target)
        sent = Sent(
            method,
            parts.path,
            dict(urllib.parse.parse_qsl(parts.query)),
            {k.lower(): v for k, v in dict(headers or {}).items()},
            body,
        )
        self.wire.sent.append(sent)
        status, payload = self.wire.answer(sent)
        meta = ApiResponseMeta(
            status=status,
            http_version="1.1",
            headers=HttpHeaders(
                {"x-elastic-product": self.wire.product, "content-type": "application/json"}
            ),
            duration=0.0,
            node=self.config,
        )
        return Reply(meta, json.dumps(payload).encode("utf-8"))


def error(status: int, etype: str, reason: str = "") -> tuple[int, Any]:
    return status, {"error": {"type": etype, "reason": reason}, "status": status}


NOT_FOUND = error(404, "index_not_found_exception", "no such index [lookalike-photos]")


def mapping_answer(model: ModelInfo = MODEL, index_type: str = "int8_hnsw") -> tuple[int, Any]:
    return 200, {
        INDEX: {
            "mappings": {
                "_meta": {"lookalike": {"schema": 1, "model": model.to_dict()}},
                "properties": {
                    "vector": {
                        "type": "dense_vector",
                        "dims": model.dim,
                        "similarity": "cosine",
                        "index_options": {"type": index_type, "m": 16, "ef_construction": 100},
                    }
                },
            }
        }
    }


@dataclass
class Harness:
    wire: Wire
    sleeps: list[float]
    settings: Settings

    def open(self, **overrides: Any) -> ElasticStore:
        settings = self.settings.with_overrides(**overrides) if overrides else self.settings
        node = type("BoundWireNode", (WireNode,), {"wire": self.wire})
        return ElasticStore.from_settings(
            settings, client_options={"node_class": node}, sleep=self.sleeps.append
        )

    def bound(
        self, version: str = "9.1.0", index_type: str = "int8_hnsw", **overrides: Any
    ) -> ElasticStore:
        self.wire.on("GET", "/", (200, info(version)))
        self.wire.on("GET", f"/{ALIAS}/_mapping", mapping_answer(index_type=index_type))
        return self.open(**overrides)


def info(version: str) -> dict[str, Any]:
    return {"name": "node-1", "version": {"number": version}, "tagline": "You Know, for Search"}


@pytest.fixture
def es(tmp_path: Path) -> Harness:
    settings = Settings(store="http://localhost:9200", collection="photos", home=tmp_path)
    return Harness(Wire(), [], settings)


def vec(*values: float) -> np.ndarray:
    v = np.zeros(8, dtype=np.float32)
    v[: len(values)] = values
    return v


def rec(i: int, vector: np.ndarray | None = None, *, path: str | None = None) -> Record:
    p = path or f"/photos/2024/img{i}.jpg"
    return Record(
        id=f"id{i:02d}",
        path=p,
        root="/photos",
        relpath=p[len("/photos/") :],
        format="jpeg",
        size=1000 + i,
        mtime=1_700_000_000.25 + i,
        sha256=f"{i:064x}",
        width=640,
        height=480,
        vector=vec(1.0, float(i)) if vector is None else vector,
    )


def source_of(r: Record, unit: np.ndarray) -> dict[str, Any]:
    return {
        "id": r.id,
        "path": r.path,
        "root": r.root,
        "relpath": r.relpath,
        "format": r.format,
        "size": r.size,
        "mtime": r.mtime,
        "sha256": r.sha256,
        "width": r.width,
        "height": r.height,
        "vec": base64.b64encode(unit.astype("<f4").tobytes()).decode(),
    }


def unit(v: np.ndarray) -> np.ndarray:
    return (v.astype(np.float64) / np.linalg.norm(v.astype(np.float64))).astype(np.float32)


BULK_OK = (200, {"errors": False, "items": []})


def backed_off(sleeps: list[float], ceilings: list[float]) -> bool:
    """Exponential back-off with equal jitter: each wait between half and all of its ceiling."""
    return len(sleeps) == len(ceilings) and all(
        c / 2 <= s <= c for s, c in zip(sleeps, ceilings, strict=True)
    )


# -- connecting -------------------------------------------------------------------------------


def test_connects_with_basic_auth_and_reads_server_version(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("8.17.2")))
    store = es.open(es_user="elastic", es_password="s3cret")
    sent = es.wire.one("GET", "/")
    assert sent.headers["authorization"] == "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    assert store.server_version == (8, 17, 2)
    assert store.alias == ALIAS and store.index_name == INDEX
    es.wire.on("GET", f"/{ALIAS}/_mapping", NOT_FOUND)  # isinstance reads the model property
    assert isinstance(store, Store)  # the runtime-checkable contract
    assert store.location == f"http://localhost:9200/{ALIAS}"
    # the client's compatibility header matches its own major version
    major = sys.modules["elasticsearch"].__versionstr__.split(".")[0]
    assert sent.headers["accept"] == f"application/vnd.elasticsearch+json; compatible-with={major}"
    store.close()


def test_api_key_and_url_credentials(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("9.0.0")))
    es.open(es_api_key="a2V5aWQ6c2VjcmV0").close()
    assert es.wire.sent[-1].headers["authorization"] == "ApiKey a2V5aWQ6c2VjcmV0"
    es.open(es_api_key="keyid:secret").close()
    assert (
        es.wire.sent[-1].headers["authorization"]
        == "ApiKey " + base64.b64encode(b"keyid:secret").decode()
    )
    es.open(store="https://bob:p%40ss@es.example:9243").close()
    assert (
        es.wire.sent[-1].headers["authorization"]
        == "Basic " + base64.b64encode(b"bob:p@ss").decode()
    )


def test_cloud_id_selects_the_deployment(es: Harness) -> None:
    # cloud id = name:base64("host$es-uuid$kibana-uuid")
    cloud_id = "photos:" + base64.b64encode(b"europe-west1.gcp.cloud.es.io$abc123$def456").decode()
    es.wire.on("GET", "/", (200, info("9.1.0")))
    store = es.open(store="elasticsearch", es_cloud_id=cloud_id, es_api_key="k")
    config = store._index.conn.client.transport.node_pool.all()[0].config
    assert (config.scheme, config.host, config.port) == (
        "https",
        "abc123.europe-west1.gcp.cloud.es.io",
        443,
    )
    assert "photos" in store.location
    store.close()
    with pytest.raises(ConfigError):
        es.open(store="somewhere", es_cloud_id=cloud_id)


def test_tls_settings_reach_the_node_config(es: Harness, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not really a certificate")
    es.wire.on("GET", "/", (200, info("9.0.0")))
    store = es.open(store="https://es.example:9200", es_ca_certs=str(ca))
    config = store._index.conn.client.transport.node_pool.all()[0].config
    assert (config.scheme, config.host, config.port) == ("https", "es.example", 9200)
    assert config.ca_certs == str(ca) and config.verify_certs is True
    store.close()
    store = es.open(store="https://es.example:9200", es_verify_certs=False)
    assert store._index.conn.client.transport.node_pool.all()[0].config.verify_certs is False
    store.close()


@pytest.mark.parametrize(
    "bad", ["localhost:9200", "ftp://host:21", "http://", "http://host:notaport"]
)
def test_store_that_is_not_a_url_is_a_config_error(es: Harness, bad: str) -> None:
    with pytest.raises(ConfigError) as info_:
        es.open(store=bad)
    assert info_.value.field == "store"
    assert es.wire.sent == []


def test_missing_client_package_says_how_to_install(
    es: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "elasticsearch", None)
    with pytest.raises(ConfigError, match=re.escape("pip install 'lookalike[elasticsearch]'")):
        es.open()


def test_unreachable_cluster_names_url_but_never_the_password(es: Harness) -> None:
    refused = elastic_transport.ConnectionError(
        "connection refused by es.example (user bob / hunter2)"
    )
    es.wire.on("GET", "/", refused)
    with pytest.raises(StoreUnavailableError) as exc_info:
        es.open(store="http://bob:hunter2@es.example:9200")
    message = str(exc_info.value)
    assert "http://es.example:9200" in message and "docker-compose" in message
    assert "hunter2" not in message
    assert len(es.wire.sent) == 2 and backed_off(es.sleeps, [0.5])  # one retry, with back-off


def test_tls_failure_points_at_ca_certs(es: Harness) -> None:
    es.wire.on("GET", "/", elastic_transport.TlsError("certificate verify failed"))
    with pytest.raises(StoreUnavailableError, match="es_ca_certs") as exc_info:
        es.open(store="https://es.example:9200")
    assert exc_info.value.field == "es_ca_certs"
    assert len(es.wire.sent) == 1  # TLS errors are not retried


def test_bad_credentials(es: Harness) -> None:
    es.wire.on(
        "GET", "/", error(401, "security_exception", "unable to authenticate user [elastic]")
    )
    with pytest.raises(StoreUnavailableError, match="es_api_key, or es_user and es_password"):
        es.open(es_user="elastic", es_password="wrong")


def test_without_the_monitor_privilege_the_version_is_assumed_conservatively(es: Harness) -> None:
    denied = error(403, "security_exception", "action [cluster:monitor/main] is unauthorized")
    es.wire.on("GET", "/", denied)
    store = es.open(es_api_key="restricted")
    major = int(sys.modules["elasticsearch"].__versionstr__.split(".")[0])
    assert store.server_version == ((9, 0, 0) if major >= 9 else (8, 14, 0))
    assert len(es.wire.sent) == 1  # a 403 is not retried
    store.close()


def test_client_newer_than_server_explains_which_client_to_install(es: Harness) -> None:
    es.wire.on(
        "GET",
        "/",
        (
            400,
            {
                "error": {
                    "type": "media_type_header_exception",
                    "reason": "Invalid media-type value on headers [Accept, Content-Type]",
                    "caused_by": {
                        "type": "status_exception",
                        "reason": "Accept version must be either version 8 or 7, but found 9.",
                    },
                },
                "status": 400,
            },
        ),
    )
    with pytest.raises(
        StoreUnavailableError, match=re.escape("pip install 'elasticsearch>=8.14,<9'")
    ):
        es.open()


def test_a_server_that_is_not_elasticsearch_is_refused(es: Harness) -> None:
    es.wire.product = ""
    es.wire.on("GET", "/", (200, {"version": {"number": "2.17.0", "distribution": "opensearch"}}))
    with pytest.raises(StoreUnavailableError, match="not Elasticsearch"):
        es.open()


def test_old_servers_are_refused(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("8.13.4")))
    with pytest.raises(StoreUnavailableError, match="8.14 or newer"):
        es.open()


def test_invalid_index_settings_fail_before_connecting(es: Harness) -> None:
    with pytest.raises(ConfigError) as exc_info:
        es.open(es_index_options="ivf")
    assert exc_info.value.field == "es_index_options"
    with pytest.raises(ConfigError):
        es.open(es_num_candidates=20_000)
    assert es.wire.sent == []


# -- the index and the model ------------------------------------------------------------------


def test_bind_model_creates_the_index_with_the_exact_mapping(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("9.1.0")))
    es.wire.on("GET", f"/{ALIAS}/_mapping", NOT_FOUND, NOT_FOUND, mapping_answer())
    es.wire.on("PUT", f"/{INDEX}", (200, {"acknowledged": True, "index": INDEX}))
    store = es.open(es_m=24, es_ef_construction=200)
    assert store.model is None
    store.bind_model(MODEL)
    assert store.model == MODEL
    assert es.wire.one("PUT", f"/{INDEX}").json == {
        "settings": {"index": {"codec": "best_compression"}},
        "aliases": {ALIAS: {"is_write_index": True}},
        "mappings": {
            "dynamic": "strict",
            "_meta": {
                "lookalike": {
                    "schema": 1,
                    "model": {"model_id": MODEL.model_id, "dim": 8, "preprocess": "clip-224-v1"},
                    "vector_copy": "vec: float32 little-endian, base64",
                    "vector_out_of_source": "_source.excludes",
                }
            },
            "_source": {"excludes": ["vector"]},
            "properties": {
                "id": {"type": "keyword"},
                "path": {"type": "keyword"},
                "folder": {"type": "keyword"},
                "root": {"type": "keyword"},
                "relpath": {"type": "keyword"},
                "format": {"type": "keyword"},
                "sha256": {"type": "keyword"},
                "size": {"type": "long"},
                "mtime": {"type": "double"},
                "modified": {"type": "date", "format": "epoch_millis"},
                "width": {"type": "integer", "index": False},
                "height": {"type": "integer", "index": False},
                "raw": {"type": "binary"},
                "vec": {"type": "binary"},
                "vector": {
                    "type": "dense_vector",
                    "element_type": "float",
                    "dims": 8,
                    "index": True,
                    "similarity": "cosine",
                    "index_options": {"type": "int8_hnsw", "m": 24, "ef_construction": 200},
                },
            },
        },
    }
    store.bind_model(MODEL)  # already bound: no second create
    assert len(es.wire.requests("PUT", f"/{INDEX}")) == 1


@pytest.mark.parametrize("version", ["9.2.0", "9.4.3"])
def test_from_9_2_the_cluster_keeps_vectors_out_of_source_without_a_recovery_copy(
    es: Harness, version: str
) -> None:
    # _source.excludes would make Elasticsearch keep the unfiltered document (the vector as
    # JSON) as _recovery_source; index.mapping.exclude_source_vectors needs no such copy.
    es.wire.on("GET", "/", (200, info(version)))
    es.wire.on("GET", f"/{ALIAS}/_mapping", NOT_FOUND, mapping_answer())
    es.wire.on("PUT", f"/{INDEX}", (200, {"acknowledged": True, "index": INDEX}))
    es.open().bind_model(MODEL)
    body = es.wire.one("PUT", f"/{INDEX}").json
    assert body["settings"] == {
        "index": {"codec": "best_compression", "mapping": {"exclude_source_vectors": True}}
    }
    assert "_source" not in body["mappings"]
    meta = body["mappings"]["_meta"]["lookalike"]
    assert meta["vector_out_of_source"] == "index.mapping.exclude_source_vectors"
    assert "vec" in body["mappings"]["properties"]  # get and copy still read the float32 copy


@pytest.mark.parametrize(
    ("index_options", "dims", "needs"),
    [("bbq_hnsw", 48, "at least 64 dimensions"), ("int4_hnsw", 97, "even number")],
)
def test_index_options_that_do_not_fit_the_model_fail_before_creating(
    es: Harness, index_options: str, dims: int, needs: str
) -> None:
    es.wire.on("GET", "/", (200, info("9.1.0")))
    es.wire.on("GET", f"/{ALIAS}/_mapping", NOT_FOUND)
    store = es.open(es_index_options=index_options)
    with pytest.raises(ConfigError, match=needs) as exc_info:
        store.bind_model(ModelInfo("m", dims, "clip-224-v1"))
    assert exc_info.value.field == "es_index_options"
    assert es.wire.requests("PUT", f"/{INDEX}") == []


@pytest.mark.parametrize(
    ("version", "dims", "chosen"),
    [
        ("9.1.0", 512, "bbq_hnsw"),  # GA bbq and GA cluster re-scoring: Elastic's own default
        ("9.4.3", 384, "bbq_hnsw"),
        ("9.4.3", 383, "int8_hnsw"),  # too few bits per vector to rank by
        ("9.0.4", 512, "int8_hnsw"),  # knn.rescore_vector is still a technical preview
        ("8.19.2", 768, "int8_hnsw"),  # bbq is a technical preview on 8.x
    ],
)
def test_the_default_index_options_follow_the_server_and_the_model(
    es: Harness, version: str, dims: int, chosen: str
) -> None:
    model = ModelInfo("m", dims, "clip-224-v1")
    es.wire.on("GET", "/", (200, info(version)))
    es.wire.on(
        "GET", f"/{ALIAS}/_mapping", NOT_FOUND, mapping_answer(model=model, index_type=chosen)
    )
    es.wire.on("PUT", f"/{INDEX}", (200, {"acknowledged": True, "index": INDEX}))
    store = es.open()  # es_index_options left at its default, "auto"
    store.bind_model(model)
    sent = es.wire.one("PUT", f"/{INDEX}").json["mappings"]["properties"]["vector"]
    assert sent["index_options"] == {"type": chosen, "m": 16, "ef_construction": 100}
    stats_answers(es.wire, (200, {"_shards": {"total": 1}, INDEX: {"fields": {}}}))
    details = store.stats().details
    ram = details["ram_projection"]
    assert ram["this_index"] == chosen
    assert ram["this_index_bytes_per_dimension"] == project_ram(chosen, dims, 1) / dims
    assert ram["bytes"][chosen]["100000000"] == project_ram(chosen, dims, 100_000_000)
    if chosen == "bbq_hnsw":  # re-scored in the cluster against the float vectors
        assert details["rescoring"] == "cluster"
        assert details["technical_previews"] == []
        assert ram["this_index_bytes_per_dimension"] < 0.4


def test_auto_index_options_are_resolved_before_any_mapping_is_built() -> None:
    from lookalike.store.elastic.mapping import IndexOptions

    auto = IndexOptions()
    assert auto.type == "auto" and auto.oversample is None
    assert auto.resolved((9, 1, 0), 512).type == "bbq_hnsw"
    assert auto.resolved((9, 1, 0), 512).oversample == 3.0
    explicit = IndexOptions("hnsw")
    assert explicit.resolved((9, 4, 0), 1024) is explicit
    with pytest.raises(ConfigError, match="resolved") as exc_info:
        auto.to_mapping()
    assert exc_info.value.field == "es_index_options"


def test_bind_model_refuses_another_model(es: Harness) -> None:
    store = es.bound()
    with pytest.raises(ModelMismatchError) as exc_info:
        store.bind_model(OTHER)
    message = str(exc_info.value)
    assert MODEL.model_id in message and OTHER.model_id in message and "re-index" in message
    assert es.wire.requests("PUT", f"/{INDEX}") == []


def test_concurrent_creation_is_not_an_error(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("9.1.0")))
    es.wire.on("GET", f"/{ALIAS}/_mapping", NOT_FOUND, mapping_answer())
    es.wire.on("PUT", f"/{INDEX}", error(400, "resource_already_exists_exception", "index exists"))
    store = es.open()
    store.bind_model(MODEL)
    assert store.model == MODEL


def test_a_foreign_index_under_our_name_is_refused(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("9.1.0")))
    es.wire.on("GET", f"/{ALIAS}/_mapping", (200, {ALIAS: {"mappings": {"properties": {}}}}))
    with pytest.raises(StoreError, match="did not create"):
        es.open().bind_model(MODEL)


def test_index_options_newer_than_the_server_are_refused(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("8.15.3")))
    es.wire.on("GET", f"/{ALIAS}/_mapping", NOT_FOUND)
    store = es.open(es_index_options="bbq_hnsw")
    with pytest.raises(ConfigError, match="8.16"):
        store.bind_model(MODEL)
    assert es.wire.requests("PUT", f"/{INDEX}") == []


def test_an_empty_collection_answers_without_errors(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("9.1.0")))
    es.wire.on("GET", f"/{ALIAS}/_mapping", NOT_FOUND)
    store = es.open()
    assert store.knn(vec(1.0), 5) == []
    assert store.count() == 0
    assert list(store.manifest("/photos")) == []
    assert store.get(["id01"]) == []
    assert list(store.iter_records()) == []
    assert store.find_by_hash(["ab"]) == {}
    store.delete(["id01"])
    store.flush()
    stats = store.stats()
    assert (stats.documents, stats.dimensions, stats.model) == (0, 0, None)
    assert [s.path for s in es.wire.sent] == ["/"] + [f"/{ALIAS}/_mapping"] * (
        len(es.wire.sent) - 1
    )


# -- writes -----------------------------------------------------------------------------------


def test_upsert_sends_bulk_index_actions_by_id_without_refresh(es: Harness) -> None:
    store = es.bound()
    es.wire.on("PUT", "/_bulk", BULK_OK)
    records = [rec(1), rec(2)]
    store.upsert(records)
    sent = es.wire.one("PUT", "/_bulk")
    assert sent.params["require_alias"] == "true"
    assert "refresh" not in sent.params
    assert sent.headers["content-type"].startswith("application/vnd.elasticsearch+x-ndjson")
    lines = sent.ndjson
    assert lines[0] == {"index": {"_index": ALIAS, "_id": "id01"}}
    assert lines[2] == {"index": {"_index": ALIAS, "_id": "id02"}}
    doc = lines[1]
    r = records[0]
    u = unit(r.vector)  # type: ignore[arg-type]
    vector = doc.pop("vector")
    assert doc == {
        **source_of(r, u),
        "folder": "/photos/2024",
        "modified": round(r.mtime * 1000),
    }
    assert np.array_equal(np.array(vector, dtype=np.float32), u)  # exact float32 round trip
    assert es.wire.requests("POST", f"/{ALIAS}/_refresh") == []


def test_bulk_batches_are_bounded(es: Harness) -> None:
    store = es.bound()
    store._index.conn.bulk_max_docs = 2
    es.wire.on("PUT", "/_bulk", BULK_OK)
    store.upsert([rec(i) for i in range(5)])
    sizes = [len(s.ndjson) // 2 for s in es.wire.requests("PUT", "/_bulk")]
    assert sizes == [2, 2, 1]
    store._index.conn.bulk_max_docs, store._index.conn.bulk_max_bytes = 500, 1_500
    store.upsert([rec(i) for i in range(5)])
    later = es.wire.requests("PUT", "/_bulk")[3:]
    assert len(later) > 1 and all(len(s.raw or b"") < 1_500 for s in later)
    assert sum(len(s.ndjson) // 2 for s in later) == 5


def test_the_bulk_byte_budget_counts_utf8_bytes_not_characters(es: Harness) -> None:
    store = es.bound()
    es.wire.on("PUT", "/_bulk", BULK_OK)
    store._index.conn.bulk_max_bytes = 4_000
    # 300 three-byte characters per path: a character count would see a third of the bytes
    records = [rec(i, path=f"/photos/{'日' * 300}{i}.jpg") for i in range(6)]
    store.upsert(records)
    sent = es.wire.requests("PUT", "/_bulk")
    assert len(sent) > 1 and sum(len(s.ndjson) // 2 for s in sent) == 6
    assert all(len(s.raw or b"") <= 4_000 for s in sent)
    chars = sum(len(line) + 1 for s in sent for line in (s.raw or b"").decode().splitlines())
    assert sum(len(s.raw or b"") for s in sent) > chars + 2 * 6 * 300  # really multi-byte


def test_one_retry_budget_per_bulk_request(es: Harness) -> None:
    # A refused request and refused documents spend the same budget: 6 attempts in all,
    # where a per-item retry loop around a per-request one could send 36.
    store = es.bound()
    throttled = {
        "errors": True,
        "items": [{"index": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}}],
    }
    turns = iter(range(100))
    es.wire.on(
        "PUT",
        "/_bulk",
        lambda sent: (
            error(503, "unavailable_shards_exception") if next(turns) % 2 else (200, throttled)
        ),
    )
    with pytest.raises(StoreUnavailableError, match="after 5 retries"):
        store.upsert([rec(1)])
    assert len(es.wire.requests("PUT", "/_bulk")) == 6
    assert backed_off(es.sleeps, [0.5, 1.0, 2.0, 4.0, 8.0])


def test_throttled_items_are_retried_with_backoff(es: Harness) -> None:
    store = es.bound()
    throttled = {
        "errors": True,
        "items": [
            {"index": {"status": 201}},
            {
                "index": {
                    "status": 429,
                    "error": {"type": "es_rejected_execution_exception", "reason": "queue full"},
                }
            },
        ],
    }
    es.wire.on("PUT", "/_bulk", (200, throttled), BULK_OK)
    store.upsert([rec(1), rec(2)])
    first, second = es.wire.requests("PUT", "/_bulk")
    assert len(first.ndjson) == 4
    assert [line for line in second.ndjson if "index" in line] == [
        {"index": {"_index": ALIAS, "_id": "id02"}}
    ]
    assert backed_off(es.sleeps, [0.5])


def test_overloaded_cluster_is_retried_then_reported(es: Harness) -> None:
    store = es.bound()
    es.wire.on("PUT", "/_bulk", error(503, "unavailable_shards_exception"), BULK_OK)
    store.upsert([rec(1)])
    assert len(es.wire.requests("PUT", "/_bulk")) == 2 and backed_off(es.sleeps, [0.5])
    es.wire.on("PUT", "/_bulk", error(429, "circuit_breaking_exception", "data too large"))
    with pytest.raises(StoreUnavailableError, match="overloaded"):
        store.upsert([rec(1)])
    assert backed_off(es.sleeps[1:], [0.5, 1.0, 2.0, 4.0, 8.0])


def test_per_document_failures_are_reported_not_swallowed(es: Harness) -> None:
    store = es.bound()
    store._index.conn.bulk_max_docs = 2
    bad = {
        "index": {
            "status": 400,
            "error": {"type": "document_parsing_exception", "reason": "bad field"},
        }
    }
    es.wire.on(
        "PUT",
        "/_bulk",
        (200, {"errors": True, "items": [{"index": {"status": 201}}, bad]}),
        (200, {"errors": False, "items": [{"index": {"status": 201}}]}),
    )
    with pytest.raises(BulkStoreError) as exc_info:
        store.upsert([rec(1), rec(2), rec(3)])
    assert len(es.wire.requests("PUT", "/_bulk")) == 2  # the later batch was still sent
    assert [(f.id, f.status) for f in exc_info.value.failures] == [("id02", 400)]
    assert "1 of 3 documents" in str(exc_info.value) and "document_parsing_exception" in str(
        exc_info.value
    )


def test_writes_after_the_index_was_deleted_fail_instead_of_auto_creating(es: Harness) -> None:
    store = es.bound()
    gone = {
        "index": {
            "status": 404,
            "error": {
                "type": "index_not_found_exception",
                "reason": "no such index [lookalike-photos] and [require_alias] is [true]",
            },
        }
    }
    es.wire.on("PUT", "/_bulk", (200, {"errors": True, "items": [gone]}))
    with pytest.raises(BulkStoreError, match="index_not_found"):
        store.upsert([rec(1)])
    es.wire.on("GET", f"/{ALIAS}/_mapping", NOT_FOUND)
    assert store.model is None  # the next bind_model recreates the index


def test_vectors_are_checked_before_sending(es: Harness) -> None:
    store = es.bound()
    with pytest.raises(ModelMismatchError, match="8-d vectors"):
        store.upsert([rec(1, np.ones(4, dtype=np.float32))])
    with pytest.raises(StoreError, match="NaN"):
        store.upsert([rec(1, vec(float("nan"), 1.0))])
    with pytest.raises(StoreError, match="all zeros"):
        store.upsert([rec(1, vec())])
    no_vector = rec(1)
    no_vector.vector = None
    with pytest.raises(ModelMismatchError):
        store.upsert([no_vector])
    with pytest.raises(StoreError, match="512-byte"):
        store.upsert([Record(**{**rec(1).__dict__, "id": "x" * 600})])
    assert es.wire.requests("PUT", "/_bulk") == []


def test_upsert_before_bind_model_is_an_error(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("9.1.0")))
    es.wire.on("GET", f"/{ALIAS}/_mapping", NOT_FOUND)
    with pytest.raises(StoreError, match="bind_model"):
        es.open().upsert([rec(1)])


def test_undecodable_file_names_round_trip_exactly(es: Harness) -> None:
    store = es.bound()
    es.wire.on("PUT", "/_bulk", BULK_OK)
    odd = "/photos/caf\udce9/\udcff.jpg"  # bytes that are not UTF-8, as os.fsdecode gives them
    store.upsert([rec(1, path=odd)])
    raw = es.wire.one("PUT", "/_bulk").raw
    assert raw is not None
    raw.decode("utf-8")  # strictly valid UTF-8 on the wire
    doc = es.wire.one("PUT", "/_bulk").ndjson[1]
    assert doc["path"] == "/photos/caf\ufffd/\ufffd.jpg"
    es.wire.on(
        "POST", f"/{ALIAS}/_mget", (200, {"docs": [{"_id": "id01", "found": True, "_source": doc}]})
    )
    got = store.get(["id01"], with_vectors=False)
    assert got[0].path == odd and got[0].relpath == odd[len("/photos/") :]


def test_delete_sends_bulk_deletes_and_ignores_unknown_ids(es: Harness) -> None:
    store = es.bound()
    missing = {"delete": {"status": 404}}
    es.wire.on(
        "PUT", "/_bulk", (200, {"errors": False, "items": [{"delete": {"status": 200}}, missing]})
    )
    store.delete(["id01", "nope", "id01", ""])
    assert es.wire.one("PUT", "/_bulk").ndjson == [
        {"delete": {"_index": ALIAS, "_id": "id01"}},
        {"delete": {"_index": ALIAS, "_id": "nope"}},
    ]


def test_flush_refreshes_and_searches_read_their_own_writes(es: Harness) -> None:
    store = es.bound()
    es.wire.on("PUT", "/_bulk", BULK_OK)
    es.wire.on("POST", f"/{ALIAS}/_refresh", (200, {"_shards": {"total": 1, "successful": 1}}))
    es.wire.on("POST", f"/{ALIAS}/_count", (200, {"count": 1}))
    store.upsert([rec(1)])
    assert store.count() == 1
    assert store.count() == 1
    paths = [s.path for s in es.wire.sent if s.method == "POST"]
    assert paths == [f"/{ALIAS}/_refresh", f"/{ALIAS}/_count", f"/{ALIAS}/_count"]
    store.flush()
    assert len(es.wire.requests("POST", f"/{ALIAS}/_refresh")) == 2


# -- reads ------------------------------------------------------------------------------------


def test_ids_must_be_a_list_of_strings(es: Harness) -> None:
    store = es.bound()
    with pytest.raises(QueryError):
        store.get("id01")
    with pytest.raises(QueryError):
        store.delete([1])  # type: ignore[list-item]


def test_get_keeps_order_skips_unknown_and_decodes_vectors(es: Harness) -> None:
    store = es.bound()
    r1, r2 = rec(1), rec(2)
    docs = [
        {"_id": "id02", "found": True, "_source": source_of(r2, unit(r2.vector))},  # type: ignore[arg-type]
        {"_id": "zz", "found": False},
        {"_id": "id01", "found": True, "_source": source_of(r1, unit(r1.vector))},  # type: ignore[arg-type]
    ]
    es.wire.on("POST", f"/{ALIAS}/_mget", (200, {"docs": docs}))
    got = store.get(["id02", "zz", "id01"])
    sent = es.wire.one("POST", f"/{ALIAS}/_mget")
    assert sent.json == {"ids": ["id02", "zz", "id01"]}
    assert sent.params["_source"].split(",") == [
        "id",
        "path",
        "root",
        "relpath",
        "format",
        "size",
        "mtime",
        "sha256",
        "width",
        "height",
        "raw",
        "vec",
    ]
    assert [g.id for g in got] == ["id02", "id01"]
    assert np.array_equal(got[1].vector, unit(r1.vector))  # type: ignore[arg-type]
    assert got[1].mtime == r1.mtime and got[1].relpath == r1.relpath
    store.get(["id01"], with_vectors=False)
    assert "vec" not in es.wire.requests("POST", f"/{ALIAS}/_mget")[1].params["_source"]


def hit(r: Record, score: float) -> dict[str, Any]:
    src = source_of(r, unit(r.vector))  # type: ignore[arg-type]
    src.pop("vec")
    return {"_id": r.id, "_score": score, "_source": src}


def test_knn_sends_the_exact_search_body_and_converts_scores(es: Harness) -> None:
    store = es.bound(version="9.1.0", index_type="hnsw")
    es.wire.on(
        "POST",
        f"/{ALIAS}/_search",
        (200, {"hits": {"hits": [hit(rec(1), 0.95), hit(rec(2), 0.5)]}}),
    )
    filters = Filters(
        folder="/photos/2024/",
        formats=("jpeg", "png"),
        min_size=10,
        max_size=5000,
        modified_after=1.5,
        modified_before=2e9,
    )
    query = vec(3.0, 4.0)
    hits = store.knn(
        query, 5, offset=10, filters=filters, min_score=0.1, exclude_ids=["id09", "id09"]
    )
    body = es.wire.one("POST", f"/{ALIAS}/_search").json
    qv = body["knn"].pop("query_vector")
    assert np.allclose(qv, [0.6, 0.8, 0, 0, 0, 0, 0, 0])
    assert body == {
        "knn": {
            "field": "vector",
            "k": 100,  # the depth rung, not offset + k: the same for every page up to 100
            "num_candidates": 100,
            "filter": {
                "bool": {
                    "filter": [
                        {"prefix": {"path": "/photos/2024/"}},
                        {"terms": {"format": ["jpeg", "png"]}},
                        {"range": {"size": {"gte": 10, "lte": 5000}}},
                        {"range": {"mtime": {"gte": 1.5, "lte": 2e9}}},
                    ],
                    "must_not": [{"ids": {"values": ["id09"]}}],
                }
            },
            "similarity": 0.1,
        },
        "from": 10,
        "size": 5,
        "_source": [
            "id",
            "path",
            "root",
            "relpath",
            "format",
            "size",
            "mtime",
            "sha256",
            "width",
            "height",
            "raw",
        ],
        "track_total_hits": False,
    }
    # _score is (1 + cos) / 2; 0.5 means cos 0.0, under min_score
    assert [(h.id, round(h.score, 6)) for h in hits] == [("id01", 0.9)]
    assert hits[0].path == rec(1).path and hits[0].metadata["folder"] == "/photos/2024"
    assert hits[0].metadata["mtime"] == rec(1).mtime


#: (server, index_options, es_rescore) -> who re-scores: GA features only by default
RESCORE_CASES = [
    ("8.14.3", "int8_hnsw", "auto", "local"),
    ("8.17.4", "int8_hnsw", "cluster", "local"),  # no rescore_vector before 8.18
    ("8.18.2", "int8_hnsw", "auto", "local"),  # rescore_vector is a preview on 8.18-9.0
    ("8.18.2", "int8_hnsw", "cluster", "cluster"),
    ("9.0.3", "bbq_hnsw", "auto", "local"),
    ("9.1.0", "bbq_hnsw", "auto", "cluster"),
    ("9.4.3", "int4_hnsw", "auto", "cluster"),
    ("9.4.3", "int4_hnsw", "local", "local"),
    ("9.4.3", "hnsw", "cluster", "none"),
]


@pytest.mark.parametrize(("version", "index_type", "mode", "who"), RESCORE_CASES)
def test_who_rescores_and_the_request_it_takes(
    es: Harness, version: str, index_type: str, mode: str, who: str
) -> None:
    store = es.bound(version=version, index_type=index_type, es_rescore=mode)
    es.wire.on("POST", f"/{ALIAS}/_search", (200, {"hits": {"hits": []}}))
    store.knn(vec(1.0), 10, offset=20)
    body = es.wire.one("POST", f"/{ALIAS}/_search").json
    knn = body["knn"]
    oversample = {"hnsw": 1, "int8_hnsw": 2.0, "int4_hnsw": 2.0, "bbq_hnsw": 3.0}[index_type]
    if who == "cluster":
        # each shard re-scores its top ceil(k x oversample) <= num_candidates: the whole list
        assert knn["rescore_vector"] == {"oversample": oversample}
        assert (knn["k"], knn["num_candidates"]) == (int(100 // oversample), 100)
        assert (body["from"], body["size"]) == (20, 10)
        assert "vec" not in body["_source"]
    elif who == "local":
        assert "rescore_vector" not in knn
        assert (knn["k"], knn["num_candidates"]) == (100, 100)  # every candidate, with its vec
        assert (body["from"], body["size"]) == (0, 100)
        assert "vec" in body["_source"]
    else:
        assert "rescore_vector" not in knn and "vec" not in body["_source"]
        assert (knn["k"], knn["num_candidates"]) == (100, 100)
    assert "similarity" not in knn  # no min_score asked


def test_pages_of_one_walk_send_the_same_knn_and_only_move_from(es: Harness) -> None:
    store = es.bound(version="9.1.0", index_type="int8_hnsw")
    es.wire.on("POST", f"/{ALIAS}/_search", (200, {"hits": {"hits": []}}))
    for offset in range(0, 50, 10):
        store.knn(vec(1.0), 10, offset=offset)
    store.knn(vec(1.0), 50)  # the whole walk in one query
    bodies = [s.json for s in es.wire.requests("POST", f"/{ALIAS}/_search")]
    knns = [{k: v for k, v in b["knn"].items() if k != "query_vector"} for b in bodies]
    assert all(k == knns[0] for k in knns)
    assert knns[0]["k"] == 50 and knns[0]["num_candidates"] == 100
    assert [(b["from"], b["size"]) for b in bodies] == [
        (0, 10), (10, 10), (20, 10), (30, 10), (40, 10), (0, 50),
    ]  # fmt: skip
    store.knn(vec(1.0), 10, offset=50)  # past the first rung: the next one, 10x deeper
    deeper = es.wire.requests("POST", f"/{ALIAS}/_search")[-1].json["knn"]
    assert (deeper["k"], deeper["num_candidates"]) == (500, 1000)


def test_a_min_score_on_quantized_scores_is_applied_after_rescoring(es: Harness) -> None:
    store = es.bound(version="9.1.0", index_type="bbq_hnsw")
    es.wire.on(
        "POST",
        f"/{ALIAS}/_search",
        (200, {"hits": {"hits": [hit(rec(1), 0.6), hit(rec(2), 0.55)]}}),
    )
    hits = store.knn(vec(1.0), 20, min_score=0.15)
    knn = es.wire.one("POST", f"/{ALIAS}/_search").json["knn"]
    assert "similarity" not in knn  # a quantized cut-off could drop a document just above it
    assert [h.id for h in hits] == ["id01"]  # 0.55 -> cos 0.1, filtered here


def test_an_unknown_rescore_mode_is_a_config_error(es: Harness) -> None:
    with pytest.raises(ConfigError, match="technical preview") as exc_info:
        es.open(es_rescore="sometimes")
    assert exc_info.value.field == "es_rescore"
    assert es.wire.sent == []  # refused before connecting


def test_quantized_indexes_before_8_18_are_rescored_here(es: Harness) -> None:
    store = es.bound(version="8.17.4", index_type="int8_hnsw")
    q = unit(vec(1.0, 1.0))
    near, far, mid = rec(1, vec(1.0, 1.0)), rec(2, vec(1.0, -1.0)), rec(3, vec(1.0, 0.2))
    answers = [hit(r, s) for r, s in ((far, 0.99), (near, 0.98), (mid, 0.97))]  # quantized order
    for a, r in zip(answers, (far, near, mid), strict=True):
        a["_source"]["vec"] = source_of(r, unit(r.vector))["vec"]  # type: ignore[arg-type]
    es.wire.on("POST", f"/{ALIAS}/_search", (200, {"hits": {"hits": answers}}))
    hits = store.knn(q, 2, offset=1, min_score=-0.5)
    body = es.wire.one("POST", f"/{ALIAS}/_search").json
    # every candidate of the depth rung: the same for every page of the walk
    assert (body["knn"]["k"], body["knn"]["num_candidates"]) == (100, 100)
    assert (body["from"], body["size"]) == (0, 100)
    assert "vec" in body["_source"] and "similarity" not in body["knn"]
    assert "rescore_vector" not in body["knn"]
    exact = {r.id: float(unit(r.vector) @ q) for r in (near, far, mid)}  # type: ignore[arg-type]
    # exact order near > mid > far; offset 1 skips near; far (cos 0) is kept above -0.5
    assert [(h.id, round(h.score, 6)) for h in hits] == [
        ("id03", round(exact["id03"], 6)),
        ("id02", round(exact["id02"], 6)),
    ]


def test_float_hnsw_needs_no_rescoring(es: Harness) -> None:
    store = es.bound(version="9.1.0", index_type="hnsw", es_num_candidates=200)
    es.wire.on("POST", f"/{ALIAS}/_search", (200, {"hits": {"hits": []}}))
    store.knn(vec(1.0), 10)
    knn = es.wire.one("POST", f"/{ALIAS}/_search").json["knn"]
    assert "rescore_vector" not in knn and knn["num_candidates"] == 200


def test_knn_window_and_query_checks(es: Harness) -> None:
    store = es.bound()
    with pytest.raises(QueryError):
        store.knn(vec(1.0), 9_000, offset=1_001)
    with pytest.raises(QueryError):
        store.knn(vec(1.0), 0)
    with pytest.raises(ModelMismatchError):
        store.knn(np.ones(3, dtype=np.float32), 5)
    assert es.wire.requests("POST", f"/{ALIAS}/_search") == []


def test_non_finite_filter_values_are_query_errors(es: Harness) -> None:
    store = es.bound()
    # Filters refuse such values when they are built, before any backend sees them.
    with pytest.raises(QueryError):
        Filters(min_size=float("nan"))  # type: ignore[arg-type]
    with pytest.raises(QueryError):
        Filters(modified_before=float("inf"))
    with pytest.raises(QueryError):
        store.knn(vec(1.0), 5, min_score=float("nan"))
    assert es.wire.requests("POST", f"/{ALIAS}/_search") == []


def test_knn_text_embeds_in_the_cluster(es: Harness) -> None:
    store = es.bound(es_text_model="clip-vit-b-32-multilingual-v1")
    es.wire.on("POST", f"/{ALIAS}/_search", (200, {"hits": {"hits": [hit(rec(1), 0.75)]}}))
    hits = store.knn_text("ein roter Apfel", 3, filters=Filters(formats=("png",)))
    knn = es.wire.one("POST", f"/{ALIAS}/_search").json["knn"]
    assert knn["query_vector_builder"] == {
        "text_embedding": {
            "model_id": "clip-vit-b-32-multilingual-v1",
            "model_text": "ein roter Apfel",
        }
    }
    assert "query_vector" not in knn and knn["filter"]["bool"]["filter"] == [
        {"terms": {"format": ["png"]}}
    ]
    assert hits[0].score == pytest.approx(0.5)
    es.wire.on(
        "POST", f"/{ALIAS}/_search", error(404, "resource_not_found_exception", "model not found")
    )
    with pytest.raises(ModelError, match="eland"):
        store.knn_text("apple", 3)


def test_knn_text_without_a_cluster_model_is_a_config_error(es: Harness) -> None:
    store = es.bound()
    with pytest.raises(ConfigError) as exc_info:
        store.knn_text("apple", 3)
    assert exc_info.value.field == "es_text_model"


def test_count_with_filters(es: Harness) -> None:
    store = es.bound()
    es.wire.on("POST", f"/{ALIAS}/_count", (200, {"count": 7}))
    assert store.count(Filters(folder="/photos")) == 7
    assert store.count() == 7
    first, second = es.wire.requests("POST", f"/{ALIAS}/_count")
    assert first.json == {"query": {"bool": {"filter": [{"prefix": {"path": "/photos/"}}]}}}
    assert second.json == {"query": {"match_all": {}}}


def page(records: list[Record], *, vectors: bool) -> tuple[int, Any]:
    hits = []
    for r in records:
        src = source_of(r, unit(r.vector))  # type: ignore[arg-type]
        if not vectors:
            src.pop("vec")
        hits.append({"_id": r.id, "_score": None, "_source": src, "sort": [r.id]})
    return 200, {"hits": {"hits": hits}}


def test_manifest_pages_by_id_through_one_root(
    es: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(elastic_module, "_PAGE", 2)
    store = es.bound()
    r1, r2, r3 = rec(1), rec(2), rec(3)
    es.wire.on(
        "POST", f"/{ALIAS}/_search", page([r1, r2], vectors=False), page([r3], vectors=False)
    )
    states = list(store.manifest("/photos"))
    assert [(s.id, s.relpath, s.size, s.mtime, s.sha256) for s in states] == [
        (r.id, r.relpath, r.size, r.mtime, r.sha256) for r in (r1, r2, r3)
    ]
    first, second = (s.json for s in es.wire.requests("POST", f"/{ALIAS}/_search"))
    assert first == {
        "query": {"bool": {"filter": [{"term": {"root": "/photos"}}]}},
        "sort": [{"id": "asc"}],
        "size": 2,
        "_source": ["id", "path", "root", "relpath", "size", "mtime", "sha256", "raw"],
        "track_total_hits": False,
    }
    assert second["search_after"] == ["id02"]


def test_manifest_of_an_undecodable_root_is_exact(es: Harness) -> None:
    store = es.bound()
    es.wire.on("PUT", "/_bulk", BULK_OK)
    es.wire.on("POST", f"/{ALIAS}/_refresh", (200, {}))
    odd_root = "/ph\udcf6tos"
    r = rec(1, path=odd_root + "/a.jpg")
    r.root, r.relpath = odd_root, "a.jpg"
    twin = rec(2, path="/ph\udcfctos/b.jpg")  # another undecodable name, same display form
    twin.root, twin.relpath = "/ph\udcfctos", "b.jpg"
    store.upsert([r, twin])
    store.flush()
    docs = es.wire.one("PUT", "/_bulk").ndjson[1::2]
    hits = [{"_id": d["id"], "_source": d, "sort": [d["id"]]} for d in docs]
    es.wire.on("POST", f"/{ALIAS}/_search", (200, {"hits": {"hits": hits}}))
    assert [s.id for s in store.manifest(odd_root)] == ["id01"]
    sent = es.wire.requests("POST", f"/{ALIAS}/_search")[-1].json
    assert sent["query"] == {"bool": {"filter": [{"term": {"root": "/ph\ufffdtos"}}]}}


def test_iter_records_resumes_after_an_id(es: Harness) -> None:
    store = es.bound()
    r3, r4 = rec(3), rec(4)
    es.wire.on("POST", f"/{ALIAS}/_search", page([r3, r4], vectors=True), page([], vectors=True))
    batches = list(store.iter_records(2, after="id02"))
    assert [[r.id for r in b] for b in batches] == [["id03", "id04"]]
    assert np.array_equal(batches[0][1].vector, unit(r4.vector))  # type: ignore[arg-type]
    first, second = (s.json for s in es.wire.requests("POST", f"/{ALIAS}/_search"))
    assert first["search_after"] == ["id02"] and first["sort"] == [{"id": "asc"}]
    assert "vec" in first["_source"] and "query" not in first
    assert second["search_after"] == ["id04"]


def test_find_by_hash_collapses_on_the_hash(es: Harness) -> None:
    store = es.bound()
    r1 = rec(1)
    es.wire.on("POST", f"/{ALIAS}/_search", page([r1], vectors=True))
    found = store.find_by_hash([r1.sha256, "f" * 64, r1.sha256])
    body = es.wire.one("POST", f"/{ALIAS}/_search").json
    assert body["query"] == {"bool": {"filter": [{"terms": {"sha256": [r1.sha256, "f" * 64]}}]}}
    assert body["collapse"] == {"field": "sha256"} and body["size"] == 2
    assert list(found) == [r1.sha256] and found[r1.sha256].vector is not None


# -- sizing -----------------------------------------------------------------------------------


def test_project_ram_follows_elastics_published_formulas() -> None:
    n, d = 1_000_000, 512
    graph = n * 4 * 16
    assert project_ram("hnsw", d, n) == n * d * 4 + graph == 2_112_000_000
    assert project_ram("int8_hnsw", d, n) == n * (d + 4) + graph == 580_000_000
    assert project_ram("int4_hnsw", d, n) == n * (d // 2 + 4) + graph == 324_000_000
    assert project_ram("bbq_hnsw", d, n) == n * (d // 8 + 14) + graph == 142_000_000
    assert project_ram("int8_hnsw", d, 10 * n, m=32) == 10 * n * (d + 4) + 10 * n * 4 * 32
    with pytest.raises(ConfigError):
        project_ram("flat", d, n)


def stats_answers(wire: Wire, disk_usage: tuple[int, Any]) -> None:
    wire.on(
        "GET",
        f"/{ALIAS}/_stats/docs,store",
        (
            200,
            {
                "indices": {
                    INDEX: {
                        "primaries": {
                            "docs": {"count": 1000, "deleted": 3},
                            "store": {"size_in_bytes": 4_096_000},
                        },
                        "total": {"docs": {"count": 2000}, "store": {"size_in_bytes": 8_192_000}},
                    }
                }
            },
        ),
    )
    wire.on(
        "POST",
        f"/{ALIAS}/_search",
        (200, {"hits": {"hits": []}, "aggregations": {"image_bytes": {"value": 5e9}}}),
    )
    wire.on("POST", f"/{ALIAS}/_disk_usage", disk_usage)


def test_stats_come_from_the_clusters_own_apis(es: Harness) -> None:
    store = es.bound()
    usage = {
        "_shards": {"total": 1},
        INDEX: {
            "store_size_in_bytes": 4_096_000,
            "fields": {
                "vector": {"total_in_bytes": 2_580_000, "knn_vectors_in_bytes": 2_580_000},
                "_source": {"total_in_bytes": 1_200_000},
                "_recovery_source": {"total_in_bytes": 1_000_000},
                "path": {"total_in_bytes": 100_000},
            },
        },
    }
    stats_answers(es.wire, (200, usage))
    stats = store.stats()
    assert (stats.backend, stats.collection, stats.documents, stats.dimensions) == (
        "elasticsearch",
        "photos",
        1000,
        8,
    )
    assert (stats.index_bytes, stats.image_bytes, stats.model) == (4_096_000, 5_000_000_000, MODEL)
    d = stats.details
    assert d["bytes_per_document"] == 4096 and d["bytes_per_dimension"] == 512
    assert d["deleted_documents"] == 3 and d["index_options"]["type"] == "int8_hnsw"
    assert d["ram_projection"]["bytes"]["int8_hnsw"]["1000000"] == project_ram(
        "int8_hnsw", 8, 1_000_000
    )
    assert d["ram_projection"]["bytes"]["bbq_hnsw"]["10000000"] == project_ram(
        "bbq_hnsw", 8, 10_000_000
    )
    assert d["disk_usage"]["field_bytes"] == {
        "vector": 2_580_000,
        "_source": 1_200_000,
        "_recovery_source": 1_000_000,
        "path": 100_000,
    }
    assert d["disk_usage"]["vector_index_bytes_per_dimension"] == 2_580_000 / (1000 * 8)
    # a statistics call must not force a Lucene commit: flush=false
    assert es.wire.one("POST", f"/{ALIAS}/_disk_usage").params == {
        "run_expensive_tasks": "true",
        "flush": "false",
    }
    sizing = d["sizing"]
    assert sizing["vector_out_of_source"] == "_source.excludes"
    assert sizing["recovery_source_bytes"] == 1_000_000
    assert sizing["bytes_per_dimension_without_recovery_source"] == 3_096_000 / (1000 * 8)
    expected = sizing["expected_bytes_per_dimension"]
    assert expected["fresh"] > expected["steady_state"] and "8.14-9.1" in expected["applies_to"]
    assert (d["rescoring"], d["technical_previews"]) == ("cluster", [])
    agg = es.wire.one("POST", f"/{ALIAS}/_search").json
    assert agg["aggs"] == {"image_bytes": {"sum": {"field": "size"}}} and agg["size"] == 0
    store.stats()  # the disk usage analysis is cached while the index does not change
    assert len(es.wire.requests("POST", f"/{ALIAS}/_disk_usage")) == 1


def test_stats_without_the_privilege_for_disk_usage(es: Harness) -> None:
    store = es.bound()
    stats_answers(
        es.wire,
        error(
            403, "security_exception", "action [indices:admin/analyze_disk_usage] is unauthorized"
        ),
    )
    details = store.stats().details
    assert details["disk_usage"]["available"] is False
    assert "unauthorized" in details["disk_usage"]["reason"]
    assert "privilege 'manage'" in details["disk_usage"]["reason"]
    assert details["bytes_per_document"] == 4096
    assert "recovery_source_bytes" not in details["sizing"]  # not measured, not guessed


def test_stats_of_a_9_2_index_expect_no_recovery_source_copy(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("9.2.1")))
    status, body = mapping_answer()
    body[INDEX]["mappings"]["_meta"]["lookalike"]["vector_out_of_source"] = (
        "index.mapping.exclude_source_vectors"
    )
    es.wire.on("GET", f"/{ALIAS}/_mapping", (status, body))
    store = es.open()
    stats_answers(es.wire, (200, {"_shards": {"total": 1}, INDEX: {"fields": {}}}))
    expected = store.stats().details["sizing"]["expected_bytes_per_dimension"]
    assert expected["fresh"] == expected["steady_state"] and "9.2+" in expected["applies_to"]


@pytest.mark.parametrize(
    ("version", "index_type", "mode", "named"),
    [
        ("8.18.2", "bbq_hnsw", "cluster", ["bbq_hnsw", "rescore_vector"]),
        ("8.18.2", "bbq_hnsw", "auto", ["bbq_hnsw"]),
        ("9.0.3", "int8_hnsw", "cluster", ["rescore_vector"]),
        ("9.1.0", "bbq_hnsw", "auto", []),
    ],
)
def test_stats_name_the_technical_previews_in_use(
    es: Harness, version: str, index_type: str, mode: str, named: list[str]
) -> None:
    store = es.bound(version=version, index_type=index_type, es_rescore=mode)
    stats_answers(es.wire, (200, {"_shards": {"total": 1}, INDEX: {"fields": {}}}))
    found = store.stats().details["technical_previews"]
    assert len(found) == len(named)
    assert all(name in text for name, text in zip(named, found, strict=True))


# -- dropping ---------------------------------------------------------------------------------


def test_drop_deletes_the_index_behind_the_alias_and_closes(es: Harness) -> None:
    store = es.bound()
    es.wire.on("GET", f"/_alias/{ALIAS}", (200, {INDEX: {"aliases": {ALIAS: {}}}}))
    es.wire.on("DELETE", f"/{INDEX}", (200, {"acknowledged": True}))
    store.drop()
    assert len(es.wire.requests("DELETE", f"/{INDEX}")) == 1
    with pytest.raises(StoreError, match="closed"):
        store.count()
    store.close()  # closing twice is fine


def test_drop_of_a_missing_collection(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("9.1.0")))
    es.wire.on(
        "GET", f"/_alias/{ALIAS}", (404, {"error": f"alias [{ALIAS}] missing", "status": 404})
    )
    es.open().drop()
    assert [s.method for s in es.wire.sent] == ["GET", "GET"]


def test_list_collections_reads_the_aliases(es: Harness) -> None:
    es.wire.on("GET", "/", (200, info("9.1.0")))
    es.wire.on(
        "GET",
        "/_alias/lookalike-%2A|/_alias/lookalike-\\*",
        (
            200,
            {
                INDEX: {"aliases": {ALIAS: {}}},
                "lookalike-cats.v1": {"aliases": {"lookalike-cats": {}}},
                "other": {"aliases": {}},
            },
        ),
    )
    node = type("BoundWireNode", (WireNode,), {"wire": es.wire})
    assert ElasticStore.list_collections(es.settings, client_options={"node_class": node}) == [
        "cats",
        "photos",
    ]


# -- copy into Elasticsearch ------------------------------------------------------------------


def test_copy_from_the_embedded_store_sends_every_vector_exactly(
    es: Harness, tmp_path: Path
) -> None:
    """copy_collection(LocalStore -> ElasticStore): a real SQLite source, the scripted wire."""
    from lookalike.store import LocalStore
    from lookalike.transfer import copy_collection

    source = LocalStore(tmp_path / "local", "photos")
    source.bind_model(MODEL)
    records = [rec(i, vec(1.0, float(i), float(i % 3))) for i in range(7)]
    source.upsert(records)
    store = es.bound()
    already = {records[0].id: source_of(records[0], unit(records[0].vector))}  # type: ignore[arg-type]

    def mget(sent: Sent) -> tuple[int, Any]:
        docs = [
            {"_id": i, "found": True, "_source": already[i]}
            if i in already
            else {"_id": i, "found": False}
            for i in sent.json["ids"]
        ]
        return 200, {"docs": docs}

    es.wire.on("POST", f"/{ALIAS}/_mget", mget)
    es.wire.on("PUT", "/_bulk", BULK_OK)
    es.wire.on("POST", f"/{ALIAS}/_refresh", (200, {}))
    es.wire.on("POST", f"/{ALIAS}/_count", (200, {"count": 7}))
    local = {r.id: r.vector for r in source.get([r.id for r in records])}
    report = copy_collection(source, store, batch_size=3)
    source.close()
    assert (report.copied, report.skipped, report.dest_count, report.verified) == (6, 1, 7, True)
    sent = [line for s in es.wire.requests("PUT", "/_bulk") for line in s.ndjson]
    docs = {d["id"]: d for d in sent[1::2]}
    assert sorted(docs) == [r.id for r in records[1:]]  # the one already there is not re-sent
    for r in records[1:]:
        stored = np.frombuffer(base64.b64decode(docs[r.id]["vec"]), dtype="<f4")
        assert np.array_equal(stored, unit(local[r.id]))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("window", "num_candidates", "oversample", "depth"),
    [
        (1, 100, 1.0, (100, 100)),
        (100, 100, 1.0, (100, 100)),
        (101, 100, 1.0, (1000, 1000)),
        (50, 100, 2.0, (50, 100)),
        (51, 100, 2.0, (500, 1000)),
        (34, 100, 3.0, (333, 1000)),
        (501, 100, 2.0, (10_000, 10_000)),
        (10_000, 100, 3.0, (10_000, 10_000)),
        (10, 10_000, 2.0, (10_000, 10_000)),
        (7, 3, 1.0, (30, 30)),
    ],
)
def test_knn_depth_depends_on_the_rung_not_the_page(
    window: int, num_candidates: int, oversample: float, depth: tuple[int, int]
) -> None:
    from lookalike.store.elastic.search import knn_depth

    k, candidates = knn_depth(window, num_candidates, oversample)
    assert (k, candidates) == depth
    assert window <= k <= candidates or candidates == 10_000
    assert math.ceil(k * oversample) <= candidates or candidates == 10_000
