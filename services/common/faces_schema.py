"""The Milvus collections of enrolled faces (one per embedder): schema, index, ids and filters,
declared in one place (the watchlist service creates them and writes their rows; the matcher
searches them: services/common/faces_search.py). The watchlist metadata collection is the
watchlist service's own (services/watchlist/schema.py).

Identity is stored as fields (watchlist, deployment, subject), vectors are
L2-normalised and compared with COSINE. See docs/design.md."""

from __future__ import annotations

from pymilvus import DataType, MilvusClient

from services.common.errors import SetupError
from services.common.milvus_collections import (
    DEFAULT_EMBEDDER_OF_FACES, EMBEDDING_DIM, FACES_COLLECTION, faces_collection,
)

COLLECTION = FACES_COLLECTION  # the default embedder's faces (faces_collection(DEFAULT_EMBEDDER_OF_FACES))
EMBEDDER_TAG = "embedder="  # the collection's description names the embedder of its vectors
METRIC = "COSINE"
MAX_ID = 128
MAX_IMAGE_B64 = 65_535  # an aligned 112x112 JPEG is ~4-8 KiB

# fields every search returns (never the embedding)
OUTPUT_FIELDS = ["watchlist_id", "deployment_id", "subject_id", "category", "image_ref", "valid_until"]


def build_schema(client: MilvusClient, embedder: str = DEFAULT_EMBEDDER_OF_FACES):  # -> CollectionSchema
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


def ensure_collection(client: MilvusClient, embedder: str = DEFAULT_EMBEDDER_OF_FACES) -> str:
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
            out[DEFAULT_EMBEDDER_OF_FACES] = name
        elif name.startswith(FACES_COLLECTION + "__"):
            out[name[len(FACES_COLLECTION) + 2:]] = name
    return out


def check_embedding_dim(description: dict, embedder: str = DEFAULT_EMBEDDER_OF_FACES) -> None:
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


def quote_id(value: str) -> str:
    """An id as a quoted string of a Milvus filter expression; ValueError when it is not letters, digits and -_.:"""
    if not value.replace("-", "").replace("_", "").replace(".", "").replace(":", "").isalnum():
        raise ValueError(f"invalid id {value!r}: letters, digits and -_.: only")
    return f'"{value}"'


def active_filter(deployment_id: str, at_unix_s: int) -> str:
    """Faces of the watchlists of this deployment that are valid at this time."""
    return (f"deployment_id == {quote_id(deployment_id)} and valid_from <= {int(at_unix_s)} "
            f"and valid_until > {int(at_unix_s)}")


def watchlist_filter(watchlist_id: str) -> str:
    return f"watchlist_id == {quote_id(watchlist_id)}"


def expired_filter(now_unix_s: int) -> str:
    return f"valid_until <= {int(now_unix_s)}"


def check_id(value: str) -> str:
    """``value`` if it is a valid id (letters, digits and -_.:, 1..MAX_ID chars); ValueError otherwise."""
    if not value or len(value) > MAX_ID:
        raise ValueError(f"invalid id {value!r}: 1 to {MAX_ID} characters")
    quote_id(value)
    return value


def subject_filter(watchlist_id: str, subject_id: str) -> str:
    return f"{watchlist_filter(watchlist_id)} and subject_id == {quote_id(subject_id)}"


def deployment_filter(deployment_id: str) -> str:
    return f"deployment_id == {quote_id(deployment_id)}"
