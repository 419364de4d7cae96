"""Import and export of the inventory: YAML (the canonical format) and CSV (the flat one).

An import runs in three steps, so that the pure part can be fuzzed and nothing of a bad
file is ever written:

1. ``parse_inventory()`` turns bytes into records: syntax, types, choices and each field's
   own model validators. No database.
2. ``plan_import()`` checks the records against the database (parents, dependency cycles,
   feeds, ``Device.full_clean()``) and works out what would change. Reads only.
3. ``apply_import()`` writes the plan. ``import_inventory()`` runs 2 and 3 in one
   transaction.

Every problem carries the line it was found on; all of them are collected before
``InventoryFileError`` is raised, so a user fixes a file in one pass, not one error a run.

Modules: ``columns`` (the columns, records and value checks), ``parse`` (1), ``plan``
(2 and 3, including ``--prune``), ``maintenance`` (windows: plan, apply, export rows),
``export``. This package re-exports their public names.
"""

from resourcemonitor.inventory.io.columns import (
    COLUMNS,
    CSV_COLUMNS,
    FORMATS,
    MAX_FILE_BYTES,
    Column,
    DeviceRecord,
    Format,
    Inventory,
    InventoryFileError,
    Problem,
    SiteRecord,
    number,
    plural,
    validate_value,
)
from resourcemonitor.inventory.io.export import export_inventory, yaml_scalar
from resourcemonitor.inventory.io.parse import guess_format, parse_inventory
from resourcemonitor.inventory.io.plan import (
    DevicePlan,
    ImportPlan,
    apply_import,
    find_cycles,
    import_inventory,
    inventory_rows,
    plan_import,
)

__all__ = [
    "COLUMNS",
    "CSV_COLUMNS",
    "FORMATS",
    "MAX_FILE_BYTES",
    "Column",
    "DevicePlan",
    "DeviceRecord",
    "Format",
    "ImportPlan",
    "Inventory",
    "InventoryFileError",
    "Problem",
    "SiteRecord",
    "apply_import",
    "export_inventory",
    "find_cycles",
    "guess_format",
    "import_inventory",
    "inventory_rows",
    "number",
    "parse_inventory",
    "plan_import",
    "plural",
    "validate_value",
    "yaml_scalar",
]
