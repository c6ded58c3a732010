from array import array
from collections.abc import Callable
from typing import Any

INTERFACE: int

def load(text: str, documents: list[Any], extents: dict[int, array[int]] | None,
         resolve: Callable[[str, tuple[bool, bool]], Any], needs: str | None, max_values: int, max_depth: int,
         share: bool, /) -> tuple[array[int], int, bool] | None: ...
