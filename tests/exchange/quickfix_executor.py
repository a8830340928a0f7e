"""An independent FIX 4.4 venue for the tests, on QuickFIX's acceptor, validating every message it
is sent against QuickFIX's own FIX44.xml. In the spirit of QuickFIX's executor example: it fills
what crosses the last price, in two executions at that price, rests what does not (an ioc or fok
order that does not cross expires), and serves cancel, replace, status, mass status, the security
list and market data (a snapshot per symbol, then incremental refreshes as prices walk).

Usage: quickfix_executor.py PORT STORE_DIR SENDER TARGET
Prints "venue: listening" once it accepts logons."""
import os
import random
import sys
import threading
import time

import quickfix as fix

LISTINGS = {"HDFCBANK": 165020, "ICICIBANK": 110045, "INFY": 152050,
            "RELIANCE": 245075, "SBIN": 78010, "TCS": 345000}
TICK = 5


def px(cents):
    return f"{cents // 100}.{cents % 100:02d}"


def cents(text):
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


class Order:
    def __init__(self, cl_ord_id, order_id, symbol, side, qty, limit, tif):
        self.ids = [cl_ord_id]
        self.order_id, self.symbol, self.side = order_id, symbol, side
        self.qty, self.limit, self.tif = qty, limit, tif
        self.cum, self.status = 0, fix.OrdStatus_NEW
        self.session = None

    @property
    def cl_ord_id(self):
        return self.ids[-1]

    def open(self):
        return self.status in (fix.OrdStatus_NEW, fix.OrdStatus_PARTIALLY_FILLED)

    def crosses(self, last):
        return last <= self.limit if self.side == fix.Side_BUY else last >= self.limit


class Venue(fix.Application):
    def __init__(self):
        super().__init__()
        self.lock = threading.RLock()
        self.prices = dict(LISTINGS)
        self.orders = {}  # every ClOrdID an order ever had -> the order
        self.sessions = set()
        self.subscriptions = {}  # session -> MDReqID
        self.seq = 0
        self.run = f"{int(time.time() * 1000)}"

    def next_id(self, prefix):
        self.seq += 1
        return f"{prefix}{self.run}-{self.seq}"

    def onCreate(self, session): pass

    def onLogon(self, session):
        with self.lock:
            self.sessions.add(session)
        print("venue: logon", flush=True)

    def onLogout(self, session):
        with self.lock:
            self.sessions.discard(session)
            self.subscriptions.pop(session, None)
        print("venue: logout", flush=True)

    def toAdmin(self, message, session): pass
    def fromAdmin(self, message, session): pass
    def toApp(self, message, session): pass

    def fromApp(self, message, session):
        kind = fix.MsgType()
        message.getHeader().getField(kind)
        handlers = {
            fix.MsgType_NewOrderSingle: self.new_order,
            fix.MsgType_OrderCancelRequest: self.cancel,
            fix.MsgType_OrderCancelReplaceRequest: self.replace,
            fix.MsgType_OrderStatusRequest: self.status,
            fix.MsgType_OrderMassStatusRequest: self.mass_status,
            fix.MsgType_SecurityListRequest: self.security_list,
            fix.MsgType_MarketDataRequest: self.market_data,
        }
        handler = handlers.get(kind.getValue())
        if handler is None:
            raise fix.UnsupportedMessageType()
        with self.lock:
            handler(message, session)

    # -- orders --------------------------------------------------------------------------------

    def report(self, session, order, exec_type, cl_ord_id=None, orig=None, last=0, extra=()):
        message = fix.Message()
        message.getHeader().setField(fix.MsgType(fix.MsgType_ExecutionReport))
        message.setField(fix.OrderID(order.order_id))
        message.setField(fix.ExecID(self.next_id("QE")))
        message.setField(fix.ClOrdID(cl_ord_id or order.cl_ord_id))
        if orig:
            message.setField(fix.OrigClOrdID(orig))
        message.setField(fix.ExecType(exec_type))
        message.setField(fix.OrdStatus(order.status))
        message.setField(fix.Symbol(order.symbol))
        message.setField(fix.Side(order.side))
        message.setField(fix.OrderQty(order.qty))
        message.setField(fix.StringField(44, px(order.limit)))
        leaves = order.qty - order.cum if order.open() else 0
        message.setField(fix.LeavesQty(leaves))
        message.setField(fix.CumQty(order.cum))
        message.setField(fix.AvgPx(0))
        if last:
            message.setField(fix.LastQty(last))
            message.setField(fix.StringField(31, px(self.prices[order.symbol])))
        for field in extra:
            message.setField(field)
        fix.Session.sendToTarget(message, session)

    def fill(self, session, order):
        last = self.prices[order.symbol]
        if not order.open() or not order.crosses(last):
            return False
        left = order.qty - order.cum
        for part in (left // 2, left - left // 2):
            if part == 0:
                continue
            order.cum += part
            done = order.cum == order.qty
            order.status = fix.OrdStatus_FILLED if done else fix.OrdStatus_PARTIALLY_FILLED
            self.report(session, order, fix.ExecType_TRADE, last=part)
        return True

    def field(self, message, field):
        message.getField(field)
        return field.getValue()

    def new_order(self, message, session):
        cl_ord_id = self.field(message, fix.ClOrdID())
        symbol = self.field(message, fix.Symbol())
        side = self.field(message, fix.Side())
        qty = int(self.field(message, fix.OrderQty()))
        tif = self.field(message, fix.TimeInForce()) if message.isSetField(59) else "0"
        limit = cents(message.getField(44)) if message.isSetField(44) else None
        if cl_ord_id in self.orders:
            order = self.orders[cl_ord_id]
            return self.report(session, order, fix.ExecType_REJECTED,
                               extra=[fix.OrdRejReason(6), fix.Text("duplicate ClOrdID")])
        order = Order(cl_ord_id, self.next_id("Q"), symbol, side, qty, limit or 0, tif)
        if symbol not in self.prices or limit is None:
            order.order_id = "NONE"
            order.status = fix.OrdStatus_REJECTED
            reason = "unknown symbol" if symbol not in self.prices else "a price is required"
            return self.report(session, order, fix.ExecType_REJECTED,
                               extra=[fix.OrdRejReason(1 if symbol not in self.prices else 99),
                                      fix.Text(reason)])
        order.session = session
        self.orders[cl_ord_id] = order
        self.report(session, order, fix.ExecType_NEW)
        if not self.fill(session, order) and tif in ("3", "4"):
            order.status = fix.OrdStatus_EXPIRED
            self.report(session, order, fix.ExecType_EXPIRED)

    def cancel_reject(self, session, cl_ord_id, orig, response_to, reason, text):
        message = fix.Message()
        message.getHeader().setField(fix.MsgType(fix.MsgType_OrderCancelReject))
        order = self.orders.get(orig)
        message.setField(fix.OrderID(order.order_id if order else "NONE"))
        message.setField(fix.ClOrdID(cl_ord_id))
        message.setField(fix.OrigClOrdID(orig))
        message.setField(fix.OrdStatus(order.status if order else fix.OrdStatus_REJECTED))
        message.setField(fix.CxlRejResponseTo(response_to))
        message.setField(fix.CxlRejReason(reason))
        message.setField(fix.Text(text))
        fix.Session.sendToTarget(message, session)

    def cancel(self, message, session):
        cl_ord_id = self.field(message, fix.ClOrdID())
        orig = self.field(message, fix.OrigClOrdID())
        order = self.orders.get(orig)
        if order is None:
            return self.cancel_reject(session, cl_ord_id, orig, "1", 1, "unknown order")
        if not order.open():
            return self.cancel_reject(session, cl_ord_id, orig, "1", 0, "too late to cancel")
        order.status = fix.OrdStatus_CANCELED
        self.report(session, order, fix.ExecType_CANCELED, cl_ord_id=cl_ord_id, orig=orig)

    def replace(self, message, session):
        cl_ord_id = self.field(message, fix.ClOrdID())
        orig = self.field(message, fix.OrigClOrdID())
        order = self.orders.get(orig)
        if order is not None and order.cl_ord_id == cl_ord_id:
            # The same replace again: answered as the first time.
            return self.report(session, order, fix.ExecType_REPLACED, orig=order.ids[-2])
        if order is None:
            return self.cancel_reject(session, cl_ord_id, orig, "2", 1, "unknown order")
        qty = int(self.field(message, fix.OrderQty()))
        if not order.open() or qty <= order.cum:
            return self.cancel_reject(session, cl_ord_id, orig, "2", 0, "too late to replace")
        order.qty, order.limit = qty, cents(message.getField(44))
        order.ids.append(cl_ord_id)
        self.orders[cl_ord_id] = order
        self.report(session, order, fix.ExecType_REPLACED, orig=orig)
        self.fill(session, order)

    def status(self, message, session):
        cl_ord_id = self.field(message, fix.ClOrdID())
        order = self.orders.get(cl_ord_id)
        echo = ([fix.OrdStatusReqID(self.field(message, fix.OrdStatusReqID()))]
                if message.isSetField(790) else [])
        if order is None:
            unknown = Order(cl_ord_id, "NONE", self.field(message, fix.Symbol()),
                            self.field(message, fix.Side()), 0, 0, "0")
            unknown.status = fix.OrdStatus_REJECTED
            return self.report(session, unknown, fix.ExecType_ORDER_STATUS,
                               extra=[fix.OrdRejReason(5), fix.Text("unknown order")] + echo)
        # Named by its latest ClOrdID, whichever of its ids was asked.
        self.report(session, order, fix.ExecType_ORDER_STATUS, extra=echo)

    def mass_status(self, message, session):
        request = self.field(message, fix.MassStatusReqID())
        orders = list({id(o): o for o in self.orders.values()}.values())
        if not orders:
            empty = Order("NONE", "NONE", "NONE", fix.Side_BUY, 0, 0, "0")
            empty.status = fix.OrdStatus_REJECTED
            return self.report(session, empty, fix.ExecType_ORDER_STATUS,
                               extra=[fix.MassStatusReqID(request), fix.TotNumReports(0),
                                      fix.LastRptRequested(True)])
        for n, order in enumerate(orders, 1):
            self.report(session, order, fix.ExecType_ORDER_STATUS,
                        extra=[fix.MassStatusReqID(request), fix.TotNumReports(len(orders)),
                               fix.LastRptRequested(n == len(orders))])

    # -- market data ---------------------------------------------------------------------------

    def security_list(self, message, session):
        reply = fix.Message()
        reply.getHeader().setField(fix.MsgType(fix.MsgType_SecurityList))
        reply.setField(fix.SecurityReqID(self.field(message, fix.SecurityReqID())))
        reply.setField(fix.SecurityResponseID(self.next_id("SL")))
        reply.setField(fix.SecurityRequestResult(0))
        for symbol in sorted(self.prices):
            group = fix.Group(146, 55)
            group.setField(fix.Symbol(symbol))
            reply.addGroup(group)
        fix.Session.sendToTarget(reply, session)

    def market_data(self, message, session):
        request = self.field(message, fix.MDReqID())
        self.subscriptions[session] = request
        for symbol in sorted(self.prices):
            snapshot = fix.Message()
            snapshot.getHeader().setField(fix.MsgType(fix.MsgType_MarketDataSnapshotFullRefresh))
            snapshot.setField(fix.MDReqID(request))
            snapshot.setField(fix.Symbol(symbol))
            entry = fix.Group(268, 269)
            entry.setField(fix.MDEntryType(fix.MDEntryType_TRADE))
            entry.setField(fix.StringField(270, px(self.prices[symbol])))
            snapshot.addGroup(entry)
            fix.Session.sendToTarget(snapshot, session)

    def tick(self):
        """Moves one price a tick, tells the subscribers, and fills what now crosses."""
        with self.lock:
            symbol = random.choice(sorted(self.prices))
            self.prices[symbol] += random.choice((-TICK, TICK))
            for session, request in list(self.subscriptions.items()):
                refresh = fix.Message()
                refresh.getHeader().setField(
                    fix.MsgType(fix.MsgType_MarketDataIncrementalRefresh))
                refresh.setField(fix.MDReqID(request))
                entry = fix.Group(268, 279)
                entry.setField(fix.MDUpdateAction(fix.MDUpdateAction_CHANGE))
                entry.setField(fix.MDEntryType(fix.MDEntryType_TRADE))
                entry.setField(fix.Symbol(symbol))
                entry.setField(fix.StringField(270, px(self.prices[symbol])))
                refresh.addGroup(entry)
                fix.Session.sendToTarget(refresh, session)
            # A session not logged on gets its reports when it asks for them again.
            for order in {id(o): o for o in self.orders.values()}.values():
                if order.symbol == symbol:
                    self.fill(order.session, order)


port, store, sender, target = sys.argv[1:5]
dictionary = os.path.join(sys.prefix, "share", "quickfix", "FIX44.xml")
if not os.path.exists(dictionary):
    sys.exit(f"QuickFIX's FIX44.xml is not at {dictionary}")
config = os.path.join(store, "executor.cfg")
with open(config, "w") as out:
    out.write(f"""[DEFAULT]
ConnectionType=acceptor
StartTime=00:00:00
EndTime=00:00:00
FileStorePath={store}
FileLogPath={store}
UseDataDictionary=Y
DataDictionary={dictionary}
SocketAcceptPort={port}
SocketReuseAddress=Y
[SESSION]
BeginString=FIX.4.4
SenderCompID={sender}
TargetCompID={target}
""")
settings = fix.SessionSettings(config)
venue = Venue()
acceptor = fix.SocketAcceptor(venue, fix.FileStoreFactory(settings), settings,
                              fix.FileLogFactory(settings))
acceptor.start()
print("venue: listening", flush=True)
interval = float(os.environ.get("VENUE_TICK_SECONDS", "0.5"))
while True:
    time.sleep(interval)
    venue.tick()
