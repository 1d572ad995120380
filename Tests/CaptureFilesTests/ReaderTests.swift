import CaptureFiles
import Foundation
import TestSupport
import Testing

private func write(_ bytes: [UInt8], _ dir: TemporaryDirectory, _ name: String) throws -> String {
  let path = dir.file(name)
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  return path
}

private func readAll(_ path: String) throws -> (CaptureFileReader, [(Int64, [UInt8], Int)]) {
  let reader = try CaptureFileReader(path: path)
  var packets: [(Int64, [UInt8], Int)] = []
  while let p = try reader.next() { packets.append((p.timestampNanoseconds, Array(p.data), p.interface)) }
  return (reader, packets)
}

@Suite struct ClassicPcapReading {
  @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
  func bothByteOrdersAndResolutions(bigEndian: Bool, nanosecond: Bool) throws {
    let dir = try TemporaryDirectory()
    let bytes = PcapBytes.file(
      bigEndian: bigEndian, nanosecond: nanosecond, linkType: 1,
      packets: [(1_700_000_000, 123_456, [1, 2, 3]), (1_700_000_001, 999_999, [4, 5, 6, 7, 8])])
    let (reader, packets) = try readAll(try write(bytes, dir, "a.pcap"))
    #expect(reader.format == .pcap(nanosecond: nanosecond, bigEndian: bigEndian))
    #expect(reader.interfaces.first?.linkType == .ethernet)
    #expect(packets.count == 2)
    let scale: Int64 = nanosecond ? 1 : 1000
    #expect(packets[0].0 == 1_700_000_000 * 1_000_000_000 + 123_456 * scale)
    #expect(packets[1].0 == 1_700_000_001 * 1_000_000_000 + 999_999 * scale)
    #expect(packets[0].1 == [1, 2, 3])
    #expect(packets[1].1 == [4, 5, 6, 7, 8])
  }

  @Test func linkTypeFCSBitsAreMasked() throws {
    let dir = try TemporaryDirectory()
    let bytes = PcapBytes.file(bigEndian: false, nanosecond: false, linkType: 0x1000_0000 | 276, packets: [])
    let (reader, packets) = try readAll(try write(bytes, dir, "fcs.pcap"))
    #expect(reader.interfaces[0].linkType == .linuxSLL2)
    #expect(packets.isEmpty)
  }

  @Test func implausibleRecordLengthIsCorruptWithOffset() throws {
    let dir = try TemporaryDirectory()
    var bytes = PcapBytes.file(
      bigEndian: false, nanosecond: false, linkType: 1, packets: [(1, 0, [1, 2]), (2, 0, [3, 4])])
    // Second record header starts at 24 + 16 + 2 = 42; its captured length at +8.
    bytes[50] = 0xFF
    bytes[51] = 0xFF
    bytes[52] = 0xFF
    let reader = try CaptureFileReader(path: try write(bytes, dir, "bad.pcap"))
    #expect(try reader.next() != nil)
    let error = #expect(throws: CaptureFileError.self) { try reader.next() }
    #expect(error?.code == .corrupt)
    #expect(error?.offset == 42)
    #expect(error?.salvagedPackets == 1)
    #expect(try reader.next() == nil)
  }
}

@Suite struct PcapngReading {
  /// Two sections in opposite byte orders, several interfaces with different resolutions
  /// and offsets, EPB/SPB/obsolete PB, an unknown block, options and statistics.
  func richFile(firstBigEndian: Bool) -> [UInt8] {
    var all: [UInt8] = []
    var s1 = PcapngBytes(bigEndian: firstBigEndian)
    let be1 = firstBigEndian
    s1.sectionHeader(options: PcapngBytes.option(4, Array("handmade".utf8), bigEndian: be1) + [0, 0, 0, 0])
    // if0: Ethernet, default µs resolution, named.
    s1.interface(
      linkType: 1, snapLength: 65535,
      options: PcapngBytes.option(2, Array("eth0".utf8), bigEndian: be1) + [0, 0, 0, 0])
    // if1: SLL2, ns resolution, 10 s offset, filter.
    s1.interface(
      linkType: 276,
      options: PcapngBytes.option(2, Array("any".utf8), bigEndian: be1)
        + PcapngBytes.option(9, [9], bigEndian: be1)
        + PcapngBytes.option(14, bigEndianU64(10, be1), bigEndian: be1)
        + PcapngBytes.option(11, [0] + Array("tcp".utf8), bigEndian: be1) + [0, 0, 0, 0])
    // if2: 2^-10 resolution.
    s1.interface(linkType: 1, options: PcapngBytes.option(9, [0x80 | 10], bigEndian: be1) + [0, 0, 0, 0])
    let epbOptions =
      PcapngBytes.option(1, Array("first packet".utf8), bigEndian: be1)
      + PcapngBytes.option(2, u32(2, be1), bigEndian: be1)
      + PcapngBytes.option(5, bigEndianU64(77, be1), bigEndian: be1) + [0, 0, 0, 0]
    s1.enhancedPacket(interface: 0, timestamp: 1_000_000, data: [0xAA, 0xBB, 0xCC], options: epbOptions)
    s1.enhancedPacket(interface: 1, timestamp: 5, data: [1])
    s1.block(0x0000_0BAD, body: [1, 2, 3, 4, 5, 6, 7, 8])
    s1.enhancedPacket(interface: 2, timestamp: 1024 * 3, data: [2, 2])
    s1.simplePacket(data: [9, 9, 9, 9, 9])
    s1.obsoletePacket(interface: 1, timestamp: 7, data: [3, 3, 3])
    // ISB for if0: ifrecv 100, ifdrop 2.
    var isb = ByteBuilder(bigEndian: be1)
    isb.u32(0)
    isb.u32(0)
    isb.u32(2_000_000)
    isb.raw(PcapngBytes.option(4, bigEndianU64(100, be1), bigEndian: be1))
    isb.raw(PcapngBytes.option(5, bigEndianU64(2, be1), bigEndian: be1))
    isb.raw([0, 0, 0, 0])
    s1.block(5, body: isb.bytes)
    all += s1.bytes
    // Second section, other byte order, its own interface 0 (raw IP).
    var s2 = PcapngBytes(bigEndian: !firstBigEndian)
    s2.sectionHeader()
    s2.interface(linkType: 101)
    s2.enhancedPacket(interface: 0, timestamp: 42, data: [0x45, 0, 0, 20])
    all += s2.bytes
    return all
  }

  func u32(_ v: UInt32, _ be: Bool) -> [UInt8] {
    var b = ByteBuilder(bigEndian: be)
    b.u32(v)
    return b.bytes
  }

  func bigEndianU64(_ v: UInt64, _ be: Bool) -> [UInt8] {
    var b = ByteBuilder(bigEndian: be)
    b.u64(v)
    return b.bytes
  }

  @Test(arguments: [false, true])
  func sectionsInterfacesBlocksAndOptions(firstBigEndian: Bool) throws {
    let dir = try TemporaryDirectory()
    let path = try write(richFile(firstBigEndian: firstBigEndian), dir, "rich.pcapng")
    let reader = try CaptureFileReader(path: path)
    var packets: [CapturedPacket] = []
    var copies: [[UInt8]] = []
    while let p = try reader.next() {
      packets.append(p)
      copies.append(Array(p.data))
    }
    #expect(reader.format == .pcapng)
    #expect(reader.sectionCount == 2)
    #expect(reader.sectionApplication == "handmade")
    #expect(reader.skippedBlocks == 1)
    #expect(packets.count == 6)
    #expect(reader.interfaces.map(\.linkType) == [.ethernet, .linuxSLL2, .ethernet, .rawIP])
    #expect(reader.interfaces[0].name == "eth0")
    #expect(reader.interfaces[1].filter == "tcp")
    #expect(reader.interfaces[1].offsetSeconds == 10)
    // EPB on if0: 1_000_000 µs = 1 s; options decoded.
    #expect(packets[0].timestampNanoseconds == 1_000_000_000)
    #expect(copies[0] == [0xAA, 0xBB, 0xCC])
    #expect(packets[0].comments == ["first packet"])
    #expect(packets[0].direction == .outbound)
    #expect(packets[0].packetID == 77)
    // if1: ns units plus 10 s offset.
    #expect(packets[1].timestampNanoseconds == 10_000_000_005)
    // if2: 2^-10 s units: 3072 units = 3 s.
    #expect(packets[2].timestampNanoseconds == 3_000_000_000)
    // SPB belongs to interface 0 and is cut at the block, no timestamp.
    #expect(packets[3].interface == 0)
    #expect(copies[3] == [9, 9, 9, 9, 9])
    // Obsolete PB on if1.
    #expect(packets[4].interface == 1)
    #expect(packets[4].timestampNanoseconds == 10_000_000_007)
    #expect(copies[4] == [3, 3, 3])
    // The second section's interface 0 is the fourth interface overall.
    #expect(packets[5].interface == 3)
    #expect(packets[5].frame == 6)
    // Statistics.
    #expect(reader.interfaces[0].statistics?.received == 100)
    #expect(reader.interfaces[0].statistics?.interfaceDropped == 2)
  }

  @Test func packetReferringToMissingInterfaceIsCorrupt() throws {
    let dir = try TemporaryDirectory()
    var f = PcapngBytes(bigEndian: false)
    f.sectionHeader()
    f.interface(linkType: 1)
    f.enhancedPacket(interface: 0, timestamp: 1, data: [1])
    f.enhancedPacket(interface: 5, timestamp: 2, data: [2])
    let reader = try CaptureFileReader(path: try write(f.bytes, dir, "badif.pcapng"))
    #expect(try reader.next() != nil)
    let error = #expect(throws: CaptureFileError.self) { try reader.next() }
    #expect(error?.code == .corrupt)
    #expect(error?.offset == f.blockOffsets[3])
    #expect(error?.description.contains("interface 5") == true)
  }

  @Test func notACaptureAndEmptyFiles() throws {
    let dir = try TemporaryDirectory()
    let text = try write(Array("hello world, not a capture".utf8), dir, "x.txt")
    let e1 = #expect(throws: CaptureFileError.self) { try CaptureFileReader(path: text) }
    #expect(e1?.code == .notACapture)
    let empty = try write([], dir, "empty.pcap")
    let e2 = #expect(throws: CaptureFileError.self) { try CaptureFileReader(path: empty) }
    #expect(e2?.description.contains("empty") == true)
    let e3 = #expect(throws: CaptureFileError.self) { try CaptureFileReader(path: dir.file("missing")) }
    #expect(e3?.code == .io)
    #expect(e3?.description.contains("No such file") == true)
  }
}
