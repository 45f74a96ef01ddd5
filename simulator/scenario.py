"""A morning in the synthetic city: who moves where, which procedures that causes, and the ground truth.

Every subscriber follows an itinerary (stay, travel, stay…). Sampling its position every few seconds
gives the serving cell; the network only *sees* the cell when a procedure runs: power on, a location/
tracking-area update (area changed, or the periodic timer ran out), a call or SMS (2G), a service
request (4G), a handover during a call, power off. The simulator writes those procedures as real
signaling and records in ``truth.jsonl`` the behaviour each one reveals: the events a perfect probe
must derive, with the subscriber's IMSI even when the wire carries only a TMSI.

Besides residents and tourists the city has a cast for the pattern events (docs/events.md): train riders
(fast cell switching), travellers waiting at the airport (long stay), subscribers back after days away
(silent power on; their last sighting is in ``previous_state.json.gz``, the identity store a probe would
have kept), phones on a weak signal (frequent on/off), residents driving out of the network at its eastern
edge (roaming out), and phones attached since before the capture, known by TMSI alone (their TMSI is in
the previous state too). ``scenario.json`` holds the thresholds and cell sets the pattern truth follows.
"""

import csv
import gzip
import json
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numba
import numpy as np

from decoders.events import SNAPSHOT_VERSION
from decoders.identity import imei_check_digit
from decoders.patterns import iso_us
from simulator import bssap_encode as bssap
from simulator import nas_encode as nas
from simulator import s1ap_encode as s1ap
from simulator.city import (DEVICE_TACS, FOREIGN_PLMNS, HOME_MCC, HOME_MNC, POIS, PROVINCES, UTC_OFFSET_HOURS,
                            City, CellSite, km_to_deg, serving, write_fence, write_number_segments)
from simulator.damage import add_malformed
from simulator.pcap import IpaLink, M3uaLink, PcapWriter, S1Link, SctpPacking

STEP_S = 10.0              # position sampling period
PERIODIC_UPDATE_S = 3600   # T3212 / T3412 as configured in the simulated network
MSC_PC, MME_IP = 0x0101, "10.0.0.1"
# 24-bit point codes (Chinese layout 8-8-8, YD/T 1127): the MSC 1-0-2, BSC n 1-2-n; too wide for an ITU SCCP
# address, so the SCCP addresses are SSN-only and the point codes are in the M3UA Protocol Data alone.
MSC_PC_24, BSC_PC_24 = 0x010002, 0x010200
A_TRANSPORTS = ("m3ua", "ipa")     # M3UA/SCTP (SIGTRAN) or IPA/SCCPlite over TCP
POINT_CODES = ("itu", "24bit")
MMEGI, MMEC = 0x8001, 0x01
SPEED_KMH = 35.0
PHONE_SWAP_SHARE = 0.08    # subscribers who power off, put their SIM in another phone and power on again
SOFTWARE_VERSION = "03"    # SVN of every phone's IMEISV (TS 23.003 §6.2.2)
# How simulated calls end, with the CC cause of their clearing (TS 24.008 §10.5.4.11, table 10.5.123).
CALL_CAUSES = {"answered": 16, "busy": 17, "no_answer": 19, "rejected": 21, "vacant_number": 1, "failed": 34}
# Shares of call endings; a number the phone dials may not exist, one the network rings does.
MO_CALL_ENDINGS = {"answered": 0.5, "busy": 0.12, "no_answer": 0.12, "rejected": 0.1, "vacant_number": 0.08,
                   "failed": 0.08}
MT_CALL_ENDINGS = {"answered": 0.6, "busy": 0.15, "no_answer": 0.15, "rejected": 0.1}
# Thresholds of the pattern events in the truth (EventConfig fields of the same names; scenario.json).
PATTERNS = {"fast_switch_changes": 5, "fast_switch_window_s": 600.0, "long_stay_s": 1800.0, "silent_days": 7.0,
            "on_off_cycles": 3, "on_off_window_s": 1800.0, "roaming_out_s": 3900.0}
# The cast of the pattern events, one each per 40 subscribers, and residents whose phone is on since before the
# capture (one per 8): the wire shows only their TMSI. The cast comes after the others, whose day stays as it was.
CAST = {"rider": 40, "airport_stay": 40, "silent_returner": 40, "weak_signal": 40, "border_leaver": 40,
        "pre_attached": 8}
RIDER_KMH, LEAVER_KMH = 120.0, 90.0
AIRPORT_KM = 1.0           # the airport's cell group: the sectors of the sites this close to the terminal
WEAK_SIGNAL_CYCLES = 4
BLOCK = 1000               # subscribers whose cells are sampled together (arrays of BLOCK × steps)


@dataclass
class Subscriber:
    imsi: str
    imei: str
    rat: str          # "2G" or "4G"
    kind: str         # resident, domestic_tourist, international_tourist, commuter
    home: str         # province, or country MCC for international visitors
    msisdn: str
    plan: list = field(default_factory=list)  # [(t_start, t_end, (lat0, lon0), (lat1, lon1))] legs
    tmsi: int | None = None                   # current TMSI (2G) or M-TMSI (4G) the network assigned
    attached: bool = False                    # on since before the capture (until its session starts)
    known_tmsi: int | None = None             # the TMSI it was attached with then: yesterday's probe knew it
    last_seen: float | None = None            # when the probe last saw it before the capture (previous state)
    activity_per_h: float | None = None       # calls/SMS/service requests per hour, if not the usual rate
    track: memoryview | None = None           # index in city.cells of the serving cell at each sampling step
    area_ends: memoryview | None = None       # for each step, the first later step in another area (or steps)

    @property
    def imeisv(self) -> str:
        return self.imei[:14] + SOFTWARE_VERSION


def _luhn_imei(rng: random.Random, tacs: list[str] = DEVICE_TACS) -> str:
    body = rng.choice(tacs) + f"{rng.randrange(10**6):06d}"
    return body + str(imei_check_digit(body))


class Network:
    """The simulated core and RAN: allocates identities, writes messages, records truth."""

    def __init__(self, city: City, writer: PcapWriter, truth, rng: random.Random, t0: float, steps: int,
                 a_transport: str = "m3ua", point_codes: str = "itu"):
        self.city, self.writer, self.truth, self.rng = city, writer, truth, rng
        self.a_transport, self.point_codes = a_transport, point_codes
        self.t0, self.steps = t0, steps            # sampling steps at t0, t0 + STEP_S, … (sub.track)
        self._s1: dict[int, S1Link] = {}
        self._a: dict[int, M3uaLink | IpaLink] = {}
        self._sccp_ref = 0x100
        self._mme_ue_id = 1000
        self._enb_ue_id: dict[int, int] = {}
        self.observed: dict[str, str | None] = {}  # imsi -> last cell the network saw since power on
        self.phones: dict[str, str] = {}           # imsi -> TAC and serial of the last IMEI the network learnt
        self.located: set[str] = set()              # imsis the network has seen in a cell
        self.put_down: list[str] = []              # IMEIs of phones their subscriber stopped using
        self.history: list = []                     # (µs, event, cell, iface) of the subscriber being scheduled

    # -- where subscribers are: the cell of the sampling step nearest a time -------------------------------------
    def step_at_or_after(self, t: float) -> int:
        """The first sampling step whose time is ≥ ``t``."""
        k = max(0, math.ceil((t - self.t0) / STEP_S))
        return k + 1 if self.t0 + k * STEP_S < t else k

    def cell_at(self, sub: Subscriber, t: float) -> CellSite:
        k = min(max(round((t - self.t0) / STEP_S), 0), self.steps - 1)
        return self.city.cells[sub.track[k]]

    # -- truth --------------------------------------------------------------------------------------
    def record(self, ts: float, sub: Subscriber, event: str, cell: str | None, detail=None,
               cause: int | None = None) -> None:
        if cell and sub.imsi not in self.located:
            self.located.add(sub.imsi)
            if sub.imsi[:3] != HOME_MCC:  # a visitor's first appearance
                self.record(ts, sub, "roaming_in", cell, "international")
            elif not sub.imsi.startswith(PROVINCES[0][2]):  # a China Mobile subscriber of another province
                self.record(ts, sub, "roaming_in", cell, "domestic")
        ts, iface = round(ts, 6), "A" if sub.rat == "2G" else "S1"
        self.truth.write(json.dumps({"ts": ts, "imsi": sub.imsi, "event": event, "cell": cell, "detail": detail,
                                     "iface": iface, **({"cause": cause} if cause is not None else {})}) + "\n")
        self.history.append((round(ts * 1_000_000), event, cell, iface))

    def seen(self, ts: float, sub: Subscriber, cell: CellSite, power_on: bool = False) -> str:
        """The network observes the subscriber in ``cell``: a cell_change if it moved since last seen."""
        key = cell.key_2g if sub.rat == "2G" else cell.key_4g
        prev = self.observed.get(sub.imsi)
        if prev is not None and prev != key and not power_on:
            ts, iface = round(ts, 6), "A" if sub.rat == "2G" else "S1"
            self.truth.write(json.dumps({"ts": ts, "imsi": sub.imsi, "event": "cell_change", "cell": key,
                                         "prev_cell": prev, "detail": None, "iface": iface}) + "\n")
            self.history.append((round(ts * 1_000_000), "cell_change", key, iface))
        self.observed[sub.imsi] = key
        return key

    def identified(self, ts: float, sub: Subscriber, cell: str) -> None:
        """The network learns the phone's IMEI: an imei_change if the SIM is in another phone than last time."""
        prev = self.phones.get(sub.imsi)
        if prev is not None and prev != sub.imei[:14]:
            self.record(ts, sub, "imei_change", cell, f"{prev[:8]}->{sub.imei[:8]}")
        self.phones[sub.imsi] = sub.imei[:14]

    def forget(self, sub: Subscriber) -> None:
        """Done with ``sub``: nothing else looks at its state, so a big city's does not pile up."""
        self.observed.pop(sub.imsi, None)
        self.phones.pop(sub.imsi, None)
        self.located.discard(sub.imsi)
        self.history = []

    # -- links ----------------------------------------------------------------------------------------
    def s1(self, cell: CellSite) -> S1Link:
        if cell.site not in self._s1:
            self._s1[cell.site] = S1Link(self.writer, f"10.1.{cell.site // 250}.{cell.site % 250 + 1}", MME_IP,
                                         enb_port=36412)
        return self._s1[cell.site]

    def a(self, cell: CellSite) -> M3uaLink | IpaLink:
        bsc = cell.lac
        if bsc not in self._a:
            if self.point_codes == "24bit":
                bsc_pc, msc_pc = BSC_PC_24 + (bsc & 0xFF), MSC_PC_24
            else:
                bsc_pc, msc_pc = 0x0200 + (bsc & 0xFF), MSC_PC
            link = IpaLink if self.a_transport == "ipa" else M3uaLink
            self._a[bsc] = link(self.writer, f"10.2.0.{bsc & 0xFF}", "10.0.0.2", bsc_pc=bsc_pc, msc_pc=msc_pc)
        return self._a[bsc]

    def new_tmsi(self) -> int:
        return self.rng.randrange(1, 0xFFFFFFFE)

    # -- 2G procedures (TS 24.008 / 48.008 over SCCP connections) -----------------------------------------
    def a_connection(self, ts: float, sub: Subscriber, cell: CellSite, l3: bytes, steps: list) -> float:
        """Open an SCCP connection with Complete Layer 3, run ``steps`` (dt, uplink, bssap), clear it."""
        link = self.a(cell)
        self._sccp_ref += 2
        bsc_ref, msc_ref = self._sccp_ref, self._sccp_ref + 1
        link.sccp_cr(ts, bsc_ref, bssap.complete_layer3(HOME_MCC, HOME_MNC, cell.lac, cell.ci, l3))
        link.sccp_cc(ts + 0.02, bsc_ref, msc_ref)
        t = ts + 0.02
        for dt, uplink, payload in steps:
            t += dt
            dst = msc_ref if uplink else bsc_ref
            link.sccp_dt1(t, dst, payload, uplink)
        t += 0.05
        link.sccp_dt1(t, bsc_ref, bssap.clear_command(9), False)
        link.sccp_dt1(t + 0.03, msc_ref, bssap.clear_complete(), True)
        link.sccp_rlsd(t + 0.05, bsc_ref, msc_ref, False)
        link.sccp_rlc(t + 0.07, msc_ref, bsc_ref, True)
        return t + 0.07

    def a_location_update(self, ts: float, sub: Subscriber, cell: CellSite, lu_type: str) -> float:
        dtap = bssap.dtap
        ident = {"tmsi": sub.tmsi} if sub.tmsi is not None else {"imsi": sub.imsi}
        l3 = bssap.location_updating_request(lu_type, (HOME_MCC, HOME_MNC, cell.lac), **ident)
        steps = []
        if lu_type == "imsi_attach" and sub.tmsi is not None:  # a stale TMSI from yesterday: the VLR asks
            steps += [(0.05, False, dtap(bssap.identity_request("imsi"))),
                      (0.08, True, dtap(bssap.identity_response(imsi=sub.imsi)))]
        key = self.seen(ts, sub, cell, power_on=lu_type == "imsi_attach")
        self.record(ts, sub, "power_on" if lu_type == "imsi_attach" else "location_update", key, lu_type)
        if lu_type == "imsi_attach":
            steps += [(0.05, False, dtap(bssap.identity_request("imei"))),
                      (0.08, True, dtap(bssap.identity_response(imei=sub.imei)))]
            self.identified(ts + 0.02 + sum(s[0] for s in steps), sub, key)
        sub.tmsi = self.new_tmsi()
        steps += [(0.1, False, dtap(bssap.location_updating_accept((HOME_MCC, HOME_MNC, cell.lac), tmsi=sub.tmsi))),
                  (0.08, True, dtap(bssap.tmsi_reallocation_complete()))]
        return self.a_connection(ts, sub, cell, l3, steps)

    def a_detach(self, ts: float, sub: Subscriber, cell: CellSite) -> float:
        key = self.seen(ts, sub, cell)
        self.record(ts, sub, "power_off", key, "imsi_detach")
        self.observed.pop(sub.imsi, None)
        return self.a_connection(ts, sub, cell, bssap.imsi_detach_indication(tmsi=sub.tmsi), [])

    def a_call(self, ts: float, sub: Subscriber, cell: CellSite, mobile_originated: bool, other: str,
               duration: float, handovers: list, outcome: str = "answered") -> float:
        """A call (TS 24.008 §5.2) that ends as ``outcome`` (a CALL_CAUSES key); ``duration`` is talk or ring time."""
        dtap, ti_net, mo = bssap.dtap, 0, mobile_originated
        if mo:
            l3 = bssap.cm_service_request("mo_call", tmsi=sub.tmsi)
            steps = [(0.1, True, dtap(bssap.setup_mo(ti_net, other))),
                     (0.1, False, dtap(bssap.call_proceeding(ti_net)))]
        else:
            link = self.a(cell)
            link.sccp_udt(ts - 0.3, bssap.paging(sub.imsi, sub.tmsi, [(cell.lac, cell.ci)]), False)
            l3 = bssap.paging_response(tmsi=sub.tmsi)
            steps = [(0.1, False, dtap(bssap.setup_mt(ti_net, other)))]
        key = self.seen(ts, sub, cell)
        self.record(ts + 0.12, sub, "mo_call" if mo else "mt_call", key, other)  # the Setup
        cause = CALL_CAUSES[outcome]
        # Who clears (sends Disconnect, §5.4.3): the phone hangs up after talking or rejects a call ringing it; the
        # network clears when the far end is busy, does not answer or rejects, or the number does not exist.
        phone_clears = outcome == "answered" or (not mo and outcome in ("busy", "rejected"))
        rings = outcome in ("answered", "no_answer", "rejected") or (not mo and outcome == "busy")
        if outcome not in ("vacant_number", "failed"):  # the number exists: a traffic channel for the call
            steps += [(0.3, False, bssap.assignment_request()), (0.2, True, bssap.assignment_complete())]
        if rings:
            steps.append((1.5, not mo, dtap(bssap.alerting(ti_net))))
        if outcome == "answered":
            steps += [(3.0, not mo, dtap(bssap.connect(ti_net))), (0.1, mo, dtap(bssap.connect_acknowledge(ti_net)))]
            elapsed = sum(s[0] for s in steps) + 0.02
            for t_ho, new_cell in handovers:  # intra-BSC handover while talking: the BSC reports the new cell
                dt = max(0.01, (t_ho - ts) - elapsed)
                steps.append((dt, True, bssap.handover_performed(0, HOME_MCC, HOME_MNC, new_cell.lac, new_cell.ci)))
                elapsed += dt
                key = self.seen(ts + elapsed, sub, new_cell)
            wait = max(1.0, duration - elapsed)
        else:
            wait = duration if rings else 0.5
        # Disconnect from the clearing side, Release from the other, Release Complete from the first again; the
        # TI flag (TS 24.007 §11.2.3.1.3) is 0 on messages from the side that set the call up.
        originator_clears = phone_clears == mo
        steps += [(wait, phone_clears, dtap(bssap.disconnect(ti_net, cause, from_originator=originator_clears))),
                  (0.1, not phone_clears, dtap(bssap.release(ti_net, cause, from_originator=not originator_clears))),
                  (0.1, phone_clears, dtap(bssap.release_complete(ti_net, from_originator=originator_clears)))]
        t_end = ts + 0.02
        for dt, _, _ in steps:
            t_end += dt
        self.record(t_end, sub, "call_outcome", key, outcome, cause=cause)
        return self.a_connection(ts, sub, cell, l3, steps)

    def a_sms(self, ts: float, sub: Subscriber, cell: CellSite, destination: str) -> float:
        dtap = bssap.dtap
        tpdu = bssap.tp_submit(self.rng.randrange(256), destination, "See you at the lake")
        steps = [(0.2, True, dtap(bssap.cp_data(0, bssap.rp_data_mo(self.rng.randrange(256), "8613800571500", tpdu)),
                                  dlci=3)),
                 (0.1, False, dtap(bssap.cp_ack(0), dlci=3))]
        key = self.seen(ts, sub, cell)
        self.record(ts + 0.22, sub, "sms_mo", key, destination)
        return self.a_connection(ts, sub, cell, bssap.cm_service_request("sms", tmsi=sub.tmsi), steps)

    # -- 4G procedures (TS 24.301 over S1AP, TS 36.413) ---------------------------------------------------
    def s1_connection(self, ts: float, sub: Subscriber, cell: CellSite, nas_pdu: bytes, steps: list,
                      s_tmsi: tuple[int, int] | None = None, rrc_cause: str = "mo-Signalling") -> float:
        """Initial UE Message with ``nas_pdu``, then ``steps`` (dt, kind, nas), then context release."""
        link = self.s1(cell)
        enb_id = self._enb_ue_id[cell.site] = self._enb_ue_id.get(cell.site, 0) + 1
        self._mme_ue_id += 1
        mme_id = self._mme_ue_id
        ecgi = (HOME_MCC, HOME_MNC, cell.tac, cell.eci)
        link.send(ts, s1ap.initial_ue_message(enb_id, nas_pdu, *ecgi, rrc_cause=rrc_cause, s_tmsi=s_tmsi), True)
        t = ts
        for dt, kind, payload in steps:
            t += dt
            if kind == "dl":
                link.send(t, s1ap.downlink_nas_transport(mme_id, enb_id, payload), False)
            elif kind == "ul":
                link.send(t, s1ap.uplink_nas_transport(mme_id, enb_id, payload, *ecgi), True)
            elif kind == "ics":
                link.send(t, s1ap.initial_context_setup_request(mme_id, enb_id, payload), False)
                link.send(t + 0.05, s1ap.initial_context_setup_response(mme_id, enb_id), True)
                t += 0.05
        t += 0.1
        link.send(t, s1ap.ue_context_release_command(mme_id, enb_id, ("nas", 0)), False)
        link.send(t + 0.02, s1ap.ue_context_release_complete(mme_id, enb_id), True)
        return t + 0.02

    def guti(self, sub: Subscriber) -> tuple:
        return (HOME_MCC, HOME_MNC, MMEGI, MMEC, sub.tmsi)

    def s1_attach(self, ts: float, sub: Subscriber, cell: CellSite) -> float:
        count = 0
        if sub.tmsi is not None:  # attach with yesterday's GUTI: unknown to this MME, so it asks
            req = nas.attach_request(guti=self.guti(sub), attach_type="combined")
            steps = [(0.05, "dl", nas.identity_request("imsi")),
                     (0.08, "ul", nas.identity_response(imsi=sub.imsi))]
        else:
            req = nas.attach_request(imsi=sub.imsi, attach_type="combined")
            steps = []
        key = self.seen(ts, sub, cell, power_on=True)
        self.record(ts, sub, "power_on", key, "combined")
        steps += [(0.05, "dl", nas.identity_request("imeisv")), (0.08, "ul", nas.identity_response(imeisv=sub.imeisv))]
        self.identified(ts + sum(s[0] for s in steps), sub, key)
        sub.tmsi = self.new_tmsi()
        steps += [(0.1, "ics", nas.protect(nas.attach_accept(guti=self.guti(sub), tais=[(HOME_MCC, HOME_MNC, cell.tac)]),
                                           2, count)),
                  (0.1, "ul", nas.protect(nas.attach_complete(), 2, count))]
        return self.s1_connection(ts, sub, cell, req, steps)

    def s1_tau(self, ts: float, sub: Subscriber, cell: CellSite, update_type: str) -> float:
        old = self.guti(sub)
        req = nas.protect(nas.tracking_area_update_request(old, update_type=update_type), 1, 1)
        if self.rng.random() < 0.5:
            sub.tmsi = self.new_tmsi()
            accept = nas.tracking_area_update_accept(guti=self.guti(sub), tais=[(HOME_MCC, HOME_MNC, cell.tac)])
            steps = [(0.1, "dl", nas.protect(accept, 2, 1)), (0.1, "ul", nas.protect(nas.tracking_area_update_complete(), 2, 2))]
        else:
            steps = [(0.1, "dl", nas.protect(nas.tracking_area_update_accept(tais=[(HOME_MCC, HOME_MNC, cell.tac)]), 2, 1))]
        key = self.seen(ts, sub, cell)
        self.record(ts, sub, "location_update", key, update_type)
        return self.s1_connection(ts, sub, cell, req, steps, s_tmsi=(MMEC, old[4]))

    def s1_service(self, ts: float, sub: Subscriber, cell: CellSite) -> float:
        self.seen(ts, sub, cell)
        req = nas.service_request(1, self.rng.randrange(32), self.rng.randrange(65536))
        return self.s1_connection(ts, sub, cell, req, [(0.05, "ics", None)], s_tmsi=(MMEC, sub.tmsi), rrc_cause="mo-Data")

    def s1_detach(self, ts: float, sub: Subscriber, cell: CellSite) -> float:
        key = self.seen(ts, sub, cell)
        self.record(ts, sub, "power_off", key, "switch_off")
        self.observed.pop(sub.imsi, None)
        req = nas.protect(nas.detach_request_ue(guti=self.guti(sub), switch_off=True), 1, 3)
        return self.s1_connection(ts, sub, cell, req, [], s_tmsi=(MMEC, sub.tmsi))


def _new_imsi(rng: random.Random, prefix: str, taken: set[str]) -> str:
    """A random IMSI under ``prefix`` that no other subscriber has (a big city would otherwise draw the same
    one twice, and two phones would share one identity)."""
    while (imsi := prefix + f"{rng.randrange(10 ** (15 - len(prefix))):0{15 - len(prefix)}d}") in taken:
        pass
    taken.add(imsi)
    return imsi


def _population(rng: random.Random, count: int, share_4g: float) -> list[Subscriber]:
    subs, taken = [], set()
    for i in range(count):
        r = rng.random()
        if r < 0.5:
            kind, (province, _, imsi_prefix, msisdn_prefix) = "resident", PROVINCES[0]
        elif r < 0.6:
            kind, (province, _, imsi_prefix, msisdn_prefix) = "commuter", PROVINCES[0]
        elif r < 0.88:
            kind, (province, _, imsi_prefix, msisdn_prefix) = "domestic_tourist", rng.choice(PROVINCES[1:])
        else:
            kind = "international_tourist"
            mcc, mnc = rng.choice(FOREIGN_PLMNS)
            imsi_prefix, province, msisdn_prefix = mcc + mnc, mcc, ""
        imsi = _new_imsi(rng, imsi_prefix, taken)
        msisdn = "86" + msisdn_prefix + f"{rng.randrange(10000):04d}" if msisdn_prefix else f"99{i:09d}"
        subs.append(Subscriber(imsi=imsi, imei=_luhn_imei(rng), rat="4G" if rng.random() < share_4g else "2G",
                               kind=kind, home=province, msisdn=msisdn))
    for kind, per in CAST.items():
        for _ in range(max(1, count // per)):
            province, _, imsi_prefix, msisdn_prefix = (rng.choice(PROVINCES[1:]) if kind == "airport_stay"
                                                       else PROVINCES[0])
            imsi = _new_imsi(rng, imsi_prefix, taken)
            sub = Subscriber(imsi=imsi, imei=_luhn_imei(rng), rat="4G" if rng.random() < share_4g else "2G",
                             kind=kind, home=province, msisdn="86" + msisdn_prefix + f"{rng.randrange(10000):04d}")
            sub.activity_per_h = {"rider": 180.0, "airport_stay": 12.0}.get(kind)
            subs.append(sub)
    return subs


def _jitter(rng: random.Random, place: str, km: float = 0.4) -> tuple[float, float]:
    lat, lon = POIS[place]
    dlat, dlon = km_to_deg(km, lat)
    return lat + rng.uniform(-dlat, dlat), lon + rng.uniform(-dlon, dlon)


def _travel_s(a: tuple[float, float], b: tuple[float, float], kmh: float = SPEED_KMH) -> float:
    km = (((a[0] - b[0]) * 110.574) ** 2 + ((a[1] - b[1]) * 96.2) ** 2) ** 0.5
    return km / kmh * 3600


def _itinerary(rng: random.Random, sub: Subscriber, t0: float, t1: float,
               border: tuple[float, float]) -> tuple[float, float | None]:
    """Fill ``sub.plan``; return (power-on time, power-off time or None). ``border``: where leavers leave."""
    kmh, stays = SPEED_KMH, []
    if sub.kind in ("resident", "silent_returner", "pre_attached"):
        stops = [rng.choice(["xixi_residential", "binjiang_residential"]),
                 rng.choice(["west_lake", "in77_mall", "downtown_office"])]
        start = t0 + rng.uniform(0, 1800)
    elif sub.kind == "commuter":
        stops = ["xixi_residential", "west_lake", "binjiang_residential"]
        start = t0 + rng.uniform(0, 3600)
    elif sub.kind == "domestic_tourist":
        stops = [rng.choice(["hangzhou_east_station", "xiaoshan_airport"]), "west_lake", "in77_mall"]
        start = t0 + rng.uniform(0, 5400)
    elif sub.kind == "international_tourist":
        stops = ["xiaoshan_airport", "west_lake", "in77_mall"]
        start = t0 + rng.uniform(0, 5400)
    elif sub.kind == "rider":  # a short wait, then the train across town
        stops, kmh, stays = ["xixi_residential", "hangzhou_east_station"], RIDER_KMH, [rng.uniform(60, 300)]
        start = t0 + rng.uniform(0, 1800)
    elif sub.kind == "airport_stay":  # landed, waits for a connection, then goes to the lake
        stops, stays = ["xiaoshan_airport", "west_lake"], [rng.uniform(2400, 4200)]
        start = t0 + rng.uniform(0, 1200)
    elif sub.kind == "weak_signal":  # at home in a poorly covered flat
        stops = [rng.choice(["xixi_residential", "binjiang_residential"])]
        start = t0 + rng.uniform(0, 1800)
    else:  # border_leaver: drives out of the network at its eastern edge
        stops, kmh, stays = ["binjiang_residential", border], LEAVER_KMH, [rng.uniform(60, 300)]
        start = t0 + rng.uniform(0, 600)
    if sub.attached:
        start = t0
    t, here = start, _jitter(rng, stops[0])
    for n, place in enumerate(stops[1:]):
        if stays:
            stay = stays[n]
        else:
            stay = rng.uniform(300, 2400) if sub.kind != "commuter" else rng.uniform(60, 300)
        sub.plan.append((t, t + stay, here, here))
        t += stay
        there = place if isinstance(place, tuple) else _jitter(rng, place)
        sub.plan.append((t, t + _travel_s(here, there, kmh), here, there))
        t += _travel_s(here, there, kmh)
        here = there
    sub.plan.append((t, max(t, t1), here, here))
    off = rng.uniform(max(start + 1800, t1 - 3600), t1) if rng.random() < 0.15 and start + 1800 < t1 else None
    return start, off if sub.kind not in ("weak_signal", "border_leaver") else None


def simulate(out_dir: str | Path, subscribers: int = 300, hours: float = 4.0, seed: int = 7,
             share_4g: float = 0.6, start: datetime | None = None, progress=None,
             packing: SctpPacking = SctpPacking(), a_transport: str = "m3ua", point_codes: str = "itu",
             malformed_share: float = 0.0) -> dict:
    """Write capture.pcap, truth.jsonl, cells.csv, west_lake.geojson, number_segments.csv, subscribers.csv,
    scenario.json and previous_state.json.gz. ``packing``: SCTP bundling and fragmentation on the wire (the
    messages and the truth are the same whatever it is). ``a_transport``: the A interface over M3UA/SCTP
    ("m3ua") or IPA/SCCPlite over TCP ("ipa"); ``point_codes``: 14-bit ITU ("itu") or 24-bit ("24bit", SCCP
    addresses then SSN-only). Neither changes the messages or the truth, only their carrier. ``malformed_share``:
    that share of SCTP packets followed by a damaged copy (simulator/damage.py), which a receiver must count and
    skip; the truth stays the same."""
    if a_transport not in A_TRANSPORTS:
        raise ValueError(f"a_transport must be one of {', '.join(A_TRANSPORTS)}, not {a_transport!r}")
    if point_codes not in POINT_CODES:
        raise ValueError(f"point_codes must be one of {', '.join(POINT_CODES)}, not {point_codes!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    city = City.build()
    start = start or datetime(2026, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=UTC_OFFSET_HOURS)))
    t0 = start.timestamp()
    t1 = t0 + hours * 3600
    subs = _population(rng, subscribers, share_4g)
    yesterday = random.Random(seed + 1)  # the previous state, drawn apart so that today's schedule stays as it was
    border_site = city.border_sites()[len(city.border_sites()) // 2]
    steps = math.floor(hours * 3600 / STEP_S) + 1
    border = sorted(key for c in city.cells if c.site in city.border_sites() for key in (c.key_2g, c.key_4g))
    border_set = set(border)
    airport = {key: "airport" for c in city.cells_near(*POIS["xiaoshan_airport"], AIRPORT_KM)
               for key in (c.key_2g, c.key_4g)}
    patterns, clock = [], 0  # pattern truth, and the last µs of the behaviour truth
    with PcapWriter(out / "capture.pcap", packing, seed) as writer, open(out / "truth.jsonl", "w") as truth:
        net = Network(city, writer, truth, rng, t0, steps, a_transport, point_codes)
        for first in range(0, len(subs), BLOCK):
            block, times = subs[first:first + BLOCK], []
            for sub in block:
                if sub.kind == "resident" and rng.random() < 0.5:
                    sub.tmsi = net.new_tmsi()  # phone remembers an identity the network has forgotten
                elif sub.kind == "pre_attached":
                    sub.tmsi = sub.known_tmsi = net.new_tmsi()
                    sub.attached = True
                if sub.attached:
                    sub.last_seen = t0 - yesterday.uniform(600, 3000)
                elif sub.kind == "silent_returner":
                    sub.last_seen = t0 - yesterday.uniform(8, 25) * 86400
                elif sub.kind in ("resident", "commuter", "weak_signal", "border_leaver", "rider", "pre_attached"):
                    sub.last_seen = t0 - yesterday.uniform(8, 20) * 3600
                times.append(_itinerary(rng, sub, t0, t1, city.sites[border_site]))
            _track(city, block, t0, steps)
            for n, (sub, (on, off)) in enumerate(zip(block, times), first):
                if on < t1:  # a visitor arriving after the capture is in the population, not on the wire
                    _schedule(net, rng, sub, on, off, t1)
                if net.history:
                    clock = max(clock, max(e[0] for e in net.history))
                    patterns += _pattern_truth(sub.imsi, sub.last_seen, net.history, border_set, airport)
                net.forget(sub)
                sub.plan, sub.track, sub.area_ends = [], None, None
                if progress:
                    progress(n + 1, len(subs))
        for e, due in patterns:  # after the behaviour events, as a probe derives them
            if due is None or due <= clock:
                truth.write(json.dumps(e) + "\n")
    malformed = add_malformed(out / "capture.pcap", malformed_share, seed) if malformed_share > 0 else {}
    (out / "scenario.json").write_text(json.dumps({**PATTERNS, "cell_groups": airport, "border_cells": border,
                                                   "home_province": PROVINCES[0][0]}, indent=1))
    _write_previous_state(out / "previous_state.json.gz", subs)
    city.write_catalogue(out / "cells.csv")
    write_fence(out / "west_lake.geojson")
    write_number_segments(out / "number_segments.csv")
    with open(out / "subscribers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["imsi", "imei", "msisdn", "rat", "kind", "home"])
        for s in subs:
            w.writerow([s.imsi, s.imei, s.msisdn, s.rat, s.kind, s.home])
    return {"dir": str(out), "capture": str(out / "capture.pcap"), "truth": str(out / "truth.jsonl"),
            "subscribers": len(subs), "messages": writer.messages, "start": t0, "end": t1,
            "scenario": str(out / "scenario.json"), "previous_state": str(out / "previous_state.json.gz"),
            "malformed": dict(malformed)}


def _track(city: City, block: list[Subscriber], t0: float, steps: int) -> None:
    """Fill ``track`` and ``area_ends`` of a block of subscribers: their plans as arrays of knots (where each leg
    ends), walked at every sampling step by ``_walk``."""
    knots = max(len(sub.plan) + 1 for sub in block)
    kt, klat, klon = (np.empty((len(block), knots)) for _ in range(3))
    for n, sub in enumerate(block):
        legs = sub.plan
        points = [(legs[0][0], *legs[0][2])] + [(t_end, *b) for _, t_end, _, b in legs]
        points += [points[-1]] * (knots - len(points))
        kt[n], klat[n], klon[n] = zip(*points)
    area = np.array([[c.lac for c in city.cells], [c.tac for c in city.cells]])
    rat = np.array([sub.rat != "2G" for sub in block], np.intp)
    track, ends = _walk(kt, klat, klon, t0, STEP_S, steps, *city.grid, area[rat])
    for sub, row, end_row in zip(block, track, ends):
        sub.track, sub.area_ends = memoryview(row), memoryview(end_row)  # index to ints, not copied to lists


@numba.njit(cache=True)
def _walk(kt, klat, klon, t0, step, steps, lat_mids, lon_mids, cols, site_lat, site_lon, area):
    """Per subscriber (row) and sampling step: the serving cell of the position on its piecewise-linear plan
    (held at the ends), and the first later step whose cell is in another area than this step's (``steps`` if
    none); ``area[row]`` maps a cell to its LAC or TAC."""
    rows, knots = kt.shape
    track = np.empty((rows, steps), np.int64)
    ends = np.empty((rows, steps), np.int64)
    for r in range(rows):
        leg = 0
        for k in range(steps):
            t = t0 + k * step
            while leg < knots - 2 and t > kt[r, leg + 1]:
                leg += 1
            span = kt[r, leg + 1] - kt[r, leg]
            f = min(max((t - kt[r, leg]) / span, 0.0), 1.0) if span > 0 else 1.0  # no way to go on a zero leg
            lat = klat[r, leg] + (klat[r, leg + 1] - klat[r, leg]) * f
            lon = klon[r, leg] + (klon[r, leg + 1] - klon[r, leg]) * f
            track[r, k] = serving(lat, lon, lat_mids, lon_mids, cols, site_lat, site_lon)
        end = steps
        for k in range(steps - 1, -1, -1):
            ends[r, k] = end
            if k and area[r, track[r, k]] != area[r, track[r, k - 1]]:
                end = k
    return track, ends


def _write_previous_state(path: Path, subs: list[Subscriber]) -> None:
    """What yesterday's probe knew, in the identity-store snapshot format (docs/events.md): last sightings,
    and the TMSIs of the phones still attached."""
    attached = [s for s in subs if s.known_tmsi is not None]
    state = {"version": SNAPSHOT_VERSION,
             "correlator": {"tmsi": [[s.known_tmsi, s.imsi] for s in attached if s.rat == "2G"],
                            "m_tmsi": [[s.known_tmsi, s.imsi] for s in attached if s.rat == "4G"], "imei": {}},
             "patterns": {"subscribers": {s.imsi: {"last_seen": round(s.last_seen * 1_000_000)}
                                          for s in subs if s.last_seen is not None}}}
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(state, f)


def _pattern_truth(imsi: str, last_seen: float | None, evs: list, border: set[str],
                   groups: dict[str, str]) -> list[tuple[dict, int | None]]:
    """The pattern events one subscriber's behaviour events ``evs`` [(µs, event, cell, iface)] imply, by the rules
    of docs/events.md restated here on the simulator's own record (not the probe's code), with the thresholds of
    ``PATTERNS``. Each comes with None or, for a roaming_out, the µs it is due: it is true only if the truth goes on
    that long, which is known once every subscriber is done."""
    p = PATTERNS
    silent, stay_us = round(p["silent_days"] * 86400e6), round(p["long_stay_s"] * 1e6)
    switch_us, cycle_us, out_us = (round(p["fast_switch_window_s"] * 1e6), round(p["on_off_window_s"] * 1e6),
                                   round(p["roaming_out_s"] * 1e6))
    found = []

    def add(e, t, kind, detail, due=None):
        found.append(({"ts": round(t / 1e6, 6), "imsi": imsi, "event": kind, "cell": e[2], "detail": detail,
                       "iface": e[3]}, due))

    evs.sort(key=lambda e: e[0])
    last = round(last_seen * 1_000_000) if last_seen is not None else None
    changes, cycles, group, since, stayed, off = [], [], None, 0, False, False
    for n, e in enumerate(evs):
        t, kind, cell = e[:3]
        if kind == "power_on" and last is not None and t - last >= silent:
            add(e, t, "silent_power_on", iso_us(last))
        last = t
        if kind == "cell_change":
            changes = [c for c in changes if c >= t - switch_us] + [t]
            if len(changes) >= p["fast_switch_changes"]:
                add(e, t, "fast_cell_switching", str(len(changes)))
                changes = []
        if kind == "power_off":
            group, off = None, True
        else:
            g = groups.get(cell, cell)
            if g != group or kind == "power_on":
                group, since, stayed = g, t, False
            elif not stayed and t - since >= stay_us:
                add(e, t, "long_stay", g)
                stayed = True
        if kind == "power_on" and off:
            off = False
            cycles = [c for c in cycles if c >= t - cycle_us] + [t]
            if len(cycles) >= p["on_off_cycles"]:
                add(e, t, "frequent_on_off", str(len(cycles)))
                cycles = []
        if cell in border and kind != "power_off" and imsi[:3] == HOME_MCC:
            due = t + out_us
            following = evs[n + 1][0] if n + 1 < len(evs) else None
            if following is None or following >= due:
                add(e, due, "roaming_out", iso_us(t), due)
    return found


def _schedule(net: Network, rng: random.Random, sub: Subscriber, on: float, off: float | None, t1: float) -> None:
    """Walk the subscriber's timeline and queue the procedures it causes."""
    end = off if off is not None else t1
    if sub.kind == "border_leaver":  # last seen on a border cell, then gone: no detach, no more procedures
        arrival = sub.plan[-1][0]
        t = max(arrival, _session(net, rng, sub, on, arrival) + 1.0)
        cell = net.cell_at(sub, t)
        if sub.rat == "2G":
            net.a_sms(t, sub, cell, "8613800571234")
        else:
            net.s1_service(t, sub, cell)
        return
    if sub.kind == "weak_signal":
        for _ in range(WEAK_SIGNAL_CYCLES):  # loses the network, is switched off and on again
            lost = on + rng.uniform(120, 240)
            on = _power_off(net, sub, max(lost, _session(net, rng, sub, on, lost))) + rng.uniform(40, 120)
    elif rng.random() < PHONE_SWAP_SHARE and end - on > 2700:  # power off, SIM into another phone, power on
        swap = rng.uniform(on + 600, end - 1500)
        off_done = _power_off(net, sub, max(swap, _session(net, rng, sub, on, swap)))
        new_phone = _luhn_imei(rng, [tac for tac in DEVICE_TACS if tac != sub.imei[:8]])
        # Every other swapper takes the phone the previous one put down: the same IMEI then shows another IMSI.
        handed_on = net.put_down.pop() if net.put_down and len(net.put_down) % 2 else None
        net.put_down.append(sub.imei)
        sub.imei = handed_on or new_phone
        on = off_done + rng.uniform(60, 600)
    _session(net, rng, sub, on, end)
    if off is not None:
        _power_off(net, sub, off)


def _power_off(net: Network, sub: Subscriber, t: float) -> float:
    cell = net.cell_at(sub, t)
    return net.a_detach(t, sub, cell) if sub.rat == "2G" else net.s1_detach(t, sub, cell)


def _session(net: Network, rng: random.Random, sub: Subscriber, on: float, end: float) -> float:
    """Power on at ``on`` and live until ``end``; returns when the last procedure started is over.

    The network looks at the phone at every sampling step after ``on`` (while a step later is before ``end``)
    once its last procedure is over; the loop jumps straight to the next step where something happens: the area
    changes, the periodic timer runs out, or the next call/SMS/service request is due.
    """
    two_g, cells, t0 = sub.rat == "2G", net.city.cells, net.t0
    track, area_ends, at_or_after = sub.track, sub.area_ends, net.step_at_or_after
    cell = net.cell_at(sub, on)
    if sub.attached:  # on since before the capture: no attach; its last update was within the periodic timer
        sub.attached = False
        busy, last_update = on, on - rng.uniform(0, PERIODIC_UPDATE_S)
    else:
        busy = (net.a_location_update(on, sub, cell, "imsi_attach") if two_g else net.s1_attach(on, sub, cell))
        last_update = on
    area = cell.lac if two_g else cell.tac
    rate_per_s = (sub.activity_per_h or (1.3 if two_g else 3.0)) / 3600
    next_activity = on + rng.expovariate(rate_per_s)
    k = max(0, math.floor((on - t0) / STEP_S) + 1)                # the first step strictly after ``on``
    last = min(at_or_after(end - STEP_S), net.steps) - 1          # the last step with t + STEP_S < end
    while k <= last:
        t = t0 + k * STEP_S
        if t < busy:
            k = at_or_after(busy)
            continue
        cell = cells[track[k]]
        new_area = cell.lac if two_g else cell.tac
        if new_area != area:
            busy = (net.a_location_update(t, sub, cell, "normal") if two_g
                    else net.s1_tau(t, sub, cell, "ta_updating"))
            area, last_update = new_area, t
        elif t - last_update >= PERIODIC_UPDATE_S:
            busy = (net.a_location_update(t, sub, cell, "periodic") if two_g
                    else net.s1_tau(t, sub, cell, "periodic"))
            last_update = t
        elif t >= next_activity:
            if two_g:
                busy = _two_g_activity(net, rng, sub, cell, t, end)
            else:
                busy = net.s1_service(t, sub, cell)
            next_activity = t + rng.expovariate(rate_per_s)
        else:  # nothing at this step: on to the first one where something is due
            k = min(area_ends[k], at_or_after(last_update + PERIODIC_UPDATE_S), at_or_after(next_activity))
            continue
        k += 1
    return busy


def _two_g_activity(net: Network, rng: random.Random, sub: Subscriber, cell: CellSite, t: float, end: float) -> float:
    other = "86139057" + f"{rng.randrange(10 ** 5):05d}"
    if sub.kind == "rider":  # texting on the train: short connections, each showing the cell
        return net.a_sms(t, sub, cell, other)
    r = rng.random()
    if r < 0.35:
        return net.a_sms(t, sub, cell, other)
    mo = r < 0.7
    endings = MO_CALL_ENDINGS if mo else MT_CALL_ENDINGS
    outcome = rng.choices(list(endings), weights=list(endings.values()))[0]
    handovers = []
    if outcome == "answered":
        duration = rng.uniform(20, 150)
        serving, k, until = cell, net.step_at_or_after(t + 5.5), min(t + duration, end)
        while k < net.steps and net.t0 + k * STEP_S < until:  # the cell at each sampling step of the call
            new = net.city.cells[sub.track[k]]
            if new != serving and new.lac == serving.lac:  # intra-BSC handover only
                handovers.append((net.t0 + k * STEP_S, new))
                serving = new
            k += 1
    else:
        duration = rng.uniform(20, 40) if outcome == "no_answer" else rng.uniform(3, 15)  # ringing, if it rings
    return net.a_call(t, sub, cell, mo, other, duration, handovers, outcome)
