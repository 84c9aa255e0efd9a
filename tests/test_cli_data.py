"""The data loader of the sklearn-mem command: every bad input is a CLIError."""

import logging
import os
import tracemalloc
import zipfile

import numpy as np
import numpy.lib.format as npy_format
import pytest

from sklearn_mem import _data
from sklearn_mem._data import load_data
from sklearn_mem._errors import CLIError


def _write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


def _refused(*args, **kwargs):
    """The message of the CLIError that load_data raises (any other fails)."""
    with pytest.raises(CLIError) as info:
        load_data(*args, **kwargs)
    return str(info.value)


def _npy_bytes(shape, dtype="<f8", data=b"", fortran_order=False):
    """A .npy file: a valid header declaring ``shape``, then ``data``."""
    import io

    buf = io.BytesIO()
    npy_format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": fortran_order, "shape": shape}
    )
    return buf.getvalue() + data


# ---------------------------------------------------------------- CSV header


def test_csv_text_header_is_a_header(tmp_path):
    path = _write(tmp_path / "t.csv", "a,b,c\n1,2,3\n4,5,6\n")
    for header in ("auto", "yes"):
        data = load_data(path, header=header, id_column="a")
        assert data.X.tolist() == [[2, 3], [5, 6]] and data.ids == ["1", "4"]
    assert data.source["header"] == "yes"


def test_csv_numeric_header_is_ambiguous(tmp_path):
    path = _write(tmp_path / "years.csv", "2019,2020,2021\n1,2,3\n4,5,6\n")
    msg = _refused(path)
    assert "years.csv" in msg and "'2019,2020,2021'" in msg
    assert "--header yes" in msg and "--header no" in msg


def test_csv_numeric_header_yes_and_no(tmp_path):
    path = _write(tmp_path / "years.csv", "2019,2020,2021\n1,2,3\n4,5,6\n")
    data = load_data(path, header="yes", id_column="2020")
    assert data.X.tolist() == [[1, 3], [4, 6]] and data.ids == ["2", "5"]
    data = load_data(path, header="no")
    assert data.X.shape == (3, 3) and data.X[0].tolist() == [2019, 2020, 2021]
    assert data.ids == range(3)  # row numbers: a range, not a list of ints


@pytest.mark.parametrize(
    "first", ["1,2,0.5", "1e3,2,3", "1,,3", "1,nan,3", "7,7,8", "1,-inf,3", "05,5,6"]
)
def test_csv_numeric_first_row_that_cannot_be_names_is_data(tmp_path, first):
    path = _write(tmp_path / "d.csv", first + "\n1,2,3\n")
    data = load_data(path, dropna=True)
    assert data.X[-1].tolist() == [1, 2, 3]
    assert len(data.ids) + len(data.dropped) == 2  # the first line is a row


def test_csv_header_no_with_text_first_row_is_non_numeric(tmp_path):
    path = _write(tmp_path / "t.csv", "a,b\n1,2\n")
    msg = _refused(path, header="no")
    assert "non-numeric columns" in msg and "'0' (line 1: 'a')" in msg


@pytest.mark.parametrize("header", ["maybe", "", True, None, 1])
def test_invalid_header_value(tmp_path, header):
    path = _write(tmp_path / "t.csv", "a,b\n1,2\n")
    msg = _refused(path, header=header)
    assert "--header" in msg and "auto, yes, no" in msg


def test_header_applies_to_csv_only(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 2)))
    assert "--header applies to .csv files only" in _refused(path, header="no")
    assert "--header" in _refused(header="yes")
    assert load_data(path, header="auto").X.shape == (3, 2)


# ----------------------------------------------------------------- CSV reader


def test_csv_wrong_field_count_names_the_line(tmp_path):
    path = _write(tmp_path / "t.csv", "a,b,c\n1,2,3\n\n4,5\n")
    msg = _refused(path)
    assert "line 4: 2 fields, but the header has 3" in msg
    path = _write(tmp_path / "n.csv", "1,2,3.5\n1,2\n")
    assert "line 2: 2 fields, but the first line has 3" in _refused(path)


def test_csv_non_numeric_columns_are_listed(tmp_path):
    names = [f"c{j}" for j in range(13)]
    rows = [",".join(names), ",".join(["1"] * 13), ",".join(["x"] * 12 + ["2"])]
    path = _write(tmp_path / "t.csv", "\n".join(rows) + "\n")
    msg = _refused(path)
    assert "non-numeric columns" in msg and "'c0' (line 3: 'x')" in msg
    assert "'c9'" in msg and "'c10'" not in msg and "and 2 more" in msg
    assert "--id-column" in msg


def test_csv_missing_values_id_column_and_bom(tmp_path):
    text = "\ufeffid,a,b\ns1,1, na \ns2,N/A,2\ns3,3,4\ns4,null,None\ns5,5,6\n"
    path = _write(tmp_path / "t.csv", text)
    msg = _refused(path, id_column="id")
    assert "3 of 5 rows" in msg and "s1, s2, s4" in msg and "Pass --dropna" in msg
    data = load_data(path, id_column="id", dropna=True)
    assert data.X.tolist() == [[3, 4], [5, 6]] and data.ids == ["s3", "s5"]
    assert data.dropped == ["s1", "s2", "s4"]
    msg = _refused(path, id_column="name")
    assert "--id-column 'name' is not a column" in msg and "id, a, b" in msg


def test_csv_empty_header_only_and_no_features(tmp_path):
    assert "is empty" in _refused(_write(tmp_path / "e.csv", "\n\n"))
    assert "header but no rows" in _refused(_write(tmp_path / "h.csv", "a,b\n"))
    path = _write(tmp_path / "i.csv", "id\ns1\ns2\n")
    assert "no numeric feature columns" in _refused(path, id_column="id")


def test_csv_not_utf8_and_not_csv(tmp_path):
    path = tmp_path / "l.csv"
    path.write_bytes("a,b\n1,2\n\xe9,3\n".encode("latin-1"))
    msg = _refused(path)
    assert "l.csv is not UTF-8 text" in msg and "on line 3" in msg and "iconv" in msg
    path = tmp_path / "z.csv"
    path.write_bytes(b"a,b\n1,2\n3,4" + b"5" * 200_000 + b"\n")
    msg = _refused(path)
    assert "z.csv, line 3: not valid CSV" in msg and "field limit" in msg


def test_csv_memory_is_that_of_the_array(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.randn(20_000, 20)
    path = tmp_path / "big.csv"
    np.savetxt(path, X, delimiter=",", fmt="%.17g", header="", comments="")
    tracemalloc.start()
    try:
        data = load_data(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(data.X, X)
    assert peak < 3 * X.nbytes, (peak, X.nbytes)


def test_csv_larger_than_memory(tmp_path, monkeypatch):
    path = _write(tmp_path / "t.csv", "a,b\n1,2\n3,4\n")
    monkeypatch.setattr(_data, "_available_memory", lambda: 16)
    msg = _refused(path)
    assert "t.csv needs 32 bytes of memory" in msg and "smaller sample" in msg
    monkeypatch.setattr(_data, "_available_memory", lambda: None)  # unknown: load
    assert load_data(path).X.shape == (2, 2)


# ---------------------------------------------------------------------- .npy


def test_npy_empty_truncated_and_trailing(tmp_path):
    path = tmp_path / "e.npy"
    path.write_bytes(b"")
    msg = _refused(path)
    assert "e.npy is empty (0 bytes)" in msg and "numpy.save" in msg
    good = tmp_path / "g.npy"
    np.save(good, np.arange(30.0).reshape(10, 3))
    path = tmp_path / "t.npy"
    path.write_bytes(good.read_bytes()[:-7])
    msg = _refused(path)
    assert "t.npy is truncated or corrupt" in msg and "(10, 3)" in msg
    path.write_bytes(good.read_bytes()[:20])  # cut inside the header
    assert "t.npy" in _refused(path)
    path.write_bytes(good.read_bytes() + b"\0" * 8)
    assert "8 bytes more" in _refused(path)


def test_npy_huge_declared_shape_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge.npy"
    path.write_bytes(_npy_bytes((7 * 2**37,), data=b"\0" * 64))  # 7 TiB

    def no_read(*args, **kwargs):
        raise AssertionError("the data must not be read")

    monkeypatch.setattr(npy_format, "read_array", no_read)
    msg = _refused(path)
    assert "huge.npy is truncated or corrupt" in msg and "7.0 TiB" in msg


def test_npy_larger_than_memory(tmp_path, monkeypatch):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((100, 10), dtype=np.float32))
    # float32 is converted by blocks: the float64 array and one block
    monkeypatch.setattr(_data, "_CHUNK_BYTES", 1024)
    monkeypatch.setattr(_data, "_available_memory", lambda: 9_000)
    msg = _refused(path)
    assert (
        "needs 8.8 KiB of memory" in msg
        and "plus 1.0 KiB to read float32 by blocks" in msg
    )
    assert "only 8.8 KiB is available" in msg
    monkeypatch.setattr(_data, "_available_memory", lambda: 9_216)
    np.testing.assert_array_equal(load_data(path).X, np.zeros((100, 10)))


def test_npy_not_an_array_bad_header_and_version(tmp_path):
    path = _write(tmp_path / "t.npy", "hello, world\n")
    assert "not a .npy array" in _refused(path)
    path = tmp_path / "h.npy"
    raw = bytearray(_npy_bytes((2, 2), data=b"\0" * 32))
    raw[10:20] = b"not a dict"
    path.write_bytes(bytes(raw))
    assert "h.npy has a corrupt .npy header" in _refused(path)
    raw = bytearray(_npy_bytes((2, 2), data=b"\0" * 32))
    raw[6] = 9
    path.write_bytes(bytes(raw))
    assert "format version 9.0" in _refused(path)


def test_npy_dtypes(tmp_path):
    path = tmp_path / "o.npy"
    np.save(path, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    assert "never unpickles" in _refused(path)
    np.save(path, np.array([["a", "b"]]))
    assert "has dtype <U1; expected a real numeric array" in _refused(path)
    np.save(path, np.ones((3, 2), dtype=complex))
    assert "expected a real numeric array" in _refused(path)
    np.save(path, np.zeros((0, 3)))
    assert "has shape (0, 3)" in _refused(path)
    np.save(path, np.arange(6, dtype=">i4").reshape(3, 2))
    assert load_data(path).X.tolist() == [[0, 1], [2, 3], [4, 5]]


def test_npy_fortran_order_loads(tmp_path):
    X = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    path = tmp_path / "f.npy"
    np.save(path, X)
    data = load_data(path)
    np.testing.assert_array_equal(data.X, X)
    assert data.X.flags.c_contiguous
    images = np.asfortranarray(np.arange(48.0).reshape(3, 4, 4))
    np.save(path, images)
    data = load_data(path)
    np.testing.assert_array_equal(data.X, images.reshape(3, 16))
    assert data.image_shape == (4, 4)


# ---------------------------------------------------------------------- .npz


def test_npz_member_not_an_array(tmp_path):
    path = tmp_path / "t.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", "just some text\n")
    msg = _refused(path)
    assert "array 'x' of" in msg and "not a .npy array" in msg


def test_npz_corrupt_zip(tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip archive" * 10)
    msg = _refused(path)
    assert "c.npz" in msg and "not a valid zip archive" in msg
    good = tmp_path / "g.npz"
    np.savez_compressed(good, x=np.random.RandomState(0).randn(200, 5))
    raw = bytearray(good.read_bytes())
    raw[60:200] = bytes(140)  # damage the compressed data, keep the directory
    path.write_bytes(bytes(raw))
    assert "c.npz" in _refused(path)
    path.write_bytes(good.read_bytes()[:-30])  # cut in the central directory
    assert "c.npz" in _refused(path)


def test_npz_bomb_is_refused_from_its_declared_size(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", _npy_bytes((1_000_000_000,), data=b"\0" * 4096))

    def no_read(*args, **kwargs):
        raise AssertionError("the data must not be read")

    monkeypatch.setattr(npy_format, "read_array", no_read)
    msg = _refused(path)
    assert "array 'x' of" in msg and "truncated or corrupt" in msg
    assert "(1000000000,)" in msg and "7.5 GiB" in msg


def test_npz_larger_than_memory(tmp_path, monkeypatch):
    path = tmp_path / "z.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x.npy", "w") as fh:  # 8 MiB of zeros, a few KiB on disk
            fh.write(_npy_bytes((2**20,)))
            for _ in range(8):
                fh.write(bytes(2**20))
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(_data, "_available_memory", lambda: 2**20)
    msg = _refused(path)
    assert "needs 8.0 MiB of memory" in msg and "only 1.0 MiB" in msg


def test_npz_keys_objects_and_empty_member(tmp_path):
    path = tmp_path / "k.npz"
    np.savez(path, a=np.zeros((5, 2)), b=np.ones((4, 3)))
    assert "holds 2 arrays (a, b)" in _refused(path)
    assert "no array named 'c'" in _refused(path, key="c")
    assert load_data(path, key="b").description == "k.npz[b]"
    np.savez(path, o=np.array([[None]], dtype=object))
    msg = _refused(path)
    assert "array 'o' of" in msg and "never unpickles" in msg
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("e.npy", b"")
    assert "empty (0 bytes)" in _refused(path)
    with zipfile.ZipFile(path, "w"):
        pass
    assert "holds 0 arrays (none)" in _refused(path)


def test_npz_compressed_and_fortran_load(tmp_path):
    X = np.asfortranarray(np.random.RandomState(0).randn(50, 4))
    path = tmp_path / "c.npz"
    np.savez_compressed(path, X=X)
    np.testing.assert_array_equal(load_data(path).X, X)


def _traced_load(*args, **kwargs):
    """``load_data(*args, **kwargs)`` and the peak of its traced allocations."""
    tracemalloc.start()
    try:
        data = load_data(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return data, peak


def test_npy_and_npz_memory_is_that_of_the_float64_array(tmp_path):
    X = np.random.RandomState(0).randn(100_000, 64)  # 51 MB of float64
    path = tmp_path / "x.npy"
    np.save(path, X)
    data, peak = _traced_load(path)
    np.testing.assert_array_equal(data.X, X)
    assert data.X.flags.c_contiguous and data.ids == range(100_000)
    assert peak < 1.4 * data.X.nbytes, (peak, data.X.nbytes)
    # uint8 images: read by blocks into the float64 array, no full-size copy
    images = (np.arange(8_000 * 28 * 28) % 251).astype(np.uint8).reshape(8_000, 28, 28)
    path = tmp_path / "images.npz"
    np.savez_compressed(path, images=images)
    data, peak = _traced_load(path)
    np.testing.assert_array_equal(data.X, images.reshape(8_000, -1))
    assert data.X.dtype == np.float64 and data.image_shape == (28, 28)
    assert peak < 1.4 * data.X.nbytes, (peak, data.X.nbytes)
    # a single column: the row numbers (ids) take no memory per row
    path = tmp_path / "column.npz"
    np.savez(path, x=np.zeros(3_000_000))
    data, peak = _traced_load(path)
    assert data.X.shape == (3_000_000, 1) and len(data.ids) == 3_000_000
    assert peak < 1.4 * data.X.nbytes, (peak, data.X.nbytes)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", ["<f8", ">f8", "<i8", "u1", "?", "<f4"])
def test_block_reads_of_every_dtype_and_order(tmp_path, monkeypatch, dtype, order):
    monkeypatch.setattr(_data, "_CHUNK_BYTES", 40)  # blocks of a few elements
    rng = np.random.RandomState(0)
    for shape in [(7,), (5, 3), (4, 3, 5), (2, 11), (3, 1)]:
        arr = np.asarray(rng.randint(0, 2 if dtype == "?" else 100, shape), dtype)
        arr = np.asfortranarray(arr) if order == "F" else arr
        np.save(tmp_path / "a.npy", arr)
        np.savez_compressed(tmp_path / "a.npz", a=arr)
        expected = arr.astype(np.float64).reshape(shape[0], -1)
        for name in ("a.npy", "a.npz"):
            X = load_data(tmp_path / name).X
            assert X.dtype == np.float64 and X.flags.c_contiguous
            np.testing.assert_array_equal(X, expected)


def test_npy_changed_while_read(tmp_path, monkeypatch):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(12.0).reshape(4, 3))
    read_exact = _data._read_exact
    monkeypatch.setattr(_data, "_read_exact", lambda fh, buffer: False)
    assert "x.npy is truncated" in _refused(path)
    monkeypatch.setattr(_data, "_read_exact", read_exact)
    monkeypatch.setattr(_data, "_CHUNK_BYTES", 16)
    real_read = _data._read_npy_data

    def grows(fh, header, what):  # the data end one element before the file
        shape, fortran_order, dtype, n = header
        return real_read(fh, ((shape[0] - 1, 3), fortran_order, dtype, n), what)

    monkeypatch.setattr(_data, "_read_npy_data", grows)
    assert "holds more data than its header declares" in _refused(path)


def test_dropna_compacts_rows_in_place(tmp_path, monkeypatch):
    monkeypatch.setattr(
        _data,
        "_row_blocks",
        lambda X: (slice(start, start + 3) for start in range(0, len(X), 3)),
    )
    X = np.arange(40.0).reshape(10, 4)
    X[[0, 4, 5, 9], [1, 0, 3, 2]] = [np.nan, np.inf, -np.inf, np.nan]
    path = tmp_path / "n.npy"
    np.save(path, X)
    data = load_data(path, dropna=True)
    keep = [1, 2, 3, 6, 7, 8]
    np.testing.assert_array_equal(data.X, X[keep])
    assert data.ids == keep and data.dropped == [0, 4, 5, 9]


# ------------------------------------------------------------- large values


def test_values_too_large_are_refused(tmp_path):
    X = np.ones((6, 3))
    X[1, 2], X[4, 0] = 3e200, -1e151
    path = tmp_path / "big.npy"
    np.save(path, X)
    msg = _refused(path)
    assert "2 of 6 rows of big.npy" in msg and "ids: 1, 4" in msg
    assert "Rescale" in msg and "divide" in msg and "1e+200" in msg
    X[4, 0] = 1e150  # the limit itself is accepted
    np.save(path, X)
    assert "1 of 6 rows" in _refused(path)


def test_values_too_large_in_csv_and_after_dropna(tmp_path):
    path = _write(tmp_path / "t.csv", "id,a\nr1,1\nr2,1e160\nr3,nan\nr4,2\n")
    msg = _refused(path, id_column="id", dropna=True)
    assert "1 of 3 rows of t.csv" in msg and "ids: r2" in msg
    path = _write(tmp_path / "u.csv", "a,b\n1,2\nnan,1e300\n3,inf\n4,5\n")
    data = load_data(path, dropna=True)  # the large value goes with its NaN row
    assert data.X.tolist() == [[1, 2], [4, 5]] and data.dropped == [1, 2]
    assert "NaN or infinite" in _refused(path)


# -------------------------------------------------------------- image shape


@pytest.mark.parametrize(("shape", "n"), [((2, 2, 2, 2), 16), ((4, 4, 2), 32)])
def test_image_shape_that_cannot_be_drawn(tmp_path, shape, n):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, n)))
    msg = _refused(path, image_shape=shape)
    assert "--image-shape" in msg and "cannot be drawn" in msg
    assert "HxW (grayscale), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA)" in msg


def test_image_shape_forms_and_size(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 48)))
    assert load_data(path, image_shape=(4, 4, 3)).image_shape == (4, 4, 3)
    assert load_data(path, image_shape=[6, 8, 1]).image_shape == (6, 8)
    assert load_data(path, image_shape=(6, 8)).source["image_shape"] == [6, 8]
    msg = _refused(path, image_shape=(7, 7))
    assert "holds 49 values" in msg and "48 features" in msg
    assert load_data(path, image_shape="6x8").image_shape == (6, 8)  # as typed
    for bad in ("6-8", b"0", (0, 48), ("a", 2), 5, (), (4.5, 2)):
        assert "is not a shape" in _refused(path, image_shape=bad)


def test_inferred_image_shape_that_cannot_be_drawn_is_dropped(tmp_path, caplog):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 2, 2, 2, 2)))
    with caplog.at_level(logging.WARNING, logger="sklearn_mem"):
        data = load_data(path)
    assert data.X.shape == (3, 16) and data.image_shape is None
    assert "cannot be drawn" in caplog.text and "2x2x2x2" in caplog.text
    np.save(path, np.zeros((3, 4, 4, 2)))
    assert load_data(path).image_shape is None
    assert load_data(path, image_shape=(8, 4)).image_shape == (8, 4)
    np.save(path, np.zeros((3, 4, 5, 1)))
    assert load_data(path).image_shape == (4, 5)
    np.save(path, np.zeros((3, 4, 5, 3)))
    assert load_data(path).image_shape == (4, 5, 3)


# ------------------------------------------------------------ reading errors


def test_missing_folder_and_not_regular_files(tmp_path):
    msg = _refused(tmp_path / "nope.csv")
    assert "does not exist" in msg and "nope.csv" in msg
    (tmp_path / "d.csv").mkdir()
    assert "is a folder" in _refused(tmp_path / "d.csv")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "p.csv")
        assert "not a regular file" in _refused(tmp_path / "p.csv")


@pytest.mark.parametrize("name", ["x.csv", "x.npy", "x.npz"])
@pytest.mark.parametrize(
    "error",
    [
        PermissionError(13, "Permission denied"),
        IsADirectoryError(21, "Is a directory"),
        OSError(5, "Input/output error"),
    ],
)
def test_os_errors_while_reading(tmp_path, monkeypatch, name, error):
    path = tmp_path / name
    path.write_bytes(b"0")

    def failing_open(file, *args, **kwargs):
        if str(file) == str(path):
            raise error
        return open(file, *args, **kwargs)

    monkeypatch.setattr(_data, "open", failing_open, raising=False)
    msg = _refused(path)
    assert f"cannot read {str(path)!r}: {error.strerror}" in msg


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything"
)
def test_unreadable_file(tmp_path):
    path = _write(tmp_path / "x.csv", "a\n1\n")
    path.chmod(0)
    try:
        assert "Permission denied" in _refused(path)
    finally:
        path.chmod(0o600)
