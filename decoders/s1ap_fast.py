"""Compiled S1AP + NAS-EPS: ``decode_s1ap``'s common cases as one Numba pass over all S1AP payloads of a batch.

``decode_s1ap_batch`` walks every PDU exactly as ``decoders.s1ap`` and ``decoders.nas_eps`` do (the same checks in
the same order) and writes the MESSAGE_SCHEMA content columns directly: integers as NumPy columns with a
presence bit per field, names (msg, proto, cause group, update type) as indices into the Python modules' own
tables, digit strings (IMSI, IMEI, IMEISV, MCC, MNC) as characters. A PDU is taken only when every step is one
the kernel mirrors and nothing is damaged. Everything else (an unknown procedure, an IE whose handler is not
mirrored here: Reset's UE-associated connection lists, E-RAB cause lists before a Cause; a value with an
extension or a fragmented length; any NAS message the Python decoder would mark with ``error`` or not name
from its tables; a null-ciphered candidate that does not decode cleanly; a digit string longer than 16) gets
count -1 and goes through ``decode_s1ap``, the reference, so a record with an error reason always comes from the
code that names it. The rules mirror decoders.s1ap and decoders.nas_eps check for check; tests/test_decode_fast.py
holds the two paths equal.
"""

import numba
import numpy as np
import pyarrow as pa

from decoders import nas_eps, s1ap
from decoders.fast_common import (F_CAUSE, F_CIPHERED, F_ECI, F_ENB, F_GROUP, F_LEN, F_MME, F_MMEC, F_MSG, F_M_TMSI,
                                  F_PROTO, F_TAC, F_TMSI, F_UPDATE, F_UPLINK, MAX_DIGITS, S_IMEI, S_IMEISV, S_IMSI,
                                  S_MCC, S_MNC, arrow_columns, has, identity_digits, lookup_array, lookup_offsets, lv,
                                  mobile_identity, new_record, plmn_ok, put, put_plmn, uint)

# The record layout is decoders.fast_common's; a record has the first five string fields.
_COLUMNS = F_LEN + 5
_INT_FIELDS = (("proto", F_PROTO), ("msg", F_MSG), ("uplink", F_UPLINK), ("tmsi", F_TMSI), ("m_tmsi", F_M_TMSI),
               ("mmec", F_MMEC), ("tac", F_TAC), ("eci", F_ECI), ("mme_ue_id", F_MME), ("enb_ue_id", F_ENB),
               ("cause", F_CAUSE), ("cause_group", F_GROUP), ("update_type", F_UPDATE), ("ciphered", F_CIPHERED))
_STR_FIELDS = (("imsi", S_IMSI), ("imei", S_IMEI), ("imeisv", S_IMEISV), ("mcc", S_MCC), ("mnc", S_MNC))
_MAX_NAS = 16      # NAS-PDUs per S1AP PDU

# The string values of the dictionary-coded fields, from the Python decoders' own tables.
PROTOS = ("s1ap", "nas-eps")
MESSAGES = tuple(dict.fromkeys(
    [name for name, _ in s1ap._HEADERS.values()] + [name for name, _ in nas_eps.EMM_MESSAGES.values()]
    + [name for name, _ in nas_eps.ESM_MESSAGES.values()] + ["service_request", "ciphered"]))
GROUPS = s1ap.CAUSE_GROUPS + ("emm",)
_DETACH_UE = [nas_eps.DETACH_TYPES_UE.get(v, "combined") for v in range(8)]
_DETACH_NETWORK = [nas_eps.DETACH_TYPES_NETWORK.get(v, "re_attach_not_required") for v in range(8)]
_ATTACH = [nas_eps.ATTACH_TYPES[v] for v in range(8)]
_UPDATE = [nas_eps.UPDATE_TYPES[v] for v in range(8)]
UPDATES = tuple(dict.fromkeys(_ATTACH + _UPDATE + _DETACH_UE + ["switch_off_" + k for k in _DETACH_UE]
                              + _DETACH_NETWORK + list(nas_eps.SERVICE_TYPES.values())))

# IE ids the kernel decodes itself; every other id with a handler in decoders.s1ap sends the PDU to Python.
_MIRRORED_IES = {s1ap.ID_MME_UE_S1AP_ID, s1ap.ID_ENB_UE_S1AP_ID, s1ap.ID_SOURCE_MME_UE_S1AP_ID, s1ap.ID_UE_S1AP_IDS,
                 s1ap.ID_CAUSE, s1ap.ID_TAI, s1ap.ID_EUTRAN_CGI, s1ap.ID_USER_LOCATION_INFORMATION, s1ap.ID_S_TMSI,
                 s1ap.ID_UE_PAGING_ID, s1ap.ID_TAI_LIST, s1ap.ID_NAS_PDU, s1ap.ID_E_RAB_TO_BE_SETUP_LIST_CTXT_SU_REQ,
                 s1ap.ID_E_RAB_TO_BE_SETUP_LIST_BEARER_SU_REQ, s1ap.ID_E_RAB_TO_BE_MODIFIED_LIST_BEARER_MOD_REQ}
# Handover Type, Target ID and the Source to Target Transparent Container: the first says how the last is coded.
_HANDOVER_IES = {s1ap.ID_HANDOVER_TYPE, s1ap.ID_TARGET_ID, s1ap.ID_SOURCE_TO_TARGET_TRANSPARENT_CONTAINER}
IE_SKIP, IE_PYTHON, IE_CAUSE_LIST, IE_MIRRORED, IE_HANDOVER = 0, 1, 2, 3, 4


# The lookup tables the kernel reads, as (name, size) slices of one int16 array (one argument for every call).
_LAYOUT = (("HDR_MSG", 1024), ("HDR_UP", 1024), ("EMM_MSG", 256), ("EMM_DIR", 256), ("ESM_MSG", 256),
           ("ESM_DIR", 256), ("EMM_BODY", 256), ("TV_LEN", 256), ("IE_KIND", 65536), ("ATTACH", 8), ("UPDATE", 8),
           ("DETACH_UE", 8), ("DETACH_UE_OFF", 8), ("DETACH_NET", 8), ("SERVICE", 16), ("CAUSE_WIDTH", 8),
           ("CONST", 8))
_OFFSETS = lookup_offsets(_LAYOUT)
(O_HDR_MSG, O_HDR_UP, O_EMM_MSG, O_EMM_DIR, O_ESM_MSG, O_ESM_DIR, O_EMM_BODY, O_TV_LEN, O_IE_KIND, O_ATTACH, O_UPDATE,
 O_DETACH_UE, O_DETACH_UE_OFF, O_DETACH_NET, O_SERVICE, O_CAUSE_WIDTH, O_CONST) = _OFFSETS.values()


def _tables() -> np.ndarray:
    msg = {name: i for i, name in enumerate(MESSAGES)}
    upd = {name: i for i, name in enumerate(UPDATES)}
    tri = {None: -1, False: 0, True: 1}
    out, fill = lookup_array(_LAYOUT)

    fill("HDR_MSG", ((k, msg[name]) for k, (name, _) in s1ap._HEADERS.items()))
    fill("HDR_UP", ((k, tri[up]) for k, (_, up) in s1ap._HEADERS.items()))
    fill("EMM_MSG", ((k, msg[name]) for k, (name, _) in nas_eps.EMM_MESSAGES.items()))
    fill("EMM_DIR", ((k, tri[d]) for k, (_, d) in nas_eps.EMM_MESSAGES.items()))
    fill("ESM_MSG", ((k, msg[name]) for k, (name, _) in nas_eps.ESM_MESSAGES.items()))
    fill("ESM_DIR", ((k, tri[d]) for k, (_, d) in nas_eps.ESM_MESSAGES.items()))
    fill("EMM_BODY", ((k, 1) for k in nas_eps._BODIES), 0)
    fill("TV_LEN", nas_eps._TV_LENGTHS.items(), 0)
    handlers = [(ie, IE_PYTHON) for ie in s1ap._IE_HANDLERS]
    fill("IE_KIND", handlers + [(ie, IE_CAUSE_LIST) for ie in s1ap.E_RAB_CAUSE_LISTS]
         + [(ie, IE_MIRRORED) for ie in _MIRRORED_IES] + [(ie, IE_HANDOVER) for ie in _HANDOVER_IES], IE_SKIP)
    fill("ATTACH", enumerate(upd[v] for v in _ATTACH))
    fill("UPDATE", enumerate(upd[v] for v in _UPDATE))
    fill("DETACH_UE", enumerate(upd[v] for v in _DETACH_UE))
    fill("DETACH_UE_OFF", enumerate(upd["switch_off_" + v] for v in _DETACH_UE))
    fill("DETACH_NET", enumerate(upd[v] for v in _DETACH_NETWORK))
    fill("SERVICE", ((k, upd[v]) for k, v in nas_eps.SERVICE_TYPES.items()))
    fill("CAUSE_WIDTH", enumerate(s1ap._CAUSE_WIDTHS))
    fill("CONST", enumerate((msg["service_request"], msg["ciphered"], len(s1ap.CAUSE_GROUPS))))
    return out


TABLES = _tables()
C_SERVICE_REQUEST, C_CIPHERED, C_GROUP_EMM = range(3)
P_S1AP, P_NAS = 0, 1


# -- identities (decoders.identity) -------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _eps_identity(buf, s, n, ints, strs, r):
    """nas_eps._set_identity: an EPS mobile identity (IMSI, IMEI, or a GUTI with its PLMN)."""
    if n == 0:
        return False
    kind = buf[s] & 7
    if kind == 1:
        return identity_digits(buf, s, n, ints, strs, r, S_IMSI, False)
    if kind == 3:
        return identity_digits(buf, s, n, ints, strs, r, S_IMEI, True)
    if kind != 6 or n < 11 or not plmn_ok(buf, s + 1):
        return False
    put_plmn(buf, s + 1, ints, strs, r)
    put(ints, r, F_MMEC, buf[s + 6])
    put(ints, r, F_M_TMSI, uint(buf, s + 7, s + 11))
    return True


# -- NAS-EPS (decoders.nas_eps) ------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _lv_e(buf, q, end):
    if q + 1 >= end:
        return -1, -1
    stop = q + 2 + ((np.int64(buf[q]) << 8) | np.int64(buf[q + 1]))
    if stop > end:
        return -1, -1
    return q + 2, stop


@numba.njit(cache=True, nogil=True)
def _optional(buf, pos, end, t, w0, w1, w2, wanted):
    """nas_eps._optional for up to three IEIs: (ok, then start and end of each one's value, -1 if absent)."""
    found = np.full(6, -1, np.int64)
    ieis = (w0, w1, w2)
    count = 0
    while pos < end:
        iei = buf[pos]
        if iei & 0x80:
            pos += 1
            continue
        size = t[O_TV_LEN + iei]
        if size:
            start, stop = pos + 1, pos + size
            if stop > end:
                return False, found
        elif iei & 0xF0 == 0x70:
            start, stop = _lv_e(buf, pos + 1, end)
        else:
            start, stop = lv(buf, pos + 1, end)
        if start < 0:
            return False, found
        for j in range(wanted):
            if iei == ieis[j]:
                if found[2 * j] < 0:
                    count += 1
                found[2 * j], found[2 * j + 1] = start, stop
        if count == wanted:
            break
        pos = stop
    return True, found


@numba.njit(cache=True, nogil=True)
def _set_tai(buf, s, stop, ints, strs, r):
    """nas_eps._set_tai: the PLMN only when no GUTI gave one."""
    if stop - s < 5 or not plmn_ok(buf, s):
        return False
    if ints[F_LEN + S_MCC, r] < 0:
        put_plmn(buf, s, ints, strs, r)
    put(ints, r, F_TAC, (np.int64(buf[s + 3]) << 8) | np.int64(buf[s + 4]))
    return True


@numba.njit(cache=True, nogil=True)
def _assigned(buf, found, ints, strs, r, group_emm):
    """nas_eps._assigned_identities: GUTI, then MS identity, then EMM cause."""
    if found[0] >= 0 and not _eps_identity(buf, found[0], found[1] - found[0], ints, strs, r):
        return False
    if found[2] >= 0 and not mobile_identity(buf, found[2], found[3] - found[2], ints, strs, r):
        return False
    if found[4] >= 0:
        if found[5] <= found[4]:
            return False
        put(ints, r, F_CAUSE, buf[found[4]])
        put(ints, r, F_GROUP, group_emm)
    return True


@numba.njit(cache=True, nogil=True)
def _body(buf, q, end, code, uplink, t, ints, strs, r):
    """The message bodies of nas_eps._BODIES from the octet after the message type: (ok, ESM start, ESM end)."""
    group_emm = t[O_CONST + C_GROUP_EMM]
    if code == 0x41 or code == 0x48:                       # attach request, tracking area update request
        if q >= end:
            return False, -1, -1
        kinds = O_ATTACH if code == 0x41 else O_UPDATE
        put(ints, r, F_UPDATE, t[kinds + (buf[q] & 7)])
        a, b = lv(buf, q + 1, end)
        if a < 0 or not _eps_identity(buf, a, b - a, ints, strs, r):
            return False, -1, -1
        esm_a, esm_b = -1, -1
        if code == 0x41:
            a, b = lv(buf, b, end)
            if a < 0:
                return False, -1, -1
            esm_a, esm_b = _lv_e(buf, b, end)
            if esm_a < 0:
                return False, -1, -1
            b = esm_b
        ok, found = _optional(buf, b, end, t, nas_eps.IEI_LAST_VISITED_TAI, -1, -1, 1)
        if not ok or (found[0] >= 0 and not _set_tai(buf, found[0], found[1], ints, strs, r)):
            return False, -1, -1
        return True, esm_a, esm_b
    if code == 0x42 or code == 0x49:                       # attach accept, tracking area update accept
        esm_a, esm_b, b = -1, -1, q + 1
        if code == 0x42:
            a, b = lv(buf, q + 2, end)
            if a < 0:
                return False, -1, -1
            esm_a, esm_b = _lv_e(buf, b, end)
            if esm_a < 0:
                return False, -1, -1
            b = esm_b
        ok, found = _optional(buf, b, end, t, nas_eps.IEI_GUTI, nas_eps.IEI_MS_IDENTITY, nas_eps.IEI_EMM_CAUSE, 3)
        if not ok or not _assigned(buf, found, ints, strs, r, group_emm):
            return False, -1, -1
        return True, esm_a, esm_b
    if code == 0x43:                                       # attach complete
        a, b = _lv_e(buf, q, end)
        return a >= 0, a, b
    if code == 0x44:                                       # attach reject
        if q >= end:
            return False, -1, -1
        put(ints, r, F_CAUSE, buf[q])
        put(ints, r, F_GROUP, group_emm)
        ok, found = _optional(buf, q + 1, end, t, nas_eps.IEI_ESM_CONTAINER, -1, -1, 1)
        return ok, found[0], found[1]
    if code == 0x45:                                       # detach request
        if q >= end:
            return False, -1, -1
        octet = buf[q]
        if uplink == 0:
            put(ints, r, F_UPDATE, t[O_DETACH_NET + (octet & 7)])
            ok, found = _optional(buf, q + 1, end, t, nas_eps.IEI_EMM_CAUSE, -1, -1, 1)
            if not ok:
                return False, -1, -1
            if found[0] >= 0 and found[1] > found[0]:
                put(ints, r, F_CAUSE, buf[found[0]])
                put(ints, r, F_GROUP, group_emm)
            return True, -1, -1
        kinds = O_DETACH_UE_OFF if octet & 8 else O_DETACH_UE
        put(ints, r, F_UPDATE, t[kinds + (octet & 7)])
        a, b = lv(buf, q + 1, end)
        return a >= 0 and _eps_identity(buf, a, b - a, ints, strs, r), -1, -1
    if code == 0x4B or code == 0x4E or code == 0x5C or code == 0x5F or code == 0x60:   # EMM cause first
        if q >= end:
            return False, -1, -1
        put(ints, r, F_CAUSE, buf[q])
        put(ints, r, F_GROUP, group_emm)
        return True, -1, -1
    if code == 0x4C:                                       # extended service request
        if q >= end:
            return False, -1, -1
        service = t[O_SERVICE + (buf[q] & 15)]
        if service >= 0:
            put(ints, r, F_UPDATE, service)
        a, b = lv(buf, q + 1, end)
        if a < 0 or b - a < 5 or buf[a] & 7 != 4:
            return False, -1, -1
        put(ints, r, F_M_TMSI, uint(buf, a + 1, a + 5))
        return True, -1, -1
    if code == 0x50 or code == 0x56:                       # GUTI reallocation command, identity response
        a, b = lv(buf, q, end)
        if a < 0:
            return False, -1, -1
        if code == 0x50:
            return _eps_identity(buf, a, b - a, ints, strs, r), -1, -1
        return mobile_identity(buf, a, b - a, ints, strs, r), -1, -1
    if code == 0x5E:                                       # security mode complete
        ok, found = _optional(buf, q, end, t, nas_eps.IEI_IMEISV, -1, -1, 1)
        if ok and found[0] >= 0:
            ok = mobile_identity(buf, found[0], found[1] - found[0], ints, strs, r)
        return ok, -1, -1
    return False, -1, -1                                   # a body not mirrored here


@numba.njit(cache=True, nogil=True)
def _esm(buf, p, end, uplink, t, ints, r, cap):
    """nas_eps._esm: one record, or -1."""
    if p + 3 > end or buf[p] & 15 != nas_eps.PD_ESM or r >= cap:
        return -1
    msg = t[O_ESM_MSG + buf[p + 2]]
    if msg < 0:
        return -1
    new_record(ints, r, P_NAS, msg, t[O_ESM_DIR + buf[p + 2]] if uplink < 0 else uplink)
    return r + 1


@numba.njit(cache=True, nogil=True)
def _plain(buf, s, n, pos, uplink, t, ints, strs, r, cap):
    """nas_eps._plain: the records of a plain message at s + pos, or -1."""
    p, end = s + pos, s + n
    pd = buf[p] & 15
    if pd == nas_eps.PD_ESM:
        return _esm(buf, p, end, uplink, t, ints, r, cap)
    if pd != nas_eps.PD_EMM or pos + 2 > n or r >= cap:
        return -1
    code = buf[p + 1]
    msg = t[O_EMM_MSG + code]
    if msg < 0:
        return -1
    if uplink < 0:
        uplink = t[O_EMM_DIR + code]
    new_record(ints, r, P_NAS, msg, uplink)
    if not t[O_EMM_BODY + code]:
        return r + 1
    ok, esm_a, esm_b = _body(buf, p + 2, end, code, uplink, t, ints, strs, r)
    if not ok:
        return -1
    if esm_a < 0:
        return r + 1
    return _esm(buf, esm_a, esm_b, uplink, t, ints, r + 1, cap)


@numba.njit(cache=True, nogil=True)
def _nas(buf, s, n, uplink, t, ints, strs, r, cap):
    """nas_eps.decode_nas: the records of one NAS-PDU, or -1."""
    if n == 0:
        return -1
    first = buf[s]
    pd, header = first & 15, first >> 4
    if pd == nas_eps.PD_ESM or (pd == nas_eps.PD_EMM and header == 0):
        return _plain(buf, s, n, 0, uplink, t, ints, strs, r, cap)
    if pd != nas_eps.PD_EMM:
        return -1
    if header >= nas_eps.SECURITY_HEADER_SERVICE_REQUEST:
        if n < 4 or r >= cap:
            return -1
        new_record(ints, r, P_NAS, t[O_CONST + C_SERVICE_REQUEST], 1 if uplink < 0 else uplink)
        return r + 1
    if header > 5 or n <= 6:
        return -1
    inner = buf[s + 6]
    if header == 2 or header == 4:                         # nas_eps._null_deciphered
        known = False
        if n > 7:
            if inner == nas_eps.PD_EMM:
                known = t[O_EMM_MSG + buf[s + 7]] >= 0
            elif inner & 15 == nas_eps.PD_ESM and not 1 <= inner >> 4 <= 4 and n > 8:
                known = t[O_ESM_MSG + buf[s + 8]] >= 0
        if known:       # a candidate that fails here may still be "ciphered": Python decides that
            return _plain(buf, s, n, 6, uplink, t, ints, strs, r, cap)
        if r >= cap:
            return -1
        new_record(ints, r, P_NAS, t[O_CONST + C_CIPHERED], uplink)
        put(ints, r, F_CIPHERED, 1)
        return r + 1
    if inner >> 4 and inner & 15 == nas_eps.PD_EMM:
        return -1
    return _plain(buf, s, n, 6, uplink, t, ints, strs, r, cap)


# -- S1AP (decoders.s1ap) ---------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _open(buf, p, end):
    """per.open_type without fragments: (value start, value end), or (-1, -1)."""
    if p >= end:
        return -1, -1
    first = buf[p]
    if first < 0x80:
        a = p + 1
        b = a + first
    elif first < 0xC0 and p + 1 < end:
        a = p + 2
        b = a + ((np.int64(first & 0x3F) << 8) | np.int64(buf[p + 1]))
    else:
        return -1, -1
    if b > end:
        return -1, -1
    return a, b


@numba.njit(cache=True, nogil=True)
def _items(buf, a, b, item_id, starts, stops):
    """s1ap._items: the values of the list items with ``item_id`` into starts/stops; their count, or -1."""
    if a >= b:
        return -1
    pos, k = a + 1, 0
    for _ in range(np.int64(buf[a]) + 1):
        if pos + 3 > b:
            return -1
        ie = (np.int64(buf[pos]) << 8) | np.int64(buf[pos + 1])
        start, pos = _open(buf, pos + 3, b)
        if start < 0:
            return -1
        if ie == item_id:
            if k == len(starts):
                return -1
            starts[k], stops[k] = start, pos
            k += 1
    return k


@numba.njit(cache=True, nogil=True)
def _tai(buf, a, b, ints, strs, r):
    """s1ap._tai: the PLMN only when no cell came before."""
    if b - a < 6 or not plmn_ok(buf, a + 1):
        return False
    if not has(ints, r, F_ECI):
        put_plmn(buf, a + 1, ints, strs, r)
    put(ints, r, F_TAC, (np.int64(buf[a + 4]) << 8) | np.int64(buf[a + 5]))
    return True


@numba.njit(cache=True, nogil=True)
def _e_rab_nas(buf, a, b, skip_transport, nas_optional):
    """s1ap._e_rab_nas_pdus: an item's NAS-PDU as (ok, start, end; -1 if none), by its octet layout when it has
    one, else bit by bit as its BitReader path."""
    size = b - a
    if size <= 5:
        return _e_rab_bits(buf, a, b, skip_transport, nas_optional)
    presence = 3 if nas_optional else 2
    head = (np.int64(buf[a]) << 8) | np.int64(buf[a + 1])
    if (head >> (15 - presence)) & 1 or (head >> (8 - presence)) & 3 or buf[a + 3] & 0x40:
        return _e_rab_bits(buf, a, b, skip_transport, nas_optional)
    if not skip_transport:
        pos = 4
    elif buf[a + 4] & 0x80:
        return _e_rab_bits(buf, a, b, skip_transport, nas_optional)
    else:
        pos = 10 + (((((np.int64(buf[a + 4]) & 0x7F) << 1) | (np.int64(buf[a + 5]) >> 7)) + 8) >> 3)
    if pos > size:
        return _e_rab_bits(buf, a, b, skip_transport, nas_optional)
    if nas_optional and not (head >> 14) & 1:
        return True, -1, -1
    start, stop = _open(buf, a + pos, b)
    return start >= 0, start, stop


@numba.njit(cache=True, nogil=True)
def _bits(buf, a, limit, pos, n):
    """per.BitReader.bits on the value at ``a`` (``limit`` bits long): (value, next bit), value -1 past the end."""
    if pos + n > limit:
        return -1, pos
    value = np.int64(0)
    for i in range(pos, pos + n):
        value = (value << 1) | ((np.int64(buf[a + (i >> 3)]) >> (7 - (i & 7))) & 1)
    return value, pos + n


@numba.njit(cache=True, nogil=True)
def _e_rab_bits(buf, a, b, skip_transport, nas_optional):
    """The BitReader path of s1ap._e_rab_nas_pdus for items with GBR information; extensions (of the e-RAB-ID, the
    QoS, ARP or GBR parameters, the address length) are left to Python."""
    limit = (b - a) * 8
    ext, pos = _bits(buf, a, limit, 0, 1)
    has_nas = 1
    if nas_optional:
        has_nas, pos = _bits(buf, a, limit, pos, 1)
    flags, pos = _bits(buf, a, limit, pos, 2)          # iE-Extensions, e-RAB-ID extension
    if ext < 0 or has_nas < 0 or flags < 0 or flags & 1:
        return False, -1, -1
    x, pos = _bits(buf, a, limit, pos, 4)               # e-RAB-ID
    qos, pos = _bits(buf, a, limit, pos, 3)             # extension, GBR information, iE-Extensions
    if x < 0 or qos < 0 or qos & 1:
        return False, -1, -1
    pos = ((pos + 7) & ~7) + 8                          # QCI
    arp, pos = _bits(buf, a, limit, pos, 8)             # extension, iE-Extensions, the three 2-bit fields
    if arp < 0 or arp & 0x40:
        return False, -1, -1
    if qos & 2:                                         # GBR QoS information: 4 bit rates 0..10^10
        gbr, pos = _bits(buf, a, limit, pos, 2)
        if gbr < 0 or gbr & 1:
            return False, -1, -1
        for _ in range(4):
            count, pos = _bits(buf, a, limit, pos, 3)
            if count < 0:
                return False, -1, -1
            pos = ((pos + 7) & ~7) + 8 * (count + 1)
            if pos > limit:
                return False, -1, -1
    if skip_transport:                                  # TransportLayerAddress, GTP-TEID
        length, pos = _bits(buf, a, limit, pos, 9)
        if length < 0 or length & 0x100:
            return False, -1, -1
        pos = ((pos + 7) & ~7) + 8 * ((length + 1 + 7) >> 3)
        if pos > limit:
            return False, -1, -1
        pos = ((pos + 7) & ~7) + 32
        if pos > limit:
            return False, -1, -1
    if not has_nas:
        return True, -1, -1
    start, stop = _open(buf, a + (((pos + 7) & ~7) >> 3), b)
    return start >= 0, start, stop


@numba.njit(cache=True, nogil=True)
def _ie(buf, ie, a, b, t, ints, strs, r, nas, count, item_starts, item_stops):
    """One mirrored IE value [a, b): the NAS-PDU count after it, or -1."""
    size = b - a
    if ie == s1ap.ID_SOURCE_MME_UE_S1AP_ID:
        if size == 0 or a + (buf[a] >> 6) + 2 > b:
            return -1
        put(ints, r, F_MME, uint(buf, a + 1, a + (buf[a] >> 6) + 2))
    elif ie == s1ap.ID_UE_S1AP_IDS:
        if size <= 1:
            return -1
        first = buf[a]
        if first & 0xC0 == 0:
            mme_end = ((first >> 2) & 3) + 2
            if mme_end >= size:
                return -1
            enb_end = mme_end + 1 + (buf[a + mme_end] >> 6) + 1
            if enb_end > size:
                return -1
            put(ints, r, F_MME, uint(buf, a + 1, a + mme_end))
            put(ints, r, F_ENB, uint(buf, a + mme_end + 1, a + enb_end))
        elif first & 0xC0 == 0x40:
            mme_end = ((first >> 4) & 3) + 2
            if mme_end > size:
                return -1
            put(ints, r, F_MME, uint(buf, a + 1, a + mme_end))
        else:
            return -1
    elif ie == s1ap.ID_CAUSE:
        if size == 0:
            return -1
        first = buf[a]
        group = first >> 4
        if group >= 5 or first & 0x08:
            return -1
        width = t[O_CAUSE_WIDTH + group]
        if width > 3 and size < 2:
            return -1
        word = (np.int64(first) << 8) | (np.int64(buf[a + 1]) if size > 1 else 0)
        put(ints, r, F_CAUSE, (word >> (11 - width)) & ((1 << width) - 1))
        put(ints, r, F_GROUP, group)
    elif ie == s1ap.ID_TAI:
        if not _tai(buf, a, b, ints, strs, r):
            return -1
    elif ie == s1ap.ID_EUTRAN_CGI:
        if size < 8 or not plmn_ok(buf, a + 1):
            return -1
        put_plmn(buf, a + 1, ints, strs, r)
        put(ints, r, F_ECI, uint(buf, a + 4, a + 8) >> 4)
    elif ie == s1ap.ID_USER_LOCATION_INFORMATION:
        if size < 13 or buf[a] & 0x10 or not plmn_ok(buf, a + 1):
            return -1
        put_plmn(buf, a + 1, ints, strs, r)
        put(ints, r, F_ECI, uint(buf, a + 4, a + 8) >> 4)
        put(ints, r, F_TAC, uint(buf, a + 11, a + 13))
    elif ie == s1ap.ID_S_TMSI:
        if size < 6:
            return -1
        put(ints, r, F_MMEC, ((buf[a] & 0x3F) << 2) | (buf[a + 1] >> 6))
        put(ints, r, F_M_TMSI, uint(buf, a + 2, a + 6))
    elif ie == s1ap.ID_UE_PAGING_ID:
        if size == 0 or buf[a] & 0x80:
            return -1
        if buf[a] & 0x40 == 0:                             # s-TMSI
            if size < 6:
                return -1
            put(ints, r, F_MMEC, ((buf[a] & 0x0F) << 4) | (buf[a + 1] >> 4))
            put(ints, r, F_M_TMSI, uint(buf, a + 2, a + 6))
        else:                                              # iMSI, TBCD up to the filler
            octets = 3 + ((buf[a] >> 3) & 7)
            if size < 1 + octets:
                return -1
            k = 0
            for i in range(2 * octets):
                octet = buf[a + 1 + (i >> 1)]
                nibble = (octet & 15) if i % 2 == 0 else (octet >> 4)
                if nibble == 15:
                    break
                if nibble > 9 or k == MAX_DIGITS:
                    return -1
                strs[S_IMSI, r, k] = 48 + nibble
                k += 1
            if k == 0:
                return -1
            ints[F_LEN + S_IMSI, r] = k
    elif ie == s1ap.ID_TAI_LIST:
        k = _items(buf, a, b, s1ap.ID_TAI_ITEM, item_starts, item_stops)
        if k < 0 or (k == 1 and not _tai(buf, item_starts[0], item_stops[0], ints, strs, r)):
            return -1
    elif ie == s1ap.ID_NAS_PDU:
        start, stop = _open(buf, a, b)
        if start < 0 or count == len(nas) // 2:
            return -1
        nas[2 * count], nas[2 * count + 1] = start, stop
        count += 1
    else:                                                  # the three E-RAB lists with NAS-PDUs in their items
        if ie == s1ap.ID_E_RAB_TO_BE_SETUP_LIST_CTXT_SU_REQ:
            item_id, skip_transport, nas_optional = s1ap.ID_E_RAB_TO_BE_SETUP_ITEM_CTXT_SU_REQ, True, True
        elif ie == s1ap.ID_E_RAB_TO_BE_SETUP_LIST_BEARER_SU_REQ:
            item_id, skip_transport, nas_optional = s1ap.ID_E_RAB_TO_BE_SETUP_ITEM_BEARER_SU_REQ, True, False
        else:
            item_id, skip_transport, nas_optional = s1ap.ID_E_RAB_TO_BE_MODIFIED_ITEM_BEARER_MOD_REQ, False, False
        k = _items(buf, a, b, item_id, item_starts, item_stops)
        if k < 0:
            return -1
        for j in range(k):
            ok, start, stop = _e_rab_nas(buf, item_starts[j], item_stops[j], skip_transport, nas_optional)
            if not ok:
                return -1
            if start >= 0:
                if count == len(nas) // 2:
                    return -1
                nas[2 * count], nas[2 * count + 1] = start, stop
                count += 1
    return count


@numba.njit(cache=True, nogil=True)
def _handover_type(buf, a, b):
    """s1ap._handover_type: ENUMERATED with 5 root values (an extension value counts on from 5), or -1."""
    if a == b:
        return -1
    first = buf[a]
    if first & 0x80:
        return -1 if first & 0x40 else 5 + (first & 0x3F)
    return (first >> 4) & 7


@numba.njit(cache=True, nogil=True)
def _target_id(buf, a, b, ints, strs, r):
    """s1ap._target_id: for a targeteNB-ID, the selected TAI (its PLMN only when the record has none)."""
    if a == b:
        return False
    first = buf[a]
    if first & 0x80:                                       # an extension alternative: nothing read
        return not first & 0x40
    if (first >> 5) & 3 != 0 or first & 0x02:            # another alternative; Global-ENB-ID iE-Extensions
        return (first >> 5) & 3 != 0
    if b - a < 5 or buf[a + 4] & 0x80:                    # eNB-ID extension alternative
        return False
    tai = a + 8 if buf[a + 4] & 0x40 == 0 else a + 9      # after the macro (20-bit) or home (28-bit) eNB ID
    if tai + 5 > b or not plmn_ok(buf, tai):
        return False
    if ints[F_LEN + S_MCC, r] < 0:
        put_plmn(buf, tai, ints, strs, r)
    put(ints, r, F_TAC, (np.int64(buf[tai + 3]) << 8) | np.int64(buf[tai + 4]))
    return True


@numba.njit(cache=True, nogil=True)
def _target_cell(buf, a, b, ints, strs, r):
    """s1ap._source_to_target_container of an intra-LTE handover: the target cell after the RRC container and
    the E-RAB information list."""
    ia, ib = _open(buf, a, b)
    if ia < 0 or ia == ib:
        return False
    has_e_rabs = buf[ia] & 0x40
    x, pos = _open(buf, ia + 1, ib)                        # rRC-Container
    if x < 0:
        return False
    if has_e_rabs:
        if pos >= ib:
            return False
        items = np.int64(buf[pos]) + 1
        pos += 1
        for _ in range(items):
            x, pos = _open(buf, pos + 3, ib)               # id, criticality, open type
            if x < 0:
                return False
    if pos + 8 > ib or not plmn_ok(buf, pos + 1):
        return False
    put_plmn(buf, pos + 1, ints, strs, r)
    put(ints, r, F_ECI, uint(buf, pos + 4, pos + 8) >> 4)
    return True


@numba.njit(cache=True, nogil=True)
def _pdu(buf, s, n, t, ints, strs, r, cap, nas, item_starts, item_stops):
    """decode_s1ap on the PDU [s, s + n): the record count after it, or -1 for the Python path."""
    if n < 4 or r >= cap:
        return -1
    first, code = buf[s], buf[s + 1]
    kind = first >> 5
    if first & 0x80 or kind > s1ap.UNSUCCESSFUL:
        return -1
    header = (np.int64(code) << 2) | kind
    msg = t[O_HDR_MSG + header]
    if msg < 0:
        return -1
    uplink = t[O_HDR_UP + header]
    vs, ve = _open(buf, s + 3, s + n)
    if vs < 0 or ve - vs < 3:
        return -1
    new_record(ints, r, P_S1AP, msg, uplink)
    count = 0
    handover_type = s1ap.HANDOVER_TYPE_INTRA_LTE
    pos = vs + 3
    for _ in range((np.int64(buf[vs + 1]) << 8) | np.int64(buf[vs + 2])):
        if pos + 4 > ve:
            return -1
        ie = (np.int64(buf[pos]) << 8) | np.int64(buf[pos + 1])
        length = buf[pos + 3]
        if length < 0x80:
            a = pos + 4
            b = a + length
        elif length < 0xC0 and pos + 5 <= ve:
            a = pos + 5
            b = a + ((np.int64(length & 0x3F) << 8) | np.int64(buf[pos + 4]))
        else:
            return -1
        if b > ve:
            return -1
        pos = b
        if ie == s1ap.ID_ENB_UE_S1AP_ID or ie == s1ap.ID_MME_UE_S1AP_ID:
            if a == b:
                return -1
            id_end = a + (buf[a] >> 6) + 2
            if id_end > b or (id_end - a > 4 and ie == s1ap.ID_ENB_UE_S1AP_ID):
                return -1
            put(ints, r, F_ENB if ie == s1ap.ID_ENB_UE_S1AP_ID else F_MME, uint(buf, a + 1, id_end))
            continue
        what = t[O_IE_KIND + ie]
        if what == IE_MIRRORED:
            count = _ie(buf, ie, a, b, t, ints, strs, r, nas, count, item_starts, item_stops)
            if count < 0:
                return -1
        elif what == IE_HANDOVER:
            if ie == s1ap.ID_HANDOVER_TYPE:
                handover_type = _handover_type(buf, a, b)
                if handover_type < 0:
                    return -1
            elif ie == s1ap.ID_TARGET_ID:
                if not _target_id(buf, a, b, ints, strs, r):
                    return -1
            elif handover_type == s1ap.HANDOVER_TYPE_INTRA_LTE and not _target_cell(buf, a, b, ints, strs, r):
                return -1
        elif what == IE_PYTHON or (what == IE_CAUSE_LIST and not has(ints, r, F_CAUSE)):
            return -1
    r += 1
    for j in range(count):
        r = _nas(buf, nas[2 * j], nas[2 * j + 1] - nas[2 * j], uplink, t, ints, strs, r, cap)
        if r < 0:
            return -1
    return r


@numba.njit(cache=True, nogil=True)
def _scan(buf, starts, lengths, t):
    pdus = len(starts)
    cap = 3 * pdus + 16
    ints = np.empty((_COLUMNS, cap), np.int64)
    strs = np.empty((5, cap, MAX_DIGITS), np.uint8)
    counts = np.empty(pdus, np.int32)
    nas = np.empty(2 * _MAX_NAS, np.int64)
    item_starts = np.empty(64, np.int64)
    item_stops = np.empty(64, np.int64)
    r = 0
    for i in range(pdus):
        after = _pdu(buf, starts[i], lengths[i], t, ints, strs, r, cap, nas, item_starts, item_stops)
        if after < 0:
            counts[i] = -1
        else:
            counts[i] = after - r
            r = after
    return counts, ints[:, :r], strs[:, :r]


_PROTO_VALUES, _MSG_VALUES = pa.array(PROTOS), pa.array(MESSAGES)
_GROUP_VALUES, _UPDATE_VALUES = pa.array(GROUPS), pa.array(UPDATES)
_DICTIONARIES = {"proto": _PROTO_VALUES, "msg": _MSG_VALUES, "cause_group": _GROUP_VALUES,
                 "update_type": _UPDATE_VALUES}


def decode_s1ap_batch(data: bytes, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """The S1AP PDUs data[starts[i]:starts[i] + lengths[i]]: records per PDU (-1: left to ``decode_s1ap``), and
    the records of the others, in PDU order, as MESSAGE_SCHEMA content columns (absent ones are all null)."""
    buf = np.frombuffer(data, np.uint8)
    counts, ints, strs = _scan(buf, starts.astype(np.int64), lengths.astype(np.int64), TABLES)
    return counts, arrow_columns(ints, strs, _INT_FIELDS, _STR_FIELDS, _DICTIONARIES)
