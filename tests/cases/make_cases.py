"""The hand-built capture cases of tests/cases/<name>/: input.pcap, README.md, case.json and expected.jsonl.

Each case is a few frames that show one thing the transport stack must get right (suricata-verify style).
``expected.jsonl`` holds one line per payload ``read_payloads`` emits (frame, proto, conn, sccp_type, payload hex)
and ``anomalies.json`` the anomaly counts; ``case.json`` says whether and how tshark is the second oracle
(tests/test_cases.py compares with it, so the expected files are never the only check).

    .venv/bin/python tests/cases/make_cases.py            # check: exit 1 if a committed file is stale
    .venv/bin/python tests/cases/make_cases.py --refresh  # rewrite every case's files

The baselines come from the code under test; a refresh is reviewed as a diff, and tshark checks the cases it
decodes independently.
"""

import argparse
import gzip
import json
import struct
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT), str(HERE.parent)]

from capture.stack import read_payloads  # noqa: E402
from packets import (data_chunk, ether, ipa, ipv4, ipv6, m2ua_data, m3ua_data, msu_24bit, msu_itu, mtp2,  # noqa: E402
                     mtp2_phdr, sccp_address, sccp_cc, sccp_cr, sccp_dt1, sccp_it, sctp, sll2, tcp, udt, xudt)
from simulator import bssap_encode as bssap  # noqa: E402
from simulator import s1ap_encode as s1ap  # noqa: E402

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
LINKTYPE_ETHERNET, LINKTYPE_SLL2 = 1, 276
LINKTYPE_MTP2_WITH_PHDR, LINKTYPE_MTP2, LINKTYPE_MTP3 = 139, 140, 141
BSC_PC, MSC_PC = 0x0101, 0x0202            # 14-bit ITU point codes 0-32-1 and 0-64-2
BSC_PC24, MSC_PC24 = 0x010203, 0x040506    # 24-bit point codes 1-2-3 and 4-5-6

PAGING = bssap.paging("001010123456789", 0x12345678, [(0x1234, 0x0101)])
RESET = bssap.reset(0x00)
LU_REQUEST = bssap.complete_layer3("001", "01", 0x1234, 0x0101,
                                   bssap.location_updating_request("normal", ("001", "01", 0x1234),
                                                                   imsi="001010123456789"))
CLEAR = bssap.clear_command(0x09)
S1AP = [s1ap.downlink_nas_transport(7, 3, b"\x07\x55\x01"),
        s1ap.s1_setup_request(0x1234, "enb-1", "001", "01", [1, 2]),
        s1ap.initial_context_setup_request(9, 4, nas=bytes(range(256)) * 3)]


def _m3ua_sctp(user_data: bytes, tsn: int, uplink: bool = True, opc: int = BSC_PC, dpc: int = MSC_PC) -> bytes:
    """An M3UA DATA (PPID 3, port 2905) in its own SCTP packet; downlink swaps the point codes."""
    if not uplink:
        opc, dpc = dpc, opc
    return sctp(2905, 2905, [data_chunk(tsn, m3ua_data(opc, dpc, user_data), ppid=3)])


def _bssap_udt(pdu: bytes, pc_octets: int = 2, pcs=(MSC_PC, BSC_PC)) -> bytes:
    called, calling = (sccp_address(254, pc, pc_octets) for pc in pcs)
    return udt(called, calling, pdu)


def _pcap(frames: list[bytes], linktype: int) -> bytes:
    """Classic pcap, µs, one frame every 10 ms from T0."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for i, frame in enumerate(frames):
        usec = round((T0 + i * 0.01) * 1e6)
        out.append(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)) + frame)
    return b"".join(out)


# -- the cases: name -> (README text, case.json, builder returning the input file's bytes) --------------------------

def sctp_bundling() -> bytes:
    chunks = [data_chunk(10 + i, pdu, ssn=i) for i, pdu in enumerate(S1AP)]
    return _pcap([ether(ipv4(132, sctp(40000, 36412, chunks))),
                  ether(ipv4(132, sctp(2905, 2905, [data_chunk(1, m3ua_data(BSC_PC, MSC_PC, _bssap_udt(PAGING)),
                                                               ppid=3),
                                                    data_chunk(2, m3ua_data(BSC_PC, MSC_PC, _bssap_udt(RESET)),
                                                               ppid=3)])))], LINKTYPE_ETHERNET)


def sctp_fragmentation() -> bytes:
    def fragments(pdu: bytes, pieces: int, tsn: int, ssn: int) -> list[bytes]:
        size = -(-len(pdu) // pieces)
        parts = [pdu[i:i + size] for i in range(0, len(pdu), size)]
        return [ether(ipv4(132, sctp(40000, 36412, [data_chunk(tsn + i, part, ssn=ssn, flags=(2 if i == 0 else 0) |
                                                                (1 if i == len(parts) - 1 else 0))])))
                for i, part in enumerate(parts)]

    three, two = fragments(S1AP[2], 3, 100, 5), fragments(S1AP[1], 2, 103, 6)
    single = ether(ipv4(132, sctp(40000, 36412, [data_chunk(105, S1AP[0], ssn=7)])))
    return _pcap([three[0], three[2], three[1], two[1], two[0], single], LINKTYPE_ETHERNET)


def sctp_retransmission() -> bytes:
    first = ether(ipv4(132, sctp(40000, 36412, [data_chunk(7, S1AP[0], ssn=1)])))
    second = ether(ipv4(132, sctp(40000, 36412, [data_chunk(8, S1AP[1], ssn=2)])))
    return _pcap([first, second, first, ether(ipv4(132, sctp(40000, 36412, [data_chunk(9, S1AP[0], ssn=3)])))],
                 LINKTYPE_ETHERNET)


def ipa_tcp() -> bytes:
    stream = ipa(0xFE, b"\x06") + ipa(0xFD, _bssap_udt(PAGING)) + ipa(0xFD, _bssap_udt(RESET)) + \
        ipa(0x00, b"\x01\x02") + ipa(0xFD, _bssap_udt(CLEAR)) + ipa(0xFD, _bssap_udt(RESET))
    isn = 5000
    cuts = [0, 4 + 3 + len(_bssap_udt(PAGING)) + 3 + len(_bssap_udt(RESET)),  # CCM, paging, reset in one
            len(stream) - 20, len(stream)]  # then the clear split across two segments, the second early
    segments = [(isn + 1 + a, stream[a:b]) for a, b in zip(cuts, cuts[1:])]
    frames = [tcp(40000, 5000, isn, b"", flags=0x02)] + [tcp(40000, 5000, seq, data) for seq, data in segments]
    return _pcap([ether(ipv4(6, frames[i])) for i in (0, 1, 3, 2)], LINKTYPE_ETHERNET)


def ipv6_sctp() -> bytes:
    return _pcap([ether(ipv6(132, sctp(40000, 36412, [data_chunk(1, S1AP[1])])), 0x86DD),
                  ether(ipv6(132, sctp(40000, 36412, [data_chunk(2, S1AP[0])]), hop_by_hop=True), 0x86DD)],
                 LINKTYPE_ETHERNET)


def vlan_qinq() -> bytes:
    return _pcap([ether(ipv4(132, _m3ua_sctp(_bssap_udt(PAGING), 1)), tags=(0x8100,)),
                  ether(ipv4(132, _m3ua_sctp(_bssap_udt(RESET), 2)), tags=(0x88A8, 0x8100)),
                  ether(ipv4(132, sctp(40000, 36412, [data_chunk(3, S1AP[0])])), tags=(0x9100, 0x8100))],
                 LINKTYPE_ETHERNET)


def linux_sll2() -> bytes:
    return _pcap([sll2(ipv4(132, sctp(40000, 36412, [data_chunk(1, S1AP[1])]))),
                  sll2(ipv4(132, _m3ua_sctp(_bssap_udt(RESET), 2)))], LINKTYPE_SLL2)


def m3ua_24bit_point_codes() -> bytes:
    """SCCP addresses with 3-octet point codes: only the 24-bit reading parses, so auto mode picks it."""
    pcs = (MSC_PC24, BSC_PC24)
    cr = sccp_cr(0x000501, sccp_address(254, MSC_PC24, 3), LU_REQUEST)
    return _pcap([ether(ipv4(132, _m3ua_sctp(_bssap_udt(PAGING, 3, pcs), 1, opc=BSC_PC24, dpc=MSC_PC24))),
                  ether(ipv4(132, _m3ua_sctp(cr, 2, opc=BSC_PC24, dpc=MSC_PC24))),
                  ether(ipv4(132, _m3ua_sctp(sccp_cc(0x000501, 0x000901), 3, False, BSC_PC24, MSC_PC24))),
                  ether(ipv4(132, _m3ua_sctp(sccp_dt1(0x000501, CLEAR), 4, False, BSC_PC24, MSC_PC24)))],
                 LINKTYPE_ETHERNET)


def m2ua_24bit_point_codes() -> bytes:
    pcs = (MSC_PC24, BSC_PC24)
    msus = [msu_24bit(BSC_PC24, MSC_PC24, _bssap_udt(PAGING, 3, pcs)),
            msu_24bit(BSC_PC24, MSC_PC24, sccp_cr(0x000777, sccp_address(254, MSC_PC24, 3), LU_REQUEST)),
            msu_24bit(MSC_PC24, BSC_PC24, sccp_dt1(0x000777, CLEAR))]
    return _pcap([ether(ipv4(132, sctp(2904, 2904, [data_chunk(1 + i, m2ua_data(msu, 3), ppid=2)])))
                  for i, msu in enumerate(msus)], LINKTYPE_ETHERNET)


def _xudt_frames(segmented: list[tuple[bytes, tuple[bool, int, int]]]) -> bytes:
    called, calling = sccp_address(254, MSC_PC), sccp_address(254, BSC_PC)
    return _pcap([ether(ipv4(132, _m3ua_sctp(xudt(called, calling, data, segmentation), 1 + i)))
                  for i, (data, segmentation) in enumerate(segmented)], LINKTYPE_ETHERNET)


def xudt_segmentation() -> bytes:
    """A large paging in three XUDT segments, in order, and a single-segment XUDT."""
    big = bssap.paging("001010123456789", 0x12345678, [(0x1234, ci) for ci in range(45)])
    size = -(-len(big) // 3)
    parts = [big[i:i + size] for i in range(0, len(big), size)]
    return _xudt_frames([(part, (i == 0, len(parts) - 1 - i, 0x00ABCD)) for i, part in enumerate(parts)] +
                        [(RESET, (True, 0, 0x00ABCF))])


def xudt_segments_out_of_order() -> bytes:
    """Two messages in two segments each, interleaved, the first one's last segment before its F segment."""
    lu, clear = LU_REQUEST, bssap.paging("001010123456789", None, [(0x1234, ci) for ci in range(20)])
    return _xudt_frames([(lu[len(lu) // 2:], (False, 0, 0x00ABCE)), (clear[:40], (True, 1, 0x00ABCF)),
                         (lu[:len(lu) // 2], (True, 1, 0x00ABCE)), (clear[40:], (False, 0, 0x00ABCF))])


def _mtp2_msus() -> list[bytes]:
    """A connection's life on an E1 link: UDT paging, CR, CC, DT1, IT, DT1 (BSC 0-32-1, MSC 0-64-2)."""
    up, down = (lambda m: msu_itu(BSC_PC, MSC_PC, m)), (lambda m: msu_itu(MSC_PC, BSC_PC, m))
    return [down(_bssap_udt(PAGING, pcs=(BSC_PC, MSC_PC))), up(sccp_cr(0x010203, sccp_address(254, MSC_PC),
                                                                   LU_REQUEST)),
            down(sccp_cc(0x010203, 0x040506)), down(sccp_dt1(0x010203, CLEAR)), up(sccp_it(0x040506, 0x010203)),
            up(sccp_dt1(0x040506, bssap.clear_complete()))]


def mtp2_link() -> bytes:
    fisu, lssu = mtp2(b""), mtp2(b"\x01")
    units = [fisu, lssu] + [mtp2(m, bsn=i, fsn=i) for i, m in enumerate(_mtp2_msus())] + [fisu]
    return _pcap(units, LINKTYPE_MTP2)


def mtp2_with_pseudo_header() -> bytes:
    msus = _mtp2_msus()
    return _pcap([mtp2_phdr(mtp2(b""), link=1)] + [mtp2_phdr(mtp2(m), link=1, sent=i % 2) for i, m in
                                                   enumerate(msus)], LINKTYPE_MTP2_WITH_PHDR)


def mtp3_link() -> bytes:
    return _pcap(_mtp2_msus(), LINKTYPE_MTP3)


def gzip_file() -> bytes:
    """The sctp_bundling frames, gzip'd (mtime 0, so the bytes are stable); still named input.pcap."""
    return gzip.compress(sctp_bundling(), mtime=0)


ORACLE_EQUAL = {"tshark": "equal"}
CASES = {
    "sctp_bundling": (sctp_bundling, ORACLE_EQUAL,
                      "Three S1AP PDUs in one SCTP packet (three DATA chunks), then two M3UA DATA messages carrying "
                      "BSSAP UDTs bundled in one packet: five payloads from two frames, in chunk order."),
    "sctp_fragmentation": (sctp_fragmentation, ORACLE_EQUAL,
                           "One S1AP message in three DATA fragments (B, middle, E; RFC 9260 §6.9) arriving B, E, "
                           "middle, then one in two fragments arriving E before B, then an unfragmented one: each "
                           "message is emitted once, at the frame that completes it (3 and 5), as tshark does. "
                           "(tshark 4.0 does not complete a three-fragment message whose E fragment comes first, "
                           "so that order is left to tests/test_capture.py.)"),
    "sctp_retransmission": (sctp_retransmission, {"tshark": "minus_retransmissions",
                                                  "tshark_options": ["sctp.tsn_analysis:TRUE"]},
                            "Frame 3 repeats frame 1's DATA chunk byte for byte (same TSN): a retransmission, "
                            "dropped and counted sctp.duplicate_tsn. tshark dissects it again and flags it "
                            "sctp.retransmission; the test compares with tshark minus the flagged frames. Frame 4 "
                            "carries the same PDU under a new TSN: a new message."),
    "ipa_tcp": (ipa_tcp, {"tshark": None, "why_not": "Wireshark's IPA dissector does not reassemble IPA messages "
                                                     "across TCP segments"},
                "SCCPlite over IPA over TCP (port 5000): SYN, a segment with three IPA messages (CCM, SCCP paging, "
                "SCCP reset), then the last segment before the middle one (out of order); the middle segment "
                "completes an IPA message split across the two (clear command), the last one holds a whole reset. "
                "RSL (stream 0x00) and CCM are not payloads."),
    "ipv6": (ipv6_sctp, ORACLE_EQUAL,
             "S1AP over SCTP over IPv6, once plain and once behind Hop-by-Hop and Destination Options extension "
             "headers (RFC 8200 §4)."),
    "vlan_qinq": (vlan_qinq, ORACLE_EQUAL,
                  "802.1Q, 802.1ad QinQ (0x88a8 then 0x8100) and pre-standard 0x9100 QinQ tags before IPv4: M3UA "
                  "BSSAP and S1AP."),
    "sll2": (linux_sll2, ORACLE_EQUAL, "Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 276): S1AP and M3UA BSSAP."),
    "m3ua_24bit_pc": (m3ua_24bit_point_codes, {"tshark": "equal", "tshark_options": ["mtp3.standard:Chinese-ITU"]},
                      "M3UA with 24-bit point codes (1-2-3, 4-5-6) in the Protocol Data and in SCCP addresses "
                      "(3-octet point codes): UDT paging, then CR/CC/DT1 of one connection. Auto mode picks the "
                      "24-bit layout because the ITU reading of the addresses does not parse."),
    "m2ua_24bit_pc": (m2ua_24bit_point_codes, {"tshark": "equal", "tshark_options": ["mtp3.standard:Chinese-ITU"]},
                      "M2UA MSUs with the 24-bit routing label (7 octets) and 3-octet point codes in SCCP "
                      "addresses: UDT, CR and a DT1 of the CR's connection."),
    "xudt_segmentation": (xudt_segmentation, ORACLE_EQUAL,
                          "Segmented XUDT (Q.713 §3.17): a large paging in three segments (F bit on the first, "
                          "remaining 2, 1, 0, one local reference) emitted once at the third, with sccp_type XUDT; "
                          "then a single-segment XUDT (F set, 0 remaining)."),
    "xudt_out_of_order": (xudt_segments_out_of_order,
                          {"tshark": None, "why_not": "Wireshark reassembles XUDT segments only in arrival order "
                                                      "(it takes the first segment to arrive for the F segment)"},
                          "Two segmented XUDT messages (local references 0xabce, 0xabcf) interleaved; the first "
                          "one's last segment (0 remaining) arrives before its F segment. Each message is emitted "
                          "once, at the frame that completes it (3 and 4)."),
    "mtp2": (mtp2_link, ORACLE_EQUAL,
             "LINKTYPE_MTP2 (140), as an E1 signaling tap writes: FISU and LSSU (ignored), then MSUs with an ITU "
             "routing label: UDT paging, CR, CC, DT1, IT (keeps the connection alive, no payload), DT1."),
    "mtp2_with_phdr": (mtp2_with_pseudo_header, ORACLE_EQUAL,
                       "LINKTYPE_MTP2_WITH_PHDR (139): the same MSUs behind libpcap's 4-octet pseudo-header "
                       "(sent, Annex A not used, link 1)."),
    "mtp3": (mtp3_link, ORACLE_EQUAL, "LINKTYPE_MTP3 (141): the same MSUs with no MTP2 header."),
    "gzip": (gzip_file, ORACLE_EQUAL,
             "The sctp_bundling capture gzip'd, still named input.pcap: detected by the gzip magic 1f 8b."),
}


def expected(path: Path) -> tuple[str, str]:
    """expected.jsonl and anomalies.json for the capture at ``path``, from read_payloads."""
    rows, anomalies = [], {}
    for batch in read_payloads(path):
        for reason, count in batch.anomalies.items():
            anomalies[reason] = anomalies.get(reason, 0) + count
        for i in range(len(batch)):
            rows.append(json.dumps({"frame": int(batch.frame[i]), "proto": int(batch.proto[i]),
                                    "conn": int(batch.conn[i]), "sccp_type": int(batch.sccp_type[i]),
                                    "payload": batch.payload(i).hex()}))
    return "".join(r + "\n" for r in rows), json.dumps(dict(sorted(anomalies.items())), indent=1) + "\n"


def files(name: str) -> dict[str, bytes]:
    build, oracle, readme = CASES[name]
    capture = build()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.pcap"
        path.write_bytes(capture)
        rows, anomalies = expected(path)
    text = f"# {name}\n\n{readme}\n\nOrigin: synthetic, written by `tests/cases/make_cases.py` (`{build.__name__}`); " \
           f"public domain.\n"
    if oracle.get("tshark"):
        text += f"\nSecond oracle: tshark ({oracle['tshark']}" + \
            (f", with -o {' -o '.join(oracle['tshark_options'])}" if oracle.get("tshark_options") else "") + ").\n"
    else:
        text += f"\nNo tshark comparison: {oracle['why_not']}.\n"
    return {"input.pcap": capture, "README.md": text.encode(), "case.json": (json.dumps(oracle) + "\n").encode(),
            "expected.jsonl": rows.encode(), "anomalies.json": anomalies.encode()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refresh", action="store_true", help="rewrite the files of every case")
    args = parser.parse_args()
    stale = []
    for name in CASES:
        for filename, content in files(name).items():
            target = HERE / name / filename
            if args.refresh:
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(content)
            elif not target.exists() or target.read_bytes() != content:
                stale.append(str(target.relative_to(ROOT)))
    for path in stale:
        print(f"stale: {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
