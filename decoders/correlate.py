"""Who sent each message and where: temporary identities and connections resolved to a subscriber.

Most messages on the wire name nobody (a DT1 on an SCCP connection, an Uplink NAS Transport with only
S1AP IDs) or only a TMSI/M-TMSI. The correlator keeps one ``UeContext`` per signaling connection
(SCCP connection on A; S1AP UE association on S1), learns TMSI ↔ IMSI from the procedures that reveal
both (TS 24.008 §4.4.4 location updating and TMSI reallocation, paging with IMSI+TMSI; TS 24.301
§5.5.1 attach, §5.4.1 GUTI reallocation, §5.4.4 identification), the phone's IMEI from identification
(an IMEISV taken to the IMEI of the same phone), and tracks the serving cell from
Complete Layer 3 (TS 48.008 §3.2.1.32), handover, and the cell IEs S1AP puts on uplink messages.
"""

from dataclasses import dataclass, field

from decoders.identity import imei_check_digit
from decoders.records import cell_key


def _imei(rec: dict) -> str | None:
    """The phone's IMEI: as sent, or an IMEISV's TAC and serial number (TS 23.003 §6.2.2) with the check digit
    the IMEI of that phone carries, so that a phone keeps one identity whichever of the two the network asked."""
    if rec.get("imei"):
        return rec["imei"]
    if rec.get("imeisv"):
        body = rec["imeisv"][:14]
        return body + str(imei_check_digit(body))
    return None


@dataclass(frozen=True)
class Cell:
    """A serving cell as seen on the wire; ``key`` is the catalogue/fence key (see records.cell_key)."""

    key: str
    mcc: str
    mnc: str
    lac: int | None = None
    ci: int | None = None
    tac: int | None = None
    eci: int | None = None


@dataclass(eq=False)
class UeContext:
    """One connection's view of a subscriber: identity as far as known, serving cell, pending facts."""

    iface: str
    imsi: str | None = None
    presented_tmsi: int | None = None  # TMSI / M-TMSI the phone identified itself with
    new_tmsi: int | None = None        # TMSI / M-TMSI assigned on this connection, not yet tied to an IMSI
    imei: str | None = None
    cell: Cell | None = None
    pending: list = field(default_factory=list)  # facts waiting for the IMSI (consumed by events.py)
    closed: bool = False


class Correlator:
    """Feeds on message records in capture order; ``observe`` returns the context each belongs to."""

    def __init__(self, home_mcc: str = "460", home_mnc: str = "00"):
        self.home = (home_mcc, home_mnc)
        self.tmsi_imsi: dict[int, str] = {}    # A interface TMSI -> IMSI
        self.m_tmsi_imsi: dict[int, str] = {}  # S1 M-TMSI -> IMSI
        self.imei_of: dict[str, str] = {}      # IMSI -> last IMEI
        self._sccp: dict[int, UeContext] = {}
        self._by_mme: dict[int, UeContext] = {}
        self._by_enb: dict[tuple[int, int], UeContext] = {}
        self._s1_current: UeContext | None = None  # the S1AP message whose NAS records follow
        self.released: list[UeContext] = []  # closed since last drained; events.py flushes them
        self.cell_changed = False            # set by observe() when the returned context's cell moved
        self.imei_seen: str | None = None    # set by observe() to the IMEI the message revealed

    # -- identity ---------------------------------------------------------------------------------
    def _identify(self, ctx: UeContext, imsi: str | None = None, tmsi: int | None = None,
                  new_tmsi: int | None = None, imei: str | None = None) -> None:
        table = self.tmsi_imsi if ctx.iface == "A" else self.m_tmsi_imsi
        if tmsi is not None:
            ctx.presented_tmsi = tmsi
            if ctx.imsi is None and tmsi in table:
                ctx.imsi = table[tmsi]
        if imsi:
            ctx.imsi = imsi
            if ctx.presented_tmsi is not None:
                table[ctx.presented_tmsi] = imsi
        if new_tmsi is not None:
            ctx.new_tmsi = new_tmsi
        if ctx.imsi and ctx.new_tmsi is not None:
            table[ctx.new_tmsi] = ctx.imsi
        if imei:
            ctx.imei = self.imei_seen = imei
        if ctx.imsi and ctx.imei:
            self.imei_of[ctx.imsi] = ctx.imei

    def _locate(self, ctx: UeContext, rec: dict) -> None:
        mcc = rec.get("mcc") or self.home[0]
        mnc = rec.get("mnc") or self.home[1]
        if rec.get("eci") is not None:
            cell = Cell(cell_key(mcc, mnc, eci=rec["eci"]), mcc, mnc, tac=rec.get("tac"), eci=rec["eci"])
        elif rec.get("lac") is not None and rec.get("ci") is not None:
            cell = Cell(cell_key(mcc, mnc, rec["lac"], rec["ci"]), mcc, mnc, lac=rec["lac"], ci=rec["ci"])
        else:
            return
        if ctx.cell is None or ctx.cell.key != cell.key:
            ctx.cell = cell
            self.cell_changed = True

    def _release(self, ctx: UeContext) -> None:
        if not ctx.closed:
            ctx.closed = True
            self.released.append(ctx)

    # -- per message -------------------------------------------------------------------------------
    def observe(self, rec: dict) -> UeContext | None:
        self.cell_changed = False
        self.imei_seen = None
        proto = rec["proto"]
        if proto in ("bssmap", "dtap"):
            return self._observe_a(rec)
        if proto == "s1ap":
            return self._observe_s1ap(rec)
        if proto == "nas-eps":
            return self._observe_nas(rec)
        return None

    def _observe_a(self, rec: dict) -> UeContext | None:
        msg, conn = rec["msg"], rec.get("conn")
        if conn is None:  # connectionless: Paging names IMSI and TMSI together
            if msg == "paging" and rec.get("imsi") and rec.get("tmsi") is not None:
                self.tmsi_imsi[rec["tmsi"]] = rec["imsi"]
            return None
        ctx = self._sccp.get(conn)
        if ctx is None or (msg == "complete_layer3_information" and rec["proto"] == "bssmap"):
            ctx = self._sccp[conn] = UeContext("A")
        if rec["proto"] == "bssmap":
            if msg in ("complete_layer3_information", "handover_performed"):
                self._locate(ctx, rec)
            elif msg == "clear_complete":
                self._release(self._sccp.pop(conn))
            return ctx
        # DTAP: the LAI of a Location Updating Request is the *old* one, so never a location here.
        if msg in ("location_updating_accept", "tmsi_reallocation_command"):
            self._identify(ctx, new_tmsi=rec.get("tmsi"))
        else:
            self._identify(ctx, imsi=rec.get("imsi"), tmsi=rec.get("tmsi"), imei=_imei(rec))
        return ctx

    def _observe_s1ap(self, rec: dict) -> UeContext | None:
        msg, assoc = rec["msg"], rec.get("assoc")
        mme, enb = rec.get("mme_ue_id"), rec.get("enb_ue_id")
        if mme is None and enb is None:
            self._s1_current = None
            return None
        if msg == "initial_ue_message":
            ctx = UeContext("S1")
            if rec.get("m_tmsi") is not None:
                self._identify(ctx, tmsi=rec["m_tmsi"])
        else:  # after a handover the MME ID still names the context; the eNB ID is the target's
            ctx = (self._by_mme.get(mme) if mme is not None else None) or self._by_enb.get((assoc, enb))
            if ctx is None:
                ctx = UeContext("S1")
        if enb is not None:
            self._by_enb[(assoc, enb)] = ctx
        if mme is not None:
            self._by_mme[mme] = ctx
        if msg in ("initial_ue_message", "uplink_nas_transport", "handover_notify", "path_switch_request",
                   "ue_capability_info_indication"):
            self._locate(ctx, rec)
        if msg == "ue_context_release_complete":
            self._by_mme.pop(mme, None)
            self._by_enb.pop((assoc, enb), None)
            self._release(ctx)
        self._s1_current = ctx
        return ctx

    def _observe_nas(self, rec: dict) -> UeContext | None:
        ctx = self._s1_current
        if ctx is None:
            return None
        msg = rec["msg"]
        if msg in ("attach_accept", "tracking_area_update_accept", "guti_reallocation_command"):
            self._identify(ctx, new_tmsi=rec.get("m_tmsi"))
        else:
            self._identify(ctx, imsi=rec.get("imsi"), tmsi=rec.get("m_tmsi"), imei=_imei(rec))
        return ctx

    def close_all(self) -> None:
        """End of input: every open context is released so its pending facts are flushed."""
        for ctx in {id(c): c for c in [*self._sccp.values(), *self._by_mme.values(),
                                        *self._by_enb.values()]}.values():
            self._release(ctx)
        self._sccp.clear()
        self._by_mme.clear()
        self._by_enb.clear()
