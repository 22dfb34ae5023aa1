"""The watchlist metadata collection (one row per watchlist), the watchlist service's own. The faces
collections' schema, index, ids and filters are in services/common/faces_schema.py."""

from __future__ import annotations

from pymilvus import DataType, MilvusClient

from services.common.faces_schema import MAX_ID
from services.common.milvus_collections import WATCHLISTS_COLLECTION

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
