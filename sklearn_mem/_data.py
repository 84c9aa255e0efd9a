"""Data of a study: loading ``.npy``/``.npz``/``.csv`` files or digits; fingerprints."""

import csv
import hashlib
import json
import logging
import math
import operator
import os
import re
import stat
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format
from sklearn.utils import Bunch

from ._errors import CLIError

logger = logging.getLogger("sklearn_mem")

DATA_FORMATS = (".npy", ".npz", ".csv")


def _parse_shape(text):
    try:
        shape = tuple(int(s) for s in text.lower().replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise CLIError(
            f"--image-shape {text!r} is not a shape: expected e.g. 8x8, 28x28 or "
            "32x32x3."
        )
    return shape


def _human_bytes(n):
    """``n`` bytes in binary units, for messages."""
    if n < 1024:
        return f"{int(n)} bytes"
    if n >= 1024**7:
        return "more than 1 ZiB"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        n /= 1024
        if n < 1024 or unit == "EiB":
            return f"{n:.1f} {unit}"


def _available_memory():
    """Bytes of memory available to a new allocation, or None when unknown.

    Linux's ``MemAvailable`` (free memory plus reclaimable caches), else
    ``SC_AVPHYS_PAGES * SC_PAGE_SIZE`` (free memory only).
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages, page_size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    if pages < 0 or page_size < 0:
        return None
    return pages * page_size


def _check_memory(nbytes, what, detail):
    avail = _available_memory()
    if avail is not None and nbytes > avail:
        raise CLIError(
            f"{what} needs {_human_bytes(nbytes)} of memory ({detail}), but only "
            f"{_human_bytes(avail)} is available. Use a smaller sample of the data "
            "(fewer rows or features), or free memory and run again."
        )


def _os_error(path, exc):
    """CLIError for an OSError met while reading ``path``."""
    if isinstance(exc, PermissionError):
        fix = (
            "give yourself read access (chmod u+r) or copy the file somewhere readable"
        )
    elif isinstance(exc, IsADirectoryError):
        fix = "--data needs a file, not a folder"
    elif isinstance(exc, FileNotFoundError | NotADirectoryError):
        fix = "check the path"
    else:
        fix = "check that the file is complete and readable"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return CLIError(f"cannot read {str(path)!r}: {reason}; {fix}.")


def _stat_data_file(path):
    """``os.stat`` of a data file, every problem as a CLIError."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise CLIError(f"data file {str(path)!r} does not exist.") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError):  # e.g. an embedded NUL character
            raise CLIError(f"{str(path)!r} is not a valid file name.") from None
        raise _os_error(path, exc) from None
    if stat.S_ISDIR(st.st_mode):
        raise CLIError(f"{str(path)!r} is a folder; --data needs a file.")
    if not stat.S_ISREG(st.st_mode):
        raise CLIError(
            f"{str(path)!r} is not a regular file (a pipe, socket or device); "
            "--data needs a file on disk: save the data to a file first."
        )
    return st


# ----------------------------------------------------------------- .npy/.npz


class _CountingReader:
    """Read-only file wrapper counting the bytes read (the .npy header length)."""

    def __init__(self, fh):
        self._fh = fh
        self.n_read = 0

    def read(self, size=-1):
        data = self._fh.read(size)
        self.n_read += len(data)
        return data


_HEADER_ERRORS = (
    ValueError,
    SyntaxError,
    TypeError,
    OverflowError,
    RecursionError,
    UnicodeDecodeError,
    EOFError,
)


def _read_npy_header(fh, what):
    """Shape, Fortran order, dtype and header length of the ``.npy`` stream ``fh``.

    Reads the header only (at most a few kilobytes), never the data.
    """
    counter = _CountingReader(fh)
    try:
        version = npy_format.read_magic(counter)
    except _HEADER_ERRORS:
        raise CLIError(
            f"{what} is not a .npy array: it does not start with the NumPy "
            "header ('\\x93NUMPY'), or is cut short before it. Save arrays with "
            "numpy.save (.npy) or numpy.savez (.npz)."
        ) from None
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise CLIError(
            f"{what} is a .npy array of format version {version[0]}.{version[1]}, "
            "which is not one of 1.0, 2.0, 3.0: the file is corrupt or from a "
            "newer numpy. Save it again with numpy.save."
        )
    # Versions 2.0 and 3.0 share the header layout (3.0 allows utf-8 field
    # names, which are not numeric arrays anyway).
    read = (
        npy_format.read_array_header_1_0
        if version == (1, 0)
        else npy_format.read_array_header_2_0
    )
    try:
        shape, fortran_order, dtype = read(counter)
    except (*_HEADER_ERRORS, tokenize.TokenError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CLIError(
            f"{what} has a corrupt .npy header ({reason[:200]}): the file is "
            "damaged or cut short. Save the array again with numpy.save."
        ) from None
    if any(s < 0 for s in shape):
        raise CLIError(
            f"{what} has a corrupt .npy header (negative shape {shape}). Save "
            "the array again with numpy.save."
        )
    return shape, fortran_order, dtype, counter.n_read


def _check_dtype(dtype, description):
    real = np.issubdtype(dtype, np.number) or dtype.kind == "b"
    if not real or np.issubdtype(dtype, np.complexfloating):
        raise CLIError(
            f"{description} has dtype {dtype}; expected a real numeric array "
            "(float, int or bool)."
        )


def _check_shape(shape, description):
    if len(shape) == 0 or math.prod(shape) == 0:
        raise CLIError(
            f"{description} has shape {tuple(shape)}; expected (n_samples, n_features)."
        )


def _check_npy(header, n_stored, what, description, objects_message):
    """Refuse an array from its header alone: dtype, shape, size, memory.

    ``n_stored`` is the number of bytes the file (or zip member) holds.
    """
    shape, fortran_order, dtype, header_len = header
    if dtype.hasobject:
        raise CLIError(objects_message)
    _check_dtype(dtype, description)
    _check_shape(shape, description)
    n_elements = math.prod(shape)
    n_data = n_elements * dtype.itemsize
    n_have = n_stored - header_len
    declared = (
        f"its header declares shape {tuple(shape)} of {dtype} "
        f"({_human_bytes(n_data)} of data)"
    )
    if n_have < n_data:
        raise CLIError(
            f"{what} is truncated or corrupt: {declared}, but it holds only "
            f"{_human_bytes(max(n_have, 0))} after the header. Save the array "
            "again with numpy.save / numpy.savez."
        )
    if n_have > n_data:
        raise CLIError(
            f"{what} is corrupt: {declared}, but it holds {n_have - n_data} bytes "
            "more. Save the array again with numpy.save / numpy.savez."
        )
    # What _read_npy_data allocates: the float64 result, and a buffer of one
    # block unless the file holds native float64 in C order (read in place).
    shape = tuple(shape)
    in_place = dtype == np.dtype(np.float64) and not fortran_order
    block = 0 if in_place else min(n_data, _CHUNK_BYTES)
    _check_memory(
        n_elements * 8 + block,
        what,
        f"{_human_bytes(n_elements * 8)} for the float64 array of shape {shape}"
        + (
            ""
            if in_place
            else f", plus {_human_bytes(block)} to read {dtype} by blocks"
        ),
    )


_CHUNK_BYTES = 1 << 20  # bytes of the file read at a time


def _blocks(view, max_elements):
    """Sub-views of ``view``, of at most ``max_elements`` elements each (unless a
    single element is larger), covering it in C order."""
    if view.size <= max_elements:
        yield view
        return
    inner = view[0].size
    if inner > max_elements:
        for sub in view:
            yield from _blocks(sub, max_elements)
        return
    step = max_elements // inner
    for start in range(0, view.shape[0], step):
        yield view[start : start + step]


def _read_exact(fh, buffer):
    """Fill the writable C-contiguous ``buffer`` from ``fh``; False when short."""
    view = memoryview(buffer).cast("B")
    done = 0
    while done < len(view):
        n = fh.readinto(view[done:])
        if not n:
            return False
        done += n
    return True


def _read_npy_data(fh, header, what):
    """The data of a ``.npy`` stream positioned after its header, as float64.

    Returns a C-contiguous float64 array of the declared shape. The data are
    read by blocks of ``_CHUNK_BYTES`` straight into the result (float64 of
    native byte order) or into a small buffer converted into it (any other
    dtype): the memory needed is that of the float64 result plus one block.
    """
    shape, fortran_order, dtype, _ = header
    X = np.empty(shape, dtype=np.float64)
    # A Fortran-order file holds the transpose of the array in C order.
    target = X.transpose() if fortran_order else X.reshape(-1)
    direct = dtype == np.dtype(np.float64)  # native float64: no conversion
    max_elements = max(1, _CHUNK_BYTES // dtype.itemsize)
    buffer = None if direct else np.empty(min(X.size, max_elements), dtype=dtype)
    for block in _blocks(target, max_elements):
        if direct and block.flags.c_contiguous:
            complete = _read_exact(fh, block)
        else:
            part = np.empty(block.size, dtype) if direct else buffer[: block.size]
            complete = _read_exact(fh, part)
            block[...] = part.reshape(block.shape)
        if not complete:
            raise CLIError(
                f"{what} is truncated: it ends before the data its header "
                "declares (did it change while it was read?). Save the array "
                "again with numpy.save / numpy.savez."
            )
    if fh.read(1):
        raise CLIError(
            f"{what} holds more data than its header declares (did it change "
            "while it was read?). Save the array again with numpy.save / "
            "numpy.savez."
        )
    return X


def _objects_message(what):
    return (
        f"{what} holds Python objects, which would have to be unpickled; "
        "sklearn-mem never unpickles user files. Save a numeric array "
        "(np.save(path, X.astype(float)))."
    )


def _load_npy(path):
    what = str(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise CLIError(
                    f"{what} is empty (0 bytes), not a .npy array. Save the data "
                    "with numpy.save(path, X)."
                )
            header = _read_npy_header(fh, what)
            _check_npy(header, size, what, Path(path).name, _objects_message(what))
            return _read_npy_data(fh, header, what)
    except OSError as exc:
        raise _os_error(path, exc) from None
    except (ValueError, EOFError) as exc:
        raise CLIError(f"cannot read {path} as a .npy file: {exc}") from None


_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    ValueError,
    NotImplementedError,  # unsupported compression
    RuntimeError,  # encrypted member
    OverflowError,
)


def _load_npz(path, key):
    try:
        with open(path, "rb") as raw:
            try:
                archive = zipfile.ZipFile(raw)
            except _ZIP_ERRORS as exc:
                raise CLIError(
                    f"cannot read {path} as a .npz file: it is not a valid zip "
                    f"archive ({exc}). Save the arrays again with numpy.savez."
                ) from None
            with archive:
                return _read_npz_member(path, archive, key)
    except OSError as exc:
        raise _os_error(path, exc) from None


def _read_npz_member(path, archive, key):
    members = [info for info in archive.infolist() if not info.is_dir()]
    names = [info.filename for info in members]
    keys = [n[:-4] if n.endswith(".npy") else n for n in names]
    if key is None:
        if len(keys) != 1:
            raise CLIError(
                f"{path} holds {len(keys)} arrays ({', '.join(keys) or 'none'}): "
                "choose one with --key NAME."
            )
        key = keys[0]
    elif key not in keys and key not in names:
        raise CLIError(
            f"{path} has no array named {key!r}; it holds: {', '.join(keys)}."
        )
    info = members[keys.index(key) if key in keys else names.index(key)]
    what = f"array {key!r} of {path}"
    objects_message = (
        f"{what} holds Python objects, which would have to be unpickled; "
        "sklearn-mem never unpickles user files. Save numeric arrays."
    )
    try:
        if info.file_size == 0:
            raise CLIError(
                f"{what} is empty (0 bytes), not a .npy array. Save the arrays "
                "with numpy.savez."
            )
        with archive.open(info) as fh:
            header = _read_npy_header(fh, what)
            _check_npy(
                header,
                info.file_size,
                what,
                f"{Path(path).name}[{key}]",
                objects_message,
            )
            return _read_npy_data(fh, header, what), key
    except _ZIP_ERRORS as exc:
        raise CLIError(
            f"cannot read {what}: {exc}. The archive is corrupt; save the "
            "arrays again with numpy.savez."
        ) from None


# ---------------------------------------------------------------------- .csv


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


_MISSING = {"", "na", "nan", "n/a", "null", "none"}
_INTEGER = re.compile(r"[+-]?[0-9]+")
HEADER_CHOICES = ("auto", "yes", "no")


def _header_verdict(cells):
    """Whether a CSV's first row (stripped cells) is a header: True, False or None.

    A row with a non-numeric, non-missing cell is a header. An all-numeric
    row is data when it cannot be column names: it has a missing cell, a
    value that is not an integer literal (``0.5``, ``1e3``, ``inf``) or a
    repeated value. Distinct integer literals (``2019,2020,2021``) could be
    either: None.
    """
    lowered = [c.lower() for c in cells]
    if any(c not in _MISSING and not _is_number(c) for c in lowered):
        return True
    if any(c in _MISSING for c in lowered):
        return False
    if not all(_INTEGER.fullmatch(c) for c in cells):
        return False
    normalized = set()
    for c in cells:  # compare values without int(): no digit-count limit
        digits = c.lstrip("+-").lstrip("0") or "0"
        normalized.add(("-" if c.startswith("-") and digits != "0" else "") + digits)
    return None if len(normalized) == len(cells) else False


def _csv_records(path):
    """``(line number, row)`` of the non-blank records of a CSV file.

    Streams the file; every read problem is raised as a CLIError. The line
    number is that of the record's last line.
    """
    reader = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            for row in reader:
                if row:
                    yield reader.line_num, row
    except OSError as exc:
        raise _os_error(path, exc) from None
    except UnicodeDecodeError as exc:
        line = _first_non_utf8_line(path)
        raise CLIError(
            f"{path} is not UTF-8 text ({exc.reason}"
            f"{'' if line is None else f' on line {line}'}). Save it as UTF-8, "
            "e.g. iconv -f latin1 -t utf-8 in.csv > out.csv."
        ) from None
    except csv.Error as exc:
        line = "" if reader is None else f", line {reader.line_num}"
        raise CLIError(
            f"{path}{line}: not valid CSV ({exc}). Fix the line (quotes must be "
            "balanced, no NUL bytes) or save the file again as CSV."
        ) from None


def _first_non_utf8_line(path):
    """Number of the first line of ``path`` that is not UTF-8, or None."""
    try:
        with open(path, "rb") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return number
    except OSError:
        pass
    return None


def _first_line_text(row, limit=120):
    text = ",".join(row)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_csv(path, id_column, header):
    # First pass: the header, the number of rows, their field counts. Nothing
    # but counters is kept, so that memory stays that of the final array.
    records = _csv_records(path)
    first = next(records, None)
    if first is None:
        raise CLIError(f"{path} is empty: expected a header and one row per sample.")
    first_row = first[1]
    cells = [c.strip() for c in first_row]
    if header == "auto":
        has_header = _header_verdict(cells)
        if has_header is None:
            records.close()
            raise CLIError(
                f"{path}: cannot tell whether its first line "
                f"{_first_line_text(first_row)!r} is a header or a row of data "
                "(distinct integers could be column names, e.g. years, or "
                "values). Pass --header yes if it names the columns, or "
                "--header no if it is data."
            )
    else:
        has_header = header == "yes"
    n_fields = len(cells)
    names = cells if has_header else [str(j) for j in range(n_fields)]
    which = "header has" if has_header else "first line has"
    n_rows = 0 if has_header else 1
    for line, row in records:
        if len(row) != n_fields:
            records.close()
            raise CLIError(
                f"{path}, line {line}: {len(row)} fields, but the {which} {n_fields}."
            )
        n_rows += 1
    if n_rows == 0:
        raise CLIError(f"{path} has a header but no rows.")
    id_index = None
    if id_column is not None:
        if id_column in names:
            id_index = names.index(id_column)
        else:
            raise CLIError(
                f"--id-column {id_column!r} is not a column of {path}; its "
                f"columns are: {', '.join(names)}"
                + ("" if has_header else " (no header: columns are numbered)")
                + "."
            )
    features = [j for j in range(n_fields) if j != id_index]
    if not features:
        raise CLIError(f"{path} has no numeric feature columns.")
    _check_memory(
        n_rows * len(features) * 8,
        str(path),
        f"a float64 array of {n_rows} rows x {len(features)} columns",
    )

    # Second pass: parse straight into the preallocated array.
    X = np.empty((n_rows, len(features)), dtype=np.float64)
    ids = None if id_index is None else []
    bad = {}  # feature position -> (line, cell) of its first non-numeric cell
    records = _csv_records(path)
    if has_header:
        next(records, None)
    i = 0
    for line, row in records:
        if i >= n_rows or len(row) != n_fields:
            records.close()
            raise CLIError(f"{path} changed while it was read; run again.")
        if id_index is not None:
            ids.append(row[id_index].strip())
            row = [row[j] for j in features]
        try:
            X[i] = [float(c) for c in row]
        except ValueError:
            for k, cell in enumerate(row):
                cell = cell.strip()
                try:
                    X[i, k] = float(cell)
                except ValueError:
                    X[i, k] = np.nan
                    if cell.lower() not in _MISSING and k not in bad:
                        bad[k] = (line, cell)
        i += 1
    if i != n_rows:
        raise CLIError(f"{path} changed while it was read; run again.")
    if bad:
        listed = [
            f"{names[features[k]]!r} (line {line}: {cell!r})"
            for k, (line, cell) in sorted(bad.items())
        ]
        raise CLIError(
            f"{path} has non-numeric columns: {', '.join(listed[:10])}"
            + (f" and {len(listed) - 10} more" if len(listed) > 10 else "")
            + ". Remove them, or name the identifier column with --id-column."
        )
    if ids is None:
        ids = range(n_rows)
    return X, ids


# ------------------------------------------------------------ checks, loader

_IMAGE_FORMS = "HxW (grayscale), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA)"
_MAX_ABS = 1e150


def _drawable(shape):
    """Image shape for the report's grid, or None when it cannot be drawn.

    ``(H, W, 1)`` becomes ``(H, W)``: the grid draws it as grayscale.
    """
    if len(shape) == 2:
        return tuple(shape)
    if len(shape) == 3 and shape[2] in (1, 3, 4):
        return tuple(shape[:2]) if shape[2] == 1 else tuple(shape)
    return None


def _check_image_shape(image_shape):
    """Validated ``image_shape`` (tuple of positive ints) and its drawable form."""
    if isinstance(image_shape, str):  # as on the command line: 28x28
        image_shape = _parse_shape(image_shape)
    not_a_shape = CLIError(
        f"--image-shape {image_shape!r} is not a shape: expected e.g. 8x8, 28x28 "
        "or 32x32x3."
    )
    if isinstance(image_shape, bytes):
        raise not_a_shape
    try:
        shape = tuple(
            int(s) if isinstance(s, str) else operator.index(s) for s in image_shape
        )
    except (TypeError, ValueError):
        raise not_a_shape from None
    if not shape or any(s < 1 for s in shape):
        raise not_a_shape
    drawable = _drawable(shape)
    if drawable is None:
        raise CLIError(
            f"--image-shape {'x'.join(map(str, shape))} cannot be drawn as an "
            f"image: expected {_IMAGE_FORMS}, e.g. 28x28 or 32x32x3."
        )
    return shape, drawable


def _row_blocks(X):
    """Slices of about 1 MiB of rows of ``X``: checks by blocks keep their
    temporaries small."""
    n, d = X.shape
    step = max(1, (1 << 17) // max(d, 1))
    for start in range(0, n, step):
        yield slice(start, start + step)


def _nonfinite_rows(X):
    """Mask of the rows holding NaN or inf, or None when there are none."""
    mask = None
    for rows in _row_blocks(X):
        bad = ~np.isfinite(X[rows]).all(axis=1)
        if bad.any():
            if mask is None:
                mask = np.zeros(X.shape[0], dtype=bool)
            mask[rows] = bad
    return mask


def _huge_rows(X):
    """Indices of the rows of the finite ``X`` holding a value above
    ``_MAX_ABS`` in absolute value, and the largest absolute value."""
    found = []
    largest = 0.0
    for rows in _row_blocks(X):
        magnitude = np.abs(X[rows])
        big = (magnitude > _MAX_ABS).any(axis=1)
        if big.any():
            found.append(np.flatnonzero(big) + rows.start)
            largest = max(largest, float(magnitude.max()))
    return (np.concatenate(found) if found else np.zeros(0, dtype=np.intp)), largest


def _drop_rows(X, drop):
    """``X`` without the rows of the mask ``drop``, compacted in place."""
    kept = 0
    for rows in _row_blocks(X):
        block = X[rows][~drop[rows]]
        X[kept : kept + len(block)] = block
        kept += len(block)
    return X[:kept]


def _shown_ids(ids, mask):
    chosen = [ids[i] for i in np.flatnonzero(mask)]
    shown = ", ".join(map(str, chosen[:10])) + (" ..." if len(chosen) > 10 else "")
    return chosen, shown


def _read_file(path, suffix, key, id_column, header):
    """``X`` (float64), ``ids``, inferred image shape and description of a file."""
    shape = None
    if suffix == ".csv":
        X, ids = _load_csv(path, id_column, header)
        return X, ids, shape, path.name
    if suffix == ".npy":
        arr = _load_npy(path)
        description = path.name
    else:
        arr, used = _load_npz(path, key)
        description = f"{path.name}[{used}]"
    # The readers return C-contiguous float64 arrays: reshaping is a view.
    _check_shape(arr.shape, description)
    if arr.ndim >= 3:
        sample = tuple(int(s) for s in arr.shape[1:])
        shape = _drawable(sample)
        if shape is None:
            logger.warning(
                "%s: samples of shape %s cannot be drawn as images (expected %s); "
                "the report will have no image grid (choose one with --image-shape)",
                description,
                "x".join(map(str, sample)),
                _IMAGE_FORMS,
            )
    X = arr.reshape(arr.shape[0], -1)
    return X, range(X.shape[0]), shape, description


def load_data(
    path=None,
    *,
    key=None,
    id_column=None,
    dropna=False,
    image_shape=None,
    header="auto",
):
    """Load the data of a study.

    Every problem with the input is raised as :class:`CLIError`, with a
    message naming the problem and its fix; large arrays are refused from
    their declared size (file header, zip directory) before they are read.

    Parameters
    ----------
    path : str, path-like or None, default=None
        A ``.npy`` file (one numeric array), a ``.npz`` file (one array, or
        the one named by ``key``) or a ``.csv`` file (UTF-8, numeric
        columns, an optional header; empty, ``na``, ``nan``, ``n/a``,
        ``null`` and ``none`` cells are missing values). None loads
        scikit-learn's digits scaled to [0, 1] (8x8 images). Files are read
        with ``allow_pickle=False``: nothing is ever unpickled. Arrays of
        images ``(n, H, W)`` or ``(n, H, W, C)`` are flattened and remember
        their image shape (dropped, with a warning, when it cannot be drawn).
    key : str or None, default=None
        Array to use from a ``.npz`` file holding several.
    id_column : str or None, default=None
        Column of a ``.csv`` file holding sample identifiers (kept in the
        output, not used as a feature).
    dropna : bool, default=False
        Drop rows with NaN or infinite values instead of refusing them.
    image_shape : tuple of int or None, default=None
        Shape of one sample as an image, for the image grid of the report:
        ``(H, W)``, ``(H, W, 1)`` (returned as ``(H, W)``), ``(H, W, 3)`` or
        ``(H, W, 4)``, holding as many values as a row has features.
    header : {"auto", "yes", "no"}, default="auto"
        Whether the first line of a ``.csv`` file names the columns.
        ``"auto"``: it does when a cell is neither a number nor missing; an
        all-numeric line is data when it cannot be column names (a missing
        cell, a value that is not an integer such as ``0.5`` or ``1e3``, a
        repeated value), and distinct integers (``2019,2020,2021``) are
        refused as ambiguous: pass ``"yes"`` or ``"no"``. Without a header,
        columns are numbered from ``"0"``.

    Returns
    -------
    data : Bunch
        ``X`` (float64, ``(n_samples, n_features)``), ``ids`` (sequence, one per
        row: the ``id_column`` values, a list; else the row numbers in the
        file, a ``range``, or a list after ``dropna`` dropped rows),
        ``image_shape`` (tuple or None), ``name``, ``description``,
        ``source`` (a JSON-ready description of where the data came from,
        from which :func:`load_data` can reload it) and ``dropped`` (ids of
        the rows dropped by ``dropna``).

    Raises
    ------
    CLIError
        When the file is missing or unreadable, of an unknown format,
        corrupt or truncated, larger than the available memory, not
        numeric, has rows with NaN/inf (without ``dropna``) or with values
        above 1e150 in absolute value, an ambiguous CSV header, or an
        ``image_shape`` that does not fit the data or cannot be drawn.

    Examples
    --------
    >>> from sklearn_mem.cli import load_data
    >>> data = load_data()
    >>> data.X.shape, data.image_shape, data.name
    ((1797, 64), (8, 8), 'digits')
    """
    if not isinstance(header, str) or header.lower() not in HEADER_CHOICES:
        raise CLIError(
            f"--header {header!r} is not one of auto, yes, no: pass --header yes "
            "when the first line of the CSV names the columns, --header no when "
            "it is data, or leave the default (auto)."
        )
    header = header.lower()
    drawable = None
    if image_shape is not None:
        image_shape, drawable = _check_image_shape(image_shape)
    try:
        resolved = None if path is None else str(Path(path).resolve())
    except TypeError:
        raise CLIError(f"--data {path!r} is not a file path.") from None
    except (OSError, RuntimeError, ValueError):
        resolved = str(Path(path).absolute())
    source = {
        "path": resolved,
        "key": key,
        "id_column": id_column,
        "dropna": bool(dropna),
        "image_shape": None if image_shape is None else list(image_shape),
        "header": header,
    }
    if path is None:
        if key is not None or id_column is not None or header != "auto":
            raise CLIError(
                "--key, --id-column and --header apply to a --data file; the "
                "default data (digits) takes none of them."
            )
        from sklearn.datasets import load_digits

        X = load_digits().data / 16.0
        ids = range(X.shape[0])
        shape = (8, 8)
        name = "digits"
        description = "scikit-learn digits (8x8 images, scaled to [0, 1])"
    else:
        path = Path(path)
        suffix = path.suffix.lower()
        _stat_data_file(path)
        if suffix not in DATA_FORMATS:
            raise CLIError(
                f"unknown data format {suffix or '(no extension)'!r} of {str(path)!r}: "
                f"expected one of {', '.join(DATA_FORMATS)}."
            )
        if key is not None and suffix != ".npz":
            raise CLIError("--key applies to .npz files only.")
        if id_column is not None and suffix != ".csv":
            raise CLIError("--id-column applies to .csv files only.")
        if header != "auto" and suffix != ".csv":
            raise CLIError("--header applies to .csv files only.")
        name = path.stem
        try:
            X, ids, shape, description = _read_file(
                path, suffix, key, id_column, header
            )
        except CLIError:
            raise
        except MemoryError:
            raise CLIError(
                f"not enough memory to load {path}: use a smaller sample of the "
                "data (fewer rows or features), or free memory and run again."
            ) from None
        except OSError as exc:
            raise _os_error(path, exc) from None
        except Exception as exc:  # a reader's failure we did not foresee
            raise CLIError(
                f"cannot read {path}: {type(exc).__name__}: {exc}. Check that it "
                f"is a valid {suffix} file."
            ) from None
    if image_shape is not None:
        if math.prod(image_shape) != X.shape[1]:
            raise CLIError(
                f"--image-shape {'x'.join(map(str, image_shape))} holds "
                f"{math.prod(image_shape)} values, but the data have {X.shape[1]} "
                "features per row."
            )
        shape = drawable

    nonfinite = _nonfinite_rows(X)
    dropped = []
    if nonfinite is not None:
        bad_ids, shown = _shown_ids(ids, nonfinite)
        if not dropna:
            raise CLIError(
                f"{len(bad_ids)} of {X.shape[0]} rows of {description} hold NaN "
                f"or infinite values (ids: {shown}). Pass --dropna to drop them, "
                "or fix the data."
            )
        logger.warning(
            "dropping %d rows with NaN or infinite values (--dropna): ids %s",
            len(bad_ids),
            shown,
        )
        X = _drop_rows(X, nonfinite)
        ids = [i for i, bad in zip(ids, nonfinite) if not bad]
        dropped = bad_ids
        del nonfinite
    huge, largest = _huge_rows(X)
    if len(huge):
        big_ids = [ids[i] for i in huge]
        shown = ", ".join(map(str, big_ids[:10])) + (
            " ..." if len(big_ids) > 10 else ""
        )
        scale = 10.0 ** math.floor(math.log10(largest))
        raise CLIError(
            f"{len(big_ids)} of {X.shape[0]} rows of {description} hold values "
            f"larger than {_MAX_ABS:.0e} in absolute value (largest "
            f"{largest:.3g}; ids: {shown}): their squared distances and variances "
            "overflow float64. Rescale the data, e.g. divide every value by a "
            f"constant such as {scale:.0e}, and run again."
        )
    return Bunch(
        X=np.ascontiguousarray(X, dtype=np.float64),
        ids=ids,
        image_shape=shape,
        name=name,
        description=description,
        source=source,
        dropped=dropped,
    )


def data_fingerprint(X, ids):
    """SHA-256 of the data and its sample ids.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data, as fitted (float64).
    ids : sequence
        The sample identifiers.

    Returns
    -------
    digest : str
        Hex digest; equal for equal data, shape and ids.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mem.cli import data_fingerprint
    >>> data_fingerprint(np.zeros((2, 2)), [0, 1]) == data_fingerprint(
    ...     np.zeros((2, 2)), [0, 1])
    True
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    h = hashlib.sha256()
    h.update(repr(X.shape).encode())
    h.update(X.reshape(-1).view(np.uint8))  # the bytes of X, not a copy
    # "\x1f".join(map(str, ids)), hashed by blocks of ids
    for start in range(0, len(ids), 1 << 16):
        text = "\x1f".join(map(str, ids[start : start + (1 << 16)]))
        h.update((text if start == 0 else "\x1f" + text).encode("utf-8"))
    return h.hexdigest()


def _settings_fingerprint(fit_settings):
    text = json.dumps(fit_settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
