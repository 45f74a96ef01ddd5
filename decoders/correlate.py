"""Who sent each message and where: temporary identities and connections resolved to a subscriber.

Most messages on the wire name nobody (a DT1 on an SCCP connection, an Uplink NAS Transport with only
S1AP IDs) or only a TMSI/M-TMSI. The correlator keeps one ``UeContext`` per signaling connection
(SCCP connection on A; S1AP UE association on S1), learns TMSI ↔ IMSI from the procedures that reveal
both (TS 24.008 §4.4.4 location updating and TMSI reallocation, paging with IMSI+TMSI; TS 24.301
§5.5.1 attach, §5.4.1 GUTI reallocation, §5.4.4 identification), the phone's IMEI from identification
(an IMEISV taken to the IMEI of the same phone), and tracks the serving cell from
Complete Layer 3 (TS 48.008 §3.2.1.32), handover, and the cell IEs S1AP puts on uplink messages.
"""

import sys
from dataclasses import astuple, dataclass, field

from decoders.identity import imei_check_digit
from decoders.records import cell_key


def imei_of_fields(imei: str | None, imeisv: str | None) -> str | None:
    """The phone's IMEI: as sent, or an IMEISV's TAC and serial number (TS 23.003 §6.2.2) with the check digit
    the IMEI of that phone carries, so that a phone keeps one identity whichever of the two the network asked."""
    if imei:
        return imei
    if imeisv:
        body = imeisv[:14]
        return body + str(imei_check_digit(body))
    return None


# S1AP messages whose eNB UE S1AP ID is the one a handover's target eNB allocated (TS 36.413 §8.4).
TARGET_ENB_ID = frozenset(("handover_request_acknowledge", "handover_notify", "path_switch_request"))
# The (proto, msg) whose cell IEs locate the connection's phone: Complete Layer 3 and handover on A (the LAI of a
# DTAP Location Updating Request is the *old* one, so never a location), the uplink S1AP messages with an ECGI.
LOCATING = frozenset((("bssmap", "complete_layer3_information"), ("bssmap", "handover_performed"),
                      *(("s1ap", msg) for msg in ("initial_ue_message", "uplink_nas_transport", "handover_notify",
                                                   "path_switch_request", "ue_capability_info_indication"))))
A_PROTOS = frozenset(("bssmap", "dtap"))


@dataclass(frozen=True, slots=True)
class Cell:
    """A serving cell as seen on the wire; ``key`` is the catalogue/fence key (see records.cell_key)."""

    key: str
    mcc: str
    mnc: str
    lac: int | None = None
    ci: int | None = None
    tac: int | None = None
    eci: int | None = None


def encode_cell(cell: Cell | None) -> list | None:
    return list(astuple(cell)) if cell else None


def decode_cell(values: list | None) -> Cell | None:
    return Cell(*values) if values else None


def encode_context(ctx: "UeContext") -> list:
    """A context as a snapshot holds it (docs/events.md "Identity store")."""
    return [ctx.iface, ctx.imsi, ctx.presented_tmsi, ctx.new_tmsi, ctx.imei, encode_cell(ctx.cell),
            [encode_fact(f) for f in ctx.pending]]


def decode_context(values: list) -> "UeContext":
    iface, imsi, tmsi, new, imei, cell, pending = values
    return UeContext(iface, imsi, tmsi, new, imei, decode_cell(cell), [decode_fact(f) for f in pending])


def encode_fact(fact: tuple) -> list:
    """A pending fact (kind, ts, frame, cell, ...) with its cell in snapshot form."""
    return [*fact[:3], encode_cell(fact[3]), *fact[4:]]


def decode_fact(values: list) -> tuple:
    return (*values[:3], decode_cell(values[3]), *values[4:])


@dataclass(eq=False, slots=True)
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
    mme_id: int | None = None               # S1: the MME UE S1AP ID and (assoc, eNB UE S1AP ID) it is
    enb_key: tuple[int, int] | None = None  # indexed under, so that a context displaced from both is released


class Correlator:
    """Feeds on message records in capture order; ``observe`` returns the context each belongs to.

    The identity tables and what each message teaches of its context's subscriber (``learn_*``) are shared with
    EventDeriver (events.py), which finds the contexts of a whole batch in one compiled pass
    (decoders/connections.py); the connection indexes here, record at a time, are that pass's reference: a change
    to what observe_* do with the IDs must be made there too (tests/test_connections.py compares the two)."""

    def __init__(self, home_mcc: str = "460", home_mnc: str = "00"):
        self.home = (home_mcc, home_mnc)
        self.tmsi_imsi: dict[int, str] = {}    # A interface TMSI -> IMSI
        self.m_tmsi_imsi: dict[int, str] = {}  # S1 M-TMSI -> IMSI
        self.imei_of: dict[str, str] = {}      # IMSI -> last IMEI
        self._sccp: dict[int, UeContext] = {}
        self._by_mme: dict[int, UeContext] = {}
        self._by_enb: dict[tuple[int, int], UeContext] = {}
        self._s1_current: UeContext | None = None  # the S1AP message whose NAS records follow
        self._cells: dict[tuple, Cell] = {}
        self.released: list[UeContext] = []  # closed since last drained; events.py flushes them
        # Set by the observe_* methods when the returned context's cell moved / to the IMEI the message revealed;
        # cleared by observe, and by a caller of observe_a/_s1ap/_nas once it has read them (cheaper than each time).
        self.cell_changed = False
        self.imei_seen: str | None = None

    # -- identity ---------------------------------------------------------------------------------
    def _identify(self, ctx: UeContext, imsi: str | None = None, tmsi: int | None = None,
                  new_tmsi: int | None = None, imei: str | None = None) -> None:
        if not imsi and tmsi is None and new_tmsi is None and not imei:
            return  # a message that names nobody teaches nothing (what it would re-assert is already known)
        table = self.tmsi_imsi if ctx.iface == "A" else self.m_tmsi_imsi
        if tmsi is not None:
            ctx.presented_tmsi = tmsi
            if ctx.imsi is None:
                ctx.imsi = table.get(tmsi)
        if imsi:
            ctx.imsi = imsi = sys.intern(imsi)  # one string per subscriber, however many tables key on it
            if ctx.presented_tmsi is not None:
                table[ctx.presented_tmsi] = imsi
        if new_tmsi is not None:
            ctx.new_tmsi = new_tmsi
        if ctx.imsi and ctx.new_tmsi is not None:
            table[ctx.new_tmsi] = ctx.imsi
            old = ctx.presented_tmsi
            if old is not None and old != ctx.new_tmsi and table.get(old) == ctx.imsi:
                del table[old]  # reallocated (TS 24.008 §4.3.1, TS 24.301 §5.4.1): the old one is void
        if imei:
            ctx.imei = self.imei_seen = imei
        if ctx.imsi and ctx.imei:
            self.imei_of[ctx.imsi] = ctx.imei

    def cell_of(self, mcc: str | None, mnc: str | None, lac: int | None, ci: int | None, tac: int | None,
                eci: int | None) -> Cell | None:
        """The cell a message's cell IEs name (a PLMN-less LAC+CI is the home network's), or None."""
        mcc = mcc or self.home[0]
        mnc = mnc or self.home[1]
        if eci is None and (lac is None or ci is None):
            return None
        ident = (mcc, mnc, eci, tac) if eci is not None else (mcc, mnc, lac, ci)
        cell = self._cells.get(ident)
        if cell is None:  # one Cell per cell, shared by every subscriber it serves (the store's memory)
            cell = self._cells[ident] = (
                Cell(cell_key(mcc, mnc, eci=eci), mcc, mnc, tac=tac, eci=eci) if eci is not None
                else Cell(cell_key(mcc, mnc, lac, ci), mcc, mnc, lac=lac, ci=ci))
        return cell

    def _locate(self, ctx: UeContext, cell: Cell | None) -> None:
        if cell is not None and (ctx.cell is None or ctx.cell.key != cell.key):
            ctx.cell = cell
            self.cell_changed = True

    def _release(self, ctx: UeContext) -> None:
        if not ctx.closed:
            ctx.closed = True
            self.released.append(ctx)

    # -- per message -------------------------------------------------------------------------------
    def observe(self, rec: dict) -> UeContext | None:
        """The context of one message record (a dict of MESSAGE_SCHEMA fields), through its protocol's observe_*."""
        self.cell_changed = False
        self.imei_seen = None
        proto, msg, get = rec["proto"], rec["msg"], rec.get
        cell = (self.cell_of(get("mcc"), get("mnc"), get("lac"), get("ci"), get("tac"), get("eci"))
                if (proto, msg) in LOCATING else None)
        if proto == "s1ap":
            return self.observe_s1ap(msg, get("assoc"), get("mme_ue_id"), get("enb_ue_id"), get("m_tmsi"), cell)
        if proto == "nas-eps":
            return self.observe_nas(msg, get("imsi"), get("m_tmsi"), imei_of_fields(get("imei"), get("imeisv")))
        if proto in A_PROTOS:
            return self.observe_a(proto == "bssmap", msg, get("conn"), get("imsi"), get("tmsi"),
                                  imei_of_fields(get("imei"), get("imeisv")), cell)
        return None

    # One message per protocol, given as the fields correlation reads (a caller holding columns builds no record):
    # ``imei`` as ``imei_of_fields`` gives it, ``cell`` the ``cell_of`` of a LOCATING message's cell IEs (None for
    # other messages). They set ``cell_changed`` and ``imei_seen`` (see __init__).
    def observe_a(self, bssmap: bool, msg: str, conn: int | None, imsi: str | None, tmsi: int | None,
                  imei: str | None, cell: Cell | None) -> UeContext | None:
        if conn is None:
            self.learn_connectionless(msg, imsi, tmsi)
            return None
        ctx = self._sccp.get(conn)
        if ctx is None or (bssmap and msg == "complete_layer3_information"):
            ctx = self._sccp[conn] = UeContext("A")
        self.learn_a(ctx, bssmap, msg, imsi, tmsi, imei, cell)
        if bssmap and msg == "clear_complete":
            self._release(self._sccp.pop(conn))
        return ctx

    # What a message teaches of its context's subscriber, once the context is found (the same arguments as the
    # observe_* methods): identities and the serving cell.
    def learn_connectionless(self, msg: str, imsi: str | None, tmsi: int | None) -> None:
        if msg == "paging" and imsi and tmsi is not None:  # Paging names IMSI and TMSI together
            self.tmsi_imsi[tmsi] = imsi

    def learn_a(self, ctx: UeContext, bssmap: bool, msg: str, imsi: str | None, tmsi: int | None, imei: str | None,
                cell: Cell | None) -> None:
        if bssmap:
            if cell is not None:
                self._locate(ctx, cell)
        elif msg in ("location_updating_accept", "tmsi_reallocation_command"):
            self._identify(ctx, new_tmsi=tmsi)
        else:
            self._identify(ctx, imsi=imsi, tmsi=tmsi, imei=imei)

    def learn_s1ap(self, ctx: UeContext, msg: str, m_tmsi: int | None, cell: Cell | None) -> None:
        if msg == "initial_ue_message" and m_tmsi is not None:
            self._identify(ctx, None, m_tmsi)
        if cell is not None:
            self._locate(ctx, cell)

    def learn_nas(self, ctx: UeContext, msg: str, imsi: str | None, m_tmsi: int | None, imei: str | None) -> None:
        if msg in ("attach_accept", "tracking_area_update_accept", "guti_reallocation_command"):
            self._identify(ctx, new_tmsi=m_tmsi)
        else:
            self._identify(ctx, imsi=imsi, tmsi=m_tmsi, imei=imei)

    def observe_s1ap(self, msg: str, assoc: int | None, mme: int | None, enb: int | None, m_tmsi: int | None,
                     cell: Cell | None) -> UeContext | None:
        if mme is None and enb is None:
            self._s1_current = None
            return None
        enb_key = (assoc, enb)
        if msg == "initial_ue_message":
            ctx, on_enb, on_mme = UeContext("S1"), None, None
        else:
            on_enb = self._by_enb.get(enb_key) if enb is not None else None
            on_mme = self._by_mme.get(mme) if mme is not None else None
            ctx = on_enb
            # In a handover the MME ID names the context and the eNB ID is the target's. Otherwise a context the
            # eNB opened that has no MME ID yet is getting one now, from the MME's first message on it, even if an
            # earlier connection whose release went unseen held that ID.
            if mme is not None and (ctx is None or ctx.mme_id is not None or msg in TARGET_ENB_ID):
                ctx = on_mme or ctx
            if ctx is None:
                ctx = UeContext("S1")
        # Most messages name the context by the IDs it is already indexed under: nothing to re-index.
        if enb is not None and (on_enb is not ctx or ctx.enb_key != enb_key):
            self._index_enb(enb_key, ctx)
        if mme is not None and (on_mme is not ctx or ctx.mme_id != mme):
            self._index_mme(mme, ctx)
        self.learn_s1ap(ctx, msg, m_tmsi, cell)
        if msg == "ue_context_release_complete":
            self._by_mme.pop(mme, None)
            self._by_enb.pop(enb_key, None)
            ctx.mme_id = ctx.enb_key = None
            self._release(ctx)
        self._s1_current = ctx
        return ctx

    # An S1AP ID names one UE association at a time (TS 36.413 §9.2.3.3, §9.2.3.4): a context it named before
    # that neither ID reaches any more ended without its release being seen, and is released with what waits on it.
    def _index_enb(self, key: tuple[int, int], ctx: UeContext) -> None:
        old = self._by_enb.get(key)
        self._by_enb[key] = ctx
        ctx.enb_key = key
        if old is not None and old is not ctx:
            if old.enb_key == key:
                old.enb_key = None
            self._release_if_unnamed(old)

    def _index_mme(self, mme: int, ctx: UeContext) -> None:
        old = self._by_mme.get(mme)
        self._by_mme[mme] = ctx
        ctx.mme_id = mme
        if old is not None and old is not ctx:
            if old.mme_id == mme:
                old.mme_id = None
            self._release_if_unnamed(old)

    def _release_if_unnamed(self, ctx: UeContext) -> None:
        if ((ctx.enb_key is None or self._by_enb.get(ctx.enb_key) is not ctx)
                and (ctx.mme_id is None or self._by_mme.get(ctx.mme_id) is not ctx)):
            self._release(ctx)

    def observe_nas(self, msg: str, imsi: str | None, m_tmsi: int | None, imei: str | None) -> UeContext | None:
        ctx = self._s1_current
        if ctx is not None:
            self.learn_nas(ctx, msg, imsi, m_tmsi, imei)
        return ctx

    # -- the store (snapshot/restore, eviction; events.py owns the file and the connections) ---------------
    def state(self) -> dict:
        return {"tmsi": list(self.tmsi_imsi.items()), "m_tmsi": list(self.m_tmsi_imsi.items()), "imei": self.imei_of}

    def load(self, state: dict) -> None:
        self.tmsi_imsi.update((int(t), sys.intern(imsi)) for t, imsi in state.get("tmsi", []))
        self.m_tmsi_imsi.update((int(t), sys.intern(imsi)) for t, imsi in state.get("m_tmsi", []))
        self.imei_of.update((sys.intern(imsi), imei) for imsi, imei in state.get("imei", {}).items())

    def forget(self, imsis: set[str]) -> None:
        """Drop what the store knows of ``imsis`` (expired or evicted); open connections keep theirs."""
        for table in (self.tmsi_imsi, self.m_tmsi_imsi):
            for tmsi in [t for t, imsi in table.items() if imsi in imsis]:
                del table[tmsi]
        for imsi in imsis:
            self.imei_of.pop(imsi, None)
