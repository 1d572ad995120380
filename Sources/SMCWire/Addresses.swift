/// An IPv4 or IPv6 address held in two integers (no allocation).
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
  /// IPv6: first 8 bytes; IPv4: 0.
  public var high: UInt64
  /// IPv6: last 8 bytes; IPv4: the address in the low 32 bits.
  public var low: UInt64
  public var isIPv6: Bool

  public init(ipv4: UInt32) {
    high = 0
    low = UInt64(ipv4)
    isIPv6 = false
  }

  public init(ipv6High: UInt64, low: UInt64) {
    high = ipv6High
    self.low = low
    isIPv6 = true
  }

  /// Parses dotted IPv4 or textual IPv6; `nil` when malformed.
  public init?(_ text: String) {
    if text.contains(":") {
      guard let (h, l) = IPAddress.parseIPv6(text) else { return nil }
      self.init(ipv6High: h, low: l)
    } else {
      let parts = text.split(separator: ".", omittingEmptySubsequences: false)
      guard parts.count == 4 else { return nil }
      var value: UInt32 = 0
      for part in parts {
        guard let byte = UInt8(part) else { return nil }
        value = value << 8 | UInt32(byte)
      }
      self.init(ipv4: value)
    }
  }

  public var ipv4: UInt32 { UInt32(truncatingIfNeeded: low) }

  public static func < (a: IPAddress, b: IPAddress) -> Bool {
    (a.isIPv6 ? 1 : 0, a.high, a.low) < (b.isIPv6 ? 1 : 0, b.high, b.low)
  }

  public var description: String {
    var out: [UInt8] = []
    out.reserveCapacity(40)
    write(into: &out)
    return String(decoding: out, as: UTF8.self)
  }

  /// Appends the textual form (IPv6 per RFC 5952) to `out`.
  public func write(into out: inout [UInt8]) {
    if !isIPv6 {
      let v = ipv4
      TextWriter.decimal(UInt64(v >> 24), into: &out)
      out.append(UInt8(ascii: "."))
      TextWriter.decimal(UInt64((v >> 16) & 0xFF), into: &out)
      out.append(UInt8(ascii: "."))
      TextWriter.decimal(UInt64((v >> 8) & 0xFF), into: &out)
      out.append(UInt8(ascii: "."))
      TextWriter.decimal(UInt64(v & 0xFF), into: &out)
      return
    }
    var groups = [UInt16](repeating: 0, count: 8)
    for i in 0..<4 {
      groups[i] = UInt16(truncatingIfNeeded: high >> UInt64(48 - 16 * i))
      groups[i + 4] = UInt16(truncatingIfNeeded: low >> UInt64(48 - 16 * i))
    }
    // Longest run of two or more zero groups is written as "::".
    var bestStart = -1
    var bestLength = 0
    var i = 0
    while i < 8 {
      if groups[i] == 0 {
        var j = i
        while j < 8 && groups[j] == 0 { j += 1 }
        if j - i > bestLength && j - i >= 2 {
          bestStart = i
          bestLength = j - i
        }
        i = j
      } else {
        i += 1
      }
    }
    i = 0
    while i < 8 {
      if i == bestStart {
        out.append(UInt8(ascii: ":"))
        if i == 0 { out.append(UInt8(ascii: ":")) }
        i += bestLength
        continue
      }
      TextWriter.hex(UInt64(groups[i]), minimumDigits: 1, into: &out)
      if i < 7 { out.append(UInt8(ascii: ":")) }
      i += 1
    }
  }

  static func parseIPv6(_ text: String) -> (UInt64, UInt64)? {
    let halves = text.components(separatedBy: "::")
    guard halves.count <= 2 else { return nil }
    func groups(_ s: String) -> [UInt16]? {
      if s.isEmpty { return [] }
      var result: [UInt16] = []
      for part in s.split(separator: ":", omittingEmptySubsequences: false) {
        guard !part.isEmpty, part.count <= 4, let v = UInt16(part, radix: 16) else { return nil }
        result.append(v)
      }
      return result
    }
    guard let head = groups(halves[0]) else { return nil }
    var all = head
    if halves.count == 2 {
      guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
      all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
    }
    guard all.count == 8 else { return nil }
    var h: UInt64 = 0
    var l: UInt64 = 0
    for i in 0..<4 {
      h = h << 16 | UInt64(all[i])
      l = l << 16 | UInt64(all[i + 4])
    }
    return (h, l)
  }
}

extension String {
  fileprivate func components(separatedBy separator: String) -> [String] {
    var result: [String] = []
    var rest = Substring(self)
    while let range = rest.firstRange(of: separator) {
      result.append(String(rest[..<range.lowerBound]))
      rest = rest[range.upperBound...]
    }
    result.append(String(rest))
    return result
  }
}

/// An IP address and port.
public struct Endpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
  public var address: IPAddress
  public var port: UInt16

  public init(_ address: IPAddress, _ port: UInt16) {
    self.address = address
    self.port = port
  }

  public static func < (a: Endpoint, b: Endpoint) -> Bool {
    (a.address, a.port) < (b.address, b.port)
  }

  /// `ip:port`, or `[ipv6]:port`.
  public var description: String {
    var out: [UInt8] = []
    write(into: &out)
    return String(decoding: out, as: UTF8.self)
  }

  public func write(into out: inout [UInt8]) {
    if address.isIPv6 { out.append(UInt8(ascii: "[")) }
    address.write(into: &out)
    if address.isIPv6 { out.append(UInt8(ascii: "]")) }
    out.append(UInt8(ascii: ":"))
    TextWriter.decimal(UInt64(port), into: &out)
  }
}

/// A TCP connection's identity regardless of direction: the two endpoints, ordered.
public struct ConnectionKey: Hashable, Sendable, CustomStringConvertible {
  public var lower: Endpoint
  public var upper: Endpoint

  public init(_ a: Endpoint, _ b: Endpoint) {
    if a < b {
      lower = a
      upper = b
    } else {
      lower = b
      upper = a
    }
  }

  public var description: String { "\(lower) <-> \(upper)" }

  /// One combine of a 64-bit mix instead of hashing every field: lookups happen per packet.
  public func hash(into hasher: inout Hasher) {
    hasher.combine(mixed)
  }

  @inline(__always)
  var mixed: UInt64 {
    var h = lower.address.low &* 0x9E37_79B9_7F4A_7C15
    h ^= upper.address.low &* 0xC2B2_AE3D_27D4_EB4F
    h ^= (lower.address.high ^ upper.address.high.rotated(by: 17)) &* 0x1656_67B1_9E37_79F9
    h ^= (UInt64(lower.port) << 16 | UInt64(upper.port)) &* 0x27D4_EB2F_1656_67C5
    return h
  }
}

extension UInt64 {
  @inline(__always)
  fileprivate func rotated(by n: UInt64) -> UInt64 { self << n | self >> (64 - n) }
}

/// Allocation-free number formatting into byte buffers, shared by every text renderer.
public enum TextWriter {
  /// "00" through "99", for two digits per division.
  public static let digitPairs: [UInt8] = {
    var pairs: [UInt8] = []
    for n in 0..<100 {
      pairs.append(UInt8(48 + n / 10))
      pairs.append(UInt8(48 + n % 10))
    }
    return pairs
  }()

  /// Writes the decimal digits of `value` at the start of `destination` (room for 20 bytes
  /// needed) and returns how many were written. Two digits per division.
  @inline(__always)
  public static func writeDecimal(_ value: UInt64, to destination: UnsafeMutableRawBufferPointer) -> Int {
    if value < 10 {
      destination[0] = UInt8(truncatingIfNeeded: value) &+ 48
      return 1
    }
    var digits = 1
    var probe = value
    while probe >= 10 {
      probe /= 10
      digits += 1
    }
    var position = digits
    var v = value
    digitPairs.withUnsafeBufferPointer { pairs in
      while v >= 100 {
        let pair = Int(v % 100) &* 2
        v /= 100
        position -= 2
        destination[position] = pairs[pair]
        destination[position + 1] = pairs[pair + 1]
      }
      if v >= 10 {
        let pair = Int(v) &* 2
        destination[position - 2] = pairs[pair]
        destination[position - 1] = pairs[pair + 1]
      } else {
        destination[position - 1] = UInt8(truncatingIfNeeded: v) &+ 48
      }
    }
    return digits
  }

  public static func decimal(_ value: UInt64, into out: inout [UInt8]) {
    var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
    withUnsafeMutableBytes(of: &scratch) { raw in
      let count = writeDecimal(value, to: raw)
      out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[0..<count]))
    }
  }

  public static func signedDecimal(_ value: Int64, into out: inout [UInt8]) {
    if value < 0 {
      out.append(UInt8(ascii: "-"))
      decimal(value.magnitude, into: &out)
    } else {
      decimal(UInt64(value), into: &out)
    }
  }

  @inlinable
  public static func hex(_ value: UInt64, minimumDigits: Int, into out: inout [UInt8]) {
    var digits = 1
    var v = value >> 4
    while v > 0 {
      digits += 1
      v >>= 4
    }
    digits = max(digits, minimumDigits)
    var shift = (digits - 1) * 4
    while shift >= 0 {
      let nibble = shift >= 64 ? 0 : UInt8(truncatingIfNeeded: (value >> UInt64(shift)) & 0xF)
      out.append(nibble < 10 ? nibble &+ 48 : nibble &+ 87)
      shift -= 4
    }
  }
}
