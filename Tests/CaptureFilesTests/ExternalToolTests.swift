import CaptureFiles
import Foundation
import TestSupport
import Testing

/// Files converted by editcap (Wireshark) read the same as the original.
@Suite struct EditcapConversions {
  @Test(arguments: [
    ("pcap", false, true), ("nsecpcap", true, true), ("pcapng", true, false),
  ])
  func convertedFilesReadTheSame(format: String, nanosecond: Bool, classic: Bool) throws {
    let editcap = try Tools.require("editcap")
    let dir = try TemporaryDirectory()
    let original = dir.file("orig.pcapng")
    // One interface only: classic pcap holds one link type.
    let writer = try PcapngWriter(path: original, application: "t")
    try writer.addInterface(InterfaceDescription(name: "eth0", linkType: .ethernet))
    for i in 0..<20 {
      try writer.writePacket(
        interface: 0, timestampNanoseconds: 1_764_000_000_000_000_000 + Int64(i) * 1_234_567,
        bytes: [UInt8](repeating: UInt8(i), count: 60 + i))
    }
    try writer.close()
    let converted = dir.file("conv.\(format)")
    let result = try Tools.run([editcap, "-F", format, original, converted])
    #expect(result.status == 0, "\(result.stderr)")
    // And back to pcapng from the converted file, to cover editcap's pcapng writer too.
    let back = dir.file("back.pcapng")
    #expect(try Tools.run([editcap, "-F", "pcapng", converted, back]).status == 0)
    for path in [converted, back] {
      let reader = try CaptureFileReader(path: path)
      if classic && path == converted {
        #expect(reader.format == .pcap(nanosecond: nanosecond, bigEndian: false))
      } else {
        #expect(reader.format == .pcapng)
      }
      var index = 0
      while let p = try reader.next() {
        var expected = 1_764_000_000_000_000_000 + Int64(index) * 1_234_567
        if !nanosecond { expected = expected / 1000 * 1000 }
        #expect(p.timestampNanoseconds == expected, "\(path) packet \(index)")
        #expect(Array(p.data) == [UInt8](repeating: UInt8(index), count: 60 + index))
        index += 1
      }
      #expect(index == 20)
    }
  }
}
