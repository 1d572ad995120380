/// A pcap/pcapng link-layer header type (LINKTYPE_* value).
public struct LinkType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  public var rawValue: UInt32
  public init(rawValue: UInt32) { self.rawValue = rawValue }

  public static let ethernet = LinkType(rawValue: 1)
  /// LINKTYPE_RAW: a bare IPv4 or IPv6 packet.
  public static let rawIP = LinkType(rawValue: 101)
  /// DLT_RAW as some BSDs number it in classic pcap files.
  public static let rawIPBSD = LinkType(rawValue: 12)
  public static let linuxSLL = LinkType(rawValue: 113)
  public static let ipv4 = LinkType(rawValue: 228)
  public static let ipv6 = LinkType(rawValue: 229)
  public static let linuxSLL2 = LinkType(rawValue: 276)

  public var description: String {
    switch self {
    case .ethernet: "Ethernet"
    case .rawIP, .rawIPBSD: "raw IP"
    case .linuxSLL: "Linux cooked (SLL)"
    case .linuxSLL2: "Linux cooked v2 (SLL2)"
    case .ipv4: "raw IPv4"
    case .ipv6: "raw IPv6"
    default: "link type \(rawValue)"
    }
  }
}

/// Which way a packet went, as recorded by the capturing host (pcapng `epb_flags` bits 0-1).
public enum PacketDirection: UInt8, Sendable {
  case unknown = 0
  case inbound = 1
  case outbound = 2
}
