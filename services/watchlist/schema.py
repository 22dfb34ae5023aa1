"""The Milvus collection of enrolled faces: schema, index and filters, declared
in one place (the watchlist service creates it; the matcher searches it).

Identity is stored as fields (watchlist, deployment, subject), vectors are
L2-normalised and compared with COSINE. See docs/design.md."""

from __future__ import annotations

from pymilvus import DataType, MilvusClient

from services.common.errors import SetupError
from services.common.milvus_collections import FACES_COLLECTION, WATCHLISTS_COLLECTION, faces_collection
from services.face.embedder import EMBEDDING_DIM
from services.face.embedders import DEFAULT_EMBEDDER

COLLECTION = FACES_COLLECTION  # the default embedder's faces (faces_collection(DEFAULT_EMBEDDER))
EMBEDDER_TAG = "embedder="  # the collection's description names the embedder of its vectors
METRIC = "COSINE"
MAX_ID = 128
MAX_IMAGE_B64 = 65_535  # an aligned 112x112 JPEG is ~4-8 KiB

# fields every search returns (never the embedding)
OUTPUT_FIELDS = ["watchlist_id", "deployment_id", "subject_id", "category", "image_ref", "valid_until"]


def build_schema(client: MilvusClient, embedder: str = DEFAULT_EMBEDDER):  # -> CollectionSchema
    schema = client.create_schema(auto_id=True, enable_dynamic_field=False,
                                  description=f"enrolled watchlist faces; {EMBEDDER_TAG}{embedder}")
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("watchlist_id", DataType.VARCHAR, max_length=MAX_ID)
    schema.add_field("deployment_id", DataType.VARCHAR, max_length=MAX_ID)
    schema.add_field("subject_id", DataType.VARCHAR, max_length=MAX_ID)
    schema.add_field("category", DataType.VARCHAR, max_length=16)
    schema.add_field("valid_from", DataType.INT64, description="unix seconds")
    schema.add_field("valid_until", DataType.INT64, description="unix seconds")
    schema.add_field("image_ref", DataType.VARCHAR, max_length=512, description="source reference of the image")
    schema.add_field("image_jpeg_b64", DataType.VARCHAR, max_length=MAX_IMAGE_B64,
                     description="aligned enrolled face for side-by-side review")
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=EMBEDDING_DIM)
    return schema


def build_index(client: MilvusClient):  # -> IndexParams
    idx = client.prepare_index_params()
    # FLAT is exact; a watchlist is at most tens of thousands of faces. Production
    # Milvus may switch to HNSW here (one line) when watchlists grow.
    idx.add_index(field_name="embedding", index_type="FLAT", metric_type=METRIC)
    return idx


def ensure_collection(client: MilvusClient, embedder: str = DEFAULT_EMBEDDER) -> str:
    """Create (once) and load the faces collection of ``embedder``; returns its name."""
    name = faces_collection(embedder)
    if not client.has_collection(name):
        client.create_collection(name, schema=build_schema(client, embedder), index_params=build_index(client))
    else:
        check_embedding_dim(client.describe_collection(name), embedder)
    client.load_collection(name)
    return name


def other_embedder_collections(client: MilvusClient, embedder: str) -> dict[str, str]:
    """embedder -> collection, for every other faces collection that exists, by name: also one of an embedder
    no longer in the manifest, so that a close or an expiry still reaches its faces."""
    active = faces_collection(embedder)
    out: dict[str, str] = {}
    for name in sorted(client.list_collections()):
        if name == active:
            continue
        if name == FACES_COLLECTION:
            out[DEFAULT_EMBEDDER] = name
        elif name.startswith(FACES_COLLECTION + "__"):
            out[name[len(FACES_COLLECTION) + 2:]] = name
    return out


def check_embedding_dim(description: dict, embedder: str = DEFAULT_EMBEDDER) -> None:
    """SetupError when an existing collection holds vectors of another embedder than ``embedder``:
    another dimension, or the same dimension under another embedder's name (the
    collection's description names the embedder that created it): they cannot be
    compared with ``embedder``'s probes."""
    fields = {f.get("name"): f for f in description.get("fields", [])}
    dim = int((fields.get("embedding", {}).get("params") or {}).get("dim", EMBEDDING_DIM))
    text = str(description.get("description", ""))
    maker = text.split(EMBEDDER_TAG, 1)[1].split(";")[0].strip() if EMBEDDER_TAG in text else None
    name = description.get("collection_name", faces_collection(embedder))
    if dim != EMBEDDING_DIM or (maker is not None and maker != embedder):
        raise SetupError(
            f"Milvus collection {name} holds {dim}-d embeddings of {maker or 'an earlier embedder'}; the "
            f"configured embedder ({embedder}) makes {EMBEDDING_DIM}-d ones, so its faces can never match and must "
            "be re-enrolled",
            "with the release that enrolled them, close every watchlist in it (CloseWatchlist destroys the faces), "
            f"then drop the empty collection {name} and start this release, which creates it anew; on the "
            "local stack: 'make down', delete .lfr/data/milvus, 'make up'")


def _q(value: str) -> str:
    if not value.replace("-", "").replace("_", "").replace(".", "").replace(":", "").isalnum():
        raise ValueError(f"invalid id {value!r}: letters, digits and -_.: only")
    return f'"{value}"'


def active_filter(deployment_id: str, at_unix_s: int) -> str:
    """Faces of the watchlists of this deployment that are valid at this time."""
    return (f"deployment_id == {_q(deployment_id)} and valid_from <= {int(at_unix_s)} "
            f"and valid_until > {int(at_unix_s)}")


def watchlist_filter(watchlist_id: str) -> str:
    return f"watchlist_id == {_q(watchlist_id)}"


def expired_filter(now_unix_s: int) -> str:
    return f"valid_until <= {int(now_unix_s)}"


# --- watchlist metadata ----------------------------------------------------------
# One row per watchlist (authorisation, purpose, window, state), in a second
# collection so that Milvus stays the service's single store: the service keeps
# no local state (no volume to back up or to forget to wipe) and closing a
# watchlist deletes its vectors and its subject metadata (which live only in the
# faces rows) in the same store. A Milvus collection needs a vector field: `_v`
# is a constant dim-2 dummy. Rows of closed/expired watchlists stay (no biometric
# data: who authorised what, when, and when it was destroyed).

MAX_TEXT = 2048
WATCHLIST_FIELDS = [
    "watchlist_id", "name", "deployment_id", "authorisation_ref", "authorising_officer", "purpose", "criteria",
    "valid_from_ns", "valid_until_ns", "state", "created_ns", "created_by", "closed_ns", "close_reason", "request_id",
]
DUMMY_VECTOR = [0.0, 0.0]


def build_watchlists_schema(client: MilvusClient):  # -> CollectionSchema
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False, description="watchlist metadata")
    schema.add_field("watchlist_id", DataType.VARCHAR, max_length=MAX_ID, is_primary=True)
    for name, size in (("name", 256), ("deployment_id", MAX_ID), ("authorisation_ref", 256),
                       ("authorising_officer", 256), ("purpose", MAX_TEXT), ("criteria", MAX_TEXT),
                       ("created_by", 256), ("close_reason", 1024), ("request_id", MAX_ID)):
        schema.add_field(name, DataType.VARCHAR, max_length=size)
    for name in ("valid_from_ns", "valid_until_ns", "state", "created_ns", "closed_ns"):
        schema.add_field(name, DataType.INT64)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2, description="dummy: Milvus needs a vector field")
    return schema


def ensure_watchlists_collection(client: MilvusClient) -> None:
    if not client.has_collection(WATCHLISTS_COLLECTION):
        idx = client.prepare_index_params()
        idx.add_index(field_name="_v", index_type="FLAT", metric_type="L2")
        client.create_collection(WATCHLISTS_COLLECTION, schema=build_watchlists_schema(client), index_params=idx,
                                 consistency_level="Strong")
    client.load_collection(WATCHLISTS_COLLECTION)


def check_id(value: str) -> str:
    """``value`` if it is a valid id (letters, digits and -_.:, 1..MAX_ID chars); ValueError otherwise."""
    if not value or len(value) > MAX_ID:
        raise ValueError(f"invalid id {value!r}: 1 to {MAX_ID} characters")
    _q(value)
    return value


def subject_filter(watchlist_id: str, subject_id: str) -> str:
    return f"{watchlist_filter(watchlist_id)} and subject_id == {_q(subject_id)}"


def deployment_filter(deployment_id: str) -> str:
    return f"deployment_id == {_q(deployment_id)}"
