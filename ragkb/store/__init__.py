"""The vector store: the point schema (`schema`) and the Qdrant backend behind one `Store`."""

from ragkb.errors import StoreError
from ragkb.store.qdrant import Hit, NewPoint, Store

__all__ = ["Hit", "NewPoint", "Store", "StoreError"]
