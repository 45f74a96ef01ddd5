"""S1AP encoders, TS 36.413 (§9.1 messages, §9.3 ASN.1), in aligned PER (ITU-T X.691) written by hand.

The shape every message shares is byte-aligned and built from bytes: S1AP-PDU CHOICE (3 bits, padded),
procedureCode (1 octet), criticality (2 bits, padded), open type length + value, where the value is a
SEQUENCE with one extension bit (padded) and a ProtocolIE-Container: a 16-bit count, then per IE its id
(2 octets), criticality (2 bits, padded) and open type. Only IE values with fields narrower than an octet
go through the small bit writer ``_Bits``.
"""

import socket
from functools import lru_cache

from simulator.bssap_encode import bcd, plmn_identity

INITIATING, SUCCESSFUL = 0, 1                 # S1AP-PDU CHOICE index, §9.3.2
REJECT, IGNORE = 0, 1                         # Criticality, §9.3.5

# §9.3.7 procedure codes
PROC_HANDOVER_NOTIFICATION, PROC_PATH_SWITCH_REQUEST, PROC_INITIAL_CONTEXT_SETUP = 2, 3, 9
PROC_PAGING, PROC_DOWNLINK_NAS_TRANSPORT, PROC_INITIAL_UE_MESSAGE, PROC_UPLINK_NAS_TRANSPORT = 10, 11, 12, 13
PROC_S1_SETUP, PROC_UE_CONTEXT_RELEASE_REQUEST, PROC_UE_CONTEXT_RELEASE = 17, 18, 23

# §9.3.7 protocol IE ids
ID_MME_UE_S1AP_ID, ID_CAUSE, ID_ENB_UE_S1AP_ID = 0, 2, 8
ID_E_RAB_TO_BE_SWITCHED_DL_LIST, ID_E_RAB_TO_BE_SWITCHED_DL_ITEM, ID_E_RAB_TO_BE_SETUP_LIST_CTXT_SU_REQ = 22, 23, 24
ID_NAS_PDU, ID_SECURITY_CONTEXT, ID_UE_PAGING_ID, ID_TAI_LIST, ID_TAI_ITEM = 26, 40, 43, 46, 47
ID_E_RAB_SETUP_ITEM_CTXT_SU_RES, ID_E_RAB_SETUP_LIST_CTXT_SU_RES, ID_E_RAB_TO_BE_SETUP_ITEM_CTXT_SU_REQ = 50, 51, 52
ID_GLOBAL_ENB_ID, ID_ENB_NAME, ID_MME_NAME, ID_SUPPORTED_TAS = 59, 60, 61, 64
ID_UE_AGGREGATE_MAXIMUM_BITRATE, ID_TAI, ID_SECURITY_KEY, ID_UE_IDENTITY_INDEX_VALUE = 66, 67, 73, 80
ID_RELATIVE_MME_CAPACITY, ID_SOURCE_MME_UE_S1AP_ID, ID_S_TMSI, ID_UE_S1AP_IDS = 87, 88, 96, 99
ID_EUTRAN_CGI, ID_SERVED_GUMMEIS, ID_UE_SECURITY_CAPABILITIES, ID_CN_DOMAIN = 100, 105, 107, 109
ID_RRC_ESTABLISHMENT_CAUSE, ID_DEFAULT_PAGING_DRX = 134, 137

# §9.2.1.3a RRC-Establishment-Cause: root values, then extension additions.
RRC_CAUSES = ["emergency", "highPriorityAccess", "mt-Access", "mo-Signalling", "mo-Data"]
RRC_CAUSES_EXTENSION = ["delay-TolerantAccess", "mo-VoiceCall", "mo-ExceptionData"]
# §9.2.1.3 Cause CHOICE: alternative → (index, number of root values of its ENUMERATED)
CAUSE_GROUPS = {"radioNetwork": (0, 36), "transport": (1, 2), "nas": (2, 4), "protocol": (3, 7), "misc": (4, 6)}
CN_DOMAINS = {"ps": 0, "cs": 1}   # §9.2.3.22

_E_RAB_ID, _QCI = 5, 9
_SGW_ADDRESS, _ENB_ADDRESS = socket.inet_aton("10.0.0.10"), socket.inet_aton("10.1.255.1")
_ALGORITHMS = 0xC000   # §9.2.1.40 UE security capabilities: 128-EEA1/EIA1 and 128-EEA2/EIA2
_KEY = bytes(range(32))  # §9.2.1.41 KeNB: any 256 bits


class _Bits:
    """X.691 aligned-PER bit writer: ``put`` a field of n bits, ``align`` to an octet, ``octets`` already aligned."""

    __slots__ = ("value", "size")

    def __init__(self):
        self.value, self.size = 0, 0

    def put(self, value: int, bits: int) -> "_Bits":
        self.value, self.size = self.value << bits | value, self.size + bits
        return self

    def align(self) -> "_Bits":
        return self.put(0, -self.size % 8)

    def octets(self, data: bytes) -> "_Bits":
        self.align()
        return self.put(int.from_bytes(data, "big"), 8 * len(data))

    def bytes(self) -> bytes:
        self.align()
        return self.value.to_bytes(self.size // 8, "big") or b"\x00"


def _length(n: int) -> bytes:
    """X.691 §11.9.3.6-7 unconstrained length determinant: one octet below 128, else two (up to 16K)."""
    return bytes((n,)) if n < 128 else (0x8000 | n).to_bytes(2, "big")


def _ie(ie_id: int, criticality: int, value: bytes) -> bytes:
    """ProtocolIE-Field (§9.3.5): id, criticality, open type."""
    return ie_id.to_bytes(2, "big") + bytes((criticality << 6,)) + _length(len(value)) + value


def _container(ies: list[bytes]) -> bytes:
    """The message SEQUENCE: extension bit 0 (padded), ProtocolIE-Container count (0..65535, 2 octets), fields."""
    return b"\x00" + len(ies).to_bytes(2, "big") + b"".join(ies)


def _pdu(kind: int, procedure: int, criticality: int, ies: list[bytes]) -> bytes:
    """S1AP-PDU (§9.3.2): CHOICE index (extensible, 3 alternatives), procedure code, criticality, open type."""
    value = _container(ies)
    return bytes((kind << 5, procedure, criticality << 6)) + _length(len(value)) + value


def _octets(value: int) -> int:
    return (value.bit_length() + 7) // 8 or 1


def _uint(value: int) -> bytes:
    """INTEGER (0..2^32-1) or (0..2^24-1), i.e. MME/eNB-UE-S1AP-ID: X.691 §11.5.7.4 indefinite-length case,
    the octet count - 1 in 2 bits (padded), then the minimal octets."""
    n = _octets(value)
    return bytes(((n - 1) << 6,)) + value.to_bytes(n, "big")


def _put_uint(bits: _Bits, value: int, count_bits: int = 2) -> _Bits:
    """``_uint`` inside a bit stream; ``count_bits`` = 3 for BitRate (0..10^10, up to 5 octets)."""
    n = max(1, (value.bit_length() + 7) // 8)
    return bits.put(n - 1, count_bits).octets(value.to_bytes(n, "big"))


def _mme_ue_id(mme_ue_id: int) -> bytes:
    return _ie(ID_MME_UE_S1AP_ID, REJECT, _uint(mme_ue_id))


def _enb_ue_id(enb_ue_id: int) -> bytes:
    return _ie(ID_ENB_UE_S1AP_ID, REJECT, _uint(enb_ue_id))


@lru_cache(maxsize=16)
def _ids(mme_ue_id: int, enb_ue_id: int, criticality: int = REJECT) -> tuple[bytes, bytes]:
    """The UE ID pair; cached because every message of one UE connection carries the same pair."""
    return (_ie(ID_MME_UE_S1AP_ID, criticality, _uint(mme_ue_id)),
            _ie(ID_ENB_UE_S1AP_ID, criticality, _uint(enb_ue_id)))


def _nas(nas: bytes) -> bytes:
    """§9.2.3.5 NAS-PDU: unconstrained OCTET STRING."""
    return _ie(ID_NAS_PDU, REJECT, _length(len(nas)) + nas)


def _tai(mcc: str, mnc: str, tac: int) -> bytes:
    """§9.2.3.16 TAI: extension + optional bits (padded: the 3-octet PLMN is aligned), PLMN, TAC (2 octets)."""
    return b"\x00" + plmn_identity(mcc, mnc) + tac.to_bytes(2, "big")


def _ecgi(mcc: str, mnc: str, eci: int) -> bytes:
    """§9.2.1.38 E-UTRAN CGI: two preamble bits (padded), PLMN, cell-ID BIT STRING (SIZE(28)) left-aligned."""
    return b"\x00" + plmn_identity(mcc, mnc) + (eci << 4).to_bytes(4, "big")


@lru_cache(maxsize=4096)
def _location(mcc: str, mnc: str, tac: int, eci: int, tai_criticality: int = IGNORE) -> tuple[bytes, bytes]:
    """The EUTRAN-CGI and TAI IEs of a cell: the same bytes for every message from it, so built once per cell."""
    return _ie(ID_EUTRAN_CGI, IGNORE, _ecgi(mcc, mnc, eci)), _ie(ID_TAI, tai_criticality, _tai(mcc, mnc, tac))


@lru_cache(maxsize=4096)
def _initial_cell_ies(mcc: str, mnc: str, tac: int, eci: int, rrc_cause: str) -> tuple[bytes, bytes, bytes]:
    """The TAI, EUTRAN-CGI and RRC establishment cause IEs of an Initial UE Message, per cell and cause."""
    return (_ie(ID_TAI, REJECT, _tai(mcc, mnc, tac)), _ie(ID_EUTRAN_CGI, IGNORE, _ecgi(mcc, mnc, eci)),
            _ie(ID_RRC_ESTABLISHMENT_CAUSE, IGNORE, _rrc_cause(rrc_cause)))


@lru_cache(maxsize=256)
def _cause(cause: tuple[str, int]) -> bytes:
    """§9.2.1.3 Cause: extensible CHOICE (3 bits) of extensible ENUMERATEDs; a value past the root list is an
    extension addition (normally small number, X.691 §11.6)."""
    group, value = cause
    index, root = CAUSE_GROUPS[group]
    bits = _Bits().put(0, 1).put(index, 3)
    if value < root:
        bits.put(0, 1).put(value, (root - 1).bit_length())
    else:
        bits.put(1, 1).put(0, 1).put(value - root, 6)
    return bits.bytes()


def _rrc_cause(name: str) -> bytes:
    if name in RRC_CAUSES:
        return bytes((RRC_CAUSES.index(name) << 4,))
    return bytes((0x80 | RRC_CAUSES_EXTENSION.index(name),))


def _s_tmsi(mmec: int, m_tmsi: int) -> bytes:
    """§9.2.3.6 S-TMSI: two preamble bits, MMEC as an 8-bit field that is *not* aligned (fixed size ≤ 2 octets,
    X.691 §17.6), then the aligned 4-octet M-TMSI."""
    return bytes((mmec >> 2, (mmec & 3) << 6)) + m_tmsi.to_bytes(4, "big")


def _printable(bits: _Bits, text: str) -> _Bits:
    """PrintableString (SIZE(1..150, ...)): extension bit, length - 1 in 8 bits, aligned 8-bit characters."""
    return bits.put(0, 1).put(len(text) - 1, 8).octets(text.encode("ascii"))


def _tunnel(bits: _Bits, address: bytes, teid: int) -> _Bits:
    """§9.2.2.1 TransportLayerAddress (BIT STRING (SIZE(1..160, ...)): ext bit, length - 1 in 8 bits, aligned
    bits) and §9.2.2.2 GTP-TEID (4 octets)."""
    return bits.put(0, 1).put(8 * len(address) - 1, 8).octets(address).octets(teid.to_bytes(4, "big"))


@lru_cache(maxsize=64)
def _e_rab_tunnel_item(address: bytes, teid: int) -> bytes:
    """E-RABSetupItemCtxtSURes / E-RABToBeSwitchedDLItem: ext + iE-Extensions bits, e-RAB-ID (ext + 4 bits),
    transport address, TEID."""
    return _tunnel(_Bits().put(0, 2).put(0, 1).put(_E_RAB_ID, 4), address, teid).bytes()


@lru_cache(maxsize=4)
def _security_capabilities(criticality: int = REJECT) -> bytes:
    """§9.2.1.40: ext + optional bits, then two BIT STRING (SIZE(16, ...)) (ext bit + 16 bits each)."""
    value = _Bits().put(0, 2).put(0, 1).put(_ALGORITHMS, 16).put(0, 1).put(_ALGORITHMS, 16).bytes()
    return _ie(ID_UE_SECURITY_CAPABILITIES, criticality, value)


# -- NAS transport, §9.1.7 ------------------------------------------------------------------------------------------

def initial_ue_message(enb_ue_id: int, nas: bytes, mcc: str, mnc: str, tac: int, eci: int,
                       rrc_cause: str = "mo-Signalling", s_tmsi: tuple[int, int] | None = None) -> bytes:
    """§9.1.7.1: the first uplink NAS message of a connection, with the TAI and E-UTRAN CGI of the serving cell."""
    ies = [_enb_ue_id(enb_ue_id), _nas(nas), *_initial_cell_ies(mcc, mnc, tac, eci, rrc_cause)]
    if s_tmsi is not None:
        ies.append(_ie(ID_S_TMSI, REJECT, _s_tmsi(*s_tmsi)))
    return _pdu(INITIATING, PROC_INITIAL_UE_MESSAGE, IGNORE, ies)


def uplink_nas_transport(mme_ue_id: int, enb_ue_id: int, nas: bytes, mcc: str, mnc: str, tac: int,
                         eci: int) -> bytes:
    """§9.1.7.3: uplink NAS with the current cell (EUTRAN-CGI, TAI)."""
    return _pdu(INITIATING, PROC_UPLINK_NAS_TRANSPORT, IGNORE,
                [_mme_ue_id(mme_ue_id), _enb_ue_id(enb_ue_id), _nas(nas), *_location(mcc, mnc, tac, eci)])


def downlink_nas_transport(mme_ue_id: int, enb_ue_id: int, nas: bytes) -> bytes:
    """§9.1.7.2."""
    return _pdu(INITIATING, PROC_DOWNLINK_NAS_TRANSPORT, IGNORE,
                [_mme_ue_id(mme_ue_id), _enb_ue_id(enb_ue_id), _nas(nas)])


# -- UE context management, §9.1.4 -----------------------------------------------------------------------------------

def initial_context_setup_request(mme_ue_id: int, enb_ue_id: int, nas: bytes | None = None,
                                  ambr_dl: int = 100_000_000, ambr_ul: int = 50_000_000,
                                  teid: int = 0x01000001) -> bytes:
    """§9.1.4.1 with its mandatory IEs: UE-AMBR, one E-RAB (id 5, QCI 9, ARP 9) carrying ``nas`` when given
    (e.g. the Attach Accept), UE security capabilities, KeNB."""
    return _pdu(INITIATING, PROC_INITIAL_CONTEXT_SETUP, REJECT,
                [*_ids(mme_ue_id, enb_ue_id), *_context_ies(nas, ambr_dl, ambr_ul, teid)])


@lru_cache(maxsize=64)
def _context_ies(nas: bytes | None, ambr_dl: int, ambr_ul: int, teid: int) -> tuple[bytes, ...]:
    """The Initial Context Setup Request's IEs after the UE IDs: for a service request (no NAS) always the same."""
    ambr = _put_uint(_put_uint(_Bits().put(0, 2), ambr_dl, 3), ambr_ul, 3).bytes()
    item = _Bits().put(0, 1).put(nas is not None, 1).put(0, 1).put(0, 1).put(_E_RAB_ID, 4)
    # E-RABLevelQoSParameters: ext, 2 optional bits, QCI (1 aligned octet), ARP (ext, opt, priority 9,
    # shall-not-trigger-pre-emption, pre-emptable)
    item.put(0, 3).octets(bytes((_QCI,))).put(0, 2).put(9, 4).put(0, 1).put(1, 1)
    _tunnel(item, _SGW_ADDRESS, teid)
    if nas is not None:
        item.octets(_length(len(nas)) + nas)
    e_rabs = b"\x00" + _ie(ID_E_RAB_TO_BE_SETUP_ITEM_CTXT_SU_REQ, REJECT, item.bytes())  # SIZE(1..256): count - 1
    return (_ie(ID_UE_AGGREGATE_MAXIMUM_BITRATE, REJECT, ambr),
            _ie(ID_E_RAB_TO_BE_SETUP_LIST_CTXT_SU_REQ, REJECT, e_rabs), _security_capabilities(),
            _ie(ID_SECURITY_KEY, REJECT, _KEY))


def initial_context_setup_response(mme_ue_id: int, enb_ue_id: int, teid: int = 0x02000001) -> bytes:
    """§9.1.4.3: the E-RAB set up, with the eNodeB's downlink tunnel end."""
    return _pdu(SUCCESSFUL, PROC_INITIAL_CONTEXT_SETUP, REJECT,
                [*_ids(mme_ue_id, enb_ue_id, IGNORE), _setup_list(teid)])


@lru_cache(maxsize=64)
def _setup_list(teid: int) -> bytes:
    """E-RABSetupListCtxtSURes IE: the one E-RAB with the eNodeB's tunnel end."""
    item = _ie(ID_E_RAB_SETUP_ITEM_CTXT_SU_RES, IGNORE, _e_rab_tunnel_item(_ENB_ADDRESS, teid))
    return _ie(ID_E_RAB_SETUP_LIST_CTXT_SU_RES, IGNORE, b"\x00" + item)


def ue_context_release_request(mme_ue_id: int, enb_ue_id: int,
                               cause: tuple[str, int] = ("radioNetwork", 20)) -> bytes:
    """§9.1.4.5, eNodeB-initiated (default cause user-inactivity)."""
    return _pdu(INITIATING, PROC_UE_CONTEXT_RELEASE_REQUEST, IGNORE,
                [*_ids(mme_ue_id, enb_ue_id), _ie(ID_CAUSE, IGNORE, _cause(cause))])


def ue_context_release_command(mme_ue_id: int, enb_ue_id: int | None, cause: tuple[str, int]) -> bytes:
    """§9.1.4.6: UE-S1AP-IDs CHOICE (§9.2.3.x): the ID pair, or the MME-UE-S1AP-ID alone."""
    if enb_ue_id is None:  # CHOICE index 1 after the extension bit, then the ID's 2-bit octet count, aligned
        ids = bytes((0x40 | (_octets(mme_ue_id) - 1) << 4,)) + mme_ue_id.to_bytes(_octets(mme_ue_id), "big")
    else:  # extension bit, CHOICE index 0, the pair's extension and iE-Extensions bits, then two _uint fields
        ids = (bytes(((_octets(mme_ue_id) - 1) << 2,)) + mme_ue_id.to_bytes(_octets(mme_ue_id), "big")
               + _uint(enb_ue_id))
    return _pdu(INITIATING, PROC_UE_CONTEXT_RELEASE, REJECT,
                [_ie(ID_UE_S1AP_IDS, REJECT, ids), _ie(ID_CAUSE, IGNORE, _cause(cause))])


def ue_context_release_complete(mme_ue_id: int, enb_ue_id: int) -> bytes:
    """§9.1.4.7."""
    return _pdu(SUCCESSFUL, PROC_UE_CONTEXT_RELEASE, REJECT, _ids(mme_ue_id, enb_ue_id, IGNORE))


# -- Paging, §9.1.6 ------------------------------------------------------------------------------------------------

def paging(ue_identity_index: int, s_tmsi: tuple[int, int] | None = None, imsi: str | None = None,
           tais: list[tuple[str, str, int]] = (), cn_domain: str = "ps") -> bytes:
    """§9.1.6: UE identity index (BIT STRING (SIZE(10))), UEPagingID CHOICE (S-TMSI or IMSI), CN domain,
    TAI list (one TAIItem IE per TAI)."""
    if s_tmsi is not None:
        mmec, m_tmsi = s_tmsi
        paging_id = _Bits().put(0, 4).put(mmec, 8).octets(m_tmsi.to_bytes(4, "big")).bytes()
    else:
        digits = bcd(imsi)
        paging_id = _Bits().put(0, 1).put(1, 1).put(len(digits) - 3, 3).octets(digits).bytes()  # SIZE(3..8)
    tai_items = bytes((len(tais) - 1,)) + b"".join(_ie(ID_TAI_ITEM, IGNORE, _tai(*tai)) for tai in tais)
    return _pdu(INITIATING, PROC_PAGING, IGNORE,
                [_ie(ID_UE_IDENTITY_INDEX_VALUE, IGNORE, (ue_identity_index << 6).to_bytes(2, "big")),
                 _ie(ID_UE_PAGING_ID, IGNORE, paging_id),
                 _ie(ID_CN_DOMAIN, IGNORE, bytes((CN_DOMAINS[cn_domain] << 7,))),
                 _ie(ID_TAI_LIST, IGNORE, tai_items)])


# -- Handover signalling, §9.1.5 -----------------------------------------------------------------------------------

def handover_notify(mme_ue_id: int, enb_ue_id: int, mcc: str, mnc: str, tac: int, eci: int) -> bytes:
    """§9.1.5.7: the target eNodeB reports the UE arrived, with its new cell."""
    return _pdu(INITIATING, PROC_HANDOVER_NOTIFICATION, IGNORE,
                [_mme_ue_id(mme_ue_id), _enb_ue_id(enb_ue_id), *_location(mcc, mnc, tac, eci)])


def path_switch_request(enb_ue_id: int, source_mme_ue_id: int, mcc: str, mnc: str, tac: int, eci: int,
                        teid: int = 0x03000001) -> bytes:
    """§9.1.5.8: after an X2 handover the target eNodeB moves the downlink tunnel; carries the new cell."""
    item = _ie(ID_E_RAB_TO_BE_SWITCHED_DL_ITEM, REJECT, _e_rab_tunnel_item(_ENB_ADDRESS, teid))
    return _pdu(INITIATING, PROC_PATH_SWITCH_REQUEST, REJECT,
                [_enb_ue_id(enb_ue_id), _ie(ID_E_RAB_TO_BE_SWITCHED_DL_LIST, REJECT, b"\x00" + item),
                 _ie(ID_SOURCE_MME_UE_S1AP_ID, REJECT, _uint(source_mme_ue_id)), *_location(mcc, mnc, tac, eci),
                 _security_capabilities(IGNORE)])


def path_switch_request_acknowledge(mme_ue_id: int, enb_ue_id: int, next_hop_chaining_count: int = 1) -> bytes:
    """§9.1.5.9 with its mandatory Security Context (§9.2.1.26: NCC in 3 bits, aligned 256-bit next hop)."""
    context = _Bits().put(0, 2).put(next_hop_chaining_count, 3).octets(_KEY).bytes()
    return _pdu(SUCCESSFUL, PROC_PATH_SWITCH_REQUEST, REJECT,
                [*_ids(mme_ue_id, enb_ue_id, IGNORE), _ie(ID_SECURITY_CONTEXT, REJECT, context)])


# -- Interface management, §9.1.8 ----------------------------------------------------------------------------------

def s1_setup_request(global_enb_id: int, enb_name: str, mcc: str, mnc: str, tacs: list[int]) -> bytes:
    """§9.1.8.4: Global eNB ID (macro 20-bit, or home 28-bit when larger), name, supported TAs, paging DRX."""
    plmn = plmn_identity(mcc, mnc)
    enb = _Bits().put(0, 2).octets(plmn)
    if global_enb_id < 1 << 20:
        enb.put(0, 2).octets((global_enb_id << 4).to_bytes(3, "big"))
    else:
        enb.put(0, 1).put(1, 1).octets((global_enb_id << 4).to_bytes(4, "big"))
    # SupportedTAs SIZE(1..256): count - 1 in an aligned octet; each item: ext, opt, TAC (16 bits, not aligned),
    # broadcast PLMNs SIZE(1..6) count - 1 in 3 bits, then the aligned PLMN.
    tas = _Bits().octets(bytes((len(tacs) - 1,)))
    for tac in tacs:
        tas.put(0, 2).put(tac, 16).put(0, 3).octets(plmn)
    return _pdu(INITIATING, PROC_S1_SETUP, REJECT,
                [_ie(ID_GLOBAL_ENB_ID, REJECT, enb.bytes()), _ie(ID_ENB_NAME, IGNORE, _printable(_Bits(), enb_name).bytes()),
                 _ie(ID_SUPPORTED_TAS, REJECT, tas.bytes()), _ie(ID_DEFAULT_PAGING_DRX, IGNORE, b"\x40")])  # v128


def s1_setup_response(mme_name: str, mcc: str, mnc: str, mmegi: int, mmec: int, capacity: int = 255) -> bytes:
    """§9.1.8.5: MME name, one served GUMMEI (PLMN, group id, code), relative capacity."""
    # ServedGUMMEIs SIZE(1..8) count - 1 in 3 bits; item: ext, opt; ServedPLMNs SIZE(1..32) in 5 bits;
    # ServedGroupIDs SIZE(1..65535) in 2 aligned octets; ServedMMECs SIZE(1..256) in 1 aligned octet.
    gummeis = (_Bits().put(0, 3).put(0, 2).put(0, 5).octets(plmn_identity(mcc, mnc))
               .octets(b"\x00\x00" + mmegi.to_bytes(2, "big")).octets(bytes((0, mmec))))
    return _pdu(SUCCESSFUL, PROC_S1_SETUP, REJECT,
                [_ie(ID_MME_NAME, IGNORE, _printable(_Bits(), mme_name).bytes()),
                 _ie(ID_SERVED_GUMMEIS, REJECT, gummeis.bytes()),
                 _ie(ID_RELATIVE_MME_CAPACITY, IGNORE, bytes((capacity,)))])
