/// One capture interface (a pcapng IDB, or the single implicit interface of a pcap file).
public struct CaptureInterface: Sendable, Equatable {
  /// 0-based pcapng section the interface belongs to.
  public var section: Int
  /// Interface id inside its section, as EPBs refer to it.
  public var localID: Int
  public var linkType: LinkType
  public var snapLength: UInt32
  public var name: String?
  public var description: String?
  public var filter: String?
  public var os: String?
  /// Timestamp units per second (`if_tsresol`), 1_000_000 by default.
  public var unitsPerSecond: UInt64
  /// `if_tsresol` as written: 10^n, or 2^n when `isPowerOfTwo`.
  public var resolutionExponent: UInt8
  public var resolutionIsPowerOfTwo: Bool
  /// `if_tsoffset` in seconds, added to every timestamp.
  public var offsetSeconds: Int64
  /// The latest interface statistics block seen for this interface.
  public var statistics: InterfaceStatistics?

  public init(
    section: Int = 0, localID: Int = 0, linkType: LinkType, snapLength: UInt32 = 262_144,
    name: String? = nil, description: String? = nil, filter: String? = nil, os: String? = nil,
    resolutionExponent: UInt8 = 6, resolutionIsPowerOfTwo: Bool = false, offsetSeconds: Int64 = 0
  ) {
    self.section = section
    self.localID = localID
    self.linkType = linkType
    self.snapLength = snapLength
    self.name = name
    self.description = description
    self.filter = filter
    self.os = os
    self.resolutionExponent = resolutionExponent
    self.resolutionIsPowerOfTwo = resolutionIsPowerOfTwo
    self.offsetSeconds = offsetSeconds
    self.unitsPerSecond = Self.units(resolutionExponent, powerOfTwo: resolutionIsPowerOfTwo)
  }

  static func units(_ exponent: UInt8, powerOfTwo: Bool) -> UInt64 {
    if powerOfTwo { return exponent >= 64 ? 0 : 1 << UInt64(exponent) }
    var value: UInt64 = 1
    for _ in 0..<min(Int(exponent), 19) { value *= 10 }
    return value
  }

  /// Converts a raw timestamp in this interface's units to nanoseconds since the epoch.
  @inlinable
  public func nanoseconds(fromUnits units: UInt64) -> Int64 {
    let ns: UInt64
    if unitsPerSecond == 1_000_000_000 {
      ns = units
    } else if unitsPerSecond == 1_000_000 {
      ns = units &* 1000
    } else if unitsPerSecond == 0 {
      ns = 0
    } else {
      // units * 1e9 / unitsPerSecond without overflow.
      let product = units.multipliedFullWidth(by: 1_000_000_000)
      if product.high >= unitsPerSecond {
        ns = UInt64.max
      } else {
        ns = unitsPerSecond.dividingFullWidth((high: product.high, low: product.low)).quotient
      }
    }
    return Int64(truncatingIfNeeded: ns) &+ offsetSeconds &* 1_000_000_000
  }
}

/// Counters from a pcapng interface statistics block (ISB).
public struct InterfaceStatistics: Sendable, Equatable {
  public var timestampNanoseconds: Int64
  public var startNanoseconds: Int64?
  public var endNanoseconds: Int64?
  /// Packets the interface received (`isb_ifrecv`).
  public var received: UInt64?
  /// Packets the interface or kernel dropped (`isb_ifdrop`).
  public var interfaceDropped: UInt64?
  /// Packets accepted by the filter (`isb_filteraccept`).
  public var filterAccepted: UInt64?
  /// Packets dropped by the OS (`isb_osdrop`).
  public var osDropped: UInt64?
  /// Packets delivered to the user (`isb_usrdeliv`).
  public var delivered: UInt64?

  public init(
    timestampNanoseconds: Int64 = 0, startNanoseconds: Int64? = nil, endNanoseconds: Int64? = nil,
    received: UInt64? = nil, interfaceDropped: UInt64? = nil, filterAccepted: UInt64? = nil,
    osDropped: UInt64? = nil, delivered: UInt64? = nil
  ) {
    self.timestampNanoseconds = timestampNanoseconds
    self.startNanoseconds = startNanoseconds
    self.endNanoseconds = endNanoseconds
    self.received = received
    self.interfaceDropped = interfaceDropped
    self.filterAccepted = filterAccepted
    self.osDropped = osDropped
    self.delivered = delivered
  }
}

/// One captured packet. `data` points into the reader's memory map and stays valid as long
/// as the reader lives; nothing is copied.
public struct CapturedPacket {
  /// 1-based frame number in the file (as Wireshark counts).
  public var frame: Int
  /// Index into `CaptureFileReader.interfaces` (global across pcapng sections).
  public var interface: Int
  public var timestampNanoseconds: Int64
  public var originalLength: Int
  public var data: UnsafeRawBufferPointer
  /// Byte offset of the packet's block or record header in the file.
  public var fileOffset: Int
  /// Raw pcapng options of the packet block (empty for pcap), read lazily.
  public var options: UnsafeRawBufferPointer
  public var optionsBigEndian: Bool

  /// `epb_flags`, if present.
  public var flags: UInt32? {
    var result: UInt32?
    PcapngOptions.forEach(options, bigEndian: optionsBigEndian) { code, value in
      if code == 2, value.count >= 4 { result = value.u32(0, bigEndian: optionsBigEndian) }
    }
    return result
  }

  /// Direction from `epb_flags` bits 0-1.
  public var direction: PacketDirection {
    guard let flags else { return .unknown }
    return PacketDirection(rawValue: UInt8(flags & 3)) ?? .unknown
  }

  /// `epb_packetid`, if present.
  public var packetID: UInt64? {
    var result: UInt64?
    PcapngOptions.forEach(options, bigEndian: optionsBigEndian) { code, value in
      if code == 5, value.count >= 8 { result = value.u64(0, bigEndian: optionsBigEndian) }
    }
    return result
  }

  /// All `opt_comment` values of the packet.
  public var comments: [String] {
    var result: [String] = []
    PcapngOptions.forEach(options, bigEndian: optionsBigEndian) { code, value in
      if code == 1 { result.append(String(decoding: value, as: UTF8.self)) }
    }
    return result
  }
}

/// Walks pcapng option lists.
enum PcapngOptions {
  /// Calls `body` for each option until `opt_endofopt` or the end of the buffer. Malformed
  /// trailing options are ignored: options never make packet data unreadable.
  static func forEach(
    _ options: UnsafeRawBufferPointer, bigEndian: Bool,
    _ body: (UInt16, UnsafeRawBufferPointer) -> Void
  ) {
    var offset = 0
    while offset + 4 <= options.count {
      let code = options.u16(offset, bigEndian: bigEndian)
      let length = Int(options.u16(offset + 2, bigEndian: bigEndian))
      if code == 0 { return }
      let start = offset + 4
      guard start + length <= options.count else { return }
      body(code, options.slice(start, length))
      offset = start + ((length + 3) & ~3)
    }
  }
}
