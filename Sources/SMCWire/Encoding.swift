/// Builds CLC messages byte for byte as Linux lays them out (used by fixtures, the
/// synthetic capture generator and the lab's SMC peer emulator).
public enum CLCBuilder {
  static func header(
    _ out: inout [UInt8], smcD: Bool, kind: CLCMessage.Kind, length: Int, version: UInt8, flagBits: UInt8
  ) {
    put32(&out, 0, smcD ? CLCMessage.smcDEyecatcher : CLCMessage.smcREyecatcher)
    out[4] = kind.rawValue
    put16(&out, 5, UInt16(length))
    out[7] = version << 4 | flagBits
  }

  static func trailer(_ out: inout [UInt8], smcD: Bool) {
    put32(&out, out.count - 4, smcD ? CLCMessage.smcDEyecatcher : CLCMessage.smcREyecatcher)
  }

  /// A Proposal. v1 SMC-R without the SMC-D area and without IPv6 prefixes is 52 bytes.
  /// With `ismGID` the 40-byte SMC-D area is included; `version: 2` adds a v2 extension.
  public static func proposal(
    version: UInt8 = 1, pathV1: SMCPath = .smcR, pathV2: SMCPath = .none, peerID: UInt64,
    gid: (UInt64, UInt64), mac: UInt64, ismGID: UInt64? = nil, subnet: UInt32, prefixLength: UInt8
  ) -> [UInt8] {
    let hasSMCDArea = ismGID != nil || version >= 2
    let ipArea = 40 + (hasSMCDArea ? 40 : 0)
    let v2Extension = version >= 2 ? 38 : 0
    let length = ipArea + 8 + v2Extension + 4
    var out = [UInt8](repeating: 0, count: length)
    header(
      &out, smcD: false, kind: .proposal, length: length, version: version,
      flagBits: pathV2.rawValue << 2 | pathV1.rawValue)
    put64(&out, 8, peerID)
    put64(&out, 16, gid.0)
    put64(&out, 24, gid.1)
    putMAC(&out, 32, mac)
    put16(&out, 38, UInt16(ipArea - 40))
    if hasSMCDArea {
      put64(&out, 40, ismGID ?? 0)
      if version >= 2 {
        // v2 extension offset counts from the end of that field (offset 52).
        put16(&out, 50, UInt16(ipArea + 8 - 52))
      }
    }
    put32(&out, ipArea, subnet)
    out[ipArea + 4] = prefixLength
    trailer(&out, smcD: false)
    return out
  }

  /// An SMC-R Accept or Confirm: 68 bytes (v1) or 108 bytes (v2).
  public static func acceptConfirmR(
    _ kind: CLCMessage.Kind, version: UInt8 = 1, firstContact: Bool, peerID: UInt64, gid: (UInt64, UInt64),
    mac: UInt64, qpNumber: UInt32, rmbRkey: UInt32, rmbeIndex: UInt8 = 1, alertToken: UInt32,
    rmbeSizeCode: UInt8, qpMTU: UInt8 = 3, rmbAddress: UInt64, initialPSN: UInt32
  ) -> [UInt8] {
    precondition(kind == .accept || kind == .confirm)
    let length = version >= 2 ? 108 : 68
    var out = [UInt8](repeating: 0, count: length)
    header(
      &out, smcD: false, kind: kind, length: length, version: version,
      flagBits: (firstContact ? 0x08 : 0) | SMCPath.smcR.rawValue)
    put64(&out, 8, peerID)
    put64(&out, 16, gid.0)
    put64(&out, 24, gid.1)
    putMAC(&out, 32, mac)
    put24(&out, 38, qpNumber)
    put32(&out, 41, rmbRkey)
    out[45] = rmbeIndex
    put32(&out, 46, alertToken)
    out[50] = rmbeSizeCode << 4 | (qpMTU & 0x0F)
    put64(&out, 52, rmbAddress)
    put24(&out, 61, initialPSN)
    trailer(&out, smcD: false)
    return out
  }

  /// An SMC-D Accept or Confirm: 48 bytes (v1) or 78 bytes (v2), "SMCD" eyecatchers.
  public static func acceptConfirmD(
    _ kind: CLCMessage.Kind, version: UInt8 = 1, firstContact: Bool, ismGID: UInt64, dmbToken: UInt64,
    dmbeIndex: UInt8 = 0, dmbeSizeCode: UInt8, linkID: UInt32 = 0
  ) -> [UInt8] {
    precondition(kind == .accept || kind == .confirm)
    let length = version >= 2 ? 78 : 48
    var out = [UInt8](repeating: 0, count: length)
    header(
      &out, smcD: true, kind: kind, length: length, version: version,
      flagBits: (firstContact ? 0x08 : 0) | SMCPath.smcD.rawValue)
    put64(&out, 8, ismGID)
    put64(&out, 16, dmbToken)
    out[24] = dmbeIndex
    out[25] = dmbeSizeCode << 4
    put32(&out, 28, linkID)
    trailer(&out, smcD: true)
    return out
  }

  /// A Decline: 28 bytes (v1) or 44 bytes (v2).
  public static func decline(
    version: UInt8 = 1, peerID: UInt64, diagnosis: UInt32, osType: UInt8 = 3, outOfSync: Bool = false
  ) -> [UInt8] {
    let length = version >= 2 ? 44 : 28
    var out = [UInt8](repeating: 0, count: length)
    header(
      &out, smcD: false, kind: .decline, length: length, version: version,
      flagBits: (outOfSync ? 0x08 : 0) | SMCPath.none.rawValue)
    put64(&out, 8, peerID)
    put32(&out, 16, diagnosis)
    out[20] = osType << 4
    trailer(&out, smcD: false)
    return out
  }
}

/// Builds Ethernet/IPv4/IPv6/TCP/UDP frames with correct lengths and checksums.
public enum FrameBuilder {
  public struct TCPSegment: Sendable {
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    public var window: UInt16 = 64_240
    public var smcOption = false
    public init(
      sequence: UInt32, acknowledgment: UInt32, flags: TCPFlags, window: UInt16 = 64_240,
      smcOption: Bool = false
    ) {
      self.sequence = sequence
      self.acknowledgment = acknowledgment
      self.flags = flags
      self.window = window
      self.smcOption = smcOption
    }
  }

  /// An Ethernet frame carrying TCP over IPv4 or IPv6 (by the endpoints' address family).
  public static func tcp(
    sourceMAC: UInt64, destinationMAC: UInt64, source: Endpoint, destination: Endpoint, segment: TCPSegment,
    ipID: UInt16 = 0, payload: [UInt8] = []
  ) -> [UInt8] {
    var options: [UInt8] = []
    if segment.flags.contains(.syn) {
      options = [0x02, 0x04, 0x05, 0xB4]  // MSS 1460
      if segment.smcOption { options += [0x01, 0x01, 0xFE, 0x06, 0xE2, 0xD4, 0xC3, 0xD9] }
      options += [0x01, 0x03, 0x03, 0x07]  // NOP, window scale 7
    }
    var tcp = [UInt8](repeating: 0, count: 20 + options.count)
    put16(&tcp, 0, source.port)
    put16(&tcp, 2, destination.port)
    put32(&tcp, 4, segment.sequence)
    put32(&tcp, 8, segment.acknowledgment)
    tcp[12] = UInt8((20 + options.count) / 4) << 4
    tcp[13] = UInt8(truncatingIfNeeded: segment.flags.rawValue)
    put16(&tcp, 14, segment.window)
    tcp.replaceSubrange(20..<(20 + options.count), with: options)
    tcp += payload
    let checksum = transportChecksum(
      source: source.address, destination: destination.address, proto: 6, segment: tcp)
    put16(&tcp, 16, checksum)
    return ethernet(
      sourceMAC, destinationMAC, ip(source.address, destination.address, proto: 6, ipID: ipID, payload: tcp))
  }

  /// An Ethernet frame carrying UDP; `checksum: false` leaves it 0 as SMC dump records do.
  public static func udp(
    sourceMAC: UInt64, destinationMAC: UInt64, source: Endpoint, destination: Endpoint, payload: [UInt8],
    ipID: UInt16 = 0, checksum: Bool = true, ipChecksum: Bool = true
  ) -> [UInt8] {
    var udp = [UInt8](repeating: 0, count: 8)
    put16(&udp, 0, source.port)
    put16(&udp, 2, destination.port)
    put16(&udp, 4, UInt16(8 + payload.count))
    udp += payload
    if checksum {
      var sum = transportChecksum(
        source: source.address, destination: destination.address, proto: 17, segment: udp)
      if sum == 0 { sum = 0xFFFF }
      put16(&udp, 6, sum)
    }
    return ethernet(
      sourceMAC, destinationMAC,
      ip(source.address, destination.address, proto: 17, ipID: ipID, payload: udp, headerChecksum: ipChecksum)
    )
  }

  /// Rewrites an Ethernet frame as Linux cooked v2 (what `tcpdump -i any` writes).
  public static func sll2(fromEthernet frame: [UInt8], interfaceIndex: UInt32, packetType: UInt8) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 20)
    out[0] = frame[12]
    out[1] = frame[13]
    put32(&out, 4, interfaceIndex)
    put16(&out, 8, 1)  // ARPHRD_ETHER
    out[10] = packetType
    out[11] = 6
    for i in 0..<6 { out[12 + i] = frame[6 + i] }
    return out + frame[14...]
  }

  /// Rewrites an Ethernet frame as Linux cooked v1.
  public static func sll(fromEthernet frame: [UInt8], packetType: UInt16) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 16)
    put16(&out, 0, packetType)
    put16(&out, 2, 1)
    put16(&out, 4, 6)
    for i in 0..<6 { out[6 + i] = frame[6 + i] }
    out[14] = frame[12]
    out[15] = frame[13]
    return out + frame[14...]
  }

  static func ethernet(_ src: UInt64, _ dst: UInt64, _ ipPacket: (etherType: UInt16, bytes: [UInt8]))
    -> [UInt8]
  {
    var out = [UInt8](repeating: 0, count: 14)
    putMAC(&out, 0, dst)
    putMAC(&out, 6, src)
    put16(&out, 12, ipPacket.etherType)
    return out + ipPacket.bytes
  }

  static func ip(
    _ src: IPAddress, _ dst: IPAddress, proto: UInt8, ipID: UInt16, payload: [UInt8],
    headerChecksum: Bool = true
  ) -> (etherType: UInt16, bytes: [UInt8]) {
    if src.isIPv6 {
      var h = [UInt8](repeating: 0, count: 40)
      h[0] = 0x60
      put16(&h, 4, UInt16(payload.count))
      h[6] = proto
      h[7] = 64
      put64(&h, 8, src.high)
      put64(&h, 16, src.low)
      put64(&h, 24, dst.high)
      put64(&h, 32, dst.low)
      return (0x86DD, h + payload)
    }
    var h = [UInt8](repeating: 0, count: 20)
    h[0] = 0x45
    put16(&h, 2, UInt16(20 + payload.count))
    put16(&h, 4, ipID)
    if proto == 6 { h[6] = 0x40 }  // DF, as Linux sets on TCP
    h[8] = 64
    h[9] = proto
    put32(&h, 12, src.ipv4)
    put32(&h, 16, dst.ipv4)
    if headerChecksum { put16(&h, 10, internetChecksum(h, initial: 0)) }
    return (0x0800, h + payload)
  }

  static func transportChecksum(source: IPAddress, destination: IPAddress, proto: UInt8, segment: [UInt8])
    -> UInt16
  {
    var pseudo: [UInt8]
    if source.isIPv6 {
      pseudo = [UInt8](repeating: 0, count: 40)
      put64(&pseudo, 0, source.high)
      put64(&pseudo, 8, source.low)
      put64(&pseudo, 16, destination.high)
      put64(&pseudo, 24, destination.low)
      put32(&pseudo, 32, UInt32(segment.count))
      pseudo[39] = proto
    } else {
      pseudo = [UInt8](repeating: 0, count: 12)
      put32(&pseudo, 0, source.ipv4)
      put32(&pseudo, 4, destination.ipv4)
      pseudo[9] = proto
      put16(&pseudo, 10, UInt16(segment.count))
    }
    return internetChecksum(pseudo + segment, initial: 0)
  }

  static func internetChecksum(_ bytes: [UInt8], initial: UInt32) -> UInt16 {
    var sum = initial
    var i = 0
    while i + 1 < bytes.count {
      sum &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
      i += 2
    }
    if i < bytes.count { sum &+= UInt32(bytes[i]) << 8 }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    return ~UInt16(sum)
  }
}

/// A dump-header layout to *write* records with. The real layout is unconfirmed, so tests
/// and the lab generate several and check that calibration finds each.
public struct DumpHeaderFormat: Sendable, Equatable {
  public var length: Int
  public var versionOffset: Int
  public var smcVersionOffset: Int
  public var modeOffset: Int
  public var typeOffset: Int
  public var lengthOffset: Int
  public var cdcType: UInt8
  public var dataType: UInt8
  public var headerVersion: UInt8

  /// Fields in declaration order: magic@0 hdr_ver@4 smc_ver@5 mode@6 type@7 len@8, 16 bytes.
  public static let declarationOrder = DumpHeaderFormat(
    length: 16, versionOffset: 4, smcVersionOffset: 5, modeOffset: 6, typeOffset: 7, lengthOffset: 8,
    cdcType: 2, dataType: 1, headerVersion: 1)

  public init(
    length: Int, versionOffset: Int, smcVersionOffset: Int, modeOffset: Int, typeOffset: Int,
    lengthOffset: Int,
    cdcType: UInt8, dataType: UInt8, headerVersion: UInt8
  ) {
    self.length = length
    self.versionOffset = versionOffset
    self.smcVersionOffset = smcVersionOffset
    self.modeOffset = modeOffset
    self.typeOffset = typeOffset
    self.lengthOffset = lengthOffset
    self.cdcType = cdcType
    self.dataType = dataType
    self.headerVersion = headerVersion
  }

  /// A whole dump record: header followed by `body`.
  public func record(mode: SMCMode, smcVersion: UInt8, isCDC: Bool, body: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: length)
    put32(&out, 0, DumpHeaderCalibrator.magic)
    out[versionOffset] = headerVersion
    out[smcVersionOffset] = smcVersion
    out[modeOffset] = mode.rawValue
    out[typeOffset] = isCDC ? cdcType : dataType
    put16(&out, lengthOffset, UInt16(length + body.count))
    return out + body
  }
}

@inline(__always) func put24(_ out: inout [UInt8], _ at: Int, _ v: UInt32) {
  out[at] = UInt8(truncatingIfNeeded: v >> 16)
  out[at + 1] = UInt8(truncatingIfNeeded: v >> 8)
  out[at + 2] = UInt8(truncatingIfNeeded: v)
}

@inline(__always) func putMAC(_ out: inout [UInt8], _ at: Int, _ v: UInt64) {
  for i in 0..<6 { out[at + i] = UInt8(truncatingIfNeeded: v >> (40 - 8 * UInt64(i))) }
}
