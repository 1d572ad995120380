/// The container format of a capture file.
public enum CaptureFormat: Sendable, Equatable, CustomStringConvertible {
  case pcap(nanosecond: Bool, bigEndian: Bool)
  case pcapng

  public var description: String {
    switch self {
    case .pcap(let ns, let be): "pcap (\(ns ? "ns" : "µs"), \(be ? "big" : "little")-endian)"
    case .pcapng: "pcapng"
    }
  }
}

/// Streams the packets of a classic pcap or pcapng file from a memory map.
///
/// `next()` returns packets in file order. Damage (truncation, corrupt lengths) is thrown
/// once as a `CaptureFileError` naming the byte offset; every packet returned before it is
/// intact and stays usable, and later calls return `nil`.
public final class CaptureFileReader {
  public let path: String
  public let format: CaptureFormat
  /// Interfaces seen so far (pcapng interfaces appear as their IDBs are read).
  public private(set) var interfaces: [CaptureInterface] = []
  /// Packets returned so far.
  public private(set) var packetCount = 0
  /// Number of pcapng sections seen so far.
  public private(set) var sectionCount = 0
  /// SHB `shb_userappl`, `shb_os`, `shb_hardware` and `shb_comment` of the first section, if
  /// present.
  public private(set) var sectionApplication: String?
  public private(set) var sectionOS: String?
  public private(set) var sectionHardware: String?
  public private(set) var sectionComment: String?
  /// Blocks of types this reader does not interpret, skipped.
  public private(set) var skippedBlocks = 0

  private let file: MappedFile
  /// The mapped bytes, cut back to the file's size when it shrinks while being read.
  private var bytes: UnsafeRawBufferPointer
  /// The next offset at which the file's size is asked again (`sizeCheckInterval`).
  private var sizeCheckedUpTo = 0
  /// One `fstat` per MiB read: cheap next to decoding a MiB, and the bounds checks then
  /// see a file cut while it is read as a truncation. A cut in between is caught by the
  /// SIGBUS guard (zeros) and reported by `shrinkError`.
  static let sizeCheckInterval = 1 << 20
  private var offset: Int
  private var finished = false
  private var releasedUpTo = 0
  static let residentWindow = 4 << 20
  // pcapng: byte order and first global interface index of the current section.
  private var sectionBigEndian = false
  private var sectionFirstInterface = 0

  /// Opens and maps `path`, reading the file header.
  public init(path: String) throws(CaptureFileError) {
    let file = try MappedFile(path: path)
    self.file = file
    self.path = path
    let bytes = file.bytes
    self.bytes = bytes
    guard bytes.count >= 4 else {
      throw CaptureFileError(
        bytes.isEmpty ? .notACapture : .truncated,
        bytes.isEmpty ? "file is empty" : "file is \(bytes.count) bytes, too short for any capture header",
        path: path, offset: 0)
    }
    let magicLE = bytes.u32le(0)
    switch magicLE {
    case 0xA1B2_C3D4, 0xD4C3_B2A1, 0xA1B2_3C4D, 0x4D3C_B2A1:
      let bigEndian = magicLE == 0xD4C3_B2A1 || magicLE == 0x4D3C_B2A1
      let nanosecond = magicLE == 0xA1B2_3C4D || magicLE == 0x4D3C_B2A1
      format = .pcap(nanosecond: nanosecond, bigEndian: bigEndian)
      guard bytes.count >= 24 else {
        throw CaptureFileError(
          .truncated, "pcap file header needs 24 bytes, file has \(bytes.count)", path: path, offset: 0)
      }
      let snap = bytes.u32(16, bigEndian: bigEndian)
      // The upper bits of the link-type field carry FCS information; the type is the low 28.
      let linkType = LinkType(rawValue: bytes.u32(20, bigEndian: bigEndian) & 0x0FFF_FFFF)
      interfaces.append(
        CaptureInterface(
          linkType: linkType, snapLength: snap, resolutionExponent: nanosecond ? 9 : 6))
      offset = 24
    case 0x0A0D_0D0A:
      format = .pcapng
      offset = 0
    default:
      throw CaptureFileError(
        .notACapture,
        "not a pcap or pcapng file (starts with 0x\(hex32(bytes.u32be(0))); pcap files start with A1B2C3D4 or D4C3B2A1, pcapng with 0A0D0D0A)",
        path: path, offset: 0)
    }
    if format == .pcapng {
      // Read the first SHB now so that a bad header fails at open.
      try readSectionHeader(at: 0)
    }
  }

  /// The next packet, `nil` at the end of the file.
  ///
  /// Pages more than `residentWindow` bytes behind the read position are released, so a
  /// packet's `data` stays readable (it is re-read from the file) but memory stays flat.
  public func next() throws(CaptureFileError) -> CapturedPacket? {
    if finished { return nil }
    if offset - releasedUpTo >= 2 * Self.residentWindow {
      releasedUpTo = offset - Self.residentWindow
      file.releasePages(before: releasedUpTo)
    }
    if offset >= sizeCheckedUpTo { checkSize() }
    do throws(CaptureFileError) {
      let packet: CapturedPacket?
      switch format {
      case .pcap(let ns, let be): packet = try nextPcapRecord(nanosecond: ns, bigEndian: be)
      case .pcapng: packet = try nextPcapngPacket()
      }
      if packet == nil, let shrink = shrinkError(at: offset) { throw shrink }
      return packet
    } catch {
      finished = true
      var error = shrinkError(at: error.offset ?? offset) ?? error
      error.salvagedPackets = packetCount
      throw error
    }
  }

  /// Drops the resident pages of bytes `start..<end` of the file (packets there stay
  /// readable: touched again, they are read from the file). For a consumer that holds packets
  /// behind the reader's own release point; safe from another thread than `next()`.
  public func releasePages(from start: Int, to end: Int) { file.releasePages(from: start, to: end) }

  /// Asks the file's size; a file cut since it was mapped ends the readable bytes there.
  private func checkSize() {
    sizeCheckedUpTo = offset + Self.sizeCheckInterval
    let size = file.currentSize()
    if size < bytes.count { bytes = UnsafeRawBufferPointer(rebasing: file.bytes[0..<size]) }
  }

  /// The error to report when the file shrank while it was read (zeros were read where it
  /// vanished, or it is shorter now than when it was opened); nil when it did not.
  private func shrinkError(at failedOffset: Int) -> CaptureFileError? {
    let size = file.currentSize()
    guard size < file.bytes.count || file.readVanishedBytes else { return nil }
    return CaptureFileError(
      .truncated,
      "the file shrank from \(file.bytes.count) to \(size) bytes while it was read (cut or rewritten by another program); read it again once nothing writes it",
      path: path, offset: min(failedOffset, size))
  }

  /// Reads the rest of the file, calling `body` for each packet.
  public func forEach(_ body: (CapturedPacket) throws -> Void) throws {
    while let packet = try next() { try body(packet) }
  }

  /// Total size of the file in bytes.
  public var fileSize: Int { bytes.count }
  /// Byte offset of the next unread structure.
  public var currentOffset: Int { offset }

  // MARK: - classic pcap

  private func nextPcapRecord(nanosecond: Bool, bigEndian: Bool) throws(CaptureFileError) -> CapturedPacket? {
    let remaining = bytes.count - offset
    if remaining == 0 {
      finished = true
      return nil
    }
    guard remaining >= 16 else {
      throw CaptureFileError(
        .truncated,
        "file ends inside a packet record header (\(remaining) of 16 bytes present); the capture was probably cut off while being written",
        path: path, offset: offset)
    }
    let seconds = UInt64(bytes.u32(offset, bigEndian: bigEndian))
    let fraction = UInt64(bytes.u32(offset + 4, bigEndian: bigEndian))
    let captured = Int(bytes.u32(offset + 8, bigEndian: bigEndian))
    let original = Int(bytes.u32(offset + 12, bigEndian: bigEndian))
    let limit = max(Int(interfaces[0].snapLength), 262_144)
    guard captured <= limit else {
      throw CaptureFileError(
        .corrupt,
        "packet record claims \(captured) captured bytes, more than the snapshot length \(limit); the file is corrupt from here",
        path: path, offset: offset)
    }
    guard remaining - 16 >= captured else {
      throw CaptureFileError(
        .truncated,
        "file ends inside packet data (\(remaining - 16) of \(captured) bytes present); the capture was probably cut off while being written",
        path: path, offset: offset)
    }
    let nanos = seconds &* 1_000_000_000 &+ (nanosecond ? fraction : fraction &* 1000)
    packetCount += 1
    let packet = CapturedPacket(
      frame: packetCount, interface: 0, timestampNanoseconds: Int64(truncatingIfNeeded: nanos),
      originalLength: original, data: bytes.slice(offset + 16, captured), fileOffset: offset,
      options: UnsafeRawBufferPointer(start: nil, count: 0), optionsBigEndian: bigEndian)
    offset += 16 + captured
    return packet
  }

  // MARK: - pcapng

  private enum BlockType {
    static let sectionHeader: UInt32 = 0x0A0D_0D0A
    static let interfaceDescription: UInt32 = 1
    static let obsoletePacket: UInt32 = 2
    static let simplePacket: UInt32 = 3
    static let interfaceStatistics: UInt32 = 5
    static let enhancedPacket: UInt32 = 6
  }

  /// Validates the block at `offset` and returns its type and total length.
  private func blockBounds(at offset: Int) throws(CaptureFileError) -> (type: UInt32, length: Int) {
    let remaining = bytes.count - offset
    guard remaining >= 12 else {
      throw CaptureFileError(
        .truncated,
        "file ends inside a block header (\(remaining) bytes left, a block needs at least 12); the capture was probably cut off while being written",
        path: path, offset: offset)
    }
    let type = bytes.u32(offset, bigEndian: sectionBigEndian)
    let length = Int(bytes.u32(offset + 4, bigEndian: sectionBigEndian))
    guard length >= 12, length % 4 == 0 else {
      throw CaptureFileError(
        .corrupt,
        "block of type 0x\(hex32(type)) has invalid total length \(length) (must be a multiple of 4, at least 12)",
        path: path, offset: offset)
    }
    guard length <= remaining else {
      throw CaptureFileError(
        .truncated,
        "block of type 0x\(hex32(type)) needs \(length) bytes but only \(remaining) remain; the capture was probably cut off while being written",
        path: path, offset: offset)
    }
    let trailer = Int(bytes.u32(offset + length - 4, bigEndian: sectionBigEndian))
    guard trailer == length else {
      throw CaptureFileError(
        .corrupt,
        "block of type 0x\(hex32(type)) has leading length \(length) but trailing length \(trailer)",
        path: path, offset: offset)
    }
    return (type, length)
  }

  private func readSectionHeader(at start: Int) throws(CaptureFileError) {
    let remaining = bytes.count - start
    guard remaining >= 28 else {
      throw CaptureFileError(
        .truncated, "file ends inside a section header block (\(remaining) of at least 28 bytes)",
        path: path, offset: start)
    }
    switch bytes.u32le(start + 8) {
    case 0x1A2B_3C4D: sectionBigEndian = false
    case 0x4D3C_2B1A: sectionBigEndian = true
    default:
      throw CaptureFileError(
        .corrupt, "section header has an invalid byte-order magic 0x\(hex32(bytes.u32be(start + 8)))",
        path: path, offset: start + 8)
    }
    let major = bytes.u16(start + 12, bigEndian: sectionBigEndian)
    guard major == 1 else {
      throw CaptureFileError(
        .unsupported, "pcapng major version \(major) is not supported (only 1)", path: path,
        offset: start + 12)
    }
    let (_, length) = try blockBounds(at: start)
    guard length >= 28 else {
      throw CaptureFileError(
        .corrupt, "section header block is \(length) bytes, shorter than the 28-byte minimum", path: path,
        offset: start)
    }
    if sectionCount == 0 {
      PcapngOptions.forEach(options(start + 24, end: start + length - 4), bigEndian: sectionBigEndian) {
        code, value in
        switch code {
        case 1 where sectionComment == nil: sectionComment = String(decoding: value, as: UTF8.self)
        case 2: sectionHardware = String(decoding: value, as: UTF8.self)
        case 3: sectionOS = String(decoding: value, as: UTF8.self)
        case 4: sectionApplication = String(decoding: value, as: UTF8.self)
        default: break
        }
      }
    }
    sectionCount += 1
    sectionFirstInterface = interfaces.count
    offset = start + length
  }

  private func options(_ start: Int, end: Int) -> UnsafeRawBufferPointer {
    start < end ? bytes.slice(start, end - start) : UnsafeRawBufferPointer(start: nil, count: 0)
  }

  private func interfaceIndex(_ localID: Int, at blockOffset: Int) throws(CaptureFileError) -> Int {
    let global = sectionFirstInterface + localID
    guard localID >= 0, global < interfaces.count else {
      throw CaptureFileError(
        .corrupt,
        "packet refers to interface \(localID) but the section defines \(interfaces.count - sectionFirstInterface)",
        path: path, offset: blockOffset)
    }
    return global
  }

  private func nextPcapngPacket() throws(CaptureFileError) -> CapturedPacket? {
    while true {
      if offset == bytes.count {
        finished = true
        return nil
      }
      let start = offset
      // A new section may switch byte order: peek the type in both orders.
      if bytes.count - start >= 4, bytes.u32le(start) == BlockType.sectionHeader {
        try readSectionHeader(at: start)
        continue
      }
      let (type, length) = try blockBounds(at: start)
      switch type {
      case BlockType.enhancedPacket, BlockType.obsoletePacket:
        return try readPacketBlock(at: start, length: length, enhanced: type == BlockType.enhancedPacket)
      case BlockType.simplePacket:
        return try readSimplePacketBlock(at: start, length: length)
      case BlockType.interfaceDescription:
        try readInterfaceDescription(at: start, length: length)
      case BlockType.interfaceStatistics:
        try readInterfaceStatistics(at: start, length: length)
      default:
        skippedBlocks += 1
      }
      offset = start + length
    }
  }

  /// An enhanced (or obsolete) packet block: the packet with its interface, time and options.
  @inline(__always)
  private func readPacketBlock(at start: Int, length: Int, enhanced: Bool) throws(CaptureFileError)
    -> CapturedPacket
  {
    let be = sectionBigEndian
    let bodyEnd = start + length - 4
    guard length >= 32 else {
      throw CaptureFileError(
        .corrupt, "packet block is \(length) bytes, shorter than its 32-byte minimum", path: path,
        offset: start)
    }
    let localID =
      enhanced ? Int(bytes.u32(start + 8, bigEndian: be)) : Int(bytes.u16(start + 8, bigEndian: be))
    let index = try interfaceIndex(localID, at: start)
    let high = UInt64(bytes.u32(start + 12, bigEndian: be))
    let low = UInt64(bytes.u32(start + 16, bigEndian: be))
    let captured = Int(bytes.u32(start + 20, bigEndian: be))
    let original = Int(bytes.u32(start + 24, bigEndian: be))
    let dataStart = start + 28
    guard captured <= bodyEnd - dataStart else {
      throw CaptureFileError(
        .corrupt,
        "packet block claims \(captured) captured bytes but only has room for \(bodyEnd - dataStart)",
        path: path, offset: start)
    }
    let optionsStart = dataStart + ((captured + 3) & ~3)
    packetCount += 1
    offset = start + length
    return CapturedPacket(
      frame: packetCount, interface: index,
      timestampNanoseconds: interfaces[index].nanoseconds(fromUnits: high << 32 | low),
      originalLength: original, data: bytes.slice(dataStart, captured), fileOffset: start,
      options: options(optionsStart, end: bodyEnd), optionsBigEndian: be)
  }

  /// A simple packet block: interface 0, no timestamp, captured length from the snap length.
  private func readSimplePacketBlock(at start: Int, length: Int) throws(CaptureFileError) -> CapturedPacket {
    let be = sectionBigEndian
    let bodyEnd = start + length - 4
    try requireLength(length, atLeast: 16, "simple packet block", at: start)
    let index = try interfaceIndex(0, at: start)
    let original = Int(bytes.u32(start + 8, bigEndian: be))
    let room = bodyEnd - (start + 12)
    var captured = min(original, room)
    let snap = Int(interfaces[index].snapLength)
    if snap > 0 { captured = min(captured, snap) }
    packetCount += 1
    offset = start + length
    // SPBs carry no timestamp.
    return CapturedPacket(
      frame: packetCount, interface: index, timestampNanoseconds: 0, originalLength: original,
      data: bytes.slice(start + 12, captured), fileOffset: start,
      options: UnsafeRawBufferPointer(start: nil, count: 0), optionsBigEndian: be)
  }

  /// Throws the byte-offset error for a `block` of `length` bytes shorter than `minimum`.
  private func requireLength(_ length: Int, atLeast minimum: Int, _ block: String, at start: Int)
    throws(CaptureFileError)
  {
    guard length < minimum else { return }
    throw CaptureFileError(
      .corrupt, "\(block) is \(length) bytes, shorter than \(minimum)", path: path, offset: start)
  }

  /// An interface description block: a new interface of the current section.
  private func readInterfaceDescription(at start: Int, length: Int) throws(CaptureFileError) {
    let be = sectionBigEndian
    let bodyEnd = start + length - 4
    try requireLength(length, atLeast: 20, "interface description block", at: start)
    var interface = CaptureInterface(
      section: sectionCount - 1, localID: interfaces.count - sectionFirstInterface,
      linkType: LinkType(rawValue: UInt32(bytes.u16(start + 8, bigEndian: be))),
      snapLength: bytes.u32(start + 12, bigEndian: be))
    PcapngOptions.forEach(options(start + 16, end: bodyEnd), bigEndian: be) { code, value in
      switch code {
      case 2: interface.name = String(decoding: value, as: UTF8.self)
      case 3: interface.description = String(decoding: value, as: UTF8.self)
      case 9 where value.count >= 1:
        let raw = value.u8(0)
        interface.resolutionIsPowerOfTwo = raw & 0x80 != 0
        interface.resolutionExponent = raw & 0x7F
        interface.unitsPerSecond = CaptureInterface.units(
          raw & 0x7F, powerOfTwo: raw & 0x80 != 0)
      case 11 where value.count >= 1:
        // First byte says how the filter is expressed; 0 = libpcap filter string.
        interface.filter = String(decoding: value.slice(1, value.count - 1), as: UTF8.self)
      case 12: interface.os = String(decoding: value, as: UTF8.self)
      case 14 where value.count >= 8:
        interface.offsetSeconds = Int64(bitPattern: value.u64(0, bigEndian: be))
      default: break
      }
    }
    interfaces.append(interface)
  }

  /// An interface statistics block: the counters it carries, kept on its interface.
  private func readInterfaceStatistics(at start: Int, length: Int) throws(CaptureFileError) {
    let be = sectionBigEndian
    let bodyEnd = start + length - 4
    try requireLength(length, atLeast: 24, "interface statistics block", at: start)
    let index = try interfaceIndex(Int(bytes.u32(start + 8, bigEndian: be)), at: start)
    let interface = interfaces[index]
    let stamp =
      UInt64(bytes.u32(start + 12, bigEndian: be)) << 32 | UInt64(bytes.u32(start + 16, bigEndian: be))
    var stats = InterfaceStatistics(timestampNanoseconds: interface.nanoseconds(fromUnits: stamp))
    PcapngOptions.forEach(options(start + 20, end: bodyEnd), bigEndian: be) { code, value in
      guard value.count >= 8 else { return }
      let number: UInt64
      if code == 2 || code == 3 {
        number = UInt64(value.u32(0, bigEndian: be)) << 32 | UInt64(value.u32(4, bigEndian: be))
      } else {
        number = value.u64(0, bigEndian: be)
      }
      switch code {
      case 2: stats.startNanoseconds = interface.nanoseconds(fromUnits: number)
      case 3: stats.endNanoseconds = interface.nanoseconds(fromUnits: number)
      case 4: stats.received = number
      case 5: stats.interfaceDropped = number
      case 6: stats.filterAccepted = number
      case 7: stats.osDropped = number
      case 8: stats.delivered = number
      default: break
      }
    }
    interfaces[index].statistics = stats
  }
}

@usableFromInline
func hex32(_ value: UInt32) -> String {
  let digits = String(value, radix: 16, uppercase: true)
  return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
