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
from collections.abc import Iterable, Iterator
from pathlib import Path

import numba
import numpy as np

from capture import m2ua, m3ua, mtp2, sccp
from capture.errors import Anomalies, DecodeError, Malformed
from capture.ip import PROTO_SCTP, PROTO_TCP, IpLayer
from capture.ipa import IPA_TCP_PORTS, IpaLayer, tcp_ports
from capture.link import LINKTYPE_ETHERNET, ip_start
from capture.mtp3 import POINT_CODE_OCTETS, SI_SCCP, STANDARD_ITU, MtpStandards, point_code, routing_label
from capture.payloads import PROTO_BSSAP, PROTO_BSSAP_LE, PROTO_S1AP, PayloadBatch
from capture.fastpath import (FAST, SLOW, WHAT_M2UA, WHAT_S1AP, Scan, crc32s, firsts, gather, lookup, sccp_fields,
                              sweeps)
from capture.pcap import Frames, read_frames, read_packets
from capture.sccp import CONNECTION_IDLE, SCCP_DT1, SCCP_DT2, SCCP_UDT, SCCP_XUDT
from capture.sctp import DATA_FRAGMENT, FLAG_U, MAX_DIRECTIONS, WHOLE, SctpLayer

# What an SCTP user message is: IANA payload protocol identifiers, and the well-known ports for PPID 0.
_S1AP, _M3UA, _M2UA = 1, 2, 3
PPIDS = {18: _S1AP, 3: _M3UA, 2: _M2UA}         # 60 (NGAP) and 46 (Diameter) are not signaling we decode
PORTS = {36412: _S1AP, 2905: _M3UA, 2904: _M2UA}  # 38412 (NGAP) is not S1AP

SSN_BSSAP = 254                        # TS 23.003 §8.1: BSSAP on the A interface
SSN_BSSAP_LE = frozenset((250, 251, 252))  # BSC, MSC and SMLC (BSSAP-LE, TS 49.031)
SHORT_RUN = 32  # FAST/SKIP frames between two SLOW ones below which Stack.frames takes them one by one
_PROTO_OF_SSN = np.zeros(256, np.int64)   # the payload protocol by SSN, for columns of them
_PROTO_OF_SSN[SSN_BSSAP], _PROTO_OF_SSN[list(SSN_BSSAP_LE)] = PROTO_BSSAP, PROTO_BSSAP_LE


def read_payloads(path, mtp3_standard: str = "auto", batch_frames: int = 65536,
                  connection_idle: float = CONNECTION_IDLE, fast: bool = True) -> Iterator[PayloadBatch]:
    """Every signaling payload of a capture file (or of a directory of rotated files, read in name order as one
    capture; plain or gzip'd), in batches covering ``batch_frames`` frames each; the last batch carries the
    end-of-file anomalies. An SCCP connection silent for ``connection_idle`` seconds of capture time is dropped.

    Blocks of frames go through the compiled fast path (``Stack.frames``); ``fast=False`` feeds ``Stack.frame``
    one packet at a time instead, as the live sources do: the reference the fast path is tested and timed against."""
    stack = Stack(mtp3_standard, connection_idle)
    frame = 0
    for file in capture_files(path):
        if not fast:
            for ts, linktype, data in read_packets(file, stack.anomalies):
                frame += 1
                stack.frame(frame, ts, linktype, data)
                if frame % batch_frames == 0:
                    yield stack.batch()
            continue
        for frame in stack.blocks(read_frames(file, stack.anomalies), frame, batch_frames):
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
        self._pc_ends = numba.typed.Dict.empty(numba.types.int64, numba.types.int64)  # _SccpRead's view of them
        self._association_index: dict[tuple, int] = {}
        self._flows: dict[tuple, tuple[int, int, int]] = {}
        self._reset()

    def _reset(self) -> None:
        self._rows: list[tuple] = []  # one tuple per payload, in PayloadBatch column order
        self._keys: list[int] = []    # its place: frame << 9 | the chunk's order in a FAST frame
        self._data = bytearray()
        self._fast: list[tuple] = []  # rows of FAST frames as columns: keys, then _COLUMNS but offset, then data
        self._key = 0

    # -- blocks of frames (the compiled fast path) ----------------------------------------------------------------
    def blocks(self, blocks: Iterable[Frames], numbered: int, batch_frames: int) -> Iterator[int]:
        """Feed blocks of frames (capture.pcap.read_frames) through ``frames``, numbering on after ``numbered``:
        yields the count of frames fed so far after each part of a block, a part ending wherever the count reaches
        a multiple of ``batch_frames`` (where the caller takes a batch)."""
        for frames in blocks:
            scan = Scan(frames)
            at = 0
            while at < len(frames):
                end = min(len(frames), at + batch_frames - numbered % batch_frames)
                self.frames(numbered + 1 - at, frames, scan, at, end)
                numbered += end - at
                at = end
                yield numbered

    def frames(self, base: int, frames: Frames, scan: Scan, lo: int, hi: int) -> None:
        """Frames ``lo``..``hi`` of a block, frame ``i`` numbered ``base + i``: SLOW ones through ``frame()``, the
        runs of others between them through ``_run``, in frame order; a run shorter than ``SHORT_RUN`` frames (damaged
        or unusual traffic all around) through ``frame()`` too, which is then cheaper than ``_run``'s set-up."""
        at = lo
        for f in (lo + np.flatnonzero(scan.cls[lo:hi] == SLOW)).tolist() + [hi]:
            if f - at >= SHORT_RUN:
                self._run(base, frames, scan, at, f)
                at = f
            self._frame_by_frame(base, frames, at, min(f + 1, hi))
            at = f + 1

    def _frame_by_frame(self, base: int, frames: Frames, lo: int, hi: int) -> None:
        view = memoryview(frames.data)
        for g in range(lo, hi):
            start = int(frames.start[g])
            self.frame(base + g, float(frames.ts[g]), int(frames.linktype[g]), view[start:start + int(frames.length[g])])

    def _run(self, base: int, frames: Frames, scan: Scan, lo: int, hi: int) -> None:
        """SKIP and FAST frames: the state ``frame()`` would have updated for them, and their payloads."""
        sctp = self.sctp
        c0, c1 = np.searchsorted(scan.c_frame, (lo, hi))
        chunks = np.arange(c0, c1)
        fragment = scan.c_flags[chunks] & 0x03 != 0x03
        if fragment.any() and len(sctp._directions) + int(
                (firsts(scan.direction[scan.c_frame[chunks]], len(scan.directions)) >= 0).sum()) > MAX_DIRECTIONS:  # directions evicted mid-run would lose fragments _fresh saw: frame by frame
            self._frame_by_frame(base, frames, lo, hi)
            return
        fast = lo + np.flatnonzero(scan.cls[lo:hi] == FAST)
        swept = sweeps(frames.ts[fast], sctp._swept, 1.0)  # capture.sctp's sweep as of each SCTP packet
        applied = sctp._swept
        if c0 != c1:
            applied = self._chunks(base, frames, scan, chunks, fragment, fast, swept)
        final = swept[-1] if len(swept) else sctp._swept
        if final != applied and sctp._reassembling:  # a sweep after the run's last fragment: the latest decides
            sctp._sweep(final)
        sctp._swept = final

    def _chunks(self, base, frames, scan, chunks, fragment, fast, swept) -> float:
        """The accepted DATA chunks of a run; returns the time of the last timeout sweep applied."""
        sctp = self.sctp
        view = memoryview(frames.data)
        fragments = np.flatnonzero(fragment)
        fresh = self._fresh(scan, chunks, fragment)
        applied, whole = sctp._swept, {}
        if len(fragments):
            applied, whole = self._reassemble(frames, scan, chunks[fragments[fresh[fragments]]], fast, swept)
            fresh[fragments] = False
            fresh[np.searchsorted(chunks, list(whole))] = True
        chunks = chunks[fresh]
        if not len(chunks):
            return applied
        frame, flow, what = scan.c_frame[chunks], scan.flow[scan.c_frame[chunks]], scan.c_what[chunks]
        # Endpoints and associations are numbered as they first appear: walk the chunks that can create them (a
        # flow not seen before; M3UA and M2UA, whose point codes are endpoints too; a message completed by a
        # fragment) in order. SCCP over M3UA on a flow, point-code layout and point codes already known is read by
        # the compiled pass instead (_SccpRead), in segments between the chunks walked here.
        first = firsts(flow, len(scan.flows))
        new = [int(first[f]) for f in np.flatnonzero(first >= 0).tolist() if scan.flows[f] not in self._flows]
        completed = np.isin(chunks, list(whole)) if whole else np.zeros(len(chunks), bool)
        walked = (scan.c_opc[chunks] >= 0) | (what == WHAT_M2UA) | (completed & (what != WHAT_S1AP))
        walked[new] = True
        walk = np.flatnonzero(walked)
        if len(walk):
            read, at = _SccpRead(self, base, frames, scan, chunks[walk]), 0
            while at < len(read):
                stop = read.next_walked(self, at)
                if stop > at:
                    read.track(self, at, stop)
                if stop < len(read):
                    c = int(chunks[walk[stop]])
                    f = int(scan.c_frame[c])
                    self._walk(scan, view, base + f, float(frames.ts[f]), int(scan.flow[f]), int(scan.c_what[c]),
                               (base + f) << 9 | int(scan.c_order[c]), int(scan.c_opc[c]), int(scan.c_dpc[c]),
                               int(scan.c_user[c]), int(scan.c_user_len[c]), int(scan.c_start[c]),
                               int(scan.c_len[c]), whole.get(c))
                at = stop + 1
            read.emit(self)
        for i in np.flatnonzero(completed & ~walked).tolist():  # S1AP completed by a fragment; its flow is known now
            c = int(chunks[i])
            f = int(scan.c_frame[c])
            self._walk(scan, view, base + f, float(frames.ts[f]), int(scan.flow[f]), WHAT_S1AP,
                       (base + f) << 9 | int(scan.c_order[c]), -1, -1, 0, 0, 0, 0, whole[c])
        s1ap = (what == WHAT_S1AP) & ~completed
        if s1ap.any():
            chunks, frame = chunks[s1ap], frame[s1ap]
            known = np.zeros((len(scan.flows), 3), np.int32)
            for f in np.flatnonzero(np.bincount(flow[s1ap], minlength=len(scan.flows))).tolist():
                known[f] = self._flows[scan.flows[f]]
            known = known[flow[s1ap]]
            n = len(chunks)
            self._fast.append(((base + frame) << 9 | scan.c_order[chunks], base + frame, frames.ts[frame],
                               np.full(n, PROTO_S1AP), known[:, 2], known[:, 0], known[:, 1], np.full(n, -1),
                               np.zeros(n), scan.c_len[chunks],
                               gather(scan.buf, scan.c_start[chunks], scan.c_len[chunks])))
        return applied

    def _known(self) -> tuple[int, int, int]:
        """How much the stack knows that an ``_SccpRead``'s readiness depends on (each only grows)."""
        return len(self._flows), len(self.endpoints), self.mtp.learnt()

    def _reassemble(self, frames, scan, chunks, fast, swept) -> tuple[float, dict]:
        """Fresh DATA fragments of a run, in order, stored as ``SctpLayer.packet`` stores them, each after the
        timeout sweep the per-frame path would have run by its packet. Returns the time of the last sweep applied
        and {chunk: the message its fragment completed}."""
        sctp, whole, applied = self.sctp, {}, self.sctp._swept
        frame = scan.c_frame[chunks]
        for c, at, f, flags, tsn, stream, ssn, start, length in zip(
                chunks.tolist(), np.searchsorted(fast, frame).tolist(), frame.tolist(),
                scan.c_flags[chunks].tolist(), scan.c_tsn[chunks].tolist(), scan.c_stream[chunks].tolist(),
                scan.c_ssn[chunks].tolist(), scan.c_start[chunks].tolist(), scan.c_len[chunks].tolist()):
            if swept[at] != applied:  # sweeps since the last fragment: the latest removes what they all would
                applied = float(swept[at])
                sctp._sweep(applied)
            ppid = int.from_bytes(frames.data[start - 4:start], "big")
            done = sctp._store(sctp._direction(*scan.directions[scan.direction[f]]), (stream, ssn, flags & FLAG_U),
                               tsn, flags, memoryview(frames.data)[start:start + length], ppid, float(frames.ts[f]))
            if done is not None:
                whole[c] = done[0]
        return applied, whole

    def _walk(self, scan, view, frame, ts, flow, what, key, opc, dpc, user, user_len, start, length,
              message=None) -> None:
        """One chunk of a FAST frame that ``_run`` hands to the Python layers above SCTP (``message``: the user
        message a fragment completed)."""
        a, b, assoc = self._flow(*scan.flows[flow])
        if what == WHAT_S1AP and message is None:
            return
        self._key = key
        try:
            if message is not None:
                self._sctp_message(frame, ts, what, a, b, assoc, message)
            elif opc >= 0:
                self._m3ua_sccp(frame, ts, assoc, opc, dpc, view[user:user + user_len])
            elif what == WHAT_M2UA:
                self._sctp_message(frame, ts, what, a, b, assoc, view[start:start + length])
        except DecodeError as err:
            self.anomalies.count(err)

    def _fresh(self, scan: Scan, chunks: np.ndarray, fragment: np.ndarray) -> np.ndarray:
        """Which chunks are not retransmissions, through the TSN memory ``SctpLayer.packet`` uses, in chunk order: the
        run's directions created first, as they first appear (as capture.sctp creates them), then one compiled pass;
        chunk by chunk where directions would be evicted mid-run."""
        sctp = self.sctp
        tsn = scan.c_tsn[chunks]
        columns = (tsn, np.where(fragment, DATA_FRAGMENT, WHOLE), np.where(fragment, scan.c_flags[chunks], 0).astype(
            np.int64), scan.c_stream[chunks], scan.c_ssn[chunks], np.where(fragment, tsn, 0),
            crc32s(scan.buf, scan.c_start[chunks], scan.c_len[chunks]))
        directions = scan.direction[scan.c_frame[chunks]]
        first = firsts(directions, len(scan.directions))
        ids = np.flatnonzero(first >= 0)
        if len(sctp._directions) + len(ids) > MAX_DIRECTIONS:
            fresh = np.ones(len(chunks), bool)
            for i, (d, *chunk) in enumerate(zip(directions.tolist(), *(c.tolist() for c in columns))):
                fresh[i] = sctp.seen.fresh(sctp._direction(*scan.directions[d]).slot, *chunk)
            return self._count_duplicates(fresh)
        slots = np.empty(len(scan.directions), np.int64)
        for d in ids[np.argsort(first[ids])].tolist():
            slots[d] = sctp._direction(*scan.directions[d]).slot
        return self._count_duplicates(sctp.seen.fresh_many(slots[directions], *columns))

    def _count_duplicates(self, fresh: np.ndarray) -> np.ndarray:
        """Count the chunks ``fresh`` rejects as ``sctp.duplicate_tsn``, as SctpLayer.packet does."""
        duplicates = len(fresh) - int(fresh.sum())
        if duplicates:
            self.anomalies["sctp.duplicate_tsn"] += duplicates
        return fresh

    # -- per frame ---------------------------------------------------------------------------------------------
    def frame(self, frame: int, ts: float, linktype: int, data: memoryview) -> None:
        self._key = frame << 9
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
                self._m3ua_sccp(frame, ts, assoc, pd.opc, pd.dpc, pd.user_data)
        else:
            found = m2ua.msu(message)
            if found is not None:
                interface, msu = found
                self._msu(frame, ts, assoc, (assoc, interface), msu)

    def _m3ua_sccp(self, frame, ts, assoc, opc, dpc, user_data) -> None:
        """The SCCP user data of an M3UA DATA message, its point codes read with the association's layout."""
        standard = self.mtp.known(assoc) or self.mtp.of(assoc, lambda std: _sccp_parses(user_data, std))
        self._sccp(frame, ts, assoc, self._pc_endpoint(opc, standard), self._pc_endpoint(dpc, standard), user_data,
                   standard)

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
                payload = self.connections.reassemble(conn, dst, msg.more, msg.data)
        self._sccp_emit(frame, ts, assoc, src, dst, conn_id, ssn, msg.type, payload)

    def _sccp_emit(self, frame, ts, assoc, src, dst, conn_id, ssn, sccp_type, payload) -> None:
        """SCCP user data, emitted if its subsystem (unknown: its shape) makes it BSSAP or BSSAP-LE."""
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
        self._emit(frame, ts, proto, assoc, src, dst, conn_id, sccp_type, payload)

    def _emit(self, frame, ts, proto, assoc, src, dst, conn, sccp_type, payload) -> None:
        self._rows.append((frame, ts, proto, assoc, src, dst, conn, sccp_type, len(self._data), len(payload)))
        self._keys.append(self._key)
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
            index = self._endpoint_index[key] = self._pc_ends[POINT_CODE_OCTETS[standard] << 32 | pc] = \
                len(self.endpoints)
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
        rows = list(zip(*self._rows)) or [()] * len(_COLUMNS)
        columns = {name: np.array(values, dtype=dtype) for (name, dtype), values in zip(_COLUMNS, rows)}
        data = bytes(self._data)
        if self._fast:
            columns, data = self._merge(columns, data)
        out = PayloadBatch(**columns, data=data, endpoints=list(self.endpoints), associations=list(self.associations),
                           anomalies=Anomalies(fresh))
        self._reset()
        return out

    def _merge(self, columns: dict, data: bytes) -> tuple[dict, bytes]:
        """The payloads ``frame()`` emitted and the fast path's S1AP columns, in frame and chunk order."""
        keys, *fast, payloads = (np.concatenate(c) for c in zip(*self._fast))
        fast = dict(zip(("frame", "ts", "proto", "assoc", "src", "dst", "conn", "sccp_type", "length"), fast))
        fast["offset"] = len(data) + np.cumsum(fast["length"]) - fast["length"]
        order = np.argsort(np.concatenate((np.array(self._keys, np.int64), keys)), kind="stable")
        merged = {name: np.concatenate((columns[name], fast[name])).astype(dtype)[order] for name, dtype in _COLUMNS}
        source = np.concatenate((np.frombuffer(data, np.uint8), payloads))
        out = gather(source, merged["offset"], merged["length"].astype(np.int64))
        merged["offset"] = np.cumsum(merged["length"], dtype=np.int64) - merged["length"]
        return merged, out.tobytes()


class _SccpRead:
    """The chunks of a run that ``Stack._chunks`` walks, in order, with SCCP over M3UA among them read by the
    compiled pass (``sccp_fields``): a message is *ready* once its flow, its association's point-code layout and
    both point-code endpoints are known; ready ones go through the connection tracker (an M-bit sequence through its
    reassembly) a segment at a time, the others are walked in Python. What the stack knows only grows, so a message
    not ready is looked at again only when the walk comes near it, and parsed again only once its layout is known
    (``next_walked``); the payload columns of the ready ones are emitted in bulk at the end (``emit``)."""

    def __init__(self, stack: "Stack", base: int, frames: Frames, scan: Scan, chunks: np.ndarray):
        frame = scan.c_frame[chunks]
        self.frame = base + frame
        self.keys = self.frame << 9 | scan.c_order[chunks]
        self.ts = frames.ts[frame]
        self.buf = scan.buf
        self.view = memoryview(frames.data)
        self.user, self.user_len = scan.c_user[chunks], scan.c_user_len[chunks]
        opc = scan.c_opc[chunks]
        n = len(chunks)
        # Per flow of the block (association, point-code octets: 0 while its layout is unknown), as far as known.
        self.flow = scan.flow[frame]
        self._flow_keys = scan.flows
        self._flow_assoc = np.full(len(scan.flows), -1, np.int64)
        self._flow_octets = np.zeros(len(scan.flows), np.int64)
        self._unknown = np.flatnonzero(np.bincount(self.flow, minlength=len(scan.flows))).tolist()
        self.opc, self.dpc = opc, scan.c_dpc[chunks]  # c_dpc is set for SCCP over M3UA only
        self._known = None
        self.octets = np.zeros(n, np.int64)
        (self.ok, self.kind, src_ref, dst_ref, ssn, called_ssn, self.data, self.data_len, self.more,
         self.shaped) = sccp_fields(self.buf, self.user, self.user_len, self.octets)  # nothing read yet: octets 0
        self.assoc, self.src, self.dst = (np.full(n, -1, np.int64) for _ in range(3))
        self.ready = np.zeros(n, np.bool_)
        self.columns = (self.kind, self.src, self.dst, src_ref, dst_ref, ssn, called_ssn, self.ts, self.more)
        # what the tracker says: connection id, SSN (the message's own where it found none), slot, M-bit sequence
        self.tracked = (np.full(n, -1, np.int64), ssn.copy(), np.full(n, -1, np.int64), np.zeros(n, np.bool_))
        self.lengths = self.data_len.copy()
        m3ua = np.flatnonzero(opc >= 0)
        self._always = np.flatnonzero(opc < 0)  # never SCCP the compiled pass reads: always walked
        self._pending = m3ua[~self._check(stack, m3ua)]  # not ready as of the run's start
        self._checked = 0  # pending[:checked] were looked at since the stack last learnt something

    def __len__(self) -> int:
        return len(self.ready)

    def next_walked(self, stack: "Stack", at: int) -> int:
        """The first message from ``at`` on that is not ready (the run's length: none), the pending ones before it
        made ready; looks at pending messages in slices that double while they turn out ready."""
        limit = self._always[np.searchsorted(self._always, at):][:1]
        limit = int(limit[0]) if len(limit) else len(self)
        pending = self._pending
        i, step = int(np.searchsorted(pending, at)), 64
        while i < len(pending) and pending[i] < limit:
            if stack._known() != self._known:
                self._checked = i
            rows = pending[i:i + step]
            rows = rows[:np.searchsorted(rows, limit)]
            if i + len(rows) <= self._checked:
                ready = self.ready[rows]
            else:
                ready = self._check(stack, rows)
                self._checked = i + len(rows)
            if not ready.all():
                return int(rows[np.argmin(ready)])
            i, step = i + len(rows), 2 * step
        return limit

    def _check(self, stack: "Stack", rows: np.ndarray) -> np.ndarray:
        """Whether messages ``rows`` are ready as the stack is now: the messages whose layout became known parsed
        (``sccp_fields``), association and endpoints looked up."""
        self._learn(stack)
        octets = self._flow_octets[self.flow[rows]]
        changed = rows[octets != self.octets[rows]]
        if len(changed):
            self.octets[changed] = self._flow_octets[self.flow[changed]]
            fields = sccp_fields(self.buf, self.user[changed], self.user_len[changed], self.octets[changed])
            columns = self.columns
            for column, values in zip((self.ok, self.kind, columns[3], columns[4], columns[5], columns[6],
                                       self.data, self.data_len, self.more, self.shaped), fields):
                column[changed] = values
            self.tracked[1][changed] = columns[5][changed]
            self.lengths[changed] = self.data_len[changed]
        self.assoc[rows] = self._flow_assoc[self.flow[rows]]
        octets <<= 32
        src = lookup(stack._pc_ends, np.where(octets > 0, octets | self.opc[rows], -1))
        dst = lookup(stack._pc_ends, np.where(octets > 0, octets | self.dpc[rows], -1))
        self.src[rows], self.dst[rows] = src, dst
        ready = self.ready[rows] = self.ok[rows] & (src >= 0) & (dst >= 0)
        return ready

    def _learn(self, stack: "Stack") -> None:
        """What the stack learnt since the last look: associations and point-code layouts of the run's flows (the
        point-code endpoints are looked up in ``Stack._pc_ends`` by ``_check``)."""
        known = stack._known()
        if known == self._known:
            return
        self._known = known
        still = []
        for f in self._unknown:
            found = stack._flows.get(self._flow_keys[f])
            standard = None if found is None else stack.mtp.known(found[2])
            if found is not None:
                self._flow_assoc[f] = found[2]
            if standard is None:
                still.append(f)
            else:
                self._flow_octets[f] = POINT_CODE_OCTETS[standard]
        self._unknown = still

    def track(self, stack: "Stack", lo: int, hi: int) -> None:
        """Messages ``lo``..``hi`` (all ready): connection-oriented ones through the compiled tracker at once, then
        the DT1s of M-bit sequences through its reassembly, in order."""
        connections = stack.connections
        connections.track_many(self.columns, lo, hi, self.tracked)
        conn, ssn, slot, join = self.tracked
        for i in (lo + np.flatnonzero(join[lo:hi])).tolist():  # joined, emitted once whole
            at, size = int(self.data[i]), int(self.lengths[i])
            self.lengths[i] = -1
            found = sccp.Connection(int(conn[i]), int(ssn[i]), int(slot[i]))
            try:
                payload = connections.reassemble(found, int(self.dst[i]), bool(self.more[i]), self.view[at:at + size])
            except DecodeError as err:
                stack.anomalies.count(err)
                continue
            stack._key = int(self.keys[i])
            stack._sccp_emit(int(self.frame[i]), float(self.ts[i]), int(self.assoc[i]), int(self.src[i]),
                             int(self.dst[i]), found.id, found.ssn, SCCP_DT1, payload)

    def emit(self, stack: "Stack") -> None:
        """The payload columns of the ready messages (all tracked once the walk is through)."""
        mine = np.flatnonzero(self.ready)
        if not len(mine):
            return
        ssn = self.tracked[1][mine]
        lengths = self.lengths[mine]
        proto = np.where((ssn == 0) & self.shaped[mine], PROTO_BSSAP, _PROTO_OF_SSN[ssn])
        keep = mine[(proto > 0) & (lengths > 0)]
        if len(keep):
            proto = proto[(proto > 0) & (lengths > 0)]
            stack._fast.append((self.keys[keep], self.frame[keep], self.ts[keep], proto, self.assoc[keep],
                                self.src[keep], self.dst[keep], self.tracked[0][keep],
                                self.kind[keep], self.data_len[keep],
                                gather(self.buf, self.data[keep], self.data_len[keep])))


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
