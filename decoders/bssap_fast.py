"""Compiled BSSAP: ``decode_bssap``'s common cases as one Numba pass over all A-interface BSSAP payloads of a batch.

``decode_bssap_batch`` walks every payload exactly as ``decoders.bssmap`` and ``decoders.dtap`` do (the same checks in
the same order: BSSMAP elements by the element length table, the readers of the elements that carry a record
field, the layer 3 messages a BSSMAP message carries, the DTAP MM/RR/CC/SMS bodies) and writes the MESSAGE_SCHEMA
content columns the way ``decoders.s1ap_fast`` does, with its helpers and record layout (``decoders.fast_common``).
A payload is taken only when every step is one the kernel mirrors and nothing is damaged. Everything else (an
unknown message type or protocol, an element reader or message body not mirrored here, anything the Python decoder
would raise for or mark with ``error``, an alphanumeric SMS address, a number longer than 32 digits, more than four
layer 3 messages in one BSSMAP message) gets count -1 and goes through ``decode_bssap``, the reference.

The direction of a record can depend on the SCCP connection (``DecodeState.bsc_side``), which an earlier payload of
the batch may set: the kernel decodes as if the connection's direction were unknown and reports, per record, the
direction it then has and whether it is the message the connection's direction would replace (the BSSMAP or DTAP
message itself, not a layer 3 message inside); decoders.decode resolves ``uplink`` from these in payload order.
"""

from typing import NamedTuple

import numba
import numpy as np
import pyarrow as pa

from decoders import bssmap, dtap
from decoders.fast_common import (F_CAUSE, F_CI, F_GROUP, F_LAC, F_LEN, F_MASK, F_MSG, F_PROTO, F_TMSI, F_UPDATE,
                                  F_UPLINK, S_CALLED, S_CALLING, S_IMEI, S_IMEISV, S_IMSI, S_MCC, S_MNC, arrow_columns,
                                  has, lookup_array, lookup_offsets, lv, mobile_identity, new_record, plmn_ok, put,
                                  put_plmn, uint)

_COLUMNS = F_LEN + 7   # all seven string fields
_WIDTH = 32            # characters per string field: longer called/calling numbers are left to Python
_MAX_NESTED = 4        # layer 3 messages per BSSMAP message
B_TOP, B_CELL = 40, 41  # mask bits beyond the fields: the message itself (not a nested one); a Cell Identifier read

_INT_FIELDS = (("proto", F_PROTO), ("msg", F_MSG), ("tmsi", F_TMSI), ("lac", F_LAC), ("ci", F_CI),
               ("cause", F_CAUSE), ("cause_group", F_GROUP), ("update_type", F_UPDATE))
_STR_FIELDS = (("imsi", S_IMSI), ("imei", S_IMEI), ("imeisv", S_IMEISV), ("mcc", S_MCC), ("mnc", S_MNC),
               ("called", S_CALLED), ("calling", S_CALLING))

# The string values of the dictionary-coded fields, from the Python decoders' own tables.
PROTOS = ("bssmap", "dtap")
_L3_TABLES = {pd: messages for pd, (messages, *_) in dtap._PROTOCOLS.items()}
MESSAGES = tuple(dict.fromkeys([name for name, _ in bssmap.MESSAGE_TYPES.values()]
                               + [name for table in _L3_TABLES.values() for name, _ in table.values()]))
GROUPS = ("bssmap", "lcs", "mm", "cc", "rp", "cp")
G_BSSMAP, G_LCS, G_MM, G_CC, G_RP, G_CP = range(len(GROUPS))
UPDATES = tuple(dict.fromkeys([*dtap.LOCATION_UPDATING_TYPES.values(), *dtap.CM_SERVICE_TYPES.values()]))
P_BSSMAP, P_DTAP = 0, 1
_TBCD_CHARS = "0123456789*#abcf"  # identity.tbcd's digits (15, the filler, ends a number before it is written)

# BSSMAP element readers and DTAP bodies by the Python function they mirror; any other function sends the payload
# to Python (R_PYTHON, L3_PYTHON), so a reader or body added there is never silently skipped here.
R_NONE, R_PYTHON, R_CAUSE, R_LCS_CAUSE, R_CELL, R_CELL_LIST, R_IDENTITY, R_TMSI, R_LAYER3, R_APDU = range(10)
_READERS = {bssmap._cause: R_CAUSE, bssmap._lcs_cause: R_LCS_CAUSE, bssmap._cell_identifier: R_CELL,
            bssmap._cell_identifier_list: R_CELL_LIST, bssmap._identity: R_IDENTITY, bssmap._tmsi: R_TMSI,
            bssmap._layer3: R_LAYER3, bssmap._apdu: R_APDU}
(L3_NONE, L3_PYTHON, L3_MM_CAUSE, L3_LU_REQUEST, L3_LU_ACCEPT, L3_TMSI_REALLOCATION, L3_DETACH, L3_IDENTITY,
 L3_CLASSMARK2_IDENTITY, L3_CM_SERVICE, L3_CIPHERING_COMPLETE, L3_SETUP, L3_CC_CAUSE, L3_CC_OPTIONAL_CAUSE,
 L3_MODIFY_REJECT, L3_CP_DATA, L3_CP_ERROR) = range(17)
_BODIES = {dtap._mm_cause: L3_MM_CAUSE, dtap._location_updating_request: L3_LU_REQUEST,
           dtap._location_updating_accept: L3_LU_ACCEPT, dtap._tmsi_reallocation_command: L3_TMSI_REALLOCATION,
           dtap._imsi_detach_indication: L3_DETACH, dtap._identity_response: L3_IDENTITY,
           dtap._classmark2_then_identity: L3_CLASSMARK2_IDENTITY, dtap._cm_service_request: L3_CM_SERVICE,
           dtap._ciphering_mode_complete: L3_CIPHERING_COMPLETE, dtap._setup: L3_SETUP, dtap._cc_cause: L3_CC_CAUSE,
           dtap._cc_optional_cause: L3_CC_OPTIONAL_CAUSE, dtap._modify_reject: L3_MODIFY_REJECT,
           dtap._cp_data: L3_CP_DATA, dtap._cp_error: L3_CP_ERROR}

# The lookup tables the kernel reads, as (name, size) slices of one int16 array.
_LAYOUT = (("MSG", 256), ("DIR", 256), ("ELEMENT", 256), ("READER", 256), ("CELL_SIZE", 16), ("CELL_FORM", 16),
           ("PD", 16), ("PD_MASK", 16), ("PD_TI", 16), ("L3_MSG", 4096), ("L3_DIR", 4096), ("L3_BODY", 4096),
           ("CC_TV", 256), ("LU_TYPE", 4), ("CM_TYPE", 16), ("CHARS", 16), ("CONST", 4))
_OFFSETS = lookup_offsets(_LAYOUT)
(O_MSG, O_DIR, O_ELEMENT, O_READER, O_CELL_SIZE, O_CELL_FORM, O_PD, O_PD_MASK, O_PD_TI, O_L3_MSG, O_L3_DIR,
 O_L3_BODY, O_CC_TV, O_LU_TYPE, O_CM_TYPE, O_CHARS, O_CONST) = _OFFSETS.values()
C_COMPLETE_LAYER3 = 0
CELL_PLMN, CELL_LAC, CELL_CI = 1, 2, 4


def _tables() -> np.ndarray:
    msg = {name: i for i, name in enumerate(MESSAGES)}
    upd = {name: i for i, name in enumerate(UPDATES)}
    tri = {None: -1, False: 0, True: 1}
    out, fill = lookup_array(_LAYOUT)

    fill("MSG", ((k, msg[name]) for k, (name, _) in bssmap.MESSAGE_TYPES.items()))
    fill("DIR", ((k, tri[sender]) for k, (_, sender) in bssmap.MESSAGE_TYPES.items()))
    fill("ELEMENT", enumerate(bssmap._BSSMAP_LAYOUT))  # fixed total length, 0 TLV, bssmap._TLV16 (-1)
    fill("READER", ((iei, _READERS.get(reader, R_PYTHON)) for iei, reader in bssmap._READERS.items()), R_NONE)
    fill("CELL_SIZE", ((k, size) for k, (size, *_) in bssmap.CELL_DISCRIMINATORS.items()))
    fill("CELL_FORM", ((k, CELL_PLMN * p + CELL_LAC * lac + CELL_CI * ci)
                       for k, (_, p, lac, ci) in bssmap.CELL_DISCRIMINATORS.items()), 0)
    fill("PD", ((pd, 1) for pd in dtap._PROTOCOLS), 0)
    fill("PD_MASK", ((pd, mask) for pd, (_, mask, _, _) in dtap._PROTOCOLS.items()), 0)
    fill("PD_TI", ((pd, int(has_ti)) for pd, (_, _, has_ti, _) in dtap._PROTOCOLS.items()), 0)
    for pd, (messages, _, _, bodies) in dtap._PROTOCOLS.items():
        base = _OFFSETS["L3_MSG"] + 256 * pd
        for code, (name, sender) in messages.items():
            out[base + code] = msg[name]
            out[_OFFSETS["L3_DIR"] + 256 * pd + code] = tri[sender]
            body = bodies.get(code)
            out[_OFFSETS["L3_BODY"] + 256 * pd + code] = L3_NONE if body is None else _BODIES.get(body, L3_PYTHON)
    fill("CC_TV", dtap._CC_TV_LENGTHS.items(), 0)
    fill("LU_TYPE", ((k, upd[v]) for k, v in dtap.LOCATION_UPDATING_TYPES.items()))
    fill("CM_TYPE", ((k, upd[v]) for k, v in dtap.CM_SERVICE_TYPES.items()))
    fill("CHARS", enumerate(map(ord, _TBCD_CHARS)))
    fill("CONST", enumerate((msg["complete_layer3_information"],)))
    return out


TABLES = _tables()


@numba.njit(cache=True, nogil=True)
def _drop(ints, r, field):
    """A field set back to None (a Cell Identifier form without it)."""
    ints[F_MASK, r] &= ~(np.int64(1) << field)


@numba.njit(cache=True, nogil=True)
def _tbcd(buf, a, b, t, ints, strs, r, col, limit):
    """identity.tbcd of buf[a:b] (low nibble first, up to the filler), cut to ``limit`` characters; False when it
    does not fit a string field."""
    k = 0
    for i in range(2 * (b - a)):
        if k == limit:
            break
        octet = np.int64(buf[a + (i >> 1)])
        nibble = (octet & 15) if i % 2 == 0 else (octet >> 4)
        if nibble == 15:
            break
        if k == _WIDTH:
            return False
        strs[col, r, k] = t[O_CHARS + nibble]
        k += 1
    ints[F_LEN + col, r] = k
    return True


@numba.njit(cache=True, nogil=True)
def _lai(buf, p, ints, strs, r):
    """identity.lai on 5 octets the caller has bounds-checked."""
    if not plmn_ok(buf, p):
        return False
    put_plmn(buf, p, ints, strs, r)
    put(ints, r, F_LAC, uint(buf, p + 3, p + 5))
    return True


# -- DTAP (decoders.dtap) -------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _first_optional(buf, pos, end, wanted, t, cc):
    """dtap._first_optional (CC's TV elements skipped when ``cc``): (1, value start, end) for the first ``wanted``,
    (0, 0, 0) when none, (-1, 0, 0) where the walk raises before finding it."""
    while pos < end:
        iei = buf[pos]
        if iei & 0x80:
            pos += 1
            continue
        if cc:
            size = t[O_CC_TV + iei]
            if size:
                pos += size
                continue
        if pos + 2 > end:
            return -1, 0, 0
        stop = pos + 2 + np.int64(buf[pos + 1])
        if stop > end:
            return -1, 0, 0
        if iei == wanted:
            return 1, pos + 2, stop
        pos = stop
    return 0, 0, 0


@numba.njit(cache=True, nogil=True)
def _cc_cause(buf, a, b, ints, r):
    """dtap._cc_cause_value: the cause after octet 3 (and 3a when octet 3's extension bit is 0)."""
    at = 1 if b > a and buf[a] & 0x80 else 2
    if b - a <= at:
        return False
    put(ints, r, F_CAUSE, buf[a + at] & 0x7F)
    put(ints, r, F_GROUP, G_CC)
    return True


@numba.njit(cache=True, nogil=True)
def _bcd_number(buf, a, b, t, ints, strs, r, col):
    """dtap._bcd_number: the digits after octet 3 (and 3a when octet 3's extension bit is 0)."""
    if a == b:
        return False
    return _tbcd(buf, min(a + (1 if buf[a] & 0x80 else 2), b), b, t, ints, strs, r, col, 1 << 30)


@numba.njit(cache=True, nogil=True)
def _setup(buf, pos, end, t, ints, strs, r):
    """dtap._setup: every optional element, the called and calling party numbers read (the last one wins)."""
    while pos < end:
        iei = buf[pos]
        if iei & 0x80:
            pos += 1
            continue
        size = t[O_CC_TV + iei]
        if size:
            pos += size
            continue
        if pos + 2 > end:
            return False
        stop = pos + 2 + np.int64(buf[pos + 1])
        if stop > end:
            return False
        if iei == dtap.IEI_CALLED_PARTY_BCD_NUMBER:
            if not _bcd_number(buf, pos + 2, stop, t, ints, strs, r, S_CALLED):
                return False
        elif iei == dtap.IEI_CALLING_PARTY_BCD_NUMBER:
            if not _bcd_number(buf, pos + 2, stop, t, ints, strs, r, S_CALLING):
                return False
        pos = stop
    return True


@numba.njit(cache=True, nogil=True)
def _tp_address(buf, x, y, pos, t, ints, strs, r, col):
    """dtap._tp_address, BCD only (an alphanumeric address is GSM 7-bit text: Python)."""
    if x + pos + 2 > y:
        return False
    semi_octets, type_of_address = np.int64(buf[x + pos]), buf[x + pos + 1]
    a = x + pos + 2
    b = a + (semi_octets + 1) // 2
    if b > y or (type_of_address >> 4) & 7 == dtap.TON_ALPHANUMERIC:
        return False
    return _tbcd(buf, a, b, t, ints, strs, r, col, semi_octets)


@numba.njit(cache=True, nogil=True)
def _cp_data(buf, q, end, t, ints, strs, r):
    """dtap._cp_data and dtap._tpdu: the RPDU's direction (when the record has none), the SMS-SUBMIT destination
    or SMS-DELIVER sender, or the RP-ERROR cause."""
    a, b = lv(buf, q, end)
    if a < 0 or b - a < 2:
        return False
    mti = buf[a] & 7
    if not has(ints, r, F_UPLINK) and mti < 7:
        put(ints, r, F_UPLINK, 1 - (mti & 1))
    if mti == dtap.RP_DATA_MS_TO_NETWORK or mti == dtap.RP_DATA_NETWORK_TO_MS:
        x, y = lv(buf, a + 2, b)                       # originator address
        if x < 0:
            return False
        x, y = lv(buf, y, b)                           # destination address
        if x < 0:
            return False
        x, y = lv(buf, y, b)                           # RP-User data: the TPDU
        if x < 0 or x == y:
            return False
        from_phone = mti == dtap.RP_DATA_MS_TO_NETWORK
        tp_mti = buf[x] & 3
        if from_phone and tp_mti == dtap.TP_MTI_SMS_SUBMIT:
            return _tp_address(buf, x, y, 2, t, ints, strs, r, S_CALLED)
        if not from_phone and tp_mti == dtap.TP_MTI_SMS_DELIVER:
            return _tp_address(buf, x, y, 1, t, ints, strs, r, S_CALLING)
    elif mti == dtap.RP_ERROR_MS_TO_NETWORK or mti == dtap.RP_ERROR_NETWORK_TO_MS:
        x, y = lv(buf, a + 2, b)
        if x < 0 or x == y:
            return False
        put(ints, r, F_CAUSE, buf[x] & 0x7F)
        put(ints, r, F_GROUP, G_RP)
    return True


@numba.njit(cache=True, nogil=True)
def _identity_lv(buf, q, end, ints, strs, r):
    """dtap.put_identity on the LV at q."""
    a, b = lv(buf, q, end)
    return a >= 0 and mobile_identity(buf, a, b - a, ints, strs, r)


@numba.njit(cache=True, nogil=True)
def _body(buf, q, end, body, t, ints, strs, r):
    """The body decoders of dtap._PROTOCOLS from the octet after the message type; False where they raise."""
    if body == L3_MM_CAUSE or body == L3_CP_ERROR:
        if q >= end:
            return False
        put(ints, r, F_CAUSE, buf[q])
        put(ints, r, F_GROUP, G_MM if body == L3_MM_CAUSE else G_CP)
        return True
    if body == L3_LU_REQUEST:
        if q + 7 > end:
            return False
        kind = t[O_LU_TYPE + (buf[q] & 3)]
        if kind >= 0:
            put(ints, r, F_UPDATE, kind)
        return _lai(buf, q + 1, ints, strs, r) and _identity_lv(buf, q + 7, end, ints, strs, r)
    if body == L3_LU_ACCEPT or body == L3_TMSI_REALLOCATION:
        if q + 5 > end or not _lai(buf, q, ints, strs, r):
            return False
        if body == L3_TMSI_REALLOCATION:
            return _identity_lv(buf, q + 5, end, ints, strs, r)
        found, a, b = _first_optional(buf, q + 5, end, dtap.IEI_MOBILE_IDENTITY, t, False)
        return found == 0 or (found == 1 and mobile_identity(buf, a, b - a, ints, strs, r))
    if body == L3_DETACH:
        return _identity_lv(buf, q + 1, end, ints, strs, r)
    if body == L3_IDENTITY:
        return _identity_lv(buf, q, end, ints, strs, r)
    if body == L3_CLASSMARK2_IDENTITY or body == L3_CM_SERVICE:
        if q >= end:
            return False
        if body == L3_CM_SERVICE:
            kind = t[O_CM_TYPE + (buf[q] & 15)]
            if kind >= 0:
                put(ints, r, F_UPDATE, kind)
        a, b = lv(buf, q + 1, end)                       # classmark 2
        return a >= 0 and _identity_lv(buf, b, end, ints, strs, r)
    if body == L3_CIPHERING_COMPLETE:
        found, a, b = _first_optional(buf, q, end, dtap.IEI_MOBILE_IDENTITY, t, False)
        return found == 0 or (found == 1 and mobile_identity(buf, a, b - a, ints, strs, r))
    if body == L3_SETUP:
        return _setup(buf, q, end, t, ints, strs, r)
    if body == L3_CC_CAUSE or body == L3_MODIFY_REJECT:
        a, b = lv(buf, q, end)
        if a >= 0 and body == L3_MODIFY_REJECT:          # bearer capability first
            a, b = lv(buf, b, end)
        return a >= 0 and _cc_cause(buf, a, b, ints, r)
    if body == L3_CC_OPTIONAL_CAUSE:
        found, a, b = _first_optional(buf, q, end, dtap.IEI_CAUSE, t, True)
        return found == 0 or (found == 1 and _cc_cause(buf, a, b, ints, r))
    if body == L3_CP_DATA:
        return _cp_data(buf, q, end, t, ints, strs, r)
    return False                                         # L3_PYTHON: a body not mirrored here


@numba.njit(cache=True, nogil=True)
def _l3(buf, p, end, uplink, t, ints, strs, r):
    """dtap.decode_l3 on buf[p:end] into record r (``uplink`` -1: None); False where it raises or sets ``error``."""
    if end - p < 2:
        return False
    pd = buf[p] & 15
    if not t[O_PD + pd]:
        return False
    q = p + 1
    if t[O_PD_TI + pd] and buf[p] & 0x70 == 0x70:     # TI extension octet
        q = p + 2
        if end - p < 3:
            return False
    key = 256 * pd + (buf[q] & t[O_PD_MASK + pd])
    msg = t[O_L3_MSG + key]
    if msg < 0:
        return False
    new_record(ints, r, P_DTAP, msg, t[O_L3_DIR + key] if uplink < 0 else uplink)
    body = t[O_L3_BODY + key]
    return body == L3_NONE or _body(buf, q + 1, end, body, t, ints, strs, r)


# -- BSSMAP (decoders.bssmap) ----------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _cell(buf, a, b, t, ints, strs, r):
    """bssmap._cell: the cell of a Cell Identifier (List) value in its discriminator's form; absent parts None."""
    discriminator = buf[a] & 15
    size = t[O_CELL_SIZE + discriminator]
    if size < 0:
        return True
    if b - a <= size:
        return False
    form = t[O_CELL_FORM + discriminator]
    at = a + 1
    if form & CELL_PLMN:
        if not plmn_ok(buf, at):
            return False
        put_plmn(buf, at, ints, strs, r)
        at += 3
    else:
        ints[F_LEN + S_MCC, r] = -1
        ints[F_LEN + S_MNC, r] = -1
    if form & CELL_LAC:
        put(ints, r, F_LAC, uint(buf, at, at + 2))
        at += 2
    else:
        _drop(ints, r, F_LAC)
    if form & CELL_CI:
        put(ints, r, F_CI, uint(buf, at, at + 2))
    else:
        _drop(ints, r, F_CI)
    ints[F_MASK, r] |= np.int64(1) << B_CELL
    return True


@numba.njit(cache=True, nogil=True)
def _element(buf, reader, a, b, t, ints, strs, r, nested, k):
    """One element reader of bssmap._READERS on the value [a, b): the nested layer 3 count after it, or -1."""
    size = b - a
    if reader == R_CAUSE:
        if has(ints, r, F_CAUSE):                         # the first Cause is the message's own
            return k
        if size == 0 or (buf[a] & 0x80 and size < 2):
            return -1
        put(ints, r, F_CAUSE, ((np.int64(buf[a]) & 0x7F) << 8) | np.int64(buf[a + 1]) if buf[a] & 0x80 else buf[a])
        put(ints, r, F_GROUP, G_BSSMAP)
    elif reader == R_LCS_CAUSE:
        if size == 0:
            return -1
        put(ints, r, F_CAUSE, buf[a])
        put(ints, r, F_GROUP, G_LCS)
    elif reader == R_CELL or reader == R_CELL_LIST:
        if size == 0:
            return -1
        if (reader == R_CELL or not (ints[F_MASK, r] >> B_CELL) & 1) and not _cell(buf, a, b, t, ints, strs, r):
            return -1
    elif reader == R_IDENTITY:
        if not mobile_identity(buf, a, size, ints, strs, r):
            return -1
    elif reader == R_TMSI:
        if size != 4:
            return -1
        put(ints, r, F_TMSI, uint(buf, a, b))
    elif reader == R_LAYER3:
        if k == _MAX_NESTED:
            return -1
        nested[2 * k], nested[2 * k + 1] = a, b
        k += 1
    elif reader == R_APDU:
        if size >= 2 and buf[a] == bssmap.APDU_PROTOCOL_BSSLAP and buf[a + 1] == bssmap.BSSLAP_TA_RESPONSE:
            if size < 5 or buf[a + 2] != bssmap.BSSLAP_IE_CELL_IDENTITY:
                return -1
            put(ints, r, F_CI, uint(buf, a + 3, a + 5))
    else:                                                 # R_PYTHON
        return -1
    return k


@numba.njit(cache=True, nogil=True)
def _bssmap(buf, p, end, t, ints, strs, r, cap, nested):
    """bssmap.decode_bssmap on buf[p:end]: the record count after it, or -1."""
    if p >= end or r >= cap:
        return -1
    msg = t[O_MSG + buf[p]]
    if msg < 0:
        return -1
    new_record(ints, r, P_BSSMAP, msg, t[O_DIR + buf[p]])
    ints[F_MASK, r] |= np.int64(1) << B_TOP
    k, pos = 0, p + 1
    while pos < end:
        iei = buf[pos]
        size = t[O_ELEMENT + iei]
        if size > 0:
            pos += size
            if pos > end:
                return -1
            continue
        start = pos + (2 if size == 0 else 3)
        if start > end:
            return -1
        length = np.int64(buf[pos + 1]) if size == 0 else (np.int64(buf[pos + 1]) << 8) | np.int64(buf[pos + 2])
        a, pos = start, start + length
        if pos > end:
            return -1
        reader = t[O_READER + iei]
        if reader != R_NONE:
            k = _element(buf, reader, a, pos, t, ints, strs, r, nested, k)
            if k < 0:
                return -1
    l3_uplink = 1 if msg == t[O_CONST + C_COMPLETE_LAYER3] else -1
    r += 1
    for j in range(k):
        if r >= cap or not _l3(buf, nested[2 * j], nested[2 * j + 1], l3_uplink, t, ints, strs, r):
            return -1
        r += 1
    return r


@numba.njit(cache=True, nogil=True)
def _payload(buf, s, n, t, ints, strs, r, cap, nested):
    """bssmap.decode_bssap on [s, s + n) with the direction unknown: the record count after it, or -1."""
    if n < 2:
        return -1
    if buf[s] == bssmap.BSSMAP_DISCRIMINATOR:
        if 2 + np.int64(buf[s + 1]) > n:
            return -1
        return _bssmap(buf, s + 2, s + 2 + np.int64(buf[s + 1]), t, ints, strs, r, cap, nested)
    if buf[s] != bssmap.DTAP_DISCRIMINATOR or n < 3 or 3 + np.int64(buf[s + 2]) > n or r >= cap:
        return -1
    if not _l3(buf, s + 3, s + 3 + np.int64(buf[s + 2]), -1, t, ints, strs, r):
        return -1
    ints[F_MASK, r] |= np.int64(1) << B_TOP
    return r + 1


@numba.njit(cache=True, nogil=True)
def _scan(buf, starts, lengths, t):
    payloads = len(starts)
    cap = 2 * payloads + 16
    ints = np.empty((_COLUMNS, cap), np.int64)
    strs = np.empty((7, cap, _WIDTH), np.uint8)
    counts = np.empty(payloads, np.int32)
    nested = np.empty(2 * _MAX_NESTED, np.int64)
    r = 0
    for i in range(payloads):
        after = _payload(buf, starts[i], lengths[i], t, ints, strs, r, cap, nested)
        if after < 0:
            counts[i] = -1
        else:
            counts[i] = after - r
            r = after
    return counts, ints[:, :r], strs[:, :r]


class Directions(NamedTuple):
    """Per record of the taken payloads: what decoders.decode needs to give each its connection's direction."""

    uplink: np.ndarray           # int8: the record's direction when its connection's is unknown (-1: None)
    from_connection: np.ndarray  # bool: the BSSMAP or DTAP message itself, which takes a known connection direction
    msg: np.ndarray              # int: the message name as an index into MESSAGES


_DICTIONARIES = {"proto": pa.array(PROTOS), "msg": pa.array(MESSAGES), "cause_group": pa.array(GROUPS),
                 "update_type": pa.array(UPDATES)}


def decode_bssap_batch(data: bytes, starts: np.ndarray, lengths: np.ndarray
                       ) -> tuple[np.ndarray, dict[str, pa.Array], Directions]:
    """The BSSAP payloads data[starts[i]:starts[i] + lengths[i]]: records per payload (-1: left to
    ``decode_bssap``), the records of the others in payload order as MESSAGE_SCHEMA content columns but ``uplink``
    (absent ones are all null), and what their ``uplink`` depends on."""
    buf = np.frombuffer(data, np.uint8)
    counts, ints, strs = _scan(buf, starts.astype(np.int64), lengths.astype(np.int64), TABLES)
    mask = ints[F_MASK]
    uplink = np.where((mask >> F_UPLINK) & 1 == 1, ints[F_UPLINK], -1).astype(np.int8)
    directions = Directions(uplink, (mask >> B_TOP) & 1 == 1, ints[F_MSG])
    return counts, arrow_columns(ints, strs, _INT_FIELDS, _STR_FIELDS, _DICTIONARIES), directions
