"""The compiled-model cache of the predict route (compiled portable models by id)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from service.ml import portable


class CompiledModelCache:
    """Compiled portable models by id (models are immutable, so entries never go stale)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, portable.CompiledModel] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, model_id: str) -> portable.CompiledModel | None:
        with self._lock:
            model = self._items.get(model_id)
            if model is not None:
                self._items.move_to_end(model_id)
            return model

    def put(self, model_id: str, model: portable.CompiledModel) -> None:
        with self._lock:
            self._items[model_id] = model
            self._items.move_to_end(model_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def evict(self, model_id: str) -> None:
        with self._lock:
            self._items.pop(model_id, None)
