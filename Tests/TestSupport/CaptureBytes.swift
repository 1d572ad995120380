/// Hand-built capture file bytes, independent of the project's writer, so that the reader
/// is tested against the formats and not against itself.
public struct ByteBuilder {
  public var bytes: [UInt8] = []
  public var bigEndian: Bool

  public init(bigEndian: Bool) { self.bigEndian = bigEndian }

  public mutating func u8(_ v: UInt8) { bytes.append(v) }
  public mutating func u16(_ v: UInt16) {
    let b = [UInt8(v >> 8), UInt8(v & 0xFF)]
    bytes += bigEndian ? b : b.reversed()
  }
  public mutating func u32(_ v: UInt32) {
    let b = (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) }
    bytes += bigEndian ? b : b.reversed()
  }
  public mutating func u64(_ v: UInt64) {
    let b = (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64($0))) }
    bytes += bigEndian ? b : b.reversed()
  }
  public mutating func raw(_ b: [UInt8]) { bytes += b }
  public mutating func pad() {
    while bytes.count % 4 != 0 { bytes.append(0) }
  }
}

/// Builds classic pcap files.
public enum PcapBytes {
  public static func file(
    bigEndian: Bool, nanosecond: Bool, linkType: UInt32, snapLength: UInt32 = 65_535,
    packets: [(seconds: UInt32, fraction: UInt32, data: [UInt8])]
  ) -> [UInt8] {
    var b = ByteBuilder(bigEndian: bigEndian)
    b.u32(nanosecond ? 0xA1B2_3C4D : 0xA1B2_C3D4)
    b.u16(2)
    b.u16(4)
    b.u32(0)
    b.u32(0)
    b.u32(snapLength)
    b.u32(linkType)
    for p in packets {
      b.u32(p.seconds)
      b.u32(p.fraction)
      b.u32(UInt32(p.data.count))
      b.u32(UInt32(p.data.count))
      b.raw(p.data)
    }
    return b.bytes
  }
}

/// Builds pcapng blocks in either byte order.
public struct PcapngBytes {
  public var builder: ByteBuilder
  /// Offsets where each block starts.
  public var blockOffsets: [Int] = []

  public init(bigEndian: Bool) { builder = ByteBuilder(bigEndian: bigEndian) }

  public var bytes: [UInt8] { builder.bytes }

  public static func option(_ code: UInt16, _ value: [UInt8], bigEndian: Bool) -> [UInt8] {
    var b = ByteBuilder(bigEndian: bigEndian)
    b.u16(code)
    b.u16(UInt16(value.count))
    b.raw(value)
    b.pad()
    return b.bytes
  }

  public mutating func block(_ type: UInt32, body: [UInt8]) {
    blockOffsets.append(builder.bytes.count)
    var padded = body
    while padded.count % 4 != 0 { padded.append(0) }
    let total = UInt32(12 + padded.count)
    builder.u32(type)
    builder.u32(total)
    builder.raw(padded)
    builder.u32(total)
  }

  public mutating func sectionHeader(options: [UInt8] = []) {
    var b = ByteBuilder(bigEndian: builder.bigEndian)
    b.u32(0x1A2B_3C4D)
    b.u16(1)
    b.u16(0)
    b.u64(UInt64.max)
    b.raw(options)
    block(0x0A0D_0D0A, body: b.bytes)
  }

  public mutating func interface(linkType: UInt16, snapLength: UInt32 = 0, options: [UInt8] = []) {
    var b = ByteBuilder(bigEndian: builder.bigEndian)
    b.u16(linkType)
    b.u16(0)
    b.u32(snapLength)
    b.raw(options)
    block(1, body: b.bytes)
  }

  public mutating func enhancedPacket(
    interface: UInt32, timestamp: UInt64, data: [UInt8], options: [UInt8] = []
  ) {
    var b = ByteBuilder(bigEndian: builder.bigEndian)
    b.u32(interface)
    b.u32(UInt32(truncatingIfNeeded: timestamp >> 32))
    b.u32(UInt32(truncatingIfNeeded: timestamp))
    b.u32(UInt32(data.count))
    b.u32(UInt32(data.count))
    b.raw(data)
    b.pad()
    b.raw(options)
    block(6, body: b.bytes)
  }

  public mutating func simplePacket(data: [UInt8]) {
    var b = ByteBuilder(bigEndian: builder.bigEndian)
    b.u32(UInt32(data.count))
    b.raw(data)
    block(3, body: b.bytes)
  }

  public mutating func obsoletePacket(interface: UInt16, timestamp: UInt64, data: [UInt8]) {
    var b = ByteBuilder(bigEndian: builder.bigEndian)
    b.u16(interface)
    b.u16(0)
    b.u32(UInt32(truncatingIfNeeded: timestamp >> 32))
    b.u32(UInt32(truncatingIfNeeded: timestamp))
    b.u32(UInt32(data.count))
    b.u32(UInt32(data.count))
    b.raw(data)
    block(2, body: b.bytes)
  }
}
