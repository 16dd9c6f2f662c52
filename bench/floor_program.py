"""Where the benchmark's floor program lives, and how to evaluate it with the product's own harness.

The floor is `bench/floor/__main__.py` (a Pulumi program needs a `__main__.py` in a directory); it is evaluated
by `components.simulation.evaluate(..., project_dir=FLOOR_DIR)`, under the same SimulatedTenant mocks, the same
recording monitor and the same output resolution as the product.
"""

from pathlib import Path

FLOOR_DIR = Path(__file__).resolve().parent / "floor"
PRODUCT_DIR = Path(__file__).resolve().parent.parent


def program_dir(program: str) -> Path:
    return {"product": PRODUCT_DIR, "floor": FLOOR_DIR}[program]
