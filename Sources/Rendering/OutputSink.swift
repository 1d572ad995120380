import SMCWire
import Support

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Buffered output to a file descriptor, written in large chunks.
///
/// A struct over a fixed raw buffer, so that renderers own it and appends are plain memory
/// writes: no array growth checks, no uniqueness checks, no dynamic exclusivity checks. One
/// owner at a time (copies share the buffer).
public struct OutputSink {
  final class Storage {
    let base: UnsafeMutablePointer<UInt8>
    let capacity: Int
    init(capacity: Int) {
      self.capacity = capacity
      base = .allocate(capacity: capacity)
    }
    deinit { base.deallocate() }
  }

  public let fd: Int32
  private let storage: Storage
  private let base: UnsafeMutablePointer<UInt8>
  private let capacity: Int
  private let limit: Int
  private var count = 0
  /// Set when a write failed (e.g. the reader of a pipe went away); output is then dropped.
  public private(set) var failed = false

  /// `fd` -1 collects bytes without writing (see `bytes`).
  public init(fd: Int32, bufferSize: Int = 1 << 20) {
    self.fd = fd
    limit = bufferSize
    capacity = bufferSize + (64 << 10)
    storage = Storage(capacity: capacity)
    base = storage.base
  }

  /// The bytes not yet written.
  public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

  @inline(__always)
  public mutating func flushIfNeeded() {
    if count >= limit { flush() }
  }

  public mutating func flush() {
    guard fd >= 0 else { return }
    defer { count = 0 }
    guard !failed, count > 0 else { return }
    if !writeAll(to: fd, UnsafeRawBufferPointer(start: base, count: count)) { failed = true }
  }

  /// Makes room for `n` more bytes (flushing, or writing a huge run straight through).
  @inline(__always)
  private mutating func reserve(_ n: Int) -> Bool {
    if count + n <= capacity { return true }
    flush()
    return count + n <= capacity
  }

  @inline(__always)
  public mutating func append(raw: UnsafeRawBufferPointer) {
    // An empty buffer may have no base address: nothing to append then.
    guard let source = raw.baseAddress, raw.count > 0 else { return }
    if !reserve(raw.count) {
      if fd >= 0 && !failed && !writeAll(to: fd, raw) { failed = true }
      return
    }
    (base + count).update(from: source.assumingMemoryBound(to: UInt8.self), count: raw.count)
    count += raw.count
  }

  @inline(__always)
  public mutating func append(_ text: StaticString) {
    append(raw: UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
  }

  /// Appends a run-time string (literals use the faster `StaticString` overload).
  public mutating func append(string text: String) {
    var text = text
    text.withUTF8 { append(raw: UnsafeRawBufferPointer($0)) }
  }

  @inline(__always)
  public mutating func append(bytes: [UInt8]) {
    bytes.withUnsafeBytes { append(raw: $0) }
  }

  @inline(__always)
  public mutating func append(byte: UInt8) {
    if reserve(1) {
      base[count] = byte
      count += 1
    }
  }

  /// Decimal digits, written straight into the buffer.
  @inline(__always)
  public mutating func appendDecimal(_ value: UInt64) {
    guard reserve(20) else { return }
    count += TextWriter.writeDecimal(value, to: UnsafeMutableRawBufferPointer(start: base + count, count: 20))
  }

  public mutating func appendSignedDecimal(_ value: Int64) {
    if value < 0 { append(byte: UInt8(ascii: "-")) }
    appendDecimal(value.magnitude)
  }

  /// Lower-case hex, zero-padded to `minimumDigits`.
  public mutating func appendHex(_ value: UInt64, minimumDigits: Int) {
    var scratch: [UInt8] = []
    TextWriter.hex(value, minimumDigits: minimumDigits, into: &scratch)
    append(bytes: scratch)
  }

  /// `ip:port` (IPv4 without allocation) or `[ipv6]:port`.
  public mutating func appendEndpoint(_ endpoint: Endpoint) {
    let address = endpoint.address
    if address.isIPv6 {
      var scratch: [UInt8] = []
      endpoint.write(into: &scratch)
      append(bytes: scratch)
      return
    }
    let v = address.ipv4
    appendDecimal(UInt64(v >> 24))
    append(byte: UInt8(ascii: "."))
    appendDecimal(UInt64((v >> 16) & 0xFF))
    append(byte: UInt8(ascii: "."))
    appendDecimal(UInt64((v >> 8) & 0xFF))
    append(byte: UInt8(ascii: "."))
    appendDecimal(UInt64(v & 0xFF))
    append(byte: UInt8(ascii: ":"))
    appendDecimal(UInt64(endpoint.port))
  }

  /// Appends `text` as a JSON string literal, quotes included.
  public mutating func appendJSONString(_ text: String) {
    append(byte: UInt8(ascii: "\""))
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "\""): append("\\\"")
      case UInt8(ascii: "\\"): append("\\\\")
      case 0x0A: append("\\n")
      case 0x0D: append("\\r")
      case 0x09: append("\\t")
      case 0..<0x20:
        append("\\u00")
        append(byte: Self.hexDigit(byte >> 4))
        append(byte: Self.hexDigit(byte & 0xF))
      default: append(byte: byte)
      }
    }
    append(byte: UInt8(ascii: "\""))
  }

  /// Pads with spaces to `width` bytes after `start` bytes were written (at least one space).
  public mutating func padTo(_ width: Int, from start: Int) {
    let written = count - start
    for _ in 0..<max(1, width - written) { append(byte: 0x20) }
  }

  /// Bytes written since creation of the current buffer (for column padding).
  public var position: Int { count }

  private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? v + 48 : v + 87 }
}
