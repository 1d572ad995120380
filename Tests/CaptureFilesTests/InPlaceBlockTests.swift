import CaptureFiles
import TestSupport
import Testing

/// Enhanced packet blocks written in place (the merge's hot path), including the edge of no
/// data and no comment bytes, read back by our own reader.
@Suite struct InPlacePacketBlocks {
  @Test func emptyAndShortDataAndCommentsRoundTrip() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("in-place.pcapng")
    let writer = try PcapngWriter(path: path, application: "smcpair tests", os: "Linux", hardware: "x86_64")
    let eth = try writer.addInterface(InterfaceDescription(name: "eth0", linkType: .ethernet))
    let none = UnsafeRawBufferPointer(start: nil, count: 0)
    try writer.writePacket(
      interface: eth, timestampNanoseconds: 1_000, data: none, originalLength: 0, direction: .unknown,
      commentUTF8: none, packetID: 1)
    let data: [UInt8] = [1, 2, 3, 4, 5]
    let comment = Array("abc".utf8)
    try data.withUnsafeBytes { data in
      try comment.withUnsafeBytes { comment in
        try writer.writePacket(
          interface: eth, timestampNanoseconds: 2_000, data: data, originalLength: 9, direction: .outbound,
          commentUTF8: comment, packetID: 0x0102_0304_0506_0708)
      }
    }
    try writer.close()

    let reader = try CaptureFileReader(path: path)
    let first = try #require(try reader.next())
    #expect(first.data.isEmpty)
    #expect(first.timestampNanoseconds == 1_000)
    #expect(first.packetID == 1)
    #expect(first.direction == .unknown)
    let second = try #require(try reader.next())
    #expect(Array(second.data) == data)
    #expect(second.originalLength == 9)
    #expect(second.comments == ["abc"])
    #expect(second.direction == .outbound)
    #expect(second.packetID == 0x0102_0304_0506_0708)
    #expect(try reader.next() == nil)
  }
}
