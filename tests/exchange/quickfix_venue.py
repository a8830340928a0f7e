"""An independent FIX 4.4 counterparty for the tests: QuickFIX's acceptor, validating every message
against QuickFIX's own FIX44.xml. It acknowledges each NewOrderSingle and fills it in two
executions at its limit. Usage: quickfix_venue.py PORT STORE_DIR SENDER TARGET"""
import os
import sys
import time

import quickfix as fix


class Venue(fix.Application):
    exec_id = 0

    def onCreate(self, session): pass
    def onLogon(self, session): print("venue: logon", flush=True)
    def onLogout(self, session): print("venue: logout", flush=True)
    def toAdmin(self, message, session): pass
    def fromAdmin(self, message, session): pass
    def toApp(self, message, session): pass

    def fromApp(self, message, session):
        msg_type = fix.MsgType()
        message.getHeader().getField(msg_type)
        if msg_type.getValue() != fix.MsgType_NewOrderSingle:
            return
        cl_ord_id, qty, price, side, symbol = (
            fix.ClOrdID(), fix.OrderQty(), fix.Price(), fix.Side(), fix.Symbol())
        for field in (cl_ord_id, qty, price, side, symbol):
            message.getField(field)
        whole, first = int(qty.getValue()), int(qty.getValue()) // 2
        filled = 0
        steps = [(fix.ExecType_NEW, fix.OrdStatus_NEW, 0),
                 (fix.ExecType_TRADE, fix.OrdStatus_PARTIALLY_FILLED, first),
                 (fix.ExecType_TRADE, fix.OrdStatus_FILLED, whole - first)]
        for exec_type, status, last in steps:
            self.exec_id += 1
            filled += last
            report = fix.Message()
            report.getHeader().setField(fix.MsgType(fix.MsgType_ExecutionReport))
            for field in (fix.OrderID("Q-" + cl_ord_id.getValue()), fix.ExecID(f"QE{self.exec_id}"),
                          cl_ord_id, fix.ExecType(exec_type), fix.OrdStatus(status), side, symbol,
                          fix.LeavesQty(whole - filled), fix.CumQty(filled),
                          fix.AvgPx(price.getValue() if filled else 0)):
                report.setField(field)
            if last:
                report.setField(fix.LastQty(last))
                report.setField(fix.LastPx(price.getValue()))
            fix.Session.sendToTarget(report, session)


port, store, sender, target = sys.argv[1:5]
dictionary = os.path.join(sys.prefix, "share", "quickfix", "FIX44.xml")
if not os.path.exists(dictionary):
    sys.exit(f"QuickFIX's FIX44.xml is not at {dictionary}")
config = os.path.join(store, "venue.cfg")
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
[SESSION]
BeginString=FIX.4.4
SenderCompID={sender}
TargetCompID={target}
""")
settings = fix.SessionSettings(config)
acceptor = fix.SocketAcceptor(Venue(), fix.FileStoreFactory(settings), settings,
                              fix.FileLogFactory(settings))
acceptor.start()
print("venue: listening", flush=True)
while True:
    time.sleep(1)
