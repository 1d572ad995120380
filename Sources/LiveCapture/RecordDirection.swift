import CaptureFiles

#if canImport(Glibc)
  import Glibc
#endif

/// The IP addresses of this host's network namespace (getifaddrs), for telling which way an
/// SMC dump record went.
struct LocalAddresses {
  var ipv4: Set<UInt32> = []
  var ipv6: Set<[UInt8]> = []

  /// Reads the current addresses of every interface of this namespace.
  static func current() -> LocalAddresses {
    var out = LocalAddresses()
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0 else { return out }
    defer { freeifaddrs(list) }
    var cursor = list
    while let entry = cursor {
      defer { cursor = entry.pointee.ifa_next }
      guard let address = entry.pointee.ifa_addr else { continue }
      switch Int32(address.pointee.sa_family) {
      case AF_INET:
        address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
          out.ipv4.insert(UInt32(bigEndian: $0.pointee.sin_addr.s_addr))
        }
      case AF_INET6:
        address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
          out.ipv6.insert(withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) })
        }
      default: break
      }
    }
    return out
  }

  /// Direction of an SMC dump record frame. The kernel transmits every record on the dump
  /// device, so the packet type says nothing; the record's own addresses do: its source is
  /// the sender of the message. Source local: this host sent it (outbound); else destination
  /// local: this host received it (inbound); neither (or not IP): unknown.
  func directionOfDumpRecord(_ frame: UnsafeRawBufferPointer, linkType: UInt32) -> PacketDirection {
    var offset: Int
    var etherType: UInt16
    switch linkType {
    case 1:  // Ethernet, as on the dump device
      guard frame.count >= 14 else { return .unknown }
      etherType = UInt16(frame[12]) << 8 | UInt16(frame[13])
      offset = 14
      if etherType == 0x8100, frame.count >= 18 {
        etherType = UInt16(frame[16]) << 8 | UInt16(frame[17])
        offset = 18
      }
    case 101, 12, 228, 229:  // raw IP
      guard frame.count >= 1 else { return .unknown }
      etherType = frame[0] >> 4 == 6 ? 0x86DD : 0x0800
      offset = 0
    default:
      return .unknown
    }
    switch etherType {
    case 0x0800:
      guard frame.count >= offset + 20, frame[offset] >> 4 == 4 else { return .unknown }
      func address(_ at: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 << 8 | UInt32(frame[at + $1]) }
      }
      if ipv4.contains(address(offset + 12)) { return .outbound }
      if ipv4.contains(address(offset + 16)) { return .inbound }
    case 0x86DD:
      guard frame.count >= offset + 40, frame[offset] >> 4 == 6 else { return .unknown }
      if ipv6.contains(Array(frame[(offset + 8)..<(offset + 24)])) { return .outbound }
      if ipv6.contains(Array(frame[(offset + 24)..<(offset + 40)])) { return .inbound }
    default:
      break
    }
    return .unknown
  }
}
