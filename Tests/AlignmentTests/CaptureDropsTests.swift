import CaptureFiles
import Foundation
import TestSupport
import Testing

/// A side whose capture says it lost packets (ISB if_drop / os_drop): the merge reports a
/// capture-drops finding naming the interface and the count.
@Suite struct CaptureDropsFinding {
  @Test func droppedPacketsInTheStatisticsBecomeAFinding() throws {
    let dir = try TemporaryDirectory()
    let synth = try Tools.product("smcpair-synth")
    let smcpair = try Tools.product("smcpair")
    for side in ["client", "server"] {
      let result = try Tools.run([
        synth, "--out", dir.file("\(side).pcapng"), "--side", side, "--scenario", "smc-r", "--messages", "4",
      ])
      #expect(result.status == 0)
    }
    // The server's file again, with statistics blocks that report drops on every interface.
    let reader = try CaptureFileReader(path: dir.file("server.pcapng"))
    var packets: [(Int, Int64, [UInt8])] = []
    while let packet = try reader.next() {
      packets.append((packet.interface, packet.timestampNanoseconds, Array(packet.data)))
    }
    let writer = try PcapngWriter(path: dir.file("server-drops.pcapng"), application: "test")
    for interface in reader.interfaces {
      _ = try writer.addInterface(
        InterfaceDescription(name: interface.name ?? "if", linkType: interface.linkType))
    }
    for (interface, time, data) in packets {
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 8)
      defer { buffer.deallocate() }
      buffer.copyBytes(from: data)
      try writer.writePacket(
        interface: interface, timestampNanoseconds: time, data: UnsafeRawBufferPointer(buffer))
    }
    let end = packets.last?.1 ?? 0
    for index in reader.interfaces.indices {
      try writer.writeStatistics(
        interface: index, timestampNanoseconds: end, received: 100, dropped: 40, osDropped: 2, delivered: 58)
    }
    try writer.close()
    let merge = try Tools.run([
      smcpair, "merge", dir.file("client.pcapng"), dir.file("server-drops.pcapng"), "--out", dir.file("out"),
    ])
    #expect(merge.status == 0, "\(merge.stderr)")
    let lines = try String(contentsOfFile: dir.file("out/timeline.jsonl"), encoding: .utf8).split(
      separator: "\n")
    let drops = lines.filter { $0.contains("\"finding\":\"capture-drops\"") }
    #expect(drops.count == reader.interfaces.count, "\(drops)")
    #expect(drops.allSatisfy { $0.contains("\"side\":\"server\"") && $0.contains("42 packets were dropped") })
    #expect(merge.stdout.contains("capture-drops: \(reader.interfaces.count)"))
  }
}
