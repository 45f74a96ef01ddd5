"""The transport stack: capture files in, batches of signaling payloads out (``read_payloads``).

    pcap/pcapng -> link -> IPv4/IPv6 -> SCTP -> S1AP (PPID 18, or PPID 0 on port 36412)
                                          -> M3UA (PPID 3 / port 2905) ------------> SCCP -> BSSAP, BSSAP-LE
                                          -> M2UA (PPID 2 / port 2904) -> MTP3 ----^
                                   -> TCP on an IPA port -> IPA stream 0xFD -------^
    pcap/pcapng -> MTP2 (E1 signaling taps, link types 139-141) -> MTP3 ----------^

Which SCCP user data is BSSAP is decided by subsystem (3GPP TS 23.003 §8.1: 254 BSSAP, 250-252 BSSAP-LE); for
connection-oriented data the SSN is the one its CR addressed. When no SSN is known (the CR was before the capture
started) the payload is BSSAP only if it has BSSAP's shape (TS 48.006 §9.3: discriminator 0x00 and a length octet
covering the rest, or 0x01, DLCI and a length octet covering the rest), the test Wireshark applies too.

Every packet-level failure is a counted anomaly (``PayloadBatch.anomalies``); nothing per-packet raises.
Endpoint and association indices are stable for the whole run, so a batch's ``endpoints``/``associations`` list
is the run's list so far.
"""

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from capture import m2ua, m3ua, mtp2, sccp
from capture.errors import Anomalies, DecodeError, Malformed
from capture.ip import PROTO_SCTP, PROTO_TCP, IpLayer
from capture.ipa import IPA_TCP_PORTS, IpaLayer, tcp_ports
from capture.link import LINKTYPE_ETHERNET, ip_start
from capture.mtp3 import POINT_CODE_OCTETS, SI_SCCP, STANDARD_ITU, MtpStandards, point_code, routing_label
from capture.payloads import PROTO_BSSAP, PROTO_BSSAP_LE, PROTO_S1AP, PayloadBatch
from capture.pcap import read_packets
from capture.sccp import CONNECTION_IDLE, SCCP_DT1, SCCP_DT2, SCCP_UDT, SCCP_XUDT
from capture.sctp import SctpLayer

# What an SCTP user message is: IANA payload protocol identifiers, and the well-known ports for PPID 0.
_S1AP, _M3UA, _M2UA = 1, 2, 3
PPIDS = {18: _S1AP, 3: _M3UA, 2: _M2UA}         # 60 (NGAP) and 46 (Diameter) are not signaling we decode
PORTS = {36412: _S1AP, 2905: _M3UA, 2904: _M2UA}  # 38412 (NGAP) is not S1AP

SSN_BSSAP = 254                        # TS 23.003 §8.1: BSSAP on the A interface
SSN_BSSAP_LE = frozenset((250, 251, 252))  # BSC, MSC and SMLC (BSSAP-LE, TS 49.031)


def read_payloads(path, mtp3_standard: str = "auto", batch_frames: int = 65536,
                  connection_idle: float = CONNECTION_IDLE) -> Iterator[PayloadBatch]:
    """Every signaling payload of a capture file (or of a directory of rotated files, read in name order as one
    capture; plain or gzip'd), in batches covering ``batch_frames`` frames each; the last batch carries the
    end-of-file anomalies. An SCCP connection silent for ``connection_idle`` seconds of capture time is dropped."""
    stack = Stack(mtp3_standard, connection_idle)
    frame = 0
    for file in capture_files(path):
        for ts, linktype, data in read_packets(file, stack.anomalies):
            frame += 1
            stack.frame(frame, ts, linktype, data)
            if frame % batch_frames == 0:
                yield stack.batch()
    stack.finish()
    yield stack.batch()


def capture_files(path) -> list[Path]:
    """The file itself, or a directory's visible files in natural name order (capture9 before capture10)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)])
    if not files:
        raise Malformed("pcap.no_files", f"{path}: the directory holds no capture files")
    return files


def bssap_shaped(data) -> bool:
    """TS 48.006 §9.3 distribution layer: BSSMAP 0x00 + length, or DTAP 0x01 + DLCI + length, covering the rest.

    A RANAP initiating message can look like BSSMAP (0x00, then a procedure code that happens to equal the
    length); its criticality octet 0x40 (ignore) after it, with anything but 0x01 next, tells it apart."""
    n = len(data)
    if n < 3:
        return False
    if data[0] == 0x00:
        return data[1] == n - 2 and not (data[2] == 0x40 and (n < 4 or data[3] != 0x01))
    return data[0] == 0x01 and data[2] == n - 3


class Stack:
    """The layers' state for one run, and the batch being filled: ``frame()`` per captured frame, ``batch()`` to take
    what has been emitted, ``finish()`` at the end. Files (``read_payloads``) and live sources (capture.live) feed
    one the same way."""

    def __init__(self, mtp3_standard: str, connection_idle: float = CONNECTION_IDLE):
        self.anomalies = Anomalies()          # the run's counts; each batch gets what was added since the last
        self._reported = Anomalies()
        self.mtp = MtpStandards(mtp3_standard)
        self.ip = IpLayer(frozenset((PROTO_SCTP, PROTO_TCP)), self.anomalies)
        self.sctp = SctpLayer(_accept, self.anomalies)
        self.ipa = IpaLayer(self.anomalies)
        self.connections = sccp.Connections(self.anomalies, connection_idle)
        self.segments = sccp.Segments(self.anomalies)
        self.endpoints: list[str] = []
        self.associations: list[str] = []
        self._endpoint_index: dict[tuple, int] = {}
        self._association_index: dict[tuple, int] = {}
        self._flows: dict[tuple, tuple[int, int, int]] = {}
        self._reset()

    def _reset(self) -> None:
        self._rows: list[tuple] = []  # one tuple per payload, in PayloadBatch column order
        self._data = bytearray()

    # -- per frame ---------------------------------------------------------------------------------------------
    def frame(self, frame: int, ts: float, linktype: int, data: memoryview) -> None:
        try:
            if (linktype == LINKTYPE_ETHERNET and len(data) >= 46 and data[12] == 0x08 and data[13] == 0x00
                    and data[14] == 0x45 and data[23] == PROTO_SCTP and not (data[20] & 0x3F or data[21])):
                # Most of a probe's frames: Ethernet, IPv4 without options or fragmentation, SCTP. Taken without
                # the general link and IP walk (the same result in four calls fewer); anything odd goes below.
                total = (data[16] << 8) | data[17]
                if total >= 20:
                    self._sctp(frame, ts, bytes(data[26:30]), bytes(data[30:34]), data[34:min(14 + total, len(data))])
                    return
            if linktype in mtp2.MTP_LINKTYPES:
                self._mtp2_frame(frame, ts, linktype, data)
                return
            at = ip_start(linktype, data)
            if at is None:
                return
            datagram = self.ip.packet(data, at, ts)
            if datagram is None:
                return
            proto, src, dst, payload = datagram
            if proto == PROTO_SCTP:
                self._sctp(frame, ts, src, dst, payload)
            else:
                sport, dport = tcp_ports(payload)
                if sport in IPA_TCP_PORTS or dport in IPA_TCP_PORTS:
                    for sport, dport, message in self.ipa.segment(src, dst, payload):
                        try:
                            self._ipa_message(frame, ts, src, sport, dst, dport, message)
                        except DecodeError as err:
                            self.anomalies.count(err)
        except DecodeError as err:
            self.anomalies.count(err)

    def _sctp(self, frame, ts, src, dst, payload) -> None:
        messages = self.sctp.packet(src, dst, payload, ts)
        if messages:  # every message of a packet has the packet's ports
            a, b, assoc = self._flow(src, messages[0][1], dst, messages[0][2])
            for what, _, _, _, message in messages:
                try:
                    self._sctp_message(frame, ts, what, a, b, assoc, message)
                except DecodeError as err:
                    self.anomalies.count(err)

    def _sctp_message(self, frame, ts, what, a, b, assoc, message) -> None:
        if what == _S1AP:
            self._emit(frame, ts, PROTO_S1AP, assoc, a, b, -1, 0, message)
        elif what == _M3UA:
            pd = m3ua.protocol_data(message)
            if pd is not None and pd.si == SI_SCCP:
                standard = self.mtp.known(assoc) or self.mtp.of(assoc, lambda std: _sccp_parses(pd.user_data, std))
                self._sccp(frame, ts, assoc, self._pc_endpoint(pd.opc, standard), self._pc_endpoint(pd.dpc, standard),
                           pd.user_data, standard)
        else:
            found = m2ua.msu(message)
            if found is not None:
                interface, msu = found
                self._msu(frame, ts, assoc, (assoc, interface), msu)

    def _mtp2_frame(self, frame, ts, linktype, data) -> None:
        found = mtp2.msu(linktype, data)
        if found is not None:
            link, at = found
            assoc = self._link_association(f"{'mtp3' if linktype == mtp2.LINKTYPE_MTP3 else 'mtp2'}:link{link}")
            self._msu(frame, ts, assoc, ("mtp", assoc), data[at:])

    def _msu(self, frame, ts, assoc, link, msu) -> None:
        """An MTP3 MSU of ``link`` (an M2UA interface or an MTP2 signaling link): SCCP by its routing label."""
        standard = self.mtp.known(link) or self.mtp.of(link, lambda std: _label_parses(msu, std))
        label = routing_label(msu, standard)
        if label.si == SI_SCCP:
            self._sccp(frame, ts, assoc, self._pc_endpoint(label.opc, standard),
                       self._pc_endpoint(label.dpc, standard), label.user_data, standard)

    def _ipa_message(self, frame, ts, src, sport, dst, dport, message) -> None:
        a, b, assoc = self._flow(src, sport, dst, dport)
        self._sccp(frame, ts, assoc, a, b, memoryview(message), STANDARD_ITU)

    def _sccp(self, frame, ts, assoc, src, dst, data, standard) -> None:
        msg = sccp.parse(data, POINT_CODE_OCTETS[standard])
        if msg.type in (SCCP_UDT, SCCP_XUDT):
            conn_id, ssn, payload = -1, sccp.subsystem(msg), msg.data
            if msg.segmentation is not None:
                payload = self.segments.add(msg, src, ts)
        else:
            conn = self.connections.track(msg, src, dst, ts)
            if conn is None:
                return
            conn_id, ssn, payload = conn.id, conn.ssn, msg.data
            if msg.type in (SCCP_DT1, SCCP_DT2):
                payload = self.connections.reassemble(conn, dst, msg)
        if not payload:
            return
        if ssn == SSN_BSSAP:
            proto = PROTO_BSSAP
        elif ssn in SSN_BSSAP_LE:
            proto = PROTO_BSSAP_LE
        elif not ssn and bssap_shaped(payload):
            proto = PROTO_BSSAP
        else:
            return
        self._emit(frame, ts, proto, assoc, src, dst, conn_id, msg.type, payload)

    def _emit(self, frame, ts, proto, assoc, src, dst, conn, sccp_type, payload) -> None:
        self._rows.append((frame, ts, proto, assoc, src, dst, conn, sccp_type, len(self._data), len(payload)))
        self._data += payload

    # -- run-wide indices --------------------------------------------------------------------------------------
    def _flow(self, src: bytes, sport: int, dst: bytes, dport: int) -> tuple[int, int, int]:
        """(source endpoint, destination endpoint, association) of a transport flow direction."""
        key = (src, sport, dst, dport)
        found = self._flows.get(key)
        if found is None:
            a, b = self._ip_endpoint(src, sport), self._ip_endpoint(dst, dport)
            found = self._flows[key] = (a, b, self._association(a, b))
        return found

    def _ip_endpoint(self, addr: bytes, port: int) -> int:
        key = (addr, port)
        index = self._endpoint_index.get(key)
        if index is None:
            if len(addr) == 4:
                name = f"{socket.inet_ntop(socket.AF_INET, addr)}:{port}"
            else:
                name = f"[{socket.inet_ntop(socket.AF_INET6, addr)}]:{port}"
            index = self._endpoint_index[key] = len(self.endpoints)
            self.endpoints.append(name)
        return index

    def _pc_endpoint(self, pc: int, standard: str) -> int:
        key = ("pc", pc, standard)
        index = self._endpoint_index.get(key)
        if index is None:
            index = self._endpoint_index[key] = len(self.endpoints)
            self.endpoints.append(f"pc:{point_code(pc, standard)}")
        return index

    def _link_association(self, name: str) -> int:
        """An association that is a signaling link with no IP endpoints, e.g. "mtp2:link0" of an E1 tap."""
        key = ("link", name)
        index = self._association_index.get(key)
        if index is None:
            index = self._association_index[key] = len(self.associations)
            self.associations.append(name)
        return index

    def _association(self, a: int, b: int) -> int:
        key = (a, b) if a < b else (b, a)
        index = self._association_index.get(key)
        if index is None:
            index = self._association_index[key] = len(self.associations)
            self.associations.append(f"{self.endpoints[a]}-{self.endpoints[b]}")
        return index

    # -- batches -----------------------------------------------------------------------------------------------
    def finish(self) -> None:
        self.ip.finish()
        self.sctp.finish()
        self.segments.finish()

    def batch(self) -> PayloadBatch:
        fresh = self.anomalies - self._reported
        self._reported = Anomalies(self.anomalies)
        columns = list(zip(*self._rows)) or [()] * len(_COLUMNS)
        out = PayloadBatch(**{name: np.array(values, dtype=dtype) for (name, dtype), values in zip(_COLUMNS, columns)},
                           data=bytes(self._data), endpoints=list(self.endpoints),
                           associations=list(self.associations), anomalies=Anomalies(fresh))
        self._reset()
        return out


_COLUMNS = (("frame", np.uint32), ("ts", np.float64), ("proto", np.uint8), ("assoc", np.int32), ("src", np.int32),
            ("dst", np.int32), ("conn", np.int64), ("sccp_type", np.uint8), ("offset", np.int64),
            ("length", np.int32))


def _accept(ppid: int, sport: int, dport: int) -> int:
    kind = PPIDS.get(ppid)
    if kind is None and ppid == 0:
        kind = PORTS.get(dport) or PORTS.get(sport)
    return kind or 0


def _sccp_parses(data, standard: str) -> bool:
    """Whether ``data`` is a well-formed SCCP message with the point-code size of ``standard`` in its addresses."""
    try:
        sccp.parse(data, POINT_CODE_OCTETS[standard])
    except DecodeError:
        return False
    return True


def _label_parses(msu, standard: str) -> bool:
    """Whether an MSU read with ``standard``'s routing label carries a well-formed SCCP message."""
    try:
        label = routing_label(msu, standard)
    except DecodeError:
        return False
    return label.si == SI_SCCP and _sccp_parses(label.user_data, standard)
