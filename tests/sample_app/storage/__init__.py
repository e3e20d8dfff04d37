"""The inventory's own storage: stock levels in memory. Named `storage` on purpose: an
installed Odradek must not shadow it (Odradek installs only under `odradek`)."""

OWNER = "inventory"


class StockLevels:
    def __init__(self):
        self.levels: dict[str, int] = {}

    def apply(self, sku: str, delta: int) -> int:
        self.levels[sku] = self.levels.get(sku, 0) + delta
        return self.levels[sku]
