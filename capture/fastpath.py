"""Compiled framing: the per-frame work of the transport stack as Numba loops over whole blocks of a capture.

Two kinds of kernel. The record indexers (``index_pcap``, ``index_pcapng``, ``index_tpacket3``) walk classic pcap
records, pcapng packet blocks of a read buffer and the packets of an AF_PACKET ring block into columns (start,
length, timestamp, link type or device type), stopping wherever capture.pcap must look itself (a section or
interface block, damage, the end of the buffer). ``scan_frames`` walks
the frames of such a block: link layer (Ethernet with VLAN/QinQ tags, SLL, SLL2, null/loopback, raw IP), IPv4
without fragmentation, IPv6 without extension headers, the SCTP common header and chunk walk; it emits one row per
DATA chunk the stack accepts (by PPID and ports, as ``capture.stack._accept``) with its transport context.

Each frame gets a class. ``SKIP``: nothing the stack reads (no IP, another transport protocol): the Python path
would touch no state either. ``FAST``: an SCTP packet whose chunks are all well formed, with no I-DATA, ABORT or
SHUTDOWN COMPLETE chunk; its accepted DATA chunks (whole messages, or fragments that capture.stack reassembles in
order) become rows. ``SLOW``: everything else (IP fragments, TCP, I-DATA, ABORT and SHUTDOWN COMPLETE, MTP link
types, anything damaged), which ``capture.stack.Stack`` takes frame by frame as before,
so its anomalies are counted by the code that always counted them. The rules below mirror capture.link, capture.ip
and capture.sctp check for check; tests/test_capture_fast.py holds the two paths equal.
"""

import numba
import numpy as np

# Frame classes.
SKIP, FAST, SLOW = 0, 1, 2
# What an accepted user message is (capture.stack: _S1AP, _M3UA, _M2UA).
WHAT_S1AP, WHAT_M3UA, WHAT_M2UA = 1, 2, 3

_MAX_RECORD = 1 << 18
_MAX_BLOCK = 1 << 24
_MAX_CHUNKS = 256
_MAX_VLAN_TAGS = 4
_KEY = numba.types.UniTuple(numba.uint64, 8)


@numba.njit(cache=True, nogil=True)
def _u16(b, i):
    return (np.int64(b[i]) << 8) | np.int64(b[i + 1])


@numba.njit(cache=True, nogil=True)
def _u32(b, i, big):
    if big:
        return (np.int64(b[i]) << 24) | (np.int64(b[i + 1]) << 16) | (np.int64(b[i + 2]) << 8) | np.int64(b[i + 3])
    return (np.int64(b[i + 3]) << 24) | (np.int64(b[i + 2]) << 16) | (np.int64(b[i + 1]) << 8) | np.int64(b[i])


@numba.njit(cache=True, nogil=True)
def seconds(units, per_second, offset):
    """``offset`` s plus ``units`` of 1/``per_second`` s as float seconds, rounded to the µs in integers first, so
    that the µs columns (records.timestamps) read back exactly the µs nearest the capture's time: a float of the
    whole is off by a µs for some ns times at today's epochs (a double there resolves about 0.24 µs)."""
    if per_second % 1_000_000 == 0:
        d = per_second // 1_000_000
        us = (units + d // 2) // d
    elif 1_000_000 % per_second == 0:
        us = units * (1_000_000 // per_second)
    elif per_second < (1 << 43):  # a binary resolution: its fraction times 10^6 still fits in 64 bits
        us = units // per_second * 1_000_000 + (units % per_second * 1_000_000 + per_second // 2) // per_second
    else:
        return np.float64(units) / np.float64(per_second) + np.float64(offset)
    return np.float64(us + offset * 1_000_000) / 1e6


@numba.njit(cache=True, nogil=True)
def index_pcap(buf, pos, big, per_second):
    """Classic pcap records from ``pos``: (start, length, ts) columns, the position after the last whole record,
    and whether a record with an impossible length stopped the walk (``pcap.bad_record``)."""
    n = len(buf)
    cap = (n - pos) // 16 + 1
    start = np.empty(cap, np.int64)
    length = np.empty(cap, np.int64)
    ts = np.empty(cap, np.float64)
    k = 0
    bad = False
    while pos + 16 <= n:
        caplen = _u32(buf, pos + 8, big)
        if caplen > _MAX_RECORD:
            bad = True
            break
        if pos + 16 + caplen > n:
            break
        ts[k] = seconds(_u32(buf, pos + 4, big), per_second, _u32(buf, pos, big))
        start[k] = pos + 16
        length[k] = caplen
        k += 1
        pos += 16 + caplen
    return start[:k], length[:k], ts[:k], pos, bad


@numba.njit(cache=True, nogil=True)
def index_pcapng(buf, pos, big, linktypes, snaplens, per_seconds, offsets, last_ts):
    """pcapng Enhanced, obsolete and Simple Packet Blocks from ``pos`` of one section whose interfaces are given as
    columns; other block types are skipped by their length. Stops at a Section Header or Interface Description
    Block, at any block capture.pcap counts as damage, and where the buffer ends inside a block: capture.pcap reads
    that block itself. Returns (start, length, ts, linktype, the position it stopped at, the last timestamp)."""
    n = len(buf)
    cap = (n - pos) // 32 + 1
    start = np.empty(cap, np.int64)
    length = np.empty(cap, np.int64)
    ts = np.empty(cap, np.float64)
    lt = np.empty(cap, np.int32)
    k = 0
    ifaces = len(linktypes)
    while pos + 12 <= n:
        if _u32(buf, pos, False) == 0x0A0D0D0A:
            break
        kind = _u32(buf, pos, big)
        size = _u32(buf, pos + 4, big)
        if size < 12 or size % 4 or size > _MAX_BLOCK:
            break
        if pos + size > n:
            break
        if _u32(buf, pos + size - 4, big) != size:
            break
        body, body_len = pos + 8, size - 12
        if kind == 6 or kind == 2:
            if body_len < 20:
                break
            if kind == 6:
                iface = _u32(buf, body, big)
            elif big:
                iface = _u16(buf, body)
            else:
                iface = np.int64(buf[body]) | (np.int64(buf[body + 1]) << 8)
            high, low, caplen = _u32(buf, body + 4, big), _u32(buf, body + 8, big), _u32(buf, body + 12, big)
            if iface >= ifaces or caplen > body_len - 20:
                break
            last_ts = seconds((high << 32) | low, per_seconds[iface], offsets[iface])
            ts[k] = last_ts
            start[k] = body + 20
            length[k] = caplen
            lt[k] = linktypes[iface]
            k += 1
        elif kind == 3:
            if ifaces == 0 or body_len < 4:
                break
            limit = snaplens[0] if snaplens[0] else _MAX_RECORD
            caplen = min(_u32(buf, body, big), body_len - 4, limit)
            ts[k] = last_ts
            start[k] = body + 4
            length[k] = caplen
            lt[k] = linktypes[0]
            k += 1
        elif kind == 1:
            break
        pos += size
    return start[:k], length[:k], ts[:k], lt[:k], pos, last_ts


# linux/if_packet.h, host byte order (little-endian here): struct tpacket3_hdr is tp_next_offset, tp_sec, tp_nsec,
# tp_snaplen, tp_len, tp_status (u32 each), tp_mac, tp_net (u16), hv1, padding: 48 octets, then struct sockaddr_ll
# (sll_hatype at 8, sll_pkttype at 10).
_TP3_SLL = 48


@numba.njit(cache=True, nogil=True)
def index_tpacket3(buf, first, count):
    """The ``count`` packets of one TPACKET_V3 ring block ``buf`` from offset ``first``: (start, length, ts, device
    type, packet type) columns; stops early at a header or frame that would overrun the block."""
    n = len(buf)
    start = np.empty(count, np.int64)
    length = np.empty(count, np.int64)
    ts = np.empty(count, np.float64)
    hatype = np.empty(count, np.int64)
    pkttype = np.empty(count, np.int64)
    pos, k = first, 0
    while k < count and pos + _TP3_SLL + 12 <= n:
        mac = np.int64(buf[pos + 24]) | (np.int64(buf[pos + 25]) << 8)
        snaplen = _u32(buf, pos + 12, False)
        if pos + mac + snaplen > n:
            break
        ts[k] = seconds(_u32(buf, pos + 8, False), 1_000_000_000, _u32(buf, pos + 4, False))
        start[k] = pos + mac
        length[k] = snaplen
        hatype[k] = np.int64(buf[pos + _TP3_SLL + 8]) | (np.int64(buf[pos + _TP3_SLL + 9]) << 8)
        pkttype[k] = buf[pos + _TP3_SLL + 10]
        k += 1
        step = _u32(buf, pos, False)
        if step == 0:
            break
        pos += step
    return start[:k], length[:k], ts[:k], hatype[:k], pkttype[:k]


@numba.njit(cache=True, nogil=True)
def _accept(ppid, sport, dport):
    """capture.stack._accept: PPID 18/3/2, or PPID 0 on the well-known ports (destination first)."""
    if ppid == 18:
        return WHAT_S1AP
    if ppid == 3:
        return WHAT_M3UA
    if ppid == 2:
        return WHAT_M2UA
    if ppid != 0:
        return 0
    what = _port(dport)
    return what if what else _port(sport)


@numba.njit(cache=True, nogil=True)
def _port(port):
    if port == 36412:
        return WHAT_S1AP
    if port == 2905:
        return WHAT_M3UA
    return WHAT_M2UA if port == 2904 else 0


@numba.njit(cache=True, nogil=True)
def _ip_start(buf, at, n, linktype):
    """capture.link.ip_start for one frame at buf[at:at+n]: the IP offset in the frame, -1 when the frame carries
    no IP (SKIP), -2 when capture.link would raise or the link type is not one read here (SLOW)."""
    if linktype == 1 or linktype == 113:
        off = 12 if linktype == 1 else 14
        for _ in range(_MAX_VLAN_TAGS + 1):
            if n < off + 2:
                return -2
            kind = _u16(buf, at + off)
            if kind == 0x0800 or kind == 0x86DD:
                return off + 2
            if kind != 0x8100 and kind != 0x88A8 and kind != 0x9100:
                return -1
            off += 4
        return -2
    if linktype == 276:
        if n < 20:
            return -2
        kind = _u16(buf, at)
        return 20 if kind == 0x0800 or kind == 0x86DD else -1
    if linktype == 0 or linktype == 108:
        if n < 4:
            return -2
        family = _u32(buf, at, linktype == 108)
        if family > 0xFFFF:
            family = _u32(buf, at, True)
        if family == 2 or family == 10 or family == 24 or family == 28 or family == 30:
            return 4
        return -1
    if linktype == 101 or linktype == 228 or linktype == 229 or linktype == 12 or linktype == 14:
        return 0
    return -2


@numba.njit(cache=True, nogil=True)
def scan_frames(buf, starts, lengths, linktypes):
    """Classify every frame (SKIP/FAST/SLOW) and emit the accepted DATA chunks of the FAST ones.

    Per frame: class, IP version, source and destination address (offset into ``buf``), SCTP ports and
    verification tag. Per chunk: frame, order in the frame, what (WHAT_*), TSN, stream, SSN, payload start and
    length in ``buf``, chunk flags (a fragment: B and E not both set; its M3UA is read once it is whole). A SLOW
    frame emits no chunk: the Python stack reads all of it."""
    nf = len(starts)
    cls = np.zeros(nf, np.uint8)
    version = np.zeros(nf, np.uint8)
    src = np.zeros(nf, np.int64)
    dst = np.zeros(nf, np.int64)
    key = np.zeros((nf, 8), np.uint64)  # version, source and destination address (two halves each), ports, tag
    sport = np.zeros(nf, np.int64)
    dport = np.zeros(nf, np.int64)
    vtag = np.zeros(nf, np.int64)
    cap = int(lengths.sum() // 16 + 1)  # every accepted DATA chunk takes 16 octets or more
    c_frame = np.empty(cap, np.int64)
    c_order = np.empty(cap, np.int64)
    c_what = np.empty(cap, np.uint8)
    c_tsn = np.empty(cap, np.int64)
    c_stream = np.empty(cap, np.int64)
    c_ssn = np.empty(cap, np.int64)
    c_start = np.empty(cap, np.int64)
    c_len = np.empty(cap, np.int64)
    c_opc = np.empty(cap, np.int64)  # M3UA DATA with SCCP user data (else opc -1): OPC, DPC, user data
    c_dpc = np.empty(cap, np.int64)
    c_user = np.empty(cap, np.int64)
    c_user_len = np.empty(cap, np.int64)
    c_flags = np.empty(cap, np.uint8)
    k = 0
    for f in range(nf):
        at, n = starts[f], lengths[f]
        ip = _ip_start(buf, at, n, linktypes[f])
        if ip == -1:
            continue
        if ip == -2 or n - ip < 1:
            cls[f] = SLOW
            continue
        v = buf[at + ip] >> 4
        if v == 4:
            if n - ip < 20:
                cls[f] = SLOW
                continue
            proto = buf[at + ip + 9]
            if proto != 132:
                cls[f] = SLOW if proto == 6 else SKIP
                continue
            ihl = (buf[at + ip] & 0x0F) * 4
            total = _u16(buf, at + ip + 2)
            if ihl < 20 or total < ihl or (buf[at + ip + 6] & 0x3F) or buf[at + ip + 7]:
                cls[f] = SLOW
                continue
            end = min(ip + total, n)
            if ip + ihl > end:
                cls[f] = SLOW
                continue
            s_at, s_addr, d_addr = ip + ihl, at + ip + 12, at + ip + 16
        elif v == 6:
            if n - ip < 40:
                cls[f] = SLOW
                continue
            plen = _u16(buf, at + ip + 4)
            nxt = buf[at + ip + 6]
            end = min(ip + 40 + plen, n) if plen else n
            if nxt != 132:
                # extension headers, TCP: SLOW; anything else is not wanted, as capture.ip returns None for it
                ext = nxt == 0 or nxt == 43 or nxt == 44 or nxt == 60 or nxt == 51 or nxt == 135 or nxt == 139 \
                    or nxt == 140 or nxt == 6
                cls[f] = SLOW if ext else SKIP
                continue
            s_at, s_addr, d_addr = ip + 40, at + ip + 8, at + ip + 24
        else:
            cls[f] = SLOW
            continue
        if end - s_at < 12:
            cls[f] = SLOW
            continue
        base = at + s_at
        sp, dp = _u16(buf, base), _u16(buf, base + 2)
        first = k
        ok = True
        off, count, pend = 12, 0, end - s_at
        while off + 4 <= pend:
            kind, flags, clen = buf[base + off], buf[base + off + 1], _u16(buf, base + off + 2)
            cend = off + clen
            count += 1
            if clen < 4 or cend > pend or count > _MAX_CHUNKS:
                ok = False
                break
            if kind == 0:
                if clen < 16:
                    ok = False
                    break
                what = _accept(_u32(buf, base + off + 12, True), sp, dp)
                if what:
                    c_frame[k], c_order[k], c_what[k], c_flags[k] = f, k - first, what, flags
                    c_tsn[k] = _u32(buf, base + off + 4, True)
                    c_stream[k], c_ssn[k] = _u16(buf, base + off + 8), _u16(buf, base + off + 10)
                    c_start[k], c_len[k] = base + off + 16, clen - 16
                    c_opc[k] = -1
                    if what == WHAT_M3UA and flags & 0x03 == 0x03:
                        pd = _m3ua(buf, base + off + 16, clen - 16)
                        if pd == -2:
                            ok = False
                            break
                        if pd >= 0 and buf[pd + 8] == 3:  # SI 3: SCCP
                            c_opc[k], c_dpc[k] = _u32(buf, pd, True), _u32(buf, pd + 4, True)
                            c_user[k] = pd + 12
                            c_user_len[k] = _u16(buf, pd - 2) - 16
                    k += 1
            elif kind == 64 or kind == 6 or kind == 14:
                ok = False
                break
            off = cend + (-clen & 3)
        if not ok:
            k = first
            cls[f] = SLOW
            continue
        cls[f] = FAST
        version[f] = v
        src[f], dst[f], sport[f], dport[f] = s_addr, d_addr, sp, dp
        vtag[f] = _u32(buf, base + 4, True)
        alen = 4 if v == 4 else 16
        key[f, 0] = v
        key[f, 1], key[f, 2] = _address_halves(buf, s_addr, alen)
        key[f, 3], key[f, 4] = _address_halves(buf, d_addr, alen)
        key[f, 5], key[f, 6], key[f, 7] = sp, dp, vtag[f]
    chunks = (c_frame[:k].copy(), c_order[:k].copy(), c_what[:k].copy(), c_tsn[:k].copy(), c_stream[:k].copy(),
              c_ssn[:k].copy(), c_start[:k].copy(), c_len[:k].copy(), c_opc[:k].copy(), c_dpc[:k].copy(),
              c_user[:k].copy(), c_user_len[:k].copy(), c_flags[:k].copy())
    return cls, version, src, dst, sport, dport, vtag, key, chunks


@numba.njit(cache=True, nogil=True)
def _m3ua(buf, at, n):
    """capture.m3ua.protocol_data of the M3UA message at buf[at:at+n]: the offset of its Protocol Data value, -1
    for a message that is not Transfer DATA, -2 where capture.m3ua would raise (the frame goes SLOW)."""
    if n < 8 or buf[at] != 1:
        return -2
    if buf[at + 2] != 1 or buf[at + 3] != 1:
        return -1
    length = _u32(buf, at + 4, True)
    if length < 8:
        return -2
    length = min(length, n)
    off, found = 8, -1
    while off + 4 <= length:
        tag, size = _u16(buf, at + off), _u16(buf, at + off + 2)
        if size < 4 or off + size > length:
            return -2
        if tag == 0x0210 and found < 0:
            if size - 4 < 12:
                return -2
            found = at + off + 4
        off += size + (-size & 3)
    return found if found >= 0 else -2


# SCCP message types sccp_fields reads (capture.sccp, Q.713 §2.1); the others are left to capture.sccp.parse.
_CR, _CC, _CREF, _RLSD, _RLC, _DT1, _UDT, _IT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x09, 0x10


@numba.njit(cache=True, nogil=True)
def _sccp_layout(kind):
    """Q.713 §4 (capture.sccp.LAYOUTS) for the types read here: fixed-part octets, mandatory variable parameters
    (called, calling, data: 0 none, 1 data, 2 called, 3 all three) and whether an optional part follows."""
    if kind == _CR:
        return 4, 2, True
    if kind == _CC or kind == _RLSD:
        return 7, 0, True
    if kind == _CREF:
        return 4, 0, True
    if kind == _RLC:
        return 6, 0, False
    if kind == _DT1:
        return 4, 1, False
    if kind == _UDT:
        return 1, 3, False
    if kind == _IT:
        return 10, 0, False
    return -1, 0, False


@numba.njit(cache=True, nogil=True)
def _variable(buf, at, end):
    """capture.sccp._variable: (start, length) of the parameter whose pointer octet is at ``at``; start -1 where
    capture.sccp raises."""
    if at >= end:
        return -1, 0
    start = at + buf[at]
    if start == at or start >= end or start + 1 + buf[start] > end:
        return -1, 0
    return start + 1, np.int64(buf[start])


@numba.njit(cache=True, nogil=True)
def _ssn(buf, at, n, pc_octets):
    """capture.sccp._address of buf[at:at+n]: its SSN (0 absent), -1 where capture.sccp raises."""
    if n == 0:
        return -1
    ai = buf[at]
    gti = (ai >> 2) & 0x0F
    off, ssn = 1, 0
    if ai & 0x01:
        if n < off + pc_octets:
            return -1
        off += pc_octets
    if ai & 0x02:
        if n < off + 1:
            return -1
        ssn = np.int64(buf[at + off])
        off += 1
    if gti == 0:
        return ssn if off == n else -1
    if gti > 4 or n < off + (1 if gti < 3 else gti - 1):
        return -1
    if gti >= 3:
        es = buf[at + off + 1] & 0x0F
        if es != 1 and es != 2:
            return -1
    return ssn


@numba.njit(cache=True, nogil=True)
def sccp_fields(buf, user, user_len, pc_octets):
    """capture.sccp.parse of UDT, CR, CC, CREF, RLSD, RLC, DT1 and IT messages at buf[user[i]:+user_len[i]] with
    ``pc_octets[i]`` octets of point code in addresses, as columns: ok (False where capture.sccp would raise, for
    any other type, or a point-code size of 0: the stack parses those itself), type, source and destination local
    reference (-1 none), subsystem (capture.sccp.subsystem), called party SSN (-1 no called party), user data start
    and length (-1 none), the DT1 M bit, and whether the data is BSSAP-shaped (capture.stack.bssap_shaped)."""
    m = len(user)
    ok = np.zeros(m, np.bool_)
    kind = np.zeros(m, np.int64)
    src_ref = np.full(m, -1, np.int64)
    dst_ref = np.full(m, -1, np.int64)
    ssn = np.zeros(m, np.int64)
    called_ssn = np.full(m, -1, np.int64)
    data = np.full(m, -1, np.int64)
    data_len = np.full(m, -1, np.int64)
    more = np.zeros(m, np.bool_)
    shaped = np.zeros(m, np.bool_)
    for i in range(m):
        at, end, pco = user[i], user[i] + user_len[i], pc_octets[i]
        if at >= end or pco == 0:
            continue
        k = np.int64(buf[at])
        fixed, variable, optional = _sccp_layout(k)
        if fixed < 0 or at + 1 + fixed > end:
            continue
        f = at + 1
        if k == _CR:
            src_ref[i] = _u24(buf, f)
        elif k != _UDT:
            dst_ref[i] = _u24(buf, f)
            if k == _CC or k == _RLSD or k == _RLC or k == _IT:
                src_ref[i] = _u24(buf, f + 3)
        if k == _DT1:
            more[i] = buf[f + 3] & 0x01
        p = f + fixed
        called, called_n, calling, calling_n, d, d_n = -1, 0, -1, 0, -1, 0
        good = True
        if variable >= 2:
            called, called_n = _variable(buf, p, end)
            good = called >= 0
            p += 1
        if good and variable == 3:
            calling, calling_n = _variable(buf, p, end)
            good = calling >= 0
            p += 1
        if good and (variable == 1 or variable == 3):
            d, d_n = _variable(buf, p, end)
            good = d >= 0
            p += 1
        if good and optional:
            if p >= end:
                good = False
            elif buf[p]:
                o = p + buf[p]
                good = False
                while o < end:
                    name = buf[o]
                    if name == 0:
                        good = True
                        break
                    if o + 2 > end or o + 2 + buf[o + 1] > end:
                        break
                    size = np.int64(buf[o + 1])
                    if name == 3:
                        called, called_n = o + 2, size
                    elif name == 4:
                        calling, calling_n = o + 2, size
                    elif name == 0x0F:
                        d, d_n = o + 2, size
                    o += 2 + size
        if not good:
            continue
        s_called = _ssn(buf, called, called_n, pco) if called >= 0 else 0
        s_calling = _ssn(buf, calling, calling_n, pco) if calling >= 0 else 0
        if s_called < 0 or s_calling < 0:
            continue
        ok[i] = True
        kind[i] = k
        ssn[i] = s_called if s_called else s_calling
        if called >= 0:
            called_ssn[i] = s_called
        if d >= 0 and k != _RLC and k != _IT:
            data[i], data_len[i] = d, d_n
            if d_n >= 3:
                if buf[d] == 0x00:
                    shaped[i] = buf[d + 1] == d_n - 2 and not (buf[d + 2] == 0x40 and (d_n < 4 or buf[d + 3] != 0x01))
                else:
                    shaped[i] = buf[d] == 0x01 and buf[d + 2] == d_n - 3
    return ok, kind, src_ref, dst_ref, ssn, called_ssn, data, data_len, more, shaped


@numba.njit(cache=True, nogil=True)
def _u24(b, i):
    """A 3-octet local reference, least significant octet first (Q.713 §3.2)."""
    return np.int64(b[i]) | (np.int64(b[i + 1]) << 8) | (np.int64(b[i + 2]) << 16)


@numba.njit(cache=True, nogil=True)
def _number(key, rows, columns, ids):
    """Number the distinct ``key[r, :columns]`` of ``rows`` in order of appearance into ``ids``; returns the first
    row of each."""
    seen = numba.typed.Dict.empty(_KEY, numba.int64)
    first = np.empty(len(rows), np.int64)
    for r in rows:
        k = key[r]
        t = (k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7] if columns == 8 else np.uint64(0))
        i = seen.get(t, -1)
        if i < 0:
            i = len(seen)
            seen[t] = i
            first[i] = r
        ids[r] = i
    return first[:len(seen)]


@numba.njit(cache=True, nogil=True)
def _address_halves(buf, at, n):
    """An IPv4 (n 4) or IPv6 (n 16) address as two integers."""
    if n == 4:
        return np.uint64(0), np.uint64(_u32(buf, at, True))
    return (np.uint64(_u32(buf, at, True)) << np.uint64(32)) | np.uint64(_u32(buf, at + 4, True)), \
        (np.uint64(_u32(buf, at + 8, True)) << np.uint64(32)) | np.uint64(_u32(buf, at + 12, True))


@numba.njit(cache=True, nogil=True)
def sweeps(ts, swept, interval):
    """capture.sctp's timeout sweep over a run of SCTP packets: a sweep runs at a packet ``interval`` seconds after
    the last one. Returns, for each packet, the time of the last sweep as of that packet (its own included)."""
    out = np.empty(len(ts))
    for i in range(len(ts)):
        if ts[i] - swept > interval:
            swept = ts[i]
        out[i] = swept
    return out


def _crc32_table() -> np.ndarray:
    """The byte table of CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320), the checksum zlib.crc32 computes."""
    table = np.empty(256, np.int64)
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[n] = c
    return table


_CRC32 = _crc32_table()


@numba.njit(cache=True, nogil=True)
def crc32s(buf, starts, lengths):
    """``zlib.crc32`` of ``buf[starts[i]:starts[i] + lengths[i]]`` for every i: the content part of capture.sctp's
    retransmission signature, for a run's chunks at once."""
    out = np.empty(len(starts), np.int64)
    for i in range(len(starts)):
        c = np.int64(0xFFFFFFFF)
        for j in range(starts[i], starts[i] + lengths[i]):
            c = _CRC32[(c ^ buf[j]) & 0xFF] ^ (c >> 8)
        out[i] = c ^ 0xFFFFFFFF
    return out


@numba.njit(cache=True, nogil=True)
def gather(sources, starts, lengths):
    """Concatenate ``sources[starts[i]:starts[i] + lengths[i]]`` for every i, in order."""
    out = np.empty(lengths.sum(), np.uint8)
    at = 0
    for i in range(len(starts)):
        s, n = starts[i], lengths[i]
        out[at:at + n] = sources[s:s + n]
        at += n
    return out


class Scan:
    """``scan_frames`` of one ``Frames`` block, with its transport flows and SCTP association directions numbered:
    ``flow[f]``/``direction[f]`` index ``flows`` ((source, port, destination, port), as capture.stack keys flows)
    and ``directions`` ((source, port, destination, port, tag), as capture.sctp keys them) for FAST frames."""

    def __init__(self, frames):
        self.buf = np.frombuffer(frames.data, np.uint8)
        (self.cls, version, src, dst, sport, dport, vtag, key,
         (self.c_frame, self.c_order, self.c_what, self.c_tsn, self.c_stream, self.c_ssn, self.c_start,
          self.c_len, self.c_opc, self.c_dpc, self.c_user, self.c_user_len, self.c_flags)) = scan_frames(
             self.buf, frames.start, frames.length, frames.linktype)
        fast = np.flatnonzero(self.cls == FAST)
        self.flow = np.full(len(self.cls), -1, np.int64)
        self.direction = np.full(len(self.cls), -1, np.int64)
        self.flows: list[tuple] = []
        self.directions: list[tuple] = []
        if not len(fast):
            return
        data = frames.data
        for columns, ids, names in ((7, self.flow, self.flows), (8, self.direction, self.directions)):
            first = _number(key, fast, columns, ids)
            for f in first.tolist():
                n = 4 if version[f] == 4 else 16
                name = (data[src[f]:src[f] + n], int(sport[f]), data[dst[f]:dst[f] + n], int(dport[f]))
                names.append(name if columns == 7 else (*name, int(vtag[f])))


@numba.njit(cache=True, nogil=True)
def lookup(table, keys):
    """``table.get(key, -1)`` for every key (a negative key: -1): capture.stack's point-code endpoints of a run's
    SCCP messages."""
    out = np.full(len(keys), -1, np.int64)
    for i in range(len(keys)):
        if keys[i] >= 0:
            out[i] = table.get(keys[i], -1)
    return out


@numba.njit(cache=True, nogil=True)
def firsts(ids, n):
    """For every id in 0..n-1 the first position of ``ids`` holding it (-1 none): a run's flows and SCTP
    directions in order of appearance, without sorting the run."""
    out = np.full(n, -1, np.int64)
    for i in range(len(ids) - 1, -1, -1):
        out[ids[i]] = i
    return out
