"""Buckets made in an object store as CreateBucket makes them (those it has not yet), for tests that
put objects into the store itself: the store keeps objects only in buckets that exist."""

from __future__ import annotations

import time

from pipelines.local.storage.buckets import Bucket
from pipelines.local.storage.objects import ObjectStore


def with_buckets(store: ObjectStore, *names: str) -> ObjectStore:
    for name in names:
        if not store.bucket_exists(name):
            store.create_bucket(Bucket(name, "us-east-1", time.time()))
    return store
