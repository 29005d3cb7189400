#!/usr/bin/env python
"""D0 parity logger (seed 004): ``python scripts/tools/d0_parity_logger.py --dataset-root ROOT --output DIR``.

A thin wrapper around ``ptychopinn parity-log`` (needs the ptychopinn package installed). The
pure helpers are re-exported from :mod:`ptychopinn.telemetry.parity_log`. ``--baseline-params``
is unpickled with dill: only pass trusted files. Run with ``--help`` for all options.
"""

from __future__ import annotations

import sys

try:
    from ptychopinn.cli.parity_log import main as _cli_main
    from ptychopinn.telemetry.parity_log import (  # noqa: F401 - re-exported helpers
        build_parity_log,
        discover_datasets,
        load_params,
        parse_photon_dose,
        sha256_file,
        summarize_array,
        summarize_dataset,
        summarize_grouped,
        summarize_probe,
        write_parity_log,
    )
except ImportError as exc:  # pragma: no cover - only without the package installed
    sys.exit(f"d0_parity_logger.py: the ptychopinn package is not importable ({exc}); "
             "run `pip install -e .` in the checkout first")


def main(argv: list[str] | None = None) -> int:
    return _cli_main(argv, prog="d0_parity_logger.py")


if __name__ == "__main__":
    sys.exit(main())
