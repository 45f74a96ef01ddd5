"""NAS-EPS encoders, TS 24.301: the EMM messages a location probe cares about, plain or security-protected.

Plain messages are built first; ``protect`` wraps one in a security header (§9.1) with a MAC and sequence
number but leaves the body in clear, i.e. EEA0 null ciphering even where the header says "ciphered" — a
decoder (Wireshark's null-decipher, or ours) can then read it, as it can on a network running EEA0.
"""

import zlib

from simulator.bssap_encode import IDENTITY_TYPES, mobile_identity, plmn_identity

PD_ESM, PD_EMM = 0x2, 0x7                      # TS 24.007 §11.2.3.1.1
SECURITY_HEADER_SERVICE_REQUEST = 0xC          # TS 24.301 §9.3.1

# TS 24.301 §9.8, Table 9.8.1: EMM message types
ATTACH_REQUEST, ATTACH_ACCEPT, ATTACH_COMPLETE = 0x41, 0x42, 0x43
DETACH_REQUEST, DETACH_ACCEPT = 0x45, 0x46
TRACKING_AREA_UPDATE_REQUEST, TRACKING_AREA_UPDATE_ACCEPT, TRACKING_AREA_UPDATE_COMPLETE = 0x48, 0x49, 0x4A
EXTENDED_SERVICE_REQUEST, GUTI_REALLOCATION_COMMAND = 0x4C, 0x50
IDENTITY_REQUEST, IDENTITY_RESPONSE = 0x55, 0x56
# Table 9.8.2: ESM message types
ACTIVATE_DEFAULT_BEARER_REQUEST, ACTIVATE_DEFAULT_BEARER_ACCEPT, PDN_CONNECTIVITY_REQUEST = 0xC1, 0xC2, 0xD0

ATTACH_TYPES = {"eps": 1, "combined": 2}                                   # §9.9.3.11
UPDATE_TYPES = {"ta_updating": 0, "combined": 1, "combined_imsi_attach": 2, "periodic": 3}  # §9.9.3.14
DETACH_TYPES = {"eps": 1, "imsi": 2, "combined": 3}                        # §9.9.3.7, UE to network
NO_KEY = 7                                                                 # §9.9.3.21 NAS key set identifier

IEI_GUTI, IEI_LAST_VISITED_TAI, IEI_TAI_LIST, IEI_T3412 = 0x50, 0x52, 0x54, 0x5A   # §8.2 optional IEs
_UE_NETWORK_CAPABILITY = b"\x02\xe0\xe0"   # §9.9.3.34 as LV: EEA0-2, EIA0-2
_T3412_ONE_HOUR = 0x46                     # §9.9.3.16 / TS 24.008 §10.5.7.3: 6 × decihours
_DEFAULT_EBI, _PTI = 5, 1


def _emm(msg_type: int, body: bytes = b"") -> bytes:
    """Plain EMM header (§9.1): security header type 0, PD 7, message type."""
    return bytes((PD_EMM, msg_type)) + body


def _lv(value: bytes) -> bytes:
    return bytes((len(value),)) + value


def _lv_e(value: bytes) -> bytes:
    """§9.9.3.15 ESM message container: two-octet length."""
    return len(value).to_bytes(2, "big") + value


def guti_identity(guti: tuple[str, str, int, int, int]) -> bytes:
    """§9.9.3.12 EPS mobile identity value for a GUTI (mcc, mnc, mmegi, mmec, m_tmsi): type 110, filler 1111."""
    mcc, mnc, mmegi, mmec, m_tmsi = guti
    return (b"\xf6" + plmn_identity(mcc, mnc) + mmegi.to_bytes(2, "big") + bytes((mmec,))
            + m_tmsi.to_bytes(4, "big"))


def _eps_identity(guti=None, imsi=None) -> bytes:
    """§9.9.3.12: a GUTI when there is one, else the IMSI (same coding as TS 24.008 §10.5.1.4)."""
    return _lv(guti_identity(guti) if guti is not None else mobile_identity(imsi=imsi))


def tai_list(tais: list[tuple[str, str, int]]) -> bytes:
    """§9.9.3.33 value: one PLMN → type 00 (PLMN then TACs); several → type 10 (PLMN+TAC each)."""
    plmns = {(mcc, mnc) for mcc, mnc, _ in tais}
    if len(plmns) == 1:
        return (bytes((len(tais) - 1,)) + plmn_identity(*plmns.pop())
                + b"".join(tac.to_bytes(2, "big") for _, _, tac in tais))
    return bytes((0x40 | len(tais) - 1,)) + b"".join(plmn_identity(m, n) + t.to_bytes(2, "big") for m, n, t in tais)


# -- ESM containers: the default bearer rides in the attach (§8.3) -------------------------------------------------

def _pdn_connectivity_request() -> bytes:
    """§8.3.20: EBI 0, PTI, request type initial (1), PDN type IPv4 (1)."""
    return bytes((PD_ESM, _PTI, PDN_CONNECTIVITY_REQUEST, 0x11))


def _activate_default_bearer_request(apn: str, ue_ip: bytes) -> bytes:
    """§8.3.6: EPS QoS (QCI 9), APN (label coded, TS 23.003 §9.1), PDN address (IPv4)."""
    labels = b"".join(_lv(part.encode()) for part in apn.split("."))
    return (bytes((_DEFAULT_EBI << 4 | PD_ESM, _PTI, ACTIVATE_DEFAULT_BEARER_REQUEST)) + b"\x01\x09" + _lv(labels)
            + _lv(b"\x01" + ue_ip))


def _activate_default_bearer_accept() -> bytes:
    """§8.3.4: no IEs needed."""
    return bytes((_DEFAULT_EBI << 4 | PD_ESM, 0, ACTIVATE_DEFAULT_BEARER_ACCEPT))


# -- EMM messages (§8.2) ----------------------------------------------------------------------------------------

def attach_request(imsi: str | None = None, guti: tuple | None = None, attach_type: str = "eps",
                   ksi: int = NO_KEY) -> bytes:
    """§8.2.4: attach type (low nibble) + KSI, identity (GUTI or IMSI), UE network capability, PDN connectivity."""
    return _emm(ATTACH_REQUEST, bytes((ksi << 4 | ATTACH_TYPES[attach_type],)) + _eps_identity(guti, imsi)
                + _UE_NETWORK_CAPABILITY + _lv_e(_pdn_connectivity_request()))


def attach_accept(guti: tuple, tais: list[tuple[str, str, int]], attach_type: str = "eps",
                  apn: str = "internet", ue_ip: bytes = b"\x0a\x2d\x00\x02") -> bytes:
    """§8.2.1: attach result, T3412, TAI list, default bearer activation, and the new GUTI (IEI 0x50)."""
    return _emm(ATTACH_ACCEPT, bytes((ATTACH_TYPES[attach_type], _T3412_ONE_HOUR)) + _lv(tai_list(tais))
                + _lv_e(_activate_default_bearer_request(apn, ue_ip)) + bytes((IEI_GUTI,)) + _lv(guti_identity(guti)))


def attach_complete() -> bytes:
    """§8.2.2: the ESM Activate Default EPS Bearer Context Accept in its container."""
    return _emm(ATTACH_COMPLETE, _lv_e(_activate_default_bearer_accept()))


def identity_request(kind: str = "imsi") -> bytes:
    """§8.2.18: identity type 2 (TS 24.008 §10.5.5.9) in the low nibble."""
    return _emm(IDENTITY_REQUEST, bytes((IDENTITY_TYPES[kind],)))


def identity_response(imsi: str | None = None, imei: str | None = None, imeisv: str | None = None) -> bytes:
    """§8.2.19: mobile identity as TS 24.008 §10.5.1.4."""
    return _emm(IDENTITY_RESPONSE, _lv(mobile_identity(imsi=imsi, imei=imei, imeisv=imeisv)))


def tracking_area_update_request(guti: tuple, update_type: str = "ta_updating",
                                 last_tai: tuple[str, str, int] | None = None, ksi: int = 0) -> bytes:
    """§8.2.29: update type (low nibble) + KSI, old GUTI, optional last visited registered TAI (IEI 0x52)."""
    msg = _emm(TRACKING_AREA_UPDATE_REQUEST, bytes((ksi << 4 | UPDATE_TYPES[update_type],)) + _eps_identity(guti))
    if last_tai is not None:
        mcc, mnc, tac = last_tai
        msg += bytes((IEI_LAST_VISITED_TAI,)) + plmn_identity(mcc, mnc) + tac.to_bytes(2, "big")
    return msg


def tracking_area_update_accept(guti: tuple | None = None, tais: list[tuple[str, str, int]] | None = None,
                                update_result: int = 0) -> bytes:
    """§8.2.26: update result (0 = TA updated), T3412, optional new GUTI and TAI list."""
    msg = _emm(TRACKING_AREA_UPDATE_ACCEPT, bytes((update_result, IEI_T3412, _T3412_ONE_HOUR)))
    if guti is not None:
        msg += bytes((IEI_GUTI,)) + _lv(guti_identity(guti))
    if tais:
        msg += bytes((IEI_TAI_LIST,)) + _lv(tai_list(tais))
    return msg


def tracking_area_update_complete() -> bytes:
    """§8.2.27: acknowledges a TAU Accept that assigned a new GUTI."""
    return _emm(TRACKING_AREA_UPDATE_COMPLETE)


def detach_request_ue(guti: tuple | None = None, imsi: str | None = None, switch_off: bool = True,
                      detach_type: str = "combined", ksi: int = 0) -> bytes:
    """§8.2.11.1 UE originating: detach type (switch-off bit 4, type bits 3-1) + KSI, identity."""
    octet = ksi << 4 | (0x8 if switch_off else 0) | DETACH_TYPES[detach_type]
    return _emm(DETACH_REQUEST, bytes((octet,)) + _eps_identity(guti, imsi))


def detach_accept() -> bytes:
    """§8.2.10.1 (network to UE after a UE-originated detach): no IEs."""
    return _emm(DETACH_ACCEPT)


def service_request(ksi: int, seq: int, short_mac: int) -> bytes:
    """§8.2.25: security header type 12; KSI (3 bits) and sequence number (5 bits), short MAC (2 octets)."""
    return bytes((SECURITY_HEADER_SERVICE_REQUEST << 4 | PD_EMM, (ksi & 7) << 5 | seq & 0x1F)) + \
        short_mac.to_bytes(2, "big")


def extended_service_request(m_tmsi: int, service_type: int = 0, ksi: int = 0) -> bytes:
    """§8.2.15: service type (low nibble, §9.9.3.27: 0 = MO CS fallback) + KSI, M-TMSI as a TMSI mobile identity."""
    return _emm(EXTENDED_SERVICE_REQUEST, bytes((ksi << 4 | service_type,)) + _lv(mobile_identity(tmsi=m_tmsi)))


def guti_reallocation_command(guti: tuple, tais: list[tuple[str, str, int]] | None = None) -> bytes:
    """§8.2.16: the new GUTI, optional TAI list."""
    msg = _emm(GUTI_REALLOCATION_COMMAND, _lv(guti_identity(guti)))
    return msg + bytes((IEI_TAI_LIST,)) + _lv(tai_list(tais)) if tais else msg


def protect(plain: bytes, header_type: int, count: int, mac: bytes | None = None) -> bytes:
    """§9.1 security protected NAS message: header type 1-4 with PD 7, MAC (§9.5), SQN (low 8 bits of COUNT).

    The MAC is arbitrary (a CRC of the message unless given): nobody on the probe side holds the keys.
    """
    if mac is None:
        mac = zlib.crc32(plain, count).to_bytes(4, "big")
    return bytes((header_type << 4 | PD_EMM,)) + mac + bytes((count & 0xFF,)) + plain
