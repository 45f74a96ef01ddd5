"""What the compiled decoders (decoders.s1ap_fast, decoders.bssap_fast) share: the record layout, the helpers that
write a record, the TS 24.008 identities, and the step from their arrays to Arrow columns.

A pass writes its records into ``ints`` (one row per integer field, one column per record, so that each field is
a contiguous column; row F_MASK holds the presence bits, rows F_LEN + S_* the string lengths, -1 for null) and
``strs`` (the characters of each string field). A pass allocates only the string fields it fills: ``ints`` has
F_LEN + (its string count) rows.
"""

import numba
import numpy as np
import pyarrow as pa

from decoders.records import MESSAGE_SCHEMA

F_PROTO, F_MSG, F_UPLINK, F_TMSI, F_M_TMSI, F_MMEC, F_TAC, F_ECI, F_MME, F_ENB, F_CAUSE, F_GROUP, F_UPDATE, \
    F_CIPHERED, F_LAC, F_CI, F_MASK, F_LEN = range(18)
S_IMSI, S_IMEI, S_IMEISV, S_MCC, S_MNC, S_CALLED, S_CALLING = range(7)
MAX_DIGITS = 16   # longer identity digit strings (never a valid identity) are left to the Python path


@numba.njit(cache=True, nogil=True)
def new_record(ints, r, proto, msg, uplink):
    """Record ``r``: nothing present but its protocol, message and (when ``uplink`` >= 0) direction."""
    ints[F_MASK, r] = 0
    for k in range(ints.shape[0] - F_LEN):
        ints[F_LEN + k, r] = -1
    put(ints, r, F_PROTO, proto)
    put(ints, r, F_MSG, msg)
    if uplink >= 0:
        put(ints, r, F_UPLINK, uplink)


@numba.njit(cache=True, nogil=True)
def put(ints, r, field, value):
    ints[field, r] = value
    ints[F_MASK, r] |= 1 << field


@numba.njit(cache=True, nogil=True)
def has(ints, r, field):
    return (ints[F_MASK, r] >> field) & 1 != 0


@numba.njit(cache=True, nogil=True)
def uint(buf, start, stop):
    """The big-endian unsigned integer in buf[start:stop]."""
    value = np.int64(0)
    for i in range(start, stop):
        value = (value << 8) | np.int64(buf[i])
    return value


@numba.njit(cache=True, nogil=True)
def lv(buf, q, end):
    """(value start, value end) of the TS 24.007 LV element at q, or (-1, -1) where nas_eps._lv / dtap._lv raise."""
    if q >= end:
        return -1, -1
    stop = q + 1 + np.int64(buf[q])
    if stop > end:
        return -1, -1
    return q + 1, stop


@numba.njit(cache=True, nogil=True)
def plmn_ok(buf, p):
    """identity.plmn's checks on 3 octets the caller has bounds-checked."""
    b0, b1, b2 = buf[p], buf[p + 1], buf[p + 2]
    if (b0 & 15) > 9 or (b0 >> 4) > 9 or (b1 & 15) > 9 or (b2 & 15) > 9 or (b2 >> 4) > 9:
        return False
    return (b1 >> 4) <= 9 or (b1 >> 4) == 15


@numba.njit(cache=True, nogil=True)
def put_plmn(buf, p, ints, strs, r):
    b0, b1, b2 = buf[p], buf[p + 1], buf[p + 2]
    strs[S_MCC, r, 0], strs[S_MCC, r, 1], strs[S_MCC, r, 2] = 48 + (b0 & 15), 48 + (b0 >> 4), 48 + (b1 & 15)
    ints[F_LEN + S_MCC, r] = 3
    strs[S_MNC, r, 0], strs[S_MNC, r, 1] = 48 + (b2 & 15), 48 + (b2 >> 4)
    if (b1 >> 4) == 15:
        ints[F_LEN + S_MNC, r] = 2
    else:
        strs[S_MNC, r, 2] = 48 + (b1 >> 4)
        ints[F_LEN + S_MNC, r] = 3


@numba.njit(cache=True, nogil=True)
def luhn_ok(strs, r, col):
    """identity.mobile_identity's IMEI check: the 15th digit is the spare 0 or the Luhn digit of the 14 before."""
    total = 0
    for i in range(14):
        d = strs[col, r, i] - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    last = strs[col, r, 14] - 48
    return last == 0 or last == (10 - total % 10) % 10


@numba.njit(cache=True, nogil=True)
def identity_digits(buf, s, n, ints, strs, r, col, imei):
    """The digits of a TS 24.008 mobile identity (first nibble is the type, filler dropped when even)."""
    count = 2 * n - 1 - (0 if buf[s] & 8 else 1)
    if count <= 0 or count > MAX_DIGITS:
        return False
    for i in range(count):
        octet = buf[s + ((i + 1) >> 1)]
        nibble = (octet >> 4) if i % 2 == 0 else (octet & 15)
        if nibble > 9:
            return False
        strs[col, r, i] = 48 + nibble
    if imei and count == 15 and not luhn_ok(strs, r, col):
        return False
    ints[F_LEN + col, r] = count
    return True


@numba.njit(cache=True, nogil=True)
def mobile_identity(buf, s, n, ints, strs, r):
    """identity.mobile_identity as dtap.put_identity and nas_eps._set_mobile_identity record it: IMSI, IMEI, IMEISV
    or TMSI into the record; none/TMGI leave it as it is; False where the Python decoder raises (or > 16 digits)."""
    if n == 0:
        return False
    kind = buf[s] & 7
    if kind == 1:
        return identity_digits(buf, s, n, ints, strs, r, S_IMSI, False)
    if kind == 2:
        return identity_digits(buf, s, n, ints, strs, r, S_IMEI, True)
    if kind == 3:
        return identity_digits(buf, s, n, ints, strs, r, S_IMEISV, False)
    if kind == 4:
        if n < 5:
            return False
        put(ints, r, F_TMSI, uint(buf, s + 1, s + 5))
        return True
    return kind == 0 or kind == 5


def arrow_columns(ints: np.ndarray, strs: np.ndarray, int_fields, str_fields, dictionaries) -> dict[str, pa.Array]:
    """MESSAGE_SCHEMA columns of the records in ``ints``/``strs``: ``int_fields`` (name, F_*) as their schema type or,
    for names in ``dictionaries``, as the string there at that index; ``str_fields`` (name, S_*) from characters."""
    columns = {}
    mask = ints[F_MASK]
    for name, field in int_fields:
        present = (mask >> field) & 1 == 1
        values = ints[field]
        if name in dictionaries:
            columns[name] = dictionaries[name].take(pa.array(values.astype(np.int32), mask=~present))
        else:
            type_ = MESSAGE_SCHEMA.field(name).type
            columns[name] = pa.array(values.astype(type_.to_pandas_dtype()), type_, mask=~present)
    rows = len(mask)
    width = np.arange(strs.shape[2])
    for name, col in str_fields:
        length = ints[F_LEN + col].astype(np.int32)
        valid = length >= 0
        length[~valid] = 0
        offsets = np.zeros(rows + 1, np.int32)
        np.cumsum(length, out=offsets[1:])
        chars = strs[col][width < length[:, None]]
        bitmap = np.packbits(valid, bitorder="little")
        columns[name] = pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()),
                                                    pa.py_buffer(bitmap), int(rows - valid.sum()))
    return columns


def lookup_offsets(layout: tuple) -> dict[str, int]:
    """Where each (name, size) slice of a kernel's one lookup array starts."""
    return dict(zip((name for name, _ in layout), np.cumsum([0] + [size for _, size in layout[:-1]]).tolist()))


def lookup_array(layout: tuple):
    """A kernel's lookup array (int16, all -1) and ``fill(name, items, default)``, which sets one slice to
    ``default`` and then ``items`` (key, value) within it."""
    starts, sizes = lookup_offsets(layout), dict(layout)
    out = np.full(sum(sizes.values()), -1, np.int16)

    def fill(name, items, default=-1):
        base = starts[name]
        out[base:base + sizes[name]] = default
        for key, value in items:
            out[base + key] = value

    return out, fill
