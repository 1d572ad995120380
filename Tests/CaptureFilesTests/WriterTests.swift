import CaptureFiles
import Foundation
import TestSupport
import Testing

func writeSample(to path: String) throws {
  let writer = try PcapngWriter(path: path, application: "smcpair tests", os: "Linux", hardware: "x86_64")
  let eth = try writer.addInterface(
    InterfaceDescription(
      name: "eth0", description: "client NIC", linkType: .ethernet, filter: "tcp port 8000"))
  let dump = try writer.addInterface(
    InterfaceDescription(name: "smc-dummy0001", description: "SMC dump device", linkType: .ethernet))
  let frame = [UInt8](repeating: 0x11, count: 14) + [UInt8](repeating: 0x22, count: 47)
  try writer.writePacket(
    interface: eth, timestampNanoseconds: 1_764_000_000_123_456_789, bytes: frame, direction: .outbound,
    comment: "hello from the writer", packetID: 0xDEAD_BEEF)
  try writer.writePacket(
    interface: dump, timestampNanoseconds: 1_764_000_000_223_456_789, bytes: frame, direction: .inbound)
  try writer.writePacket(
    interface: eth, timestampNanoseconds: 1_764_000_001_000_000_001, bytes: Array(frame.prefix(20)))
  try writer.writeStatistics(
    interface: eth, timestampNanoseconds: 1_764_000_002_000_000_000,
    startNanoseconds: 1_764_000_000_000_000_000,
    endNanoseconds: 1_764_000_002_000_000_000, received: 3, dropped: 1)
  try writer.close()
}

@Suite struct PcapngWriting {
  @Test func roundTripThroughOwnReader() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("w.pcapng")
    try writeSample(to: path)
    let reader = try CaptureFileReader(path: path)
    var packets: [CapturedPacket] = []
    while let p = try reader.next() { packets.append(p) }
    #expect(packets.count == 3)
    #expect(reader.sectionApplication == "smcpair tests")
    #expect(reader.sectionOS == "Linux")
    #expect(reader.sectionHardware == "x86_64")
    #expect(reader.interfaces.map(\.name) == ["eth0", "smc-dummy0001"])
    #expect(reader.interfaces[0].description == "client NIC")
    #expect(reader.interfaces[0].filter == "tcp port 8000")
    #expect(reader.interfaces[0].unitsPerSecond == 1_000_000_000)
    #expect(packets[0].timestampNanoseconds == 1_764_000_000_123_456_789)
    #expect(packets[0].comments == ["hello from the writer"])
    #expect(packets[0].direction == .outbound)
    #expect(packets[0].packetID == 0xDEAD_BEEF)
    #expect(packets[1].interface == 1)
    #expect(packets[1].direction == .inbound)
    #expect(packets[2].data.count == 20)
    #expect(packets[2].comments.isEmpty)
    let stats = reader.interfaces[0].statistics
    #expect(stats?.received == 3)
    #expect(stats?.interfaceDropped == 1)
    #expect(stats?.startNanoseconds == 1_764_000_000_000_000_000)
    #expect(stats?.endNanoseconds == 1_764_000_002_000_000_000)
  }

  @Test func tsharkReadsNamesCommentsFlagsAndPacketIDs() throws {
    let tshark = try Tools.require("tshark")
    let dir = try TemporaryDirectory()
    let path = dir.file("w.pcapng")
    try writeSample(to: path)
    let result = try Tools.run([
      tshark, "-r", path, "-T", "fields", "-E", "separator=|", "-e", "frame.number", "-e",
      "frame.interface_name",
      "-e", "frame.interface_description", "-e", "frame.comment", "-e", "frame.packet_flags_direction",
      "-e", "frame.packet_id", "-e", "frame.time_epoch",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let lines = result.stdout.split(separator: "\n").map(String.init)
    #expect(lines.count == 3)
    #expect(lines[0] == "1|eth0|client NIC|hello from the writer|0x00000002|3735928559|1764000000.123456789")
    #expect(lines[1] == "2|smc-dummy0001|SMC dump device||0x00000001||1764000000.223456789")
    #expect(lines[2].hasPrefix("3|eth0|client NIC|||"))
  }

  @Test func capinfosReadsTheFileAndItsInterfaces() throws {
    let capinfos = try Tools.require("capinfos")
    let dir = try TemporaryDirectory()
    let path = dir.file("w.pcapng")
    try writeSample(to: path)
    let result = try Tools.run([capinfos, "-c", "-I", "-F", path])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("Number of packets:   3"))
    #expect(result.stdout.contains("Name = eth0"))
    #expect(result.stdout.contains("Name = smc-dummy0001"))
    #expect(result.stdout.contains("Capture application: smcpair tests"))
    #expect(result.stdout.contains("Filter string = tcp port 8000"))
    #expect(result.stdout.contains("Description = SMC dump device"))
    #expect(result.stdout.contains("Number of stat entries = 1"))
    #expect(result.stdout.contains("Time precision = nanoseconds (9)"))
  }

  @Test func diskFullIsReportedAsSuch() throws {
    // /dev/full answers every write with ENOSPC.
    let error = #expect(throws: CaptureFileError.self) {
      _ = try PcapngWriter(path: "/dev/full", application: "t", bufferSize: 0)
    }
    #expect(error?.code == .diskFull)
    #expect(error?.description.contains("disk full") == true)
  }
}
