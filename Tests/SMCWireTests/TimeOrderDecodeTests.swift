import CaptureFiles
import Foundation
import SMCSynthesis
import SMCWire
import TestSupport
import Testing

/// `smcpair decode` prints events in time order even when the file is not in time order.
@Suite struct TimeOrderedDecoding {
  @Test func handshakeComesBeforeCDCWhenDumpRecordsAreWrittenFirst() throws {
    let tshark = try Tools.require("tshark")
    let mergecap = try Tools.require("mergecap")
    let dir = try TemporaryDirectory()
    let whole = dir.file("whole.pcapng")
    try writeConversations([.smcR(version: 1)], to: whole, messages: 4)
    // Per-interface runs, as `mergecap -a` (and capture tools writing one run per
    // interface) produce them: every dump record first, then the NIC packets.
    let dump = dir.file("dump.pcapng")
    let nic = dir.file("nic.pcapng")
    for (filter, path) in [("udp", dump), ("tcp", nic)] {
      let result = try Tools.run([tshark, "-r", whole, "-Y", filter, "-w", path])
      #expect(result.status == 0, "\(result.stderr)")
    }
    let merged = dir.file("merged.pcapng")
    let result = try Tools.run([mergecap, "-a", "-w", merged, dump, nic])
    #expect(result.status == 0, "\(result.stderr)")

    func decode(_ path: String) throws -> (DecodeSummary, [SMCEvent]) {
      let decoder = try CaptureDecoder(path: path)
      var events: [SMCEvent] = []
      try decoder.run { events.append($0) }
      return (decoder.summary, events)
    }
    let (reference, inOrder) = try decode(whole)
    let (summary, events) = try decode(merged)
    #expect(reference.packetsOutOfOrder == 0)
    #expect(summary.packetsOutOfOrder > 0)
    #expect(summary.packetsBeyondReorderWindow == 0)
    #expect(summary.damage == nil)

    let firstCDC = try #require(events.firstIndex { $0.kind == .cdc })
    let lastCLC = try #require(events.lastIndex { $0.kind == .clc })
    #expect(lastCLC < firstCDC, "the handshake must be printed before the CDC messages")
    #expect(events.first?.kind == .tcp && events.first?.tcp?.flags == [.syn])
    let times = events.map(\.timeNanoseconds)
    #expect(times == times.sorted())
    // The same events as the file in time order, but with the merged file's frame numbers.
    #expect(events.map(\.kind) == inOrder.map(\.kind))
    #expect(events.map(\.timeNanoseconds) == inOrder.map(\.timeNanoseconds))
    let dumpPackets = try CaptureFileReader(path: dump)
    var dumpCount = 0
    while try dumpPackets.next() != nil { dumpCount += 1 }
    #expect(events.first?.frame == dumpCount + 1)
    #expect(summary.connections.map(\.outcome) == [.smc(.smcR)])
  }
}
