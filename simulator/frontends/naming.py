"""Fresh op and tensor names for an importer's lowering context (shared by the ONNX and TFLite
importers): a mixin over ``self.p`` (the Program being built), ``self._names`` (names handed
out) and ``self.op_name`` (the operator being lowered)."""

from __future__ import annotations

__all__ = ["FreshNames"]


class FreshNames:
    """``fresh(base)`` and ``sub(suffix)`` for a lowering context."""

    def fresh(self, base: str) -> str:
        """Return an op/tensor name starting with ``base`` not used yet."""
        name, i = base, 1
        while name in self._names or name in self.p.shapes:
            name = f"{base}#{i}"
            i += 1
        self._names.add(name)
        return name

    def sub(self, suffix: str = "") -> str:
        """Return a fresh op name for the operator being lowered (``op`` or ``op.suffix``)."""
        return self.fresh(f"{self.op_name}.{suffix}" if suffix else self.op_name)
