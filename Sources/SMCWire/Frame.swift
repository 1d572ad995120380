import CaptureFiles

/// The transport protocol of a decoded frame.
public enum TransportProtocol: Equatable, Sendable {
  case none
  case tcp
  case udp
  case other(UInt8)
}

/// TCP flag bits (byte 13 of the header, plus NS as 0x100).
public struct TCPFlags: OptionSet, Hashable, Sendable {
  public let rawValue: UInt16
  public init(rawValue: UInt16) { self.rawValue = rawValue }
  public static let fin = TCPFlags(rawValue: 0x01)
  public static let syn = TCPFlags(rawValue: 0x02)
  public static let rst = TCPFlags(rawValue: 0x04)
  public static let psh = TCPFlags(rawValue: 0x08)
  public static let ack = TCPFlags(rawValue: 0x10)
  public static let urg = TCPFlags(rawValue: 0x20)
  public static let ece = TCPFlags(rawValue: 0x40)
  public static let cwr = TCPFlags(rawValue: 0x80)

  /// Letters in tcpdump order, e.g. "S", "S.", "P.", "F.".
  public var letters: String {
    var s = ""
    if contains(.fin) { s += "F" }
    if contains(.syn) { s += "S" }
    if contains(.rst) { s += "R" }
    if contains(.psh) { s += "P" }
    if contains(.urg) { s += "U" }
    if contains(.ece) { s += "E" }
    if contains(.cwr) { s += "W" }
    if contains(.ack) { s += "." }
    return s.isEmpty ? "none" : s
  }
}

/// The TCP header fields alignment and decoding need.
public struct TCPHeader: Equatable, Sendable {
  public var sequence: UInt32
  public var acknowledgment: UInt32
  public var flags: TCPFlags
  public var window: UInt16
  /// The SYN/SYN-ACK carries the SMC experimental option (kind 254, ExID 0xE2D4C3D9).
  public var smcOption: Bool
}

/// Why a frame could not be decoded down to its transport payload.
public enum FrameIssue: Equatable, Sendable {
  case unsupportedLinkType(UInt32)
  case truncatedLinkHeader
  case notIP(etherType: UInt16)
  case truncatedIPHeader
  case badIPHeader
  case fragment
  case truncatedTransportHeader
  case badTCPHeader

  public var isMalformed: Bool {
    switch self {
    case .unsupportedLinkType, .notIP, .fragment: false
    default: true
    }
  }

  public var text: String {
    switch self {
    case .unsupportedLinkType(let t): "link type \(t) is not decoded (supported: Ethernet, SLL, SLL2, raw IP)"
    case .truncatedLinkHeader: "frame shorter than its link-layer header"
    case .notIP(let t): "not IP (ethertype 0x\(String(t, radix: 16)))"
    case .truncatedIPHeader: "frame ends inside the IP header"
    case .badIPHeader: "IP header has an invalid version or length"
    case .fragment: "non-first IP fragment"
    case .truncatedTransportHeader: "frame ends inside the TCP/UDP header"
    case .badTCPHeader: "TCP header length is invalid"
    }
  }
}

/// One frame decoded down to its transport payload. `payload` points into the packet data.
public struct Frame {
  public var ipVersion: UInt8 = 0
  public var source = IPAddress(ipv4: 0)
  public var destination = IPAddress(ipv4: 0)
  public var ipID: UInt16 = 0
  public var transport: TransportProtocol = .none
  public var sourcePort: UInt16 = 0
  public var destinationPort: UInt16 = 0
  public var tcp: TCPHeader?
  /// Transport payload bytes present in the capture (may be cut by the snapshot length).
  public var payload = UnsafeRawBufferPointer(start: nil, count: 0)
  /// Payload length according to the IP header (what was on the wire).
  public var wirePayloadLength = 0
  /// Linux cooked packet type (0 to us, 4 outgoing, ...), when the link type says it.
  public var cookedPacketType: UInt8?
  public var vlan: UInt16?
  public var issue: FrameIssue?

  public var sourceEndpoint: Endpoint { Endpoint(source, sourcePort) }
  public var destinationEndpoint: Endpoint { Endpoint(destination, destinationPort) }
  public var isTCP: Bool { transport == .tcp }
  public var isUDP: Bool { transport == .udp }
}

/// Decodes link, network and transport headers.
public enum FrameDecoder {
  /// The SMC experimental TCP option's ExID, "SMCR" in EBCDIC.
  public static let smcOptionExID: UInt32 = 0xE2D4_C3D9

  public static func decode(_ data: UnsafeRawBufferPointer, linkType: LinkType) -> Frame {
    var frame = Frame()
    var offset = 0
    var etherType: UInt16 = 0
    switch linkType {
    case .ethernet:
      guard data.count >= 14 else { return frame.failing(.truncatedLinkHeader) }
      etherType = data.u16be(12)
      offset = 14
      var tags = 0
      while (etherType == 0x8100 || etherType == 0x88A8) && tags < 2 {
        guard data.count >= offset + 4 else { return frame.failing(.truncatedLinkHeader) }
        frame.vlan = data.u16be(offset) & 0x0FFF
        etherType = data.u16be(offset + 2)
        offset += 4
        tags += 1
      }
    case .linuxSLL:
      guard data.count >= 16 else { return frame.failing(.truncatedLinkHeader) }
      frame.cookedPacketType = UInt8(truncatingIfNeeded: data.u16be(0))
      etherType = data.u16be(14)
      offset = 16
    case .linuxSLL2:
      guard data.count >= 20 else { return frame.failing(.truncatedLinkHeader) }
      etherType = data.u16be(0)
      frame.cookedPacketType = data.u8(10)
      offset = 20
    case .rawIP, .rawIPBSD, .ipv4, .ipv6:
      guard data.count >= 1 else { return frame.failing(.truncatedIPHeader) }
      etherType = data.u8(0) >> 4 == 6 ? 0x86DD : 0x0800
    default:
      return frame.failing(.unsupportedLinkType(linkType.rawValue))
    }
    switch etherType {
    case 0x0800: return decodeIPv4(data, at: offset, into: &frame)
    case 0x86DD: return decodeIPv6(data, at: offset, into: &frame)
    default: return frame.failing(.notIP(etherType: etherType))
    }
  }

  static func decodeIPv4(_ data: UnsafeRawBufferPointer, at start: Int, into frame: inout Frame) -> Frame {
    guard data.count >= start + 20 else { return frame.failing(.truncatedIPHeader) }
    let versionIHL = data.u8(start)
    let headerLength = Int(versionIHL & 0x0F) * 4
    guard versionIHL >> 4 == 4, headerLength >= 20 else { return frame.failing(.badIPHeader) }
    guard data.count >= start + headerLength else { return frame.failing(.truncatedIPHeader) }
    let totalLength = Int(data.u16be(start + 2))
    frame.ipVersion = 4
    frame.ipID = data.u16be(start + 4)
    frame.source = IPAddress(ipv4: data.u32be(start + 12))
    frame.destination = IPAddress(ipv4: data.u32be(start + 16))
    let fragmentOffset = data.u16be(start + 6) & 0x1FFF
    let proto = data.u8(start + 9)
    if fragmentOffset != 0 { return frame.failing(.fragment) }
    // Segmentation offload can leave total length 0 in captures: then trust the capture.
    let wireEnd = totalLength >= headerLength ? start + totalLength : Int.max
    return decodeTransport(data, proto: proto, at: start + headerLength, wireEnd: wireEnd, into: &frame)
  }

  static func decodeIPv6(_ data: UnsafeRawBufferPointer, at start: Int, into frame: inout Frame) -> Frame {
    guard data.count >= start + 40 else { return frame.failing(.truncatedIPHeader) }
    guard data.u8(start) >> 4 == 6 else { return frame.failing(.badIPHeader) }
    frame.ipVersion = 6
    frame.source = IPAddress(ipv6High: data.u64be(start + 8), low: data.u64be(start + 16))
    frame.destination = IPAddress(ipv6High: data.u64be(start + 24), low: data.u64be(start + 32))
    let payloadLength = Int(data.u16be(start + 4))
    let wireEnd = payloadLength == 0 ? Int.max : start + 40 + payloadLength
    var next = data.u8(start + 6)
    var offset = start + 40
    // Skip extension headers.
    for _ in 0..<8 {
      switch next {
      case 0, 43, 60:
        guard data.count >= offset + 8 else { return frame.failing(.truncatedIPHeader) }
        next = data.u8(offset)
        offset += (Int(data.u8(offset + 1)) + 1) * 8
      case 44:
        guard data.count >= offset + 8 else { return frame.failing(.truncatedIPHeader) }
        let fragmentOffset = data.u16be(offset + 2) >> 3
        next = data.u8(offset)
        offset += 8
        if fragmentOffset != 0 { return frame.failing(.fragment) }
      default:
        return decodeTransport(data, proto: next, at: offset, wireEnd: wireEnd, into: &frame)
      }
    }
    return frame.failing(.badIPHeader)
  }

  static func decodeTransport(
    _ data: UnsafeRawBufferPointer, proto: UInt8, at start: Int, wireEnd: Int, into frame: inout Frame
  ) -> Frame {
    let end = min(data.count, wireEnd)
    switch proto {
    case 6:
      frame.transport = .tcp
      guard end >= start + 20 else { return frame.failing(.truncatedTransportHeader) }
      let headerLength = Int(data.u8(start + 12) >> 4) * 4
      guard headerLength >= 20 else { return frame.failing(.badTCPHeader) }
      guard end >= start + headerLength else { return frame.failing(.truncatedTransportHeader) }
      frame.sourcePort = data.u16be(start)
      frame.destinationPort = data.u16be(start + 2)
      let flags = TCPFlags(rawValue: UInt16(data.u8(start + 13)) | (UInt16(data.u8(start + 12) & 1) << 8))
      var smcOption = false
      if flags.contains(.syn) {
        smcOption = hasSMCOption(data, from: start + 20, to: start + headerLength)
      }
      frame.tcp = TCPHeader(
        sequence: data.u32be(start + 4), acknowledgment: data.u32be(start + 8), flags: flags,
        window: data.u16be(start + 14), smcOption: smcOption)
      frame.payload = data.slice(start + headerLength, end - start - headerLength)
      frame.wirePayloadLength =
        wireEnd == Int.max ? frame.payload.count : max(0, wireEnd - start - headerLength)
    case 17:
      frame.transport = .udp
      guard end >= start + 8 else { return frame.failing(.truncatedTransportHeader) }
      frame.sourcePort = data.u16be(start)
      frame.destinationPort = data.u16be(start + 2)
      let udpLength = Int(data.u16be(start + 4))
      var payloadEnd = end
      if udpLength >= 8 { payloadEnd = min(end, start + udpLength) }
      frame.payload = data.slice(start + 8, payloadEnd - start - 8)
      frame.wirePayloadLength = udpLength >= 8 ? udpLength - 8 : frame.payload.count
    default:
      frame.transport = .other(proto)
    }
    return frame
  }

  /// Scans TCP options for kind 254, length 6, ExID E2D4C3D9.
  static func hasSMCOption(_ data: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Bool {
    var i = start
    while i < end {
      let kind = data.u8(i)
      if kind == 0 { return false }
      if kind == 1 {
        i += 1
        continue
      }
      guard i + 1 < end else { return false }
      let length = Int(data.u8(i + 1))
      guard length >= 2, i + length <= end else { return false }
      if kind == 254 && length == 6 && data.u32be(i + 2) == smcOptionExID { return true }
      i += length
    }
    return false
  }
}

extension Frame {
  fileprivate func failing(_ issue: FrameIssue) -> Frame {
    var copy = self
    copy.issue = issue
    return copy
  }
}
