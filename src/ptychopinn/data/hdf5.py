"""HDF5 input with the contract's keys stored as datasets at the file root.

CXI 1.6 and ptychodus layouts are read by :mod:`ptychopinn.data.cxi`, which hands files of this
form to :func:`read_hdf5_arrays`.
"""

from __future__ import annotations

import numpy as np

from ptychopinn.errors import DataError, one_line


def read_hdf5_arrays(path: str) -> dict[str, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            out = {}
            for k, v in f.items():
                if isinstance(v, h5py.Dataset):
                    a = v[()]
                    if isinstance(a, bytes):
                        a = np.array(a.decode())
                    elif v.dtype.kind == "O":
                        raise DataError(f"{path}: key '{k}': object/variable-length data is not supported")
                    out[k] = np.asarray(a)
            return out
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({one_line(exc)})") from None
