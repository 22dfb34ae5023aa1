"""The Milvus collection of enrolled faces: schema, index and filters, declared
in one place (the watchlist service creates it; the matcher searches it).

Identity is stored as fields (watchlist, deployment, subject), vectors are
L2-normalised and compared with COSINE. See docs/design.md."""

from __future__ import annotations

from pymilvus import DataType, MilvusClient

COLLECTION = "lfr_watchlist_faces"
EMBEDDING_DIM = 192
METRIC = "COSINE"
MAX_ID = 128
MAX_IMAGE_B64 = 65_535  # an aligned 112x112 JPEG is ~4-8 KiB

# fields every search returns (never the embedding)
OUTPUT_FIELDS = ["watchlist_id", "deployment_id", "subject_id", "category", "image_ref", "valid_until"]


def build_schema(client: MilvusClient):  # -> CollectionSchema
    schema = client.create_schema(auto_id=True, enable_dynamic_field=False,
                                  description="enrolled watchlist faces")
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


def ensure_collection(client: MilvusClient) -> None:
    if not client.has_collection(COLLECTION):
        client.create_collection(COLLECTION, schema=build_schema(client), index_params=build_index(client))
    client.load_collection(COLLECTION)


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
